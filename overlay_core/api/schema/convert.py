"""Node snapshots to the API's JSON: pure conversions from the plain status dataclasses of
overlay_core.proto.effects (and proto/netcheck.py's report) to the shapes of json_types.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from overlay_core.proto.effects import (
    EchoReply,
    LatencyStatus,
    NetworkStatus,
    NodeStatus,
    PathStatus,
    PeerStatus,
    RelayReason,
)
from overlay_core.proto.states import Link, NetworkState, NodeState, RootLink

from .home import API_VERSION
from .json_types import (
    EchoJson,
    LatencyJson,
    NetcheckJson,
    NetworkJson,
    NetworkSettingsJson,
    PathJson,
    PeerJson,
    PortCountersJson,
    RelayReasonJson,
    StatusJson,
)
from .limits import format_address

if TYPE_CHECKING:  # hints only: the console imports this package and needs none of proto's
    from overlay_core.proto.netcheck import NetcheckReport


def role(is_root: bool) -> str:
    """A node's role as /status, /netcheck and /metrics say it."""
    return "ROOT" if is_root else "LEAF"


def node_state(status: NodeStatus) -> NodeState:
    """zerotier-cli's three words: TUNNELED wins, because it is online but degraded."""
    if status.tunneled:
        return NodeState.TUNNELED
    return NodeState.ONLINE if status.online else NodeState.OFFLINE


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
        "link": Link(peer.link),
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
        "role": role(status.is_root),
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
        "link": Link(reply.link),
        "relay": None if reply.relay is None else format_address(reply.relay),
    }


def netcheck_to_json(report: NetcheckReport) -> NetcheckJson:
    return {
        "api_version": API_VERSION,
        "role": role(report.is_root),
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
                "link": RootLink(r.link),
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
        "state": NetworkState(network.state),
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
