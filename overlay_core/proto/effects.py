"""What the sans-IO node asks its I/O layer to do, and the plain-data status it reports.

The node never touches a socket. Every call into it (`receive_datagram`, `tick`,
`send_user_data`, `echo`, ...) returns a list of effects; the I/O layer executes them in
order. Status snapshots are plain frozen dataclasses so the API can turn them into JSON
without knowing anything about the protocol.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, NamedTuple

from .states import Link, NetworkState

if TYPE_CHECKING:
    from .identity import Identity
    from .report import PathReport


class Transport(StrEnum):
    UDP = "udp"
    TCP = "tcp"


class Endpoint(NamedTuple):
    """A physical address. A NamedTuple because it is hashed on every received packet.

    For TCP, (host, port) is the remote end of the stream: a leaf's TCP endpoint is its
    root; a root's TCP endpoint for a leaf is the leaf's source address.
    """

    transport: Transport
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        prefix = "tcp://" if self.transport is Transport.TCP else ""
        return f"{prefix}{host}:{self.port}"

    @property
    def is_ipv6(self) -> bool:
        return ":" in self.host


def udp(host: str, port: int) -> Endpoint:
    return Endpoint(Transport.UDP, host, port)


def tcp(host: str, port: int) -> Endpoint:
    return Endpoint(Transport.TCP, host, port)


# --------------------------------------------------------------------------- effects


@dataclass(frozen=True, slots=True)
class Send:
    """Send `data` as one datagram (UDP) or one length-prefixed record (TCP) to `endpoint`.

    `ttl`: the IP TTL (IPv6 hop limit) of this one UDP datagram, None for the system's
    default. A NAT-opening packet (punch.py) is sent with a TTL that passes our own NATs
    and expires before it reaches the peer's router."""

    endpoint: Endpoint
    data: bytes
    ttl: int | None = None


@dataclass(frozen=True, slots=True)
class SendMany:
    """Send each of `datagrams` to `endpoint`, in order: the segments of one TCP super-frame
    or a batch of frames. The I/O layer may hand runs of equal size to the kernel in one
    call (UDP GSO); the datagrams are what crosses the wire either way."""

    endpoint: Endpoint
    datagrams: list[bytes]


@dataclass(frozen=True, slots=True)
class Deliver:
    """User data (the USER_DATA verb) arrived from overlay address `source`."""

    source: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class EchoReply:
    """An answer to `Node.echo`: the round trip and the physical path it came back on."""

    peer: int
    echo_id: int
    rtt_s: float
    endpoint: Endpoint
    link: Link  # DIRECT, RELAY or TCP
    relay: int | None  # address of the root that relayed it, if any


@dataclass(frozen=True, slots=True)
class EchoFailed:
    """An echo that can never be answered, e.g. the roots know no node at that address."""

    peer: int
    echo_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class OpenTcp:
    """Open (and keep open) the TCP fallback transport to a root at `endpoint`."""

    endpoint: Endpoint


@dataclass(frozen=True, slots=True)
class CloseTcp:
    endpoint: Endpoint


@dataclass(frozen=True, slots=True)
class Event:
    """Something a human watching the node would want in a log: peer up, path change..."""

    kind: str
    message: str
    peer: int | None = None
    nwid: int | None = None


@dataclass(frozen=True, slots=True)
class OpenPort:
    """Create the TAP device of network `nwid` (the I/O layer picks its name)."""

    nwid: int
    mac: bytes
    mtu: int


@dataclass(frozen=True, slots=True)
class ConfigurePort:
    """Make the TAP of `nwid` have exactly this MTU, these addresses and these routes."""

    nwid: int
    mtu: int
    addresses: tuple[str, ...]
    routes: tuple[tuple[str, str | None], ...]


@dataclass(frozen=True, slots=True)
class ClosePort:
    nwid: int


@dataclass(frozen=True, slots=True)
class DeliverFrame:
    """Write `frame` to the TAP of `nwid` (with its virtio_net_hdr first on a port opened
    with offloads, as DeliverFrames)."""

    nwid: int
    frame: bytes


@dataclass(frozen=True, slots=True)
class DeliverFrames:
    """Write each of `frames` to the TAP of `nwid`, in order (a batch from the wire). On a
    port opened with offloads each one starts with its virtio_net_hdr (proto/offload.py)."""

    nwid: int
    frames: list[bytes]


