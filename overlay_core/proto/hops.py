"""How many routers (and which NATs) lie between this node and the internet: a tiny traceroute.

Hole punching (punch.py) opens our own NAT towards a peer with a packet whose IP TTL runs
out *after* our NATs and *before* the peer's router. If it reached the peer's router
first, a router without an input firewall would take it as its own traffic and keep a
conntrack entry for it that blocks the peer's own mapping (see punch.py). The right TTL is
"our NAT hops + 1": the packet expires at the first router past our last NAT, which is
the ISP's and never the peer's.

We learn it the way traceroute does, towards a root we already talk to: one ECHO with TTL
1, then 2, ..., each waiting for either an ICMP "time exceeded" (its sender is the router
at that hop; the I/O layer reads it from the socket's error queue) or the root's answer
(the root is that many hops away), or TRACE_STEP_S of silence (a router that does not
answer). A hop whose ICMP comes from an address that only exists behind a NAT (RFC 1918,
the 100.64.0.0/10 space carrier-grade NATs use, link-local) is a NAT of ours, or a router
between two of them; the last such hop is our outermost NAT. Nothing here sends anything:
the node asks `next_ttl` and reports what came back.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

# ZeroTier's fixed choice, used until the trace has answered: one home router, then the
# ISP's first router drops it.
DEFAULT_OPENER_TTL = 2
MAX_TRACE_TTL = 8  # further than any stack of NATs; the root is usually reached earlier
TRACE_STEP_S = 0.5  # wait this long for a hop's ICMP (or the root's answer) before the next
RETRACE_S = 600.0  # routes and NATs change (a new uplink); trace again this often

_INSIDE = [
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",  # RFC 6598: between a carrier-grade NAT and its customers
        "169.254.0.0/16",
        "127.0.0.0/8",
        "fc00::/7",
        "fe80::/10",
        "::1/128",
    )
]


def is_inside_address(host: str) -> bool:
    """An address that only exists behind a NAT (or on a link): never a public router's.

    Not `ipaddress.is_private`, which also counts documentation and benchmarking ranges
    (198.18.0.0/15, the netns rig's "internet") as private."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in net for net in _INSIDE if net.version == address.version)


@dataclass(slots=True)
class HopTrace:
    """One trace towards one root endpoint (state only; the node sends the probes)."""

    started: float | None = None
    ttl: int = 0  # the TTL of the probe in flight (0: none yet)
    sent_at: float = 0.0
    offenders: dict[int, str | None] = field(default_factory=dict)  # ttl -> ICMP sender
    reached: int | None = None  # the root answered a probe with this TTL
    finished: float | None = None

    @property
    def done(self) -> bool:
        return self.finished is not None

    def start(self, now: float) -> None:
        self.started, self.ttl, self.sent_at = now, 0, now
        self.offenders.clear()
        self.reached = self.finished = None

    def due(self, now: float) -> bool:
        """Should a (re)trace start now?"""
        if self.started is None:
            return True
        return self.finished is not None and now - self.finished >= RETRACE_S

    def next_ttl(self, now: float) -> int | None:
        """The TTL of the next probe to send now, or None (one in flight, or finished)."""
        if self.finished is not None or self.started is None:
            return None
        if self.ttl and now - self.sent_at < TRACE_STEP_S:
            return None
        if self.ttl:
            self.offenders.setdefault(self.ttl, None)  # a silent hop
        if self.ttl >= MAX_TRACE_TTL:
            self.finished = now
            return None
        self.ttl += 1
        self.sent_at = now
        return self.ttl

    def time_exceeded(self, offender: str | None, now: float) -> None:
        """An ICMP time exceeded for our probe in flight, from `offender`."""
        if self.finished is None and self.ttl and self.ttl not in self.offenders:
            self.offenders[self.ttl] = offender
            self.sent_at = now - TRACE_STEP_S  # answered: the next hop may go at once

    def answered(self, ttl: int, now: float) -> None:
        """The root answered the probe sent with `ttl`: it is that many hops away."""
        if self.finished is None:
            self.reached = ttl if self.reached is None else min(self.reached, ttl)
            self.finished = now

    @property
    def nat_hops(self) -> list[str]:
        """The inside addresses of our NAT routers, nearest first, as far as we saw them."""
        return [a for _, a in sorted(self.offenders.items()) if a and is_inside_address(a)]

    @property
    def opener_ttl(self) -> int:
        """The TTL that passes every NAT of ours and expires at the next router.

        The outermost hop that answered from an inside address is our last NAT; one more
        hop is the first public router. With no inside hop seen (no NAT, or routers that
        stay silent) the default. If our last NAT is the root's neighbour (no router
        between the NATs: a LAN or a lab, never the internet) the opener reaches the
        peer's router whatever its TTL; a smaller one would not open our own NAT."""
        inside = [ttl for ttl, a in self.offenders.items() if a and is_inside_address(a)]
        return max(inside) + 1 if inside else DEFAULT_OPENER_TTL
