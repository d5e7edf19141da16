"""The JSON the control API speaks, shared by `overlayd` and the `ztui` console.

This is the one module of `overlay_core` the console may import (tests/test_architecture.py
checks it), so it depends on nothing but the standard library and the plain status
dataclasses in `overlay_core.proto.effects`. Everything here is data shapes and pure
conversions: the server turns node snapshots into these dicts, the console reads them back
with the same TypedDicts for type checking.

It also states where a console finds a daemon (the home directory layout), because that is
as much a part of the contract as the JSON is.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypedDict

from overlay_core import __version__
from overlay_core.proto.effects import (
    EchoReply,
    LatencyStatus,
    NetworkStatus,
    NodeStatus,
    PathStatus,
    PeerStatus,
    RelayReason,
)

if TYPE_CHECKING:  # hints only: the console imports this module and needs none of proto's
    from overlay_core.proto.netcheck import NetcheckReport

API_VERSION = 1
VERSION = __version__  # the software's, for `ztui --version` (console may import only this)

# --------------------------------------------------------------------------- home layout

HOME_ENV = "ZTUI_HOME"
SYSTEM_HOME = Path("/var/lib/ztui")
CONTROL_SOCKET_NAME = "control.sock"
AUTHTOKEN_NAME = "authtoken.secret"
DEFAULT_UDP_PORT = 9993


def user_home() -> Path:
    """A non-root user's own home: ~/.local/share/ztui."""
    return Path.home() / ".local" / "share" / "ztui"


def default_home() -> Path:
    """overlayd's home: `$ZTUI_HOME`, else /var/lib/ztui for root, else ~/.local/share/ztui.

    The console does not use this to find a node: it looks for the system node's socket
    first, whoever runs it (console/discovery.py)."""
    override = os.environ.get(HOME_ENV)
    if override:
        return Path(override)
    if os.geteuid() == 0:
        return SYSTEM_HOME
    return user_home()


# --------------------------------------------------------------------------- addresses

ADDRESS_HEX_DIGITS = 10


def format_address(address: int) -> str:
    return f"{address:0{ADDRESS_HEX_DIGITS}x}"


def check_address_text(text: str) -> str:
    """Normalise a typed address to 10 lowercase hex digits, or raise ValueError saying why.

    Only the shape is checked here (the console cannot import the protocol); the daemon
    additionally rejects reserved addresses with `proto.identity.parse_address`.
    """
    norm = text.strip().lower()
    if len(norm) != ADDRESS_HEX_DIGITS or any(c not in "0123456789abcdef" for c in norm):
        raise ValueError(f"an address is {ADDRESS_HEX_DIGITS} hex digits, got {text!r}")
    return norm


NWID_HEX_DIGITS = 16
NWID_SHAPE_REASON = "a network id is 16 hex digits"


def check_nwid_text(text: str) -> str:
    """Normalise a typed network id to 16 lowercase hex digits, or raise ValueError.

    The message is exactly NWID_SHAPE_REASON, the same words the daemon answers with, so
    a typo reads the same whether the console or the daemon caught it.
    """
    norm = text.strip().lower()
    if len(norm) != NWID_HEX_DIGITS or any(c not in "0123456789abcdef" for c in norm):
        raise ValueError(NWID_SHAPE_REASON)
    return norm


# --------------------------------------------------------------------------- shapes

Link = Literal["DIRECT", "RELAY", "TCP", "NONE"]
NodeState = Literal["ONLINE", "OFFLINE", "TUNNELED"]


class LatencyJson(TypedDict):
    last_ms: float | None
    smoothed_ms: float | None
    jitter_ms: float | None


class PathJson(TypedDict):
    endpoint: str
    transport: str
    kind: str
    alive: bool
    preferred: bool
    latency: LatencyJson
    last_send_ago_s: float | None
    last_receive_ago_s: float | None
    packets_sent: int
    packets_received: int
    bytes_sent: int
    bytes_received: int
    mtu: int
    mtu_searching: bool


class RelayReasonJson(TypedDict):
    summary: str
    code: str  # overlay_core/proto/report.py REASONS: tcp_only, symmetric_peer, filtered...
    endpoints_learned: list[str]
    punch_attempts: int
    punch_replies: int
    local_nat: str
    details: list[str]


class PeerNameJson(TypedDict):
    """A peer's name and overlay IPs in one network both are members of (its config)."""

    nwid: str
    network: str
    name: str  # "" when the controller's admin gave none
    ips: list[str]


