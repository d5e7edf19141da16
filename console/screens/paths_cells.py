"""What the Paths screen writes, apart from the screen: member labels, the matrix's
glyphs, table cells and the detail lines, from the controller's paths view (PathsJson,
overlay_core/api/pathview.py). Pure functions of the JSON, so tests check them directly.

Labels are what rows, columns and pairs are called: a member's name when it is short and
nobody else has it, its address otherwise. A name is a name, so a long one may be cut
(with "…"); an address is an id and is never cut.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from rich.cells import cell_len
from rich.text import Text

from overlay_core.api.schema import (
    PairLink,
    PathMemberJson,
    PathPairJson,
    PathSideJson,
    PathsJson,
)

from .. import fmt
from ..render import printable

LABEL_MAX = 12  # an address is 10: a label is never wider than 12 cells
# One character per link, readable without colour (TERM=linux, 16 colours, a screen
# reader); the colour repeats it. Keys are overlay_core.api.schema PATH_LINKS.
GLYPHS: dict[str, str] = {
    PairLink.DIRECT: "D",
    PairLink.RELAY: "R",
    PairLink.TCP: "T",
    PairLink.NONE: "-",
    PairLink.UNKNOWN: "?",
}
LEGEND = (
    (PairLink.DIRECT, "direct"),
    (PairLink.RELAY, "relayed"),
    (PairLink.TCP, "over TCP"),
    (PairLink.NONE, "no contact"),
    (PairLink.UNKNOWN, "not reported"),
)
LINK_STYLES = {**fmt.LINK_STYLES, PairLink.UNKNOWN: fmt.MUTED}
SELF = "·"  # a member with itself, on the matrix's diagonal
# A few words for each reason (overlay_core.api.schema PATH_REASONS); the pair's `why`
# and the member's `flag_why` say it in full.
REASON_WORDS = {
    "tcp_only": "TCP only",
    "symmetric_nat": "symmetric NAT",
    "symmetric_local": "own NAT symmetric",
    "symmetric_peer": "peer's NAT symmetric",
    "not_introduced": "not introduced",
    "direct_lost": "direct path lost",
    "router_answers": "router answers",
    "unreachable": "unreachable",
    "filtered": "firewalled",
    "no_contact": "no contact",
    "offline": "offline",
    "unknown": "reason unknown",
}
NAT_WORDS = {  # netcheck's mapping words, as reports carry them
    "endpoint-independent": "cone",
    "endpoint-dependent (symmetric)": "symmetric",
    "none (public address)": "public",
    "unknown (one root)": "? (1 root)",
    "unknown": "?",
}
FLAG_MARK = "!"
FLAG_STYLE = "bold red"


def labels(members: Iterable[PathMemberJson]) -> dict[str, str]:
    """address -> label: the name, cut to LABEL_MAX, unless another member's label (or
    address) would read the same; then the address. Unique, so it can key a row."""
    listed = list(members)
    wanted: dict[str, str] = {}
    for member in listed:
        name = printable(member["name"].strip())
        if not name or "/" in name:  # "/" joins the two labels of a pair's row key
            wanted[member["address"]] = member["address"]
        elif cell_len(name) > LABEL_MAX:
            cut = Text(name)
            cut.truncate(LABEL_MAX, overflow="ellipsis")
            wanted[member["address"]] = cut.plain
        else:
            wanted[member["address"]] = name
    counts = Counter(wanted.values())
    addresses = {m["address"] for m in listed}
    return {
        address: label if counts[label] == 1 and (label == address or label not in addresses)
        else address
        for address, label in wanted.items()
    }  # fmt: skip


def glyph(link: str) -> Text:
    return Text(GLYPHS.get(link, "?"), style=LINK_STYLES.get(link, ""), justify="center")


def legend() -> Text:
    """The glyphs in one line: "D direct · R relayed · ..." (65 cells)."""
    text = Text()
    for i, (link, words) in enumerate(LEGEND):
        if i:
            text.append(" · ", style="dim")
        text.append(GLYPHS[link], style=f"bold {LINK_STYLES[link]}")
        text.append(f" {words}")
    return text


def nat_word(nat: str | None) -> str:
    return fmt.DASH if nat is None else NAT_WORDS.get(nat, nat)


def reason_word(reason: str | None) -> str:
    return "" if reason is None else REASON_WORDS.get(reason, reason)


def reported(member: PathMemberJson) -> Text:
    """How long ago its last report came, OFFLINE once that is too long, or none."""
    age = member["report_age_s"]
    if age is None:
        return Text("no report", style="yellow")
    if member.get("reporting") is False:
        return Text("reporting off", style="yellow")
    if not member["online"]:
        return Text(f"OFFLINE {fmt.ago(age)}", style="red")
    return Text(f"{fmt.ago(age)} ago")


def pair_key(pair: PathPairJson, label: dict[str, str]) -> str:
    return f"{label[pair['a']]}/{label[pair['b']]}"


def side_cell(side: PathSideJson | None) -> Text:
    if side is None:
        return Text("no report", style="bright_black")
    text = Text(side["link"], style=LINK_STYLES.get(side["link"], ""))
    if side["latency_ms"] is not None:
        text.append(f" {fmt.ms(side['latency_ms'])}")
    return text


def why_cell(pair: PathPairJson, label: dict[str, str]) -> str:
    """The reason in a few words and whose side causes it: "symmetric NAT (phone)"."""
    if pair["reason"] is None:
        return ""
    culprit = pair["because_of"]
    whose = f" ({label.get(culprit, culprit)})" if culprit is not None else ""
    return f"{reason_word(pair['reason'])}{whose}"


def pair_cells(pair: PathPairJson, label: dict[str, str]) -> tuple[Text | str, ...]:
    """A row of the pairs list: link, A, B, why, what each side says."""
    return (
        Text(pair["link"], style=LINK_STYLES.get(pair["link"], "")),
        label[pair["a"]],
        label[pair["b"]],
        why_cell(pair, label),
        side_cell(pair["a_sees"]),
        side_cell(pair["b_sees"]),
    )


def member_order(members: Iterable[PathMemberJson], label: dict[str, str]) -> list[PathMemberJson]:
    """Flagged first (what the user came for), then offline, then silent, then the rest."""

    def rank(m: PathMemberJson) -> tuple[int, str]:
        if m["flag"]:
            return 0, label[m["address"]]
        if m["report_age_s"] is not None and not m["online"]:
            return 1, label[m["address"]]
        return (2 if m["report_age_s"] is None else 3), label[m["address"]]

    return sorted(members, key=rank)


def member_cells(member: PathMemberJson, label: dict[str, str]) -> tuple[Text | str, ...]:
    """A row of the members table: flag mark, label, address, report age, NAT, how many
    of its pairs are DIRECT, version, the flag's reason."""
    known = member["direct"] + member["not_direct"]
    return (
        Text(FLAG_MARK, style=FLAG_STYLE) if member["flag"] else "",
        label[member["address"]],
        member["address"],
        reported(member),
        "UDP blocked" if member["tcp_fallback"] else nat_word(member["nat"]),
        f"{member['direct']}/{known}" if known else fmt.DASH,
        printable(member["version"] or fmt.DASH),
        Text(reason_word(member["flag"]), style=FLAG_STYLE) if member["flag"] else "",
    )


