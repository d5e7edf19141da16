"""Address space shared between the networks one controller hosts.

A machine that is a member of two networks whose pools overlap gets the same subnet on
two TAP devices (and, since a member's pool address is a hash of its own address, often
the very same IP), and the kernel then sends that subnet's traffic through whichever
device it likes. The controller cannot stop one machine from joining two of its networks,
so it keeps them apart where it chooses and speaks up where an admin chose otherwise:

* `suggest_pool`: the first /24 of 10.147.17.0/24, 10.147.18.0/24, ... 10.147.255.0/24
  (ZeroTier Central suggests from the same range) that no hosted network uses. A network
  created without pools gets it.
* `overlap_warnings`: one line per other hosted network whose address space a network's
  overlaps. An overlap is allowed (two networks that never share a member may use the same
  range), so it is a warning in the API's answer, never a refusal.

What counts as a network's address space: its pools and its on-link routes (no gateway).
A route via a gateway says a range lies *behind* a member; the kernel prefers the more
specific on-link subnet, so it does not clash, and a default route would otherwise
overlap everything.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from overlay_core.proto.netconf import format_nwid

from .pools import parse_pool
from .records import NetworkRecord

SUGGESTED_SECOND_OCTET = 147
SUGGESTED_THIRD_OCTETS = range(17, 256)  # 10.147.17.0/24 first, as ZeroTier Central does

SpanKind = Literal["pool", "route"]


@dataclass(frozen=True, slots=True)
class Span:
    """A pool or on-link route of a network, as a range of integers of one IP version."""

    nwid: int
    name: str
    kind: SpanKind
    text: str  # as the network stores it
    version: int
    first: int
    last: int

    def overlaps(self, other: Span) -> bool:
        return (
            self.version == other.version and self.first <= other.last and other.first <= self.last
        )


def spans(record: NetworkRecord) -> Iterator[Span]:
    """The address space a network's members are put on: pools, then on-link routes."""
    for text in record.pools:
        pool = parse_pool(text)
        yield Span(record.nwid, record.name, "pool", pool.text, 4, pool.first, pool.last)
    for route in record.routes:
        if route.via is not None:
            continue  # behind a gateway: see the module docstring
        net = ipaddress.ip_network(route.target)
        yield Span(
            record.nwid,
            record.name,
            "route",
            route.target,
            net.version,
            int(net.network_address),
            int(net.broadcast_address),
        )


def suggest_pool(records: Iterable[NetworkRecord]) -> str | None:
    """The first suggested /24 no hosted network's pools or on-link routes touch; None
    when all 239 are taken (then pick one by hand)."""
    used = [span for record in records for span in spans(record) if span.version == 4]
    for third in SUGGESTED_THIRD_OCTETS:
        candidate = ipaddress.IPv4Network((f"10.{SUGGESTED_SECOND_OCTET}.{third}.0", 24))
        first, last = int(candidate.network_address), int(candidate.broadcast_address)
        if not any(span.first <= last and first <= span.last for span in used):
            return str(candidate)
    return None


def overlap_warnings(record: NetworkRecord, records: Iterable[NetworkRecord]) -> list[str]:
    """One line per other network whose address space `record`'s overlaps (the first
    overlapping pair names it), in network id order."""
    mine = list(spans(record))
    warnings: list[str] = []
    for other in sorted(records, key=lambda r: r.nwid):
        if other.nwid == record.nwid:
            continue
        pair = next(((a, b) for a in mine for b in spans(other) if a.overlaps(b)), None)
        if pair is not None:
            ours, theirs = pair
            warnings.append(
                f"{ours.kind} {ours.text} overlaps {theirs.kind} {theirs.text} of network "
                f"{describe(other)}: a member of both would get clashing addresses"
            )
    return warnings


def describe(record: NetworkRecord) -> str:
    nwid = format_nwid(record.nwid)
    return f"{record.name} ({nwid})" if record.name else nwid
