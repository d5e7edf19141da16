"""Physical paths to a peer: liveness, latency, counters, and choosing the best one.

A path is alive while authenticated packets from the peer keep arriving on it: the last one
within PATH_ALIVE_S. Keepalive probes (ECHO) go out on every direct path every
PATH_PROBE_S once it has been quiet that long, which both holds NAT mappings open and
measures latency, so a cut path is noticed within PATH_ALIVE_S and a restored one within
PATH_PROBE_S. A path that stays dead for PATH_FORGET_S is removed.

Confirmation: a packet that authenticates proves who sent it, not where from (a captured
packet can be replayed from any address, and the hop count is not authenticated). A new
path is therefore unconfirmed until the peer answers a challenge sent to that address:
an OK(ECHO) for a probe we sent there, an OK(HELLO) for a HELLO we sent there, or the
first use of a session whose OK(HELLO) we sent there. An unconfirmed path is not alive:
no bulk traffic, relaying or RENDEZVOUS uses it. What we send to it is limited to the
bytes it has sent us (`credit`), so it cannot be used as an amplifier, plus a few small
probes when an authenticated party (a root's RENDEZVOUS, the peer's own list) told us to
punch there. Configured root endpoints and TCP streams need no such proof to be sent to.

Path MTU: every datagram leaves with DF set (the I/O layer asks the kernel for
IP_PMTUDISC_PROBE), so a datagram larger than the path can carry is lost, never
fragmented by routers. A path therefore starts at PMTU_MIN, a size every IPv4 and IPv6
path carries, and searches upward with padded ECHO probes: first the ceiling (most paths
carry it), then by bisection, to within PMTU_STEP bytes. A probe unanswered within
PMTU_PROBE_TIMEOUT_S counts as too big. The search repeats every PMTU_REPROBE_S, because
routes change. Packets are fragmented to the path's confirmed size, so frames of any
size up to the network MTU cross without a black hole.

A path MTU that shrinks between searches (a router's link now carries less) is noticed at
once when a router on the way says so: the I/O layer reads the ICMP "fragmentation
needed" / ICMPv6 "packet too big" for our own datagrams (IP_RECVERR) and the node calls
`mtu_lowered_to` on the direct paths to that endpoint. An ICMP is not authenticated (any
box on the path can send one), so it may only lower a path, and never below PMTU_MIN: the
worst a forger gets is the size every path carries anyway. It never raises anything; a
path that grows again is found by the next regular search, PMTU_REPROBE_S after the
lowering.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from .effects import Endpoint, LatencyStatus, PathStatus, Transport

PATH_PROBE_S = 2.0
LATENCY_PROBE_S = 10.0  # a busy path needs no keepalive, but its latency still ages
PATH_ALIVE_S = 6.0
PATH_FORGET_S = 120.0
# An unconfirmed path that keeps receiving is challenged (probed) this often.
UNCONFIRMED_PROBE_S = 1.0
# Bytes a path may still receive credit for while unconfirmed: enough for a challenge and
# a reply or two, never a way to bank a large burst toward a victim.
MAX_CREDIT_BYTES = 4096
# The largest packet a punch allowance may carry: a padded ECHO probe, never an MTU probe.
PUNCH_PACKET_MAX = 128
# A path that has been silent longer than this is probed only every DEAD_PROBE_S, longer
# than the 30 s a Linux NAT keeps an unanswered UDP mapping: stale NAT state that blocks a
# punch (a port held by an earlier unanswered packet) then expires instead of being kept
# alive by our own probes.
DEAD_AFTER_S = 30.0
DEAD_PROBE_S = 35.0
PMTU_MIN = 1200  # UDP payload that fits a 1280-byte IPv6 link (QUIC makes the same bet)
# What a 1500-byte link carries (less IPv6, UDP and a tunnel margin): most internet paths.
# A search whose ceiling is larger (a jumbo LAN) and fails tries this next, so a node on a
# 9000-byte LAN settles its internet paths in two probes, not a dozen.
PMTU_COMMON = 1432
PMTU_STEP = 16
PMTU_PROBE_TIMEOUT_S = 1.0
PMTU_REPROBE_S = 60.0
# RFC 1918, loopback, link-local, CGNAT space, IPv6 unique-local and link-local: addresses
# only reachable nearby. Not ipaddress.is_private, which also counts the documentation and
# benchmark ranges (198.18.0.0/15, where the netns rig's internet is).
_LAN_NETS = [
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "100.64.0.0/10",
        "fc00::/7",
        "fe80::/10",
    )
]


def path_kind(endpoint: Endpoint) -> str:
    """tcp, lan, ipv4 or ipv6: how a path reaches its peer (an IPv4-mapped IPv6 address
    counts as the IPv4 address it maps)."""
    if endpoint.transport is Transport.TCP:
        return "tcp"
    try:
        ip = ipaddress.ip_address(endpoint.host.split("%", 1)[0])
    except ValueError:
        return "ipv4"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in net for net in _LAN_NETS):
        return "lan"
    return "ipv6" if ip.version == 6 else "ipv4"


@dataclass(slots=True)
class Latency:
    """RTT estimates the way TCP keeps them (RFC 6298): last, smoothed, and variation."""

    last_s: float | None = None
    smoothed_s: float | None = None
    jitter_s: float | None = None

    def add(self, rtt_s: float) -> None:
        self.last_s = rtt_s
        if self.smoothed_s is None or self.jitter_s is None:
            self.smoothed_s, self.jitter_s = rtt_s, rtt_s / 2
        else:
            self.jitter_s = 0.75 * self.jitter_s + 0.25 * abs(self.smoothed_s - rtt_s)
            self.smoothed_s = 0.875 * self.smoothed_s + 0.125 * rtt_s

    def status(self) -> LatencyStatus:
        def ms(v: float | None) -> float | None:
            return None if v is None else round(v * 1000, 3)

        return LatencyStatus(ms(self.last_s), ms(self.smoothed_s), ms(self.jitter_s))


@dataclass(slots=True)
class Path:
    endpoint: Endpoint
    created: float
    last_send: float | None = None
    last_receive: float | None = None
    last_probe: float | None = None
    probes_sent: int = 0  # direct attempts made, answered or not
    last_burst: float | None = None  # when the last burst of punching probes started
    packets_sent: int = 0
    packets_received: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    latency: Latency = field(default_factory=Latency)
    confirmed: bool = False  # the peer answered a challenge sent to this endpoint
    configured: bool = False  # a root endpoint from the roots file: ours to send to
    credit: int = 0  # unconfirmed: bytes we may still send (what it sent us, spent)
    punch_allowance: int = 0  # unconfirmed: small probes an authenticated introducer allows
    # Path MTU search state (datagram sizes in bytes; see the module docstring).
    mtu: int = PMTU_MIN  # confirmed: the largest size that came back
    mtu_limit: int = PMTU_MIN  # the most we would ever use (the node's phys_mtu)
    mtu_ceiling: int = PMTU_MIN  # the search's upper bound: larger sizes were lost
    mtu_probes: int = 0  # probes sent in the current search
    mtu_probe_size: int | None = None  # in flight
    mtu_probe_sent: float = 0.0
    mtu_searched: float | None = None  # when the last search finished

    def start_mtu_search(self, limit: int) -> None:
        self.mtu_limit = self.mtu_ceiling = max(limit, PMTU_MIN)
        self.mtu = PMTU_MIN
        self.mtu_probes = 0
        self.mtu_probe_size = None
        self.mtu_searched = None

    def next_mtu_probe(self, now: float) -> int | None:
        """The size to probe now, or None (no search due, or a probe still in flight)."""
        if self.mtu_probe_size is not None:
            if now - self.mtu_probe_sent < PMTU_PROBE_TIMEOUT_S:
                return None
            self.mtu_too_big(self.mtu_probe_size)  # unanswered: too big for this path
        if self.mtu_searched is not None:
            if now - self.mtu_searched < PMTU_REPROBE_S:
                return None
            self.start_mtu_search(self.mtu_limit)
        if self.mtu_ceiling - self.mtu < PMTU_STEP:
            self.mtu_searched = now
            return None
        # Optimistic first: most paths carry the full size, and then one probe settles it;
        # then the common internet size, then bisection.
        if self.mtu_probes == 0:
            size = self.mtu_ceiling
        elif self.mtu_probes == 1 and self.mtu < PMTU_COMMON < self.mtu_ceiling:
            size = PMTU_COMMON
        else:
            size = (self.mtu + self.mtu_ceiling + 1) // 2
        self.mtu_probes += 1
        self.mtu_probe_size = size
        self.mtu_probe_sent = now
        return size

    def mtu_fits(self, size: int) -> None:
        """A probe of `size` bytes came back."""
        self.mtu = min(self.mtu_ceiling, max(self.mtu, size))
        if self.mtu_probe_size == size:
            self.mtu_probe_size = None

    def mtu_lowered_to(self, size: int, now: float) -> bool:
        """A router says datagrams above `size` bytes do not cross (an ICMP; see the module
        docstring): cap the search there, never below PMTU_MIN and never upward. True if
        the confirmed size (`mtu`, what packets are fragmented to) went down."""
        size = max(size, PMTU_MIN)
        if size >= self.mtu_ceiling:
            return False
        self.mtu_ceiling = size
        if self.mtu_probe_size is not None and self.mtu_probe_size > size:
            self.mtu_probe_size = None  # known too big: the search need not wait for it
        if size >= self.mtu:
            return False
        self.mtu = size
        if self.mtu_searched is not None:
            self.mtu_searched = now  # settled here; search upward again after the interval
        return True

    def mtu_too_big(self, size: int) -> None:
        self.mtu_ceiling = max(self.mtu, min(self.mtu_ceiling, size - 1))
        if self.mtu_probe_size == size:
            self.mtu_probe_size = None

    @property
    def is_direct(self) -> bool:
        return self.endpoint.transport is Transport.UDP

    def alive(self, now: float) -> bool:
        return (
            self.confirmed
            and self.last_receive is not None
            and now - self.last_receive <= PATH_ALIVE_S
        )

    def confirm(self) -> None:
        self.confirmed = True
        self.credit = self.punch_allowance = 0

    def challenged(self, now: float) -> bool:
        """Did we probe this path within UNCONFIRMED_PROBE_S (a challenge in flight)?"""
        return self.last_probe is not None and 0.0 <= now - self.last_probe < UNCONFIRMED_PROBE_S

    def add_credit(self, size: int) -> None:
        """`size` bytes came from this endpoint (authenticated or not): while unconfirmed,
        we may send as many back."""
        if not self.confirmed:
            self.credit = min(MAX_CREDIT_BYTES, self.credit + size)

    def may_send(self, size: int) -> bool:
        """Spend what an unconfirmed path allows for a packet of `size` bytes (see the
        module docstring); always True for a confirmed or configured path."""
        if self.confirmed or self.configured:
            return True
        if self.credit >= size:
            self.credit -= size
            return True
        if self.punch_allowance > 0 and size <= PUNCH_PACKET_MAX:
            self.punch_allowance -= 1
            return True
        return False

    def forgettable(self, now: float) -> bool:
        last = self.last_receive if self.last_receive is not None else self.created
        return now - last > PATH_FORGET_S

    def needs_probe(self, now: float) -> bool:
        if (
            not self.confirmed
            and self.last_receive is not None
            and now - self.last_receive <= PATH_ALIVE_S
        ):
            # Someone holding the key sends from here: challenge it (credit permitting).
            return now - (self.last_probe or 0.0) >= UNCONFIRMED_PROBE_S
        quiet_since = max(self.last_receive or 0.0, self.last_probe or 0.0)
        interval = self.probe_interval_s(now)
        if interval == DEAD_PROBE_S:
            return now - quiet_since >= DEAD_PROBE_S
        return (
            now - quiet_since >= interval
            or now - (self.last_probe or self.created) >= LATENCY_PROBE_S
        )

    def probe_interval_s(self, now: float) -> float:
        """How often the path is probed while quiet: every PATH_PROBE_S while it was heard
        from within DEAD_AFTER_S, then every DEAD_PROBE_S, so that stale NAT state on the
        way can expire (punch.py). diagnose.py says the same to the user."""
        heard = self.last_receive
        return PATH_PROBE_S if heard is not None and now - heard < DEAD_AFTER_S else DEAD_PROBE_S

    def sent(self, size: int, now: float, packets: int = 1) -> None:
        self.last_send = now
        self.packets_sent += packets
        self.bytes_sent += size

    def received(self, size: int, now: float, packets: int = 1) -> None:
        self.add_credit(size)
        self.last_receive = now
        self.packets_received += packets
        self.bytes_received += size

    def sort_key(self) -> tuple[int, float]:
        """Lower is better: UDP before TCP, then lowest smoothed latency."""
        rtt = self.latency.smoothed_s
        return (0 if self.is_direct else 1, rtt if rtt is not None else 10.0)

    def status(self, now: float, preferred: bool) -> PathStatus:
        def ago(t: float | None) -> float | None:
            return None if t is None else round(max(0.0, now - t), 3)

        return PathStatus(
            endpoint=str(self.endpoint),
            transport=self.endpoint.transport.value,
            kind=path_kind(self.endpoint),
            alive=self.alive(now),
            preferred=preferred,
            latency=self.latency.status(),
            last_send_ago_s=ago(self.last_send),
            last_receive_ago_s=ago(self.last_receive),
            packets_sent=self.packets_sent,
            packets_received=self.packets_received,
            bytes_sent=self.bytes_sent,
            bytes_received=self.bytes_received,
            mtu=self.mtu,
            mtu_searching=self.mtu_searched is None and self.is_direct and self.alive(now),
        )


def best_path(paths: dict[Endpoint, Path], now: float) -> Path | None:
    alive = [p for p in paths.values() if p.alive(now)]
    return min(alive, key=Path.sort_key) if alive else None