class PeerJson(TypedDict):
    address: str
    role: str
    version: str | None
    link: str
    preferred_path: str | None
    latency: LatencyJson
    last_send_ago_s: float | None
    last_receive_ago_s: float | None
    session_age_s: float | None
    rekeys: int
    paths: list[PathJson]
    relay_reason: RelayReasonJson | None
    counters: dict[str, int]
    names: list[PeerNameJson]


class StatusJson(TypedDict):
    api_version: int
    address: str
    version: str
    state: str  # NodeState
    online: bool
    tunneled: bool
    role: str  # "ROOT" or "LEAF"
    roots_reachable: int
    roots_total: int
    external_endpoints: list[str]
    nat: str
    uptime_s: float
    peer_count: int
    counters: dict[str, int]
    drops: dict[str, int]


class EchoJson(TypedDict):
    peer: str
    rtt_ms: float
    endpoint: str
    link: str
    relay: str | None


class NetcheckRootJson(TypedDict):
    address: str
    link: str  # "UDP", "TCP" or "NONE"
    endpoint: str | None  # where this node reaches the root
    latency_ms: float | None
    external_v4: str | None  # this node's endpoint as the root reports it
    external_v6: str | None


NetcheckLevel = Literal["ok", "warn", "bad"]


class NetcheckJson(TypedDict):
    """GET /netcheck: this node's reachability, NAT and roots (overlay_core/proto/netcheck.py
    says how each field is worked out)."""

    api_version: int
    role: str  # "ROOT" or "LEAF"
    udp: bool  # a root answered over UDP within the last few seconds
    tunneled: bool  # the TCP fallback to the roots is in use
    ipv4: bool
    ipv6: bool
    last_udp_ago_s: float | None
    local_port: int | None
    external_v4: list[str]
    external_v6: list[str]
    mapping: str  # "endpoint-independent", "endpoint-dependent (symmetric)", "none (...)", ...
    port_preserved: bool | None  # None: no root has reported our endpoint yet
    hops_traced: bool
    nat_hops: list[str]  # our NAT routers' inside addresses, nearest first
    opener_ttl: int
    hops: str  # the NAT hops in words ("behind 2 NATs (...)", "tracing")
    nearest_root: str | None
    roots: list[NetcheckRootJson]
    level: str  # NetcheckLevel
    verdict: str
    advice: str


class RootJson(TypedDict):
    """One root of GET /roots: its roots-file line, and how this node reaches it now."""

    address: str
    identity: str  # public identity text: the first word of its roots-file line
    endpoints: list[str]  # where the roots file says it listens
    link: str  # "UDP", "TCP", "NONE" (not reached), or "SELF" (this node is that root)
    endpoint: str | None  # the path in use, else the first endpoint listed
    latency_ms: float | None


class RootsJson(TypedDict):
    """GET /roots, and the answer to PUT /roots (body {"roots": "<roots file text>"})."""

    api_version: int
    roots: list[RootJson]
    saved_in: str | None  # the roots file the node starts with next time, if any
    added: list[str]  # PUT only: addresses of roots new to the node (else empty)
    removed: list[str]  # PUT only: addresses of roots it dropped


class ErrorJson(TypedDict):
    error: str  # a short stable code: "bad_address", "unknown_peer", "timeout", ...
    reason: str  # one line for a human
    field: str | None  # the request field at fault ("mtu", "pools[0]"); None: no single one


# -- virtual networks, member side (GET /networks)

NetworkState = Literal["REQUESTING_CONFIGURATION", "OK", "ACCESS_DENIED", "NOT_FOUND", "PORT_ERROR"]


class NetworkSettingsJson(TypedDict):
    """What this member lets the network's controller do here (PATCH /networks/{nwid})."""

    allow_managed: bool  # take addresses and routes from the controller
    allow_global: bool  # ...even public ones
    allow_default: bool  # ...even a default route
    mtu: int | None  # local MTU override; None: the network's
    mss: str | None  # local MSS clamping override: "off", "auto", "fixed:N"; None: network's
    report: bool  # send path reports to the controller (GET /controller/networks/{nwid}/paths)


class RouteJson(TypedDict):
    target: str  # CIDR
    via: str | None  # gateway; None: on the virtual LAN


class RuleDropsJson(TypedDict):
    rule: str  # the rule's name (a preset's rules carry the preset's name)
    drops: int


