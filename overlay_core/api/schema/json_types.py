"""The JSON shapes of the control API, as TypedDicts: the daemon builds them
(convert.py), the console reads them with the same types for type checking.

Link and state fields are the StrEnums of overlay_core/proto/states.py: their members are
str, so they are written to JSON as the plain words and compare equal to what a client
decodes.
"""

from __future__ import annotations

from typing import Literal, TypedDict

from overlay_core.proto.states import Link, NetworkState, NodeState, RootLink


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
    link: Link
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
    state: NodeState
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
    link: Link
    relay: str | None


class NetcheckRootJson(TypedDict):
    address: str
    link: RootLink  # UDP, TCP or NONE
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
    link: RootLink  # UDP, TCP, NONE (not reached), or SELF (this node is that root)
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
    state: NetworkState
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

    # A Link word (NONE: no contact yet) as the member reported it: a newer member may say
    # one this version does not know, so it stays a str and ranks as UNKNOWN does.
    link: str
    latency_ms: float | None
    kind: str  # the endpoint: lan, v4, v6, relay or unknown
    reason: str | None  # why not DIRECT (overlay_core/proto/report.py REASONS)


class PathPairJson(TypedDict):
    a: str  # member addresses, a < b
    b: str
    a_sees: PathSideJson | None  # None: a has sent no report, or its report lacks b
    b_sees: PathSideJson | None
    link: str  # a PairLink: the worse of the two sides; UNKNOWN when neither reported
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


class DeletedJson(TypedDict):
    deleted: str  # the nwid, or "nwid/address"


# -- the event stream (GET /events, server-sent events)


class EventJson(TypedDict):
    id: int  # monotonic per daemon run; reconnect with ?since=id (or Last-Event-ID)
    time: float  # the daemon's clock, seconds since the epoch
    kind: str  # one of EVENT_KINDS
    message: str  # one line for a human
    peer: str | None  # the peer's address, for peer, link, handshake
    nwid: str | None  # the network, for network, member_request, member, controller
    address: str | None  # the member's address, for member_request and member