@dataclass(frozen=True, slots=True)
class ConfigRequest:
    """A member asks this node's controller for its config of `nwid`.

    The I/O layer asks the controller and hands the answer to `Node.answer_config_request`.
    """

    nwid: int
    member: Identity
    version: str | None
    physical: Endpoint | None


@dataclass(frozen=True, slots=True)
class PathReportIn:
    """A member's path report reached this node as its network's controller: another
    node's with its signature checked, or this node's own, made in-process. Whether the
    member is authorized is the controller's to say."""

    report: PathReport


# What the TAP side of the I/O layer executes (io/networks.py): the daemon hands these on
# as one group, and its dispatcher matches them with one case.
PortEffect = OpenPort | ConfigurePort | ClosePort | DeliverFrame | DeliverFrames

# Every effect. A dispatcher matches on this union and ends in `case _: assert_never(effect)`,
# so an effect added here that a dispatcher forgets is a type error, not a dropped effect
# (tests/test_effect_dispatch.py proves that mypy catches it).
Effect = (
    Send
    | SendMany
    | Deliver
    | EchoReply
    | EchoFailed
    | OpenTcp
    | CloseTcp
    | Event
    | PortEffect
    | ConfigRequest
    | PathReportIn
)


# --------------------------------------------------------------------------- status


@dataclass(frozen=True, slots=True)
class LatencyStatus:
    last_ms: float | None
    smoothed_ms: float | None
    jitter_ms: float | None


@dataclass(frozen=True, slots=True)
class PathStatus:
    endpoint: str
    transport: str
    kind: str  # "lan", "ipv4", "ipv6", "tcp"
    alive: bool
    preferred: bool
    latency: LatencyStatus
    last_send_ago_s: float | None
    last_receive_ago_s: float | None
    packets_sent: int
    packets_received: int
    bytes_sent: int
    bytes_received: int
    mtu: int  # largest datagram confirmed to cross this path (UDP payload bytes)
    mtu_searching: bool


@dataclass(frozen=True, slots=True)
class RelayReason:
    """Why a peer has no direct path, in parts the console can show or phrase."""

    summary: str
    code: str  # one of report.REASONS: the same answer in one word, for scripts and reports
    endpoints_learned: list[str]
    punch_attempts: int
    punch_replies: int
    local_nat: str
    details: list[str]


@dataclass(frozen=True, slots=True)
class PeerName:
    """What a network's config says about a peer: its name and overlay IPs there."""

    nwid: str
    network: str  # the network's name
    name: str  # "" when the admin gave none
    ips: list[str]


@dataclass(frozen=True, slots=True)
class PeerStatus:
    address: str
    role: str  # "LEAF" or "ROOT"
    version: str | None
    link: Link
    preferred_path: str | None
    latency: LatencyStatus
    last_send_ago_s: float | None
    last_receive_ago_s: float | None
    session_age_s: float | None
    rekeys: int
    paths: list[PathStatus]
    relay_reason: RelayReason | None
    counters: dict[str, int]
    names: list[PeerName] = field(default_factory=list)  # one per shared network


@dataclass(frozen=True, slots=True)
class NetworkStatus:
    nwid: str
    name: str | None
    state: NetworkState
    port_error: str | None
    private: bool | None
    mac: str
    mtu: int
    mss: str
    addresses: list[str]
    routes: list[tuple[str, str | None]]
    members: int
    bridge: bool
    revision: int | None
    config_age_s: float | None
    settings: dict[str, object]
    counters: dict[str, int]
    rule_drops: list[tuple[str, int]]
    # (address, name, overlay IPs) of each member the config names (`ztui ping nas`)
    roster: list[tuple[str, str, list[str]]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class NodeStatus:
    address: str
    version: str
    online: bool
    tunneled: bool  # reaching roots only over the TCP fallback
    is_root: bool
    roots_reachable: int
    roots_total: int
    external_endpoints: list[str]
    nat: str
    uptime_s: float
    counters: dict[str, int]
    drops: dict[str, int]
    peers: list[PeerStatus] = field(default_factory=list)
    networks: list[NetworkStatus] = field(default_factory=list)