# --------------------------------------------------------------------------- details


def _who(member: PathMemberJson | None, address: str) -> str:
    if member is None or not member["name"]:
        return address
    return f"{printable(member['name'])} ({address})"


def side_line(me: str, other: str, side: PathSideJson | None) -> Text:
    """One side of a pair as its member reported it."""
    text = Text(f"  {me} -> {other}: ")
    if side is None:
        text.append("no report from it", style="bright_black")
        return text
    text.append(side["link"], style=f"bold {LINK_STYLES.get(side['link'], '')}")
    if side["latency_ms"] is not None:
        text.append(f" {fmt.ms(side['latency_ms'])}")
    if side["kind"] not in ("unknown", "relay"):
        text.append(f" via {side['kind']}")
    if side["reason"]:
        text.append(f" ({reason_word(side['reason'])})", style="yellow")
    return text


def pair_detail(pair: PathPairJson, by_address: dict[str, PathMemberJson]) -> Text:
    a, b = pair["a"], pair["b"]
    name_a = printable(by_address[a]["name"]) if a in by_address else ""
    name_b = printable(by_address[b]["name"]) if b in by_address else ""
    short_a, short_b = name_a or a, name_b or b
    text = Text()
    text.append(pair["link"], style=f"bold {LINK_STYLES.get(pair['link'], '')}")
    text.append(f"  {_who(by_address.get(a), a)} <-> {_who(by_address.get(b), b)}\n")
    text.append_text(side_line(short_a, short_b, pair["a_sees"]))
    text.append("\n")
    text.append_text(side_line(short_b, short_a, pair["b_sees"]))
    if pair["why"]:
        text.append("\n  why: ", style="bold")
        text.append(printable(pair["why"]))
    elif pair["link"] == PairLink.UNKNOWN:
        text.append("\n  neither has reported the other yet")
    return text


