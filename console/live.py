"""What the console knows about the node: the latest snapshots plus what only time shows.

The API answers with counters and point-in-time values; rates and sparklines need two or
more of them. LiveStore keeps the latest of each resource keyed the way the tables key
their rows (peer address, network id, "nwid/address" for members), derives rates from the
counters of consecutive polls, and keeps a short history for sparklines. It is pure: the
caller passes `now` (a monotonic clock reading), so tests can step time exactly.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from overlay_core.api.schema import (
    ControllerNetworkJson,
    EventJson,
    MemberJson,
    NetworkJson,
    PathsJson,
    PeerJson,
    StatusJson,
)

HISTORY_SAMPLES = 180  # three minutes of 1 s polls: enough to see a path change's effect
EVENT_LOG_SIZE = 2000


@dataclass(frozen=True, slots=True)
class Rate:
    """Bytes per second each way; None until two samples exist."""

    tx_bps: float | None = None
    rx_bps: float | None = None

    @property
    def total_bps(self) -> float | None:
        if self.tx_bps is None or self.rx_bps is None:
            return None
        return self.tx_bps + self.rx_bps


NO_RATE = Rate()


@dataclass(slots=True)
class _Sample:
    at: float
    tx: int
    rx: int


@dataclass(slots=True)
class RateMeter:
    """Turns (tx, rx) byte counters sampled over time into rates and a rate history."""

    last: dict[str, _Sample] = field(default_factory=dict)
    rates: dict[str, Rate] = field(default_factory=dict)
    history: dict[str, deque[float]] = field(default_factory=dict)

    def sample(self, key: str, tx: int, rx: int, now: float) -> None:
        previous = self.last.get(key)
        self.last[key] = _Sample(now, tx, rx)
        if previous is None or now <= previous.at:
            return
        elapsed = now - previous.at
        # A counter that went down means the daemon restarted: no rate, not a negative one.
        if tx < previous.tx or rx < previous.rx:
            self.rates[key] = NO_RATE
            return
        rate = Rate((tx - previous.tx) / elapsed, (rx - previous.rx) / elapsed)
        self.rates[key] = rate
        self.history.setdefault(key, deque(maxlen=HISTORY_SAMPLES)).append(rate.total_bps or 0.0)

    def keep_only(self, keys: Iterable[str]) -> None:
        wanted = set(keys)
        for table in (self.last, self.rates, self.history):
            for key in [k for k in table if k not in wanted]:
                del table[key]

    def rate(self, key: str) -> Rate:
        return self.rates.get(key, NO_RATE)


def member_key(nwid: str, address: str) -> str:
    return f"{nwid}/{address}"


def peer_latency_ms(peer: PeerJson) -> float | None:
    latency = peer["latency"]
    return latency["smoothed_ms"] if latency["smoothed_ms"] is not None else latency["last_ms"]


@dataclass(slots=True)
class LiveStore:
    """The latest snapshots, their rates and short histories. Only the app writes to it."""

    status: StatusJson | None = None
    peers: dict[str, PeerJson] = field(default_factory=dict)
    networks: dict[str, NetworkJson] = field(default_factory=dict)
    hosted: dict[str, ControllerNetworkJson] = field(default_factory=dict)
    members: dict[str, MemberJson] = field(default_factory=dict)
    # (arrival number, event): the daemon's ids restart with the daemon, arrival numbers don't.
    events: deque[tuple[int, EventJson]] = field(
        default_factory=lambda: deque(maxlen=EVENT_LOG_SIZE)
    )
    events_seen: int = 0
    node_rates: RateMeter = field(default_factory=RateMeter)
    peer_rates: RateMeter = field(default_factory=RateMeter)
    network_rates: RateMeter = field(default_factory=RateMeter)
    latency: dict[str, deque[float]] = field(default_factory=dict)
    members_loaded: bool = False
    # The Paths screen's network, read by the hosted poll while that screen is open.
    paths: PathsJson | None = None
    paths_error: str | None = None  # the controller's answer when it could not give them

    def set_status(self, status: StatusJson, now: float) -> None:
        self.status = status
        counters = status["counters"]
        self.node_rates.sample(
            "node", counters.get("tx_bytes", 0), counters.get("rx_bytes", 0), now
        )

    def set_peers(self, peers: Iterable[PeerJson], now: float) -> None:
        self.peers = {p["address"]: p for p in peers}
        for address, peer in self.peers.items():
            counters = peer["counters"]
            tx, rx = counters.get("tx_bytes", 0), counters.get("rx_bytes", 0)
            self.peer_rates.sample(address, tx, rx, now)
            rtt = peer_latency_ms(peer)
            if rtt is not None:
                self.latency.setdefault(address, deque(maxlen=HISTORY_SAMPLES)).append(rtt)
        self.peer_rates.keep_only(self.peers)
        for gone in [a for a in self.latency if a not in self.peers]:
            del self.latency[gone]

    def set_networks(self, networks: Iterable[NetworkJson], now: float) -> None:
        self.networks = {n["nwid"]: n for n in networks}
        for nwid, network in self.networks.items():
            port = network["port_counters"]
            if port is not None:
                # "read" came from this host and goes out over the overlay: that is TX.
                self.network_rates.sample(nwid, port["bytes_read"], port["bytes_written"], now)
        self.network_rates.keep_only(self.networks)

    def set_hosted(
        self, hosted: Iterable[ControllerNetworkJson], members: Iterable[MemberJson]
    ) -> None:
        self.hosted = {n["nwid"]: n for n in hosted}
        self.members = {member_key(m["nwid"], m["address"]): m for m in members}
        self.members_loaded = True

    def set_paths(self, paths: PathsJson | None, error: str | None) -> None:
        self.paths, self.paths_error = paths, error

    def add_event(self, event: EventJson) -> None:
        self.events_seen += 1
        self.events.append((self.events_seen, event))

    @property
    def pending_members(self) -> list[MemberJson]:
        return [m for m in self.members.values() if m["state"] == "pending"]

    def clear(self) -> None:
        """Forget the node (it went away): its next incarnation starts counters afresh."""
        self.status = None
        for meter in (self.node_rates, self.peer_rates, self.network_rates):
            meter.last.clear()
            meter.rates.clear()
