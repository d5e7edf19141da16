"""The controller's network-wide view of paths: every pair of members, both sides' word.

Built from the newest path report of each authorized member (controller/reports.py,
proto/report.py). For a pair (a, b) the view puts side by side what a says about b and
what b says about a: the two can differ (a RELAY one way and DIRECT the other while a
punch is under way, or TCP on the side whose UDP is blocked), so neither is dropped. The
pair's `link` is the worse side, ranked

    NONE (no contact) > TCP > RELAY > UNKNOWN (nobody reported) > DIRECT

and pairs are listed worst first, then by latency, so a big network's trouble is at the
top. When the pair is not DIRECT, `reason` names why in one word and `because_of` the
member whose side causes it, in this order of evidence:

1. a member reaches the roots only over TCP (its report's tcp_fallback): tcp_only;
2. a member's NAT is symmetric (its own NAT verdict, or one side's symmetric_local /
   symmetric_peer reason): symmetric_nat;
3. otherwise the first reason either side gave (not_introduced, filtered, ...), with no
   member to blame: a silent firewall could be on either side.

A member is flagged when it is online, fewer than half of its pairs with a known link are
DIRECT, and it is to blame for at least one of them, or nobody is for any: the reason its
pairs most often share, its own causes first. A member relayed only because each of its
peers is behind a symmetric NAT or blocked UDP is not flagged; they are.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from overlay_core.controller.records import MemberRecord, NetworkRecord
from overlay_core.controller.reports import StoredReport
from overlay_core.proto.identity import format_address
from overlay_core.proto.netcheck import MAPPING_DEPENDENT
from overlay_core.proto.netconf import format_nwid
from overlay_core.proto.report import REASON_TEXT, REPORT_EVERY_S

from .schema import PathMemberJson, PathPairJson, PathSideJson, PathsJson

# Reasons that always name the member causing them (_explain): on anyone else's pairs they
# say nothing against that one.
_BLAMED = frozenset({"tcp_only", "symmetric_nat", "no_contact"})
# Two reports missed in a row before a member shows offline (each is due every 30 s).
ONLINE_WITHIN_S = 2.5 * REPORT_EVERY_S
BADNESS = {"DIRECT": 0, "UNKNOWN": 1, "RELAY": 2, "TCP": 3, "NONE": 4}
# Said of the member that causes it ("laptop reaches ..."), or alone when nobody does.
PAIR_REASON_TEXT = {
    **REASON_TEXT,
    "not_introduced": "no direct endpoint learned yet (the roots have not introduced them)",
    "unreachable": "the addresses they learned are unreachable (private or filtered)",
    "tcp_only": "reaches the roots only over TCP (UDP is blocked on its network); "
    "allow outbound UDP there",
    "symmetric_nat": "is behind a symmetric NAT (a new port per destination); "
    "forward a UDP port to it, or relay is the best there is",
    "no_contact": "has not reached the other yet",
}


def paths_view(
    network: NetworkRecord,
    members: Iterable[MemberRecord],
    reports: dict[int, StoredReport],
    now: float,
    limit: int | None = None,
) -> PathsJson:
    authorized = sorted((m for m in members if m.authorized), key=lambda m: m.address)
    label = {m.address: m.name or format_address(m.address) for m in authorized}
    sees: dict[int, dict[str, dict[str, Any]]] = {
        address: {p["address"]: p for p in stored.report.get("peers", [])}
        for address, stored in reports.items()
    }
    pairs: list[PathPairJson] = []
    for i, a in enumerate(authorized):
        for b in authorized[i + 1 :]:
            pairs.append(_pair(a.address, b.address, sees, reports, label))
    pairs.sort(key=_worst_first)
    tallies = _tally(pairs)
    out_members = [_member(m, reports.get(m.address), tallies, label, now) for m in authorized]
    links = Counter(p["link"] for p in pairs)
    return {
        "nwid": format_nwid(network.nwid),
        "name": network.name,
        "online_within_s": ONLINE_WITHIN_S,
        "members": out_members,
        "pairs": pairs if limit is None else pairs[:limit],
        "pairs_total": len(pairs),
        "links": dict(sorted(links.items())),
    }


def _side(entry: dict[str, Any] | None) -> PathSideJson | None:
    if entry is None:
        return None
    return {
        "link": str(entry.get("link", "NONE")),
        "latency_ms": entry.get("latency_ms"),
        "kind": str(entry.get("kind", "unknown")),
        "reason": entry.get("reason") or None,
    }


def _pair(
    a: int,
    b: int,
    sees: dict[int, dict[str, dict[str, Any]]],
    reports: dict[int, StoredReport],
    label: dict[int, str],
) -> PathPairJson:
    a_sees = _side(sees.get(a, {}).get(format_address(b)))
    b_sees = _side(sees.get(b, {}).get(format_address(a)))
    known = [s["link"] for s in (a_sees, b_sees) if s is not None]
    link = max(known, key=lambda k: BADNESS.get(k, 1)) if known else "UNKNOWN"
    reason, culprit = (None, None) if link == "DIRECT" else _explain(a, b, a_sees, b_sees, reports)
    why = None
    if reason is not None:
        text = PAIR_REASON_TEXT.get(reason, reason)
        why = f"{label[culprit]} {text}" if culprit is not None else text
    return {
        "a": format_address(a),
        "b": format_address(b),
        "a_sees": a_sees,
        "b_sees": b_sees,
        "link": link,
        "reason": reason,
        "because_of": format_address(culprit) if culprit is not None else None,
        "why": why,
    }


def _explain(
    a: int,
    b: int,
    a_sees: PathSideJson | None,
    b_sees: PathSideJson | None,
    reports: dict[int, StoredReport],
) -> tuple[str | None, int | None]:
    """(reason, the member it is about) for a pair that is not DIRECT: see the docstring."""
    if a_sees is None and b_sees is None:
        return None, None
    for member in (a, b):
        stored = reports.get(member)
        if stored is not None and stored.report.get("tcp_fallback"):
            return "tcp_only", member
    for member in (a, b):
        stored = reports.get(member)
        if stored is not None and stored.report.get("nat") == MAPPING_DEPENDENT:
            return "symmetric_nat", member
    sides = ((a, b, a_sees), (b, a, b_sees))
    for me, other, side in sides:
        if side is not None and side["reason"] == "symmetric_local":
            return "symmetric_nat", me
        if side is not None and side["reason"] == "symmetric_peer":
            return "symmetric_nat", other
    for me, _, side in sides:
        if side is not None and side["link"] == "NONE":
            return "no_contact", me
    for _, _, side in sides:
        if side is not None and side["reason"]:
            return side["reason"], None
    return None, None


def _worst_first(pair: PathPairJson) -> tuple[int, float, str, str]:
    latencies = [
        s["latency_ms"]
        for s in (pair["a_sees"], pair["b_sees"])
        if s is not None and s["latency_ms"] is not None
    ]
    return (-BADNESS.get(pair["link"], 1), -max(latencies, default=0.0), pair["a"], pair["b"])


def _tally(pairs: list[PathPairJson]) -> dict[str, tuple[int, int, Counter[tuple[str, bool]]]]:
    """Per member: DIRECT pairs, other known pairs, and the reasons of those (with whether
    the member itself is the cause)."""
    out: dict[str, tuple[int, int, Counter[tuple[str, bool]]]] = {}
    for pair in pairs:
        if pair["link"] == "UNKNOWN":
            continue
        for me in (pair["a"], pair["b"]):
            direct, other, reasons = out.get(me, (0, 0, Counter()))
            if pair["link"] == "DIRECT":
                direct += 1
            else:
                other += 1
                if pair["reason"] is not None:
                    reasons[(pair["reason"], pair["because_of"] == me)] += 1
            out[me] = (direct, other, reasons)
    return out


def _member(
    member: MemberRecord,
    stored: StoredReport | None,
    tallies: dict[str, tuple[int, int, Counter[tuple[str, bool]]]],
    label: dict[int, str],
    now: float,
) -> PathMemberJson:
    text = format_address(member.address)
    age = None if stored is None else round(max(0.0, now - stored.received), 1)
    online = age is not None and age <= ONLINE_WITHIN_S
    report = stored.report if stored is not None else {}
    direct, other, reasons = tallies.get(text, (0, 0, Counter()))
    flag = flag_why = None
    own = Counter({word: n for (word, mine), n in reasons.items() if mine})
    # Pairs blamed on nobody (a firewall that could be on either side) may be its doing.
    unblamed = Counter(
        {word: n for (word, mine), n in reasons.items() if not mine and word not in _BLAMED}
    )
    candidates = own or unblamed
    if online and other > direct and candidates:
        flag = min(candidates, key=lambda word: (-candidates[word], word))
        shown = PAIR_REASON_TEXT.get(flag, "reason unknown")
        flag_why = f"{label[member.address]}: not DIRECT with {other} of {other + direct}: {shown}"
    return {
        "address": text,
        "name": member.name,
        "ips": list(member.ips),
        "online": online,
        "report_age_s": age,
        "version": report.get("version"),
        "uptime_s": report.get("uptime_s"),
        "nat": report.get("nat"),
        "tcp_fallback": report.get("tcp_fallback"),
        "direct": direct,
        "not_direct": other,
        "flag": flag,
        "flag_why": flag_why,
    }