def member_detail(member: PathMemberJson, view: PathsJson) -> Text:
    text = Text()
    if member["flag"]:
        text.append(f"{FLAG_MARK} ", style=FLAG_STYLE)
    text.append(_who(member, member["address"]), style="bold")
    parts = [", ".join(member["ips"]) or "no IPs"]
    age = member["report_age_s"]
    if age is None:
        parts.append("no path report (an older version, or never online since joining)")
    elif member.get("reporting") is False:
        parts.append(
            f"reporting switched off on it ({fmt.ago(age)} ago): `ztui set NWID report=yes` there"
        )
    elif member["online"]:
        parts.append(f"reported {fmt.ago(age)} ago")
    else:
        limit = view["online_within_s"]
        parts.append(f"OFFLINE: no report for {fmt.ago(age)} (over {limit:.0f} s): it is down")
    if member["version"]:
        parts.append(f"v{printable(member['version'])}")
    if member["nat"]:
        parts.append(f"NAT {member['nat']}")
    if member["tcp_fallback"]:
        parts.append("roots over TCP only")
    known = member["direct"] + member["not_direct"]
    if known:
        parts.append(f"DIRECT with {member['direct']} of {known}")
    text.append("  " + " · ".join(parts))
    if member["flag_why"]:
        text.append("\n  ")
        text.append(printable(member["flag_why"]), style="bold")
    return text


def title(view: PathsJson) -> Text:
    """One line of counts over the view (two at 80 columns)."""
    members = view["members"]
    online = sum(1 for m in members if m["online"])
    silent = sum(1 for m in members if m["report_age_s"] is None)
    flagged = sum(1 for m in members if m["flag"])
    text = Text()
    text.append(f"{printable(view['name']) or '-'} {view['nwid']}", style="bold")
    text.append(f"  {len(members)} members, {online} online")
    if silent:
        text.append(f", {silent} not reporting")
    if flagged:
        text.append(f", {flagged} flagged", style=FLAG_STYLE)
    text.append(f" · {view['pairs_total']} pairs:")
    for link in GLYPHS:
        count = view["links"].get(link)
        if count:
            text.append(f" {count} ")
            text.append(link, style=LINK_STYLES.get(link, ""))
    return text


__all__ = [
    "GLYPHS",
    "LABEL_MAX",
    "REASON_WORDS",
    "SELF",
    "glyph",
    "labels",
    "legend",
    "member_cells",
    "member_detail",
    "member_order",
    "pair_cells",
    "pair_detail",
    "pair_key",
    "title",
]
