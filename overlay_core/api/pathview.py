"""The controller's network-wide view of paths: every pair of members, both sides' word.

Pure: JSON in, JSON out, importing nothing but the schema, so the console's fake node
serves the very same view (tests/test_architecture.py lets console/ import this module
and holds it to importing only the schema). api/paths.py feeds it the controller's records.

Built from the newest path report of each authorized member (proto/report.py, kept by
controller/reports.py). For a pair (a, b) the view puts side by side what a says about b
and what b says about a: the two can differ (RELAY one way and DIRECT the other while a
punch is under way, or TCP on the side whose UDP is blocked), so neither is dropped. The
pair's `link` is the worse side, ranked

    NONE (no contact) > TCP > RELAY > UNKNOWN (nobody reported) > DIRECT

Pairs without an offline member come first, worst first, then by latency; pairs with a
member that went offline (it reported, then stopped answering; not one that never
reported or switched reporting off) come after them, so a big network's live trouble is at the top
and not buried under an offline member's hundreds of dead pairs. A member is online when
its last report is at most ONLINE_WITHIN_S old (two missed heartbeats); one that switched
reporting off says so in a last report, and is shown as `reporting: false`, not offline.

When a pair is not DIRECT, `reason` names why in one word and `because_of` the member
whose side causes it, in this order of evidence:

1. a member went offline (its last report is stale): offline;
2. a member reaches the roots only over TCP (its report's tcp_fallback): tcp_only;
3. a member's NAT is symmetric (its own NAT verdict, or one side's symmetric_local /
   symmetric_peer reason): symmetric_nat;
4. a side has had no contact at all with the other: no_contact (nobody blamed: either
   could be the one not trying);
5. otherwise the first reason either side gave (not_introduced, filtered, ...), with no
   member to blame: a silent firewall could be on either side.

A member is flagged when it is online, fewer than half of its pairs with a known link
(and no offline member) are DIRECT, and it is to blame for at least one of them, or
nobody is for any: the reason its pairs most often share, its own causes first. A member
relayed only because each of its peers is behind a symmetric NAT or blocked UDP is not
flagged; they are.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .schema import PATH_LINKS, PairLink, PathMemberJson, PathPairJson, PathSideJson, PathsJson

# proto/report.py REPORT_EVERY_S and netcheck's MAPPING_DEPENDENT; repeated here so this
# module imports only the schema (tests/core/test_path_reports.py holds them equal).
REPORT_EVERY_S = 30.0
MAPPING_DEPENDENT = "endpoint-dependent (symmetric)"
# Two reports missed in a row before a member shows offline.
ONLINE_WITHIN_S = 2.5 * REPORT_EVERY_S
BADNESS: dict[str, int] = {link: rank for rank, link in enumerate(PATH_LINKS)}  # best first
DIRECT, NONE = PairLink.DIRECT, PairLink.NONE  # the two words the judging below turns on
# Said of the member that causes it ("laptop reaches ..."), or alone when nobody does.
REASON_TEXT = {
    "offline": f"is offline (no report for over {ONLINE_WITHIN_S:.0f} s)",
    "tcp_only": "reaches the roots only over TCP (UDP is blocked on its network); "
    "allow outbound UDP there",
    "symmetric_nat": "is behind a symmetric NAT (a new port per destination); "
    "forward a UDP port to it, or relay is the best there is",
    "no_contact": "one side has not reached the other yet",
    "not_introduced": "no direct endpoint learned yet (the roots have not introduced them)",
    "direct_lost": "the direct path stopped answering",
    "router_answers": "a router answers the probes itself (no input firewall)",
    "unreachable": "the addresses they learned are unreachable (private or filtered)",
    "filtered": "probes get no answer: a firewall drops them",
}
# Reasons that name the member causing them: on anyone else's pairs they say nothing
# against that one.
_BLAMED = frozenset({"offline", "tcp_only", "symmetric_nat"})


@dataclass(frozen=True, slots=True)
class Member:
    """An authorized member as the controller's records have it."""

    address: str
    name: str
    ips: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Report:
    """A member's newest report (PathReport.to_json()) and when the controller got it."""

    received: float
    body: dict[str, Any]

    @property
    def stopped(self) -> bool:
        return bool(self.body.get("stopped"))


