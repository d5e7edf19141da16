"""Physical paths to a peer: liveness, latency, counters, and choosing the best one.

A path is alive while authenticated packets from the peer keep arriving on it: the last one
within PATH_ALIVE_S. Keepalive probes (ECHO) go out on every direct path every
PATH_PROBE_S once it has been quiet that long, which both holds NAT mappings open and
measures latency, so a cut path is noticed within PATH_ALIVE_S and a restored one within
PATH_PROBE_S. A path that stays dead for PATH_FORGET_S is removed.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from .effects import Endpoint, LatencyStatus, PathStatus, Transport

PATH_PROBE_S = 2.0
PATH_ALIVE_S = 6.0
PATH_FORGET_S = 120.0
# RFC 1918, loopback, link-local and CGNAT space: addresses only reachable nearby.
_LAN_NETS = [
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "100.64.0.0/10",
    )
]


def path_kind(endpoint: Endpoint) -> str:
    if endpoint.transport is Transport.TCP:
        return "tcp"
    try:
        ip = ipaddress.ip_address(endpoint.host)
    except ValueError:
        return "ipv4"
    if ip.version == 6:
        return "ipv6"
    return "lan" if any(ip in net for net in _LAN_NETS) else "ipv4"


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
    packets_sent: int = 0
    packets_received: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    latency: Latency | None = None

    def __post_init__(self) -> None:
        self.latency = Latency()

    @property
    def is_direct(self) -> bool:
        return self.endpoint.transport is Transport.UDP

    def alive(self, now: float) -> bool:
        return self.last_receive is not None and now - self.last_receive <= PATH_ALIVE_S

    def forgettable(self, now: float) -> bool:
        last = self.last_receive if self.last_receive is not None else self.created
        return now - last > PATH_FORGET_S

    def needs_probe(self, now: float) -> bool:
        quiet_since = max(self.last_receive or 0.0, self.last_probe or 0.0)
        return now - quiet_since >= PATH_PROBE_S

    def sent(self, size: int, now: float) -> None:
        self.last_send = now
        self.packets_sent += 1
        self.bytes_sent += size

    def received(self, size: int, now: float) -> None:
        self.last_receive = now
        self.packets_received += 1
        self.bytes_received += size

    def sort_key(self) -> tuple[int, float]:
        """Lower is better: UDP before TCP, then lowest smoothed latency."""
        assert self.latency is not None
        rtt = self.latency.smoothed_s
        return (0 if self.is_direct else 1, rtt if rtt is not None else 10.0)

    def status(self, now: float, preferred: bool) -> PathStatus:
        assert self.latency is not None

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
        )


def best_path(paths: dict[Endpoint, Path], now: float) -> Path | None:
    alive = [p for p in paths.values() if p.alive(now)]
    return min(alive, key=Path.sort_key) if alive else None