class PortCountersJson(TypedDict):
    """Frames at the TAP device: "read" came from this host, "written" went to it."""

    frames_read: int
    bytes_read: int
    frames_written: int
    bytes_written: int
    write_drops: int


class NetworkJson(TypedDict):
    nwid: str
    name: str | None  # None until the first config arrives
    state: str  # NetworkState
    port_error: str | None  # why the TAP device could not be made, with state PORT_ERROR
    private: bool | None  # None until the first config arrives
    device: str | None  # the TAP interface name, while it is open
    mac: str
    mtu: int
    mss: str
    addresses: list[str]  # as put on the device, after the allow_* settings
    routes: list[RouteJson]
    members: int
    bridge: bool
    revision: int | None
    config_age_s: float | None
    settings: NetworkSettingsJson
    counters: dict[str, int]
    rule_drops: list[RuleDropsJson]
    port_counters: PortCountersJson | None
    roster: list[RosterEntryJson]  # the members the config names, contacted or not


class RosterEntryJson(TypedDict):
    address: str
    name: str
    ips: list[str]


class LeftJson(TypedDict):
    nwid: str
    left: bool


# -- the local controller (GET /controller/networks, .../members)

MemberState = Literal["pending", "authorized", "deauthorized"]


class MemberCountsJson(TypedDict):
    authorized: int
    pending: int  # asked to join, waiting for an admin
    deauthorized: int


class ControllerNetworkJson(TypedDict):
    nwid: str
    number: int
    name: str
    private: bool
    mtu: int
    mss: str  # "off", "auto" or "fixed:N"
    broadcast: bool
    multicast_limit: int
    pools: list[str]  # "10.147.17.0/24" or "10.147.17.10-10.147.17.99"
    routes: list[RouteJson]
    rules: list[dict[str, object]]
    presets: list[str]
    revision: int
    created: float
    updated: float
    members: MemberCountsJson
    # What an admin should know, one line each: pools or on-link routes overlapping another
    # hosted network's (allowed, but a member of both gets clashing addresses).
    warnings: list[str]


class UsedRangeJson(TypedDict):
    nwid: str
    name: str
    kind: str  # "pool" or "route" (an on-link route)
    range: str  # as the network has it: "10.147.17.0/24" or "10.147.17.10-10.147.17.99"


class PoolsJson(TypedDict):
    """GET /controller/pools: the address space the hosted networks use, and a free pool."""

    suggested: str | None  # first free of 10.147.17.0/24, 10.147.18.0/24, ...; None: all used
    used: list[UsedRangeJson]


class MemberJson(TypedDict):
    nwid: str
    address: str
    state: str  # MemberState
    authorized: bool
    name: str
    active_bridge: bool
    ips: list[str]
    created: float
    last_seen: float | None  # its last config request, controller clock
    last_authorized: float | None
    last_deauthorized: float | None
    version: str | None
    physical_address: str | None


class PathSideJson(TypedDict):
    """How one member of a pair reaches the other, as its last path report said."""

    link: str  # DIRECT, RELAY, TCP or NONE (no contact yet)
    latency_ms: float | None
    kind: str  # the endpoint: lan, v4, v6, relay or unknown
    reason: str | None  # why not DIRECT (overlay_core/proto/report.py REASONS)


class PathPairJson(TypedDict):
    a: str  # member addresses, a < b
    b: str
    a_sees: PathSideJson | None  # None: a has sent no report, or its report lacks b
    b_sees: PathSideJson | None
    link: str  # the worse of the two sides; UNKNOWN when neither reported
    reason: str | None  # tcp_only, symmetric_nat, filtered, ... when not DIRECT
    because_of: str | None  # the member whose side causes it, when one does
    why: str | None  # the reason in words, naming that member


class PathMemberJson(TypedDict):
    address: str
    name: str
    ips: list[str]
    online: bool  # reported within PathsJson.online_within_s
    reporting: bool | None  # None: never reported; False: it switched reporting off
    report_age_s: float | None  # None: never reported (reporting off, old version)
    version: str | None
    uptime_s: int | None
    nat: str | None  # its NAT mapping (netcheck's words)
    tcp_fallback: bool | None  # it reaches the roots only over TCP
    direct: int  # pairs with this member that are DIRECT / not
    not_direct: int
    flag: str | None  # online but not DIRECT with most others: the reason code
    flag_why: str | None