def paths_view(
    nwid: str,
    name: str,
    members: Sequence[Member],
    reports: dict[str, Report],
    now: float,
    limit: int | None = None,
) -> PathsJson:
    """The view of `members` (authorized ones) from `reports` (by address)."""
    ordered = sorted(members, key=lambda m: m.address)
    label = {m.address: m.name or m.address for m in ordered}
    live = {a: r for a, r in reports.items() if not r.stopped}
    online = {a for a, r in live.items() if 0 <= now - r.received <= ONLINE_WITHIN_S}
    offline = set(live) - online  # reported, then went quiet (not: never, or switched off)
    sees: dict[str, dict[str, dict[str, Any]]] = {
        address: {p["address"]: p for p in report.body.get("peers", [])}
        for address, report in live.items()
    }
    # Every pair is judged (links, tallies, order) from the raw entries, as cheaply as can
    # be: 1,000 members make 499,500 pairs. Only the pairs shown are built as JSON.
    keys: list[tuple[bool, int, float, str, str]] = []
    links: Counter[str] = Counter()
    addresses = [m.address for m in ordered]
    # Per member: DIRECT pairs, other known pairs, and the reasons of those (with whether
    # the member itself is the cause); pairs with an offline member do not count (a
    # member is judged by how it reaches the members that are there).
    direct = dict.fromkeys(addresses, 0)
    other = dict.fromkeys(addresses, 0)
    reasons: dict[str, Counter[tuple[str, bool]]] = {}
    empty: dict[str, dict[str, Any]] = {}
    link: str  # a PairLink, or a newer member's word passed through
    for i, a in enumerate(addresses):
        a_sees = sees.get(a, empty)
        a_gone = a in offline
        for b in addresses[i + 1 :]:
            x, y = a_sees.get(b), sees.get(b, empty).get(a)
            gone = a_gone or b in offline
            if x is not None and y is not None and x.get("link") == y.get("link") == DIRECT:
                link, reason, culprit = DIRECT, None, None  # most pairs: nothing to explain
            else:
                link = _worse(x, y)
                reason, culprit = (
                    (None, None) if link == DIRECT else _explain(a, b, x, y, live, online)
                )
            links[link] += 1
            if link == DIRECT:
                if not gone:
                    direct[a] += 1
                    direct[b] += 1
            elif link != PairLink.UNKNOWN and not gone:
                other[a] += 1
                other[b] += 1
                if reason is not None:
                    reasons.setdefault(a, Counter())[(reason, culprit == a)] += 1
                    reasons.setdefault(b, Counter())[(reason, culprit == b)] += 1
            keys.append((gone, -BADNESS.get(link, 1), -_latency(x, y), a, b))
    tallies: Tally = {a: (direct[a], other[a], reasons.get(a, Counter())) for a in addresses}
    shown = sorted(keys) if limit is None else heapq.nsmallest(limit, keys)
    out_members = [
        _member(m, reports.get(m.address), m.address in online, tallies, label, now)
        for m in ordered
    ]
    return {
        "nwid": nwid,
        "name": name,
        "online_within_s": ONLINE_WITHIN_S,
        "members": out_members,
        "pairs": [_pair(k[3], k[4], sees, live, online, label) for k in shown],
        "pairs_total": len(keys),
        "links": dict(sorted(links.items())),
    }


def _worse(x: dict[str, Any] | None, y: dict[str, Any] | None) -> str:
    """The pair's link from both sides' entries: the worse one, UNKNOWN with neither."""
    if x is None and y is None:
        return PairLink.UNKNOWN
    known = [str(e.get("link", NONE)) for e in (x, y) if e is not None]
    return max(known, key=lambda k: BADNESS.get(k, 1))


def _latency(x: dict[str, Any] | None, y: dict[str, Any] | None) -> float:
    worst = 0.0
    for entry in (x, y):
        if entry is not None:
            value = entry.get("latency_ms")
            if isinstance(value, int | float) and value > worst:
                worst = float(value)
    return worst


