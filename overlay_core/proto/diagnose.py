"""Turning what a node has seen into words: NAT behaviour, link state, why a peer is relayed.

Nothing here changes state; it reads a Peer and the node's observations and answers the
questions a person at the console asks: "is this DIRECT?", "why not?", "what is my NAT?".
"""

from __future__ import annotations

from collections.abc import Mapping

from .effects import Endpoint, PeerName, PeerStatus, RelayReason, Transport
from .identity import format_address
from .path import DEAD_PROBE_S
from .peer import LearnedFrom, Peer, Punch
from .states import Link

NAT_NONE = "none (public address)"
NAT_UNKNOWN = "unknown"
NAT_CONE = "endpoint-independent mapping (cone): hole punching works"
NAT_SYMMETRIC = "symmetric: the public port changes per destination, hole punching fails"


def infer_nat(observed: Mapping[int, Endpoint], local: list[Endpoint]) -> str:
    """Classify our NAT from the external endpoints that roots and peers reported to us.

    Two reporters that saw us with the same IPv4 address but different ports mean the NAT
    maps each destination to a new port (symmetric, RFC 4787 "endpoint-dependent mapping").
    """
    seen = [e for e in observed.values() if e.transport is Transport.UDP and not e.is_ipv6]
    if not seen:
        return NAT_UNKNOWN
    local_hosts = {e.host for e in local}
    if all(e.host in local_hosts for e in seen):
        return NAT_NONE
    by_host: dict[str, set[int]] = {}
    for e in seen:
        by_host.setdefault(e.host, set()).add(e.port)
    if any(len(ports) > 1 for ports in by_host.values()):
        return NAT_SYMMETRIC
    if len(seen) >= 2:
        return NAT_CONE
    return f"{NAT_UNKNOWN} (one reporter; two roots are needed to tell cone from symmetric)"


def link_of(peer: Peer, root_link: Link, now: float) -> Link:
    """How this node would send to `peer` right now: DIRECT or TCP on a path of its own,
    else as it reaches the roots (`root_link`: RELAY, TCP or NONE); a root it has no
    path to is NONE."""
    best = peer.best_path(now)
    if best is not None:
        return Link.DIRECT if best.is_direct else Link.TCP
    if peer.is_root:
        return Link.NONE
    return root_link


def reason_code(peer: Peer, link: Link, local_nat: str, tunneled: bool) -> str:
    """Why `peer` is not DIRECT, as one of report.REASONS ("" when it is, or is a root).

    The cheap half of `relay_reason`: the path reports (reporting.py) ask it for every
    member once a second, the console's sentences only when a person looks."""
    if link in (Link.DIRECT, Link.NONE) or peer.is_root:
        return ""
    punch = peer.punch
    if tunneled:
        return "tcp_only"
    if not punch.learned:
        return "not_introduced"
    if punch.last_direct_lost is not None and punch.last_direct_endpoint is not None:
        return "direct_lost"
    if local_nat == NAT_SYMMETRIC:
        return "symmetric_local"
    if _ports_seen_by_roots(peer):
        return "symmetric_peer"
    kinds = [kind for kind, _, _ in punch.icmp.values()]
    if "port_unreachable" in kinds:
        return "router_answers"
    unreachable = kinds.count("unreachable")
    if unreachable and unreachable == len(punch.learned):  # as _no_answer words it
        return "unreachable"
    return "filtered"


def relay_reason(
    peer: Peer, link: Link, local_nat: str, tunneled: bool, now: float
) -> RelayReason | None:
    code = reason_code(peer, link, local_nat, tunneled)
    if not code:
        return None
    punch = peer.punch
    learned = [str(e) for e in punch.learned]
    details: list[str] = []
    if code == "tcp_only":
        summary = (
            "this node reaches the roots only over TCP (UDP gets no answer), so every "
            "packet to this peer goes through a root; allow outbound UDP to fix it"
        )
    elif code == "not_introduced":
        summary = (
            "no direct endpoint learned yet: the roots have not introduced this peer "
            "(they do when either side asks for the other) and it advertised no address we "
            "can reach"
        )
    elif code == "direct_lost":
        ago = now - (punch.last_direct_lost or now)
        summary = (
            f"the direct path to {punch.last_direct_endpoint} stopped answering {ago:.0f} s ago; "
            f"probing it again every {_reprobe_interval_s(peer, now):.0f} s"
        )
    elif code in ("symmetric_local", "symmetric_peer"):
        whose = "this node's" if code == "symmetric_local" else "the peer's"
        summary = (
            f"{punch.attempts} direct attempts to {', '.join(learned)} got no answer: "
            f"{whose} NAT is symmetric (a new public port for every destination), so "
            "neither side can know where to send; a UDP port forward on that side "
            "would allow a direct path"
        )
    else:
        summary = _no_answer(punch, learned)
    peer_ports = _ports_seen_by_roots(peer)
    if peer_ports:
        host, ports = peer_ports
        shown = ", ".join(str(p) for p in ports)
        details.append(
            f"the peer's NAT is symmetric: the roots see it at {host} with different ports "
            f"({shown}), so the port it would use towards us can't be known in advance; "
            "a UDP port forward on the peer's side would allow a direct path"
        )
    if local_nat == NAT_SYMMETRIC:
        details.append(
            "this node's NAT is symmetric (its public port changes per destination): "
            "hole punching only works if the peer's NAT is fully open; forward a UDP port "
            "to this node or use a NAT with endpoint-independent mapping"
        )
    if punch.first_attempt is not None:
        details.append(f"first direct attempt {now - punch.first_attempt:.0f} s ago")
    for endpoint, how in punch.learned.items():
        details.append(f"learned {endpoint} from {how}")
    return RelayReason(
        summary=summary,
        code=code,
        endpoints_learned=learned,
        punch_attempts=punch.attempts,
        punch_replies=punch.replies,
        local_nat=local_nat,
        details=details,
    )