class PathsJson(TypedDict):
    """GET /controller/networks/{nwid}/paths: every pair of authorized members, worst
    first (overlay_core/api/pathview.py)."""

    nwid: str
    name: str
    online_within_s: float
    members: list[PathMemberJson]
    pairs: list[PathPairJson]
    pairs_total: int  # before ?limit=
    links: dict[str, int]  # pairs per link


# A pair's link words, best first: api/pathview.py ranks pairs by this order.
PATH_LINKS = ("DIRECT", "UNKNOWN", "RELAY", "TCP", "NONE")
# Reason words of PathSideJson (proto/report.py REASONS) and PathPairJson (api/pathview.py).
PATH_REASONS = (
    *("tcp_only", "not_introduced", "direct_lost", "symmetric_local", "symmetric_peer"),
    *("router_answers", "unreachable", "filtered", "symmetric_nat", "no_contact", "offline"),
)


class DeletedJson(TypedDict):
    deleted: str  # the nwid, or "nwid/address"


# -- the event stream (GET /events, server-sent events)

# What each kind says; `peer`, `nwid` and `address` are set where the kind names them.
EVENT_KINDS: dict[str, str] = {
    "peer": "a peer was seen for the first time (peer)",
    "link": "a peer's link changed between DIRECT, RELAY, TCP and NONE (peer)",
    "handshake": "a peer did not answer HELLOs (peer)",
    "whois": "the roots could not say who an address is",
    "tcp": "the TCP fallback to the roots opened or closed",
    "roots": "the node was given new roots at run time (PUT /roots): added, removed",
    "network": "a joined network changed state (nwid), or networks.json could not be saved",
    "member_request": "an unauthorized member asked to join a network hosted here (nwid, address)",
    "member": "a member was approved, deauthorized, deleted or changed (nwid, address)",
    "controller": "a network hosted here was created, updated or deleted (nwid)",
    # Sent only to the stream that fell behind, as its last event; never buffered. Its id
    # is the last one that stream delivered: reconnect with since=id.
    "overflow": "this stream fell too far behind and was closed",
}


class EventJson(TypedDict):
    id: int  # monotonic per daemon run; reconnect with ?since=id (or Last-Event-ID)
    time: float  # the daemon's clock, seconds since the epoch
    kind: str  # one of EVENT_KINDS
    message: str  # one line for a human
    peer: str | None  # the peer's address, for peer, link, handshake
    nwid: str | None  # the network, for network, member_request, member, controller
    address: str | None  # the member's address, for member_request and member


# --------------------------------------------------------------------------- conversions


def node_state(status: NodeStatus) -> NodeState:
    """zerotier-cli's three words: TUNNELED wins, because it is online but degraded."""
    if status.tunneled:
        return "TUNNELED"
    return "ONLINE" if status.online else "OFFLINE"


def latency_to_json(latency: LatencyStatus) -> LatencyJson:
    return {
        "last_ms": latency.last_ms,
        "smoothed_ms": latency.smoothed_ms,
        "jitter_ms": latency.jitter_ms,
    }


def path_to_json(path: PathStatus) -> PathJson:
    return {
        "endpoint": path.endpoint,
        "transport": path.transport,
        "kind": path.kind,
        "alive": path.alive,
        "preferred": path.preferred,
        "latency": latency_to_json(path.latency),
        "last_send_ago_s": path.last_send_ago_s,
        "last_receive_ago_s": path.last_receive_ago_s,
        "packets_sent": path.packets_sent,
        "packets_received": path.packets_received,
        "bytes_sent": path.bytes_sent,
        "bytes_received": path.bytes_received,
        "mtu": path.mtu,
        "mtu_searching": path.mtu_searching,
    }


def relay_reason_to_json(reason: RelayReason) -> RelayReasonJson:
    return {
        "summary": reason.summary,
        "code": reason.code,
        "endpoints_learned": list(reason.endpoints_learned),
        "punch_attempts": reason.punch_attempts,
        "punch_replies": reason.punch_replies,
        "local_nat": reason.local_nat,
        "details": list(reason.details),
    }