def _side(entry: dict[str, Any] | None) -> PathSideJson | None:
    if entry is None:
        return None
    return {
        "link": str(entry.get("link", NONE)),
        "latency_ms": entry.get("latency_ms"),
        "kind": str(entry.get("kind", "unknown")),
        "reason": entry.get("reason") or None,
    }


def _pair(
    a: str,
    b: str,
    sees: dict[str, dict[str, dict[str, Any]]],
    reports: dict[str, Report],
    online: set[str],
    label: dict[str, str],
) -> PathPairJson:
    x, y = sees.get(a, {}).get(b), sees.get(b, {}).get(a)
    a_sees, b_sees = _side(x), _side(y)
    link = _worse(x, y)
    reason, culprit = (None, None) if link == DIRECT else _explain(a, b, x, y, reports, online)
    why = None
    if reason is not None:
        text = REASON_TEXT.get(reason, reason)
        why = f"{label[culprit]} {text}" if culprit is not None else text
    return {
        "a": a,
        "b": b,
        "a_sees": a_sees,
        "b_sees": b_sees,
        "link": link,
        "reason": reason,
        "because_of": culprit,
        "why": why,
    }


def _explain(
    a: str,
    b: str,
    a_sees: dict[str, Any] | None,
    b_sees: dict[str, Any] | None,
    reports: dict[str, Report],
    online: set[str],
) -> tuple[str | None, str | None]:
    """(reason, the member it is about) for a pair that is not DIRECT: see the docstring."""
    if a_sees is None and b_sees is None:
        return None, None
    for member in (a, b):
        if member in reports and member not in online:
            return "offline", member
    for member in (a, b):
        report = reports.get(member)
        if report is not None and report.body.get("tcp_fallback"):
            return "tcp_only", member
    for member in (a, b):
        report = reports.get(member)
        if report is not None and report.body.get("nat") == MAPPING_DEPENDENT:
            return "symmetric_nat", member
    sides = ((a, b, a_sees), (b, a, b_sees))
    for me, other, side in sides:
        if side is not None and side.get("reason") == "symmetric_local":
            return "symmetric_nat", me
        if side is not None and side.get("reason") == "symmetric_peer":
            return "symmetric_nat", other
    if any(side is not None and side.get("link") == NONE for _, _, side in sides):
        return "no_contact", None
    for _, _, side in sides:
        if side is not None and side.get("reason"):
            return str(side["reason"]), None
    return None, None


Tally = dict[str, tuple[int, int, Counter[tuple[str, bool]]]]


def _member(
    member: Member,
    report: Report | None,
    online: bool,
    tallies: Tally,
    label: dict[str, str],
    now: float,
) -> PathMemberJson:
    age = None if report is None else round(max(0.0, now - report.received), 1)
    body = report.body if report is not None and not report.stopped else {}
    direct, other, reasons = tallies.get(member.address, (0, 0, Counter()))
    flag = flag_why = None
    own = Counter({word: n for (word, mine), n in reasons.items() if mine})
    # Pairs blamed on nobody (a firewall that could be on either side) may be its doing,
    # but only when no other member is to blame for any of its pairs.
    others = any(not mine and word in _BLAMED for (word, mine) in reasons)
    unblamed = Counter({word: n for (word, mine), n in reasons.items() if not mine})
    candidates = own or (Counter() if others else unblamed)
    if online and other > direct and candidates:
        flag = min(candidates, key=lambda word: (-candidates[word], word))
        shown = REASON_TEXT.get(flag, "reason unknown")
        flag_why = f"{label[member.address]}: not DIRECT with {other} of {other + direct}: {shown}"
    return {
        "address": member.address,
        "name": member.name,
        "ips": list(member.ips),
        "online": online,
        "reporting": None if report is None else not report.stopped,
        "report_age_s": age,
        "version": body.get("version"),
        "uptime_s": body.get("uptime_s"),
        "nat": body.get("nat"),
        "tcp_fallback": body.get("tcp_fallback"),
        "direct": direct,
        "not_direct": other,
        "flag": flag,
        "flag_why": flag_why,
    }
