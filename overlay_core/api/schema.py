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
from typing import Literal, TypedDict

from overlay_core.proto.effects import (
    EchoReply,
    LatencyStatus,
    NodeStatus,
    PathStatus,
    PeerStatus,
    RelayReason,
)

API_VERSION = 1

# --------------------------------------------------------------------------- home layout

HOME_ENV = "ZTUI_HOME"
SYSTEM_HOME = Path("/var/lib/ztui")
CONTROL_SOCKET_NAME = "control.sock"
AUTHTOKEN_NAME = "authtoken.secret"
DEFAULT_UDP_PORT = 9993


def default_home() -> Path:
    """`$ZTUI_HOME`, else /var/lib/ztui for root, else ~/.local/share/ztui."""
    override = os.environ.get(HOME_ENV)
    if override:
        return Path(override)
    if os.geteuid() == 0:
        return SYSTEM_HOME
    return Path.home() / ".local" / "share" / "ztui"


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
    endpoints_learned: list[str]
    punch_attempts: int
    punch_replies: int
    local_nat: str
    details: list[str]


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


class ErrorJson(TypedDict):
    error: str  # a short stable code: "bad_address", "unknown_peer", "timeout", ...
    reason: str  # one line for a human


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


def error_json(error: str, reason: str) -> ErrorJson:
    return {"error": error, "reason": reason}