def peer_to_json(peer: PeerStatus) -> PeerJson:
    return {
        "address": peer.address,
        "role": peer.role,
        "version": peer.version,
        "link": peer.link,
        "preferred_path": peer.preferred_path,
        "latency": latency_to_json(peer.latency),
        "last_send_ago_s": peer.last_send_ago_s,
        "last_receive_ago_s": peer.last_receive_ago_s,
        "session_age_s": peer.session_age_s,
        "rekeys": peer.rekeys,
        "paths": [path_to_json(p) for p in peer.paths],
        "relay_reason": (
            None if peer.relay_reason is None else relay_reason_to_json(peer.relay_reason)
        ),
        "counters": dict(peer.counters),
        "names": [
            {"nwid": n.nwid, "network": n.network, "name": n.name, "ips": list(n.ips)}
            for n in peer.names
        ],
    }


def status_to_json(status: NodeStatus) -> StatusJson:
    """The node itself; peers are listed by `GET /peers`, only their count is here."""
    return {
        "api_version": API_VERSION,
        "address": status.address,
        "version": status.version,
        "state": node_state(status),
        "online": status.online,
        "tunneled": status.tunneled,
        "role": "ROOT" if status.is_root else "LEAF",
        "roots_reachable": status.roots_reachable,
        "roots_total": status.roots_total,
        "external_endpoints": list(status.external_endpoints),
        "nat": status.nat,
        "uptime_s": status.uptime_s,
        "peer_count": len(status.peers),
        "counters": dict(status.counters),
        "drops": dict(status.drops),
    }


def echo_to_json(reply: EchoReply) -> EchoJson:
    return {
        "peer": format_address(reply.peer),
        "rtt_ms": round(reply.rtt_s * 1000, 3),
        "endpoint": str(reply.endpoint),
        "link": reply.link,
        "relay": None if reply.relay is None else format_address(reply.relay),
    }


def netcheck_to_json(report: NetcheckReport) -> NetcheckJson:
    return {
        "api_version": API_VERSION,
        "role": "ROOT" if report.is_root else "LEAF",
        "udp": report.udp,
        "tunneled": report.tunneled,
        "ipv4": report.ipv4,
        "ipv6": report.ipv6,
        "last_udp_ago_s": report.last_udp_ago_s,
        "local_port": report.local_port,
        "external_v4": list(report.external_v4),
        "external_v6": list(report.external_v6),
        "mapping": report.mapping,
        "port_preserved": report.port_preserved,
        "hops_traced": report.hops_traced,
        "nat_hops": list(report.nat_hops),
        "opener_ttl": report.opener_ttl,
        "hops": report.hops,
        "nearest_root": report.nearest_root,
        "roots": [
            {
                "address": r.address,
                "link": r.link,
                "endpoint": r.endpoint,
                "latency_ms": r.latency_ms,
                "external_v4": r.external_v4,
                "external_v6": r.external_v6,
            }
            for r in report.roots
        ],
        "level": report.level,
        "verdict": report.verdict,
        "advice": report.advice,
    }


def error_json(error: str, reason: str, field: str | None = None) -> ErrorJson:
    return {"error": error, "reason": reason, "field": field}


def _settings_json(settings: dict[str, object]) -> NetworkSettingsJson:
    mtu, mss = settings.get("mtu"), settings.get("mss")
    return {
        "allow_managed": bool(settings.get("allow_managed", True)),
        "allow_global": bool(settings.get("allow_global", False)),
        "allow_default": bool(settings.get("allow_default", False)),
        "mtu": mtu if isinstance(mtu, int) else None,
        "mss": mss if isinstance(mss, str) else None,
        "report": bool(settings.get("report", True)),
    }


def network_to_json(
    network: NetworkStatus,
    device: str | None = None,
    port_counters: PortCountersJson | None = None,
) -> NetworkJson:
    """A joined network; `device` and `port_counters` come from the I/O layer's TAP."""
    return {
        "nwid": network.nwid,
        "name": network.name,
        "state": network.state,
        "port_error": network.port_error,
        "private": network.private,
        "device": device,
        "mac": network.mac,
        "mtu": network.mtu,
        "mss": network.mss,
        "addresses": list(network.addresses),
        "routes": [{"target": target, "via": via} for target, via in network.routes],
        "members": network.members,
        "bridge": network.bridge,
        "revision": network.revision,
        "config_age_s": network.config_age_s,
        "settings": _settings_json(network.settings),
        "counters": dict(network.counters),
        "rule_drops": [{"rule": rule, "drops": count} for rule, count in network.rule_drops],
        "port_counters": port_counters,
        "roster": [
            {"address": address, "name": name, "ips": list(ips)}
            for address, name, ips in network.roster
        ],
    }