def peer_status(
    peer: Peer,
    link: Link,
    local_nat: str,
    tunneled: bool,
    now: float,
    is_root_role: bool,
    names: list[PeerName] | None = None,
) -> PeerStatus:
    best = peer.best_path(now)
    latency = best.latency if best is not None else peer.relay_latency

    def ago(t: float | None) -> float | None:
        return None if t is None else round(max(0.0, now - t), 3)

    session = peer.tx_session
    return PeerStatus(
        address=format_address(peer.address),
        role="ROOT" if is_root_role else "LEAF",
        version=peer.version,
        link=link,
        preferred_path=str(best.endpoint) if best is not None else None,
        latency=latency.status(),
        last_send_ago_s=ago(peer.last_send),
        last_receive_ago_s=ago(peer.last_receive),
        session_age_s=ago(session.created) if session is not None else None,
        rekeys=peer.rekeys,
        paths=[
            p.status(now, preferred=p is best)
            for p in sorted(peer.paths.values(), key=lambda p: str(p.endpoint))
        ],
        relay_reason=relay_reason(peer, link, local_nat, tunneled, now),
        counters=dict(peer.counters),
        names=names or [],
    )


def _no_answer(punch: Punch, learned: list[str]) -> str:
    """Why direct attempts got no answer, told apart by the ICMP errors they drew."""
    tried = f"{punch.attempts} direct attempts to {', '.join(learned)} got no answer"
    refused = [(e, who) for e, (kind, who, _) in punch.icmp.items() if kind == "port_unreachable"]
    if refused:
        endpoint, who = refused[0]
        router = who or endpoint.host
        return (
            f"{tried}: the router at {router} answered them itself ('port unreachable'), "
            "so it has no input firewall and took them as its own traffic, which keeps "
            "its port from the peer for 30 s; the next attempt waits for that to expire. "
            f"If it stays relayed, forward UDP port {endpoint.port} on that router to the "
            "peer, or turn on the router's firewall"
        )
    unreachable = [(e, who) for e, (kind, who, _) in punch.icmp.items() if kind == "unreachable"]
    if unreachable and len(unreachable) == len(punch.learned):
        endpoint, who = unreachable[0]
        return (
            f"{tried}: the network says {endpoint.host} cannot be reached from here "
            f"(ICMP unreachable from {who or 'a router'}); the peer's addresses are "
            "private or filtered, so only a relay or a port forward on its side can help"
        )
    return (
        f"{tried} and drew no error: a firewall on the way drops them silently. "
        "Allow UDP out and back on both sides, or forward a UDP port to the peer"
    )


def _reprobe_interval_s(peer: Peer, now: float) -> float:
    """How often the lost direct path is probed now (path.probe_interval_s); a path
    already forgotten would be probed as a dead one if it came back."""
    endpoint = peer.punch.last_direct_endpoint
    path = peer.paths.get(endpoint) if endpoint is not None else None
    return path.probe_interval_s(now) if path is not None else DEAD_PROBE_S


def _ports_seen_by_roots(peer: Peer) -> tuple[str, list[int]] | None:
    """One public IP of the peer seen at several ports by different roots: its NAT maps
    each destination to a new port (the same test infer_nat applies to ourselves)."""
    by_host: dict[str, set[int]] = {}
    for endpoint, how in peer.punch.learned.items():
        if how.source is LearnedFrom.ROOT:
            by_host.setdefault(endpoint.host, set()).add(endpoint.port)
    for host, ports in sorted(by_host.items()):
        if len(ports) > 1:
            return host, sorted(ports)
    return None
