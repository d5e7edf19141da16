"""`ztui netcheck`: what this node can tell about its own connectivity, in one report.

Like `tailscale netcheck`, but read from what the node already knows instead of a fresh
round of probes. The node keeps all of it current anyway: every root answers our HELLOs
and keepalive ECHOs with the endpoint it sees us at (`Node.observed`), the same
keepalives measure each root's round trip, the TCP fallback opens only when UDP gets no
answer, and the hop trace (hops.py) counts the NATs between us and the internet. So a
netcheck sends nothing and costs nothing, and the console may ask for one every second.

How the NAT's mapping is named (RFC 4787 terms; IPv4 only, since IPv6 is not translated),
from the IPv4 endpoints the *roots* report; the first row that matches wins:

    what the roots report                        mapping
    -------------------------------------------  ---------------------------------
    nothing yet                                  unknown
    only addresses this node has itself          none (public address)
    two or more, all the same ip:port            endpoint-independent
    two or more, not all the same                endpoint-dependent (symmetric)
    one                                          unknown (one root)

Only roots count, and only those we reach right now (one gone silent may remember a
mapping our NAT has since dropped). Peers report our endpoint too, but a peer on our LAN
reports our LAN address, and one behind the same carrier-grade NAT an inside one: neither
says anything about the way out. Two reports that differ only in the port are the classic symmetric
NAT (Linux MASQUERADE --random-fully, most carrier-grade NATs); two with different IPs
(a multi-WAN router, a CGNAT without paired pooling) are just as unpredictable for a
peer, so they count as endpoint-dependent too.

The verdict is one sentence and one thing to do, chosen by `_verdict` in a fixed order:
no roots, no root answering, UDP blocked (tunneled), then by mapping. Nothing here reads
a clock or changes state: `netcheck(state, now)` is a pure function of what the node knows
(`Facts`: the Node and its core both have it).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from .effects import Endpoint, Transport
from .identity import format_address
from .states import RootLink

if TYPE_CHECKING:  # only for hints: importing the node would drag crypto into the schema
    from .hops import HopTrace
    from .outbound import NodeConfig
    from .path import Path
    from .peer import Peer
    from .roots import RootEntry

Level = Literal["ok", "warn", "bad"]

MAPPING_UNKNOWN = "unknown"
MAPPING_NONE = "none (public address)"
MAPPING_INDEPENDENT = "endpoint-independent"
MAPPING_DEPENDENT = "endpoint-dependent (symmetric)"
MAPPING_ONE_ROOT = "unknown (one root)"

HOPS_TRACING = "tracing"
# RFC 6598: the space between a carrier-grade NAT and its customers. A NAT hop there means
# the ISP translates too, and no port forward on the customer's own router can help.
CGNAT_NET = ipaddress.ip_network("100.64.0.0/10")


class Facts(Protocol):
    """What netcheck reads of a node: its configuration, the roots and peers it knows,
    where the roots see it (reporter -> endpoint), and its hop trace."""

    # Read-only: netcheck only reads them, and the Node offers them as views.
    @property
    def config(self) -> NodeConfig: ...
    @property
    def roots(self) -> dict[int, RootEntry]: ...
    @property
    def peers(self) -> dict[int, Peer]: ...
    @property
    def observed(self) -> dict[int, Endpoint]: ...
    @property
    def hops(self) -> HopTrace: ...


@dataclass(frozen=True, slots=True)
class RootCheck:
    """One root as this node sees it right now."""

    address: str  # 10 hex digits
    link: RootLink  # UDP, TCP or NONE: how we would send to it now
    endpoint: str | None  # where: the live path, else its first endpoint in the roots file
    latency_ms: float | None  # smoothed round trip on that path; None until measured
    external_v4: str | None  # our endpoint as this root last reported it, if IPv4
    external_v6: str | None  # ... if IPv6 (a root reports the one it saw last)


@dataclass(frozen=True, slots=True)
class NetcheckReport:
    """The answer to "can this node make direct connections, and if not, why?"."""

    is_root: bool
    udp: bool  # some root answered over UDP within PATH_ALIVE_S (a live UDP path)
    tunneled: bool  # no root over UDP, some over TCP: the TCP fallback carries everything
    ipv4: bool  # a live UDP path to a root over IPv4
    ipv6: bool  # ... over IPv6
    last_udp_ago_s: float | None  # since the newest UDP packet from any root
    local_port: int | None  # our UDP port, to tell whether the NAT kept it
    external_v4: tuple[str, ...]  # distinct IPv4 endpoints the roots report, sorted
    external_v6: tuple[str, ...]
    mapping: str  # one of the MAPPING_* words above
    port_preserved: bool | None  # the roots see us at our own port; None: nothing seen
    hops_traced: bool  # the hop trace has finished (False: still tracing, or not wired)
    nat_hops: tuple[str, ...]  # inside addresses of our NAT routers, nearest first
    opener_ttl: int  # the TTL our hole-punching packets use (hops.py)
    hops: str  # the NAT hops in words: "behind 2 NATs (...)", "tracing", ...
    nearest_root: str | None  # the root with the lowest latency, for the summary
    roots: tuple[RootCheck, ...]
    level: Level  # ok: direct connections work; warn: some get relayed; bad: all do
    verdict: str  # one sentence a NAS owner understands
    advice: str  # the one thing to do about it ("nothing to do" when level is ok)


def netcheck(state: Facts, now: float, local_port: int | None = None) -> NetcheckReport:
    """The report for `state` at `now`. `local_port`: the UDP port the node is bound to
    (the daemon knows it); by default the port of the node's advertised endpoints."""
    if local_port is None:
        local_port = next(
            (e.port for e in state.config.local_endpoints if e.transport is Transport.UDP), None
        )
    addresses = sorted(state.roots)
    roots = tuple(_root_check(state, address, now) for address in addresses)
    udp_paths = [p for p in _root_paths(state) if p.is_direct and p.alive(now)]
    udp = bool(udp_paths)
    tunneled = not udp and any(r.link == RootLink.TCP for r in roots)
    heard = [t for p in _root_paths(state) if p.is_direct and (t := p.last_receive) is not None]
    # Only roots we reach now (module docstring): a stale report reads as a second port.
    reached = [a for a, r in zip(addresses, roots, strict=True) if r.link != RootLink.NONE]
    seen = [state.observed[a] for a in reached if a in state.observed]
    seen_v4 = [e for e in seen if e.transport is Transport.UDP and not e.is_ipv6]
    seen_v6 = [e for e in seen if e.transport is Transport.UDP and e.is_ipv6]
    local_hosts = {e.host for e in state.config.local_endpoints}
    mapping = classify_mapping(seen_v4, local_hosts)
    ports = {e.port for e in seen_v4}
    preserved = None if not ports or local_port is None else ports == {local_port}
    trace = state.hops
    nat_hops = tuple(trace.nat_hops) if trace.done else ()
    measured = [r for r in roots if r.latency_ms is not None and r.link != RootLink.NONE]
    nearest = min(measured, key=lambda r: r.latency_ms or 0.0, default=None)
    level, verdict, advice = _verdict(
        state, roots, tunneled, mapping, nat_hops, bool(seen_v6), local_port
    )
    return NetcheckReport(
        is_root=state.config.is_root,
        udp=udp,
        tunneled=tunneled,
        ipv4=any(not p.endpoint.is_ipv6 for p in udp_paths),
        ipv6=any(p.endpoint.is_ipv6 for p in udp_paths),
        last_udp_ago_s=round(max(0.0, now - max(heard)), 3) if heard else None,
        local_port=local_port,
        external_v4=tuple(sorted({str(e) for e in seen_v4})),
        external_v6=tuple(sorted({str(e) for e in seen_v6})),
        mapping=mapping,
        port_preserved=preserved,
        hops_traced=trace.done,
        nat_hops=nat_hops,
        opener_ttl=trace.opener_ttl,
        hops=describe_hops(trace.done, nat_hops, mapping),
        nearest_root=nearest.address if nearest is not None else None,
        roots=roots,
        level=level,
        verdict=verdict,
        advice=advice,
    )


def classify_mapping(seen_v4: list[Endpoint], local_hosts: set[str]) -> str:
    """The mapping row of the module docstring's table, for the roots' IPv4 reports."""
    if not seen_v4:
        return MAPPING_UNKNOWN
    if all(e.host in local_hosts for e in seen_v4):
        return MAPPING_NONE
    if len(seen_v4) == 1:
        return MAPPING_ONE_ROOT
    if len({(e.host, e.port) for e in seen_v4}) == 1:
        return MAPPING_INDEPENDENT
    return MAPPING_DEPENDENT


def describe_hops(done: bool, nat_hops: tuple[str, ...], mapping: str) -> str:
    """The hop trace in words. An empty finished trace means no NAT only when the roots
    agree we have a public address; otherwise our routers just did not answer it."""
    if not done:
        return HOPS_TRACING
    if not nat_hops:
        return "none" if mapping == MAPPING_NONE else "none seen (routers did not answer)"
    listed = ", ".join(nat_hops)
    if len(nat_hops) == 1:
        return f"behind 1 NAT ({listed})"
    kind = "carrier-grade NAT" if is_cgnat(nat_hops) else "double NAT"
    return f"behind {len(nat_hops)} NATs ({listed}): {kind}"


def is_cgnat(nat_hops: tuple[str, ...]) -> bool:
    """Does one of our NAT hops sit in the carrier-grade NAT space (RFC 6598)?"""
    for host in nat_hops:
        try:
            if ipaddress.ip_address(host) in CGNAT_NET:
                return True
        except ValueError:
            continue
    return False


# --------------------------------------------------------------------------- pieces


def _root_paths(state: Facts) -> list[Path]:
    return [p for a in state.roots for p in state.peers[a].paths.values()]


def _root_check(state: Facts, address: int, now: float) -> RootCheck:
    peer = state.peers[address]
    best: Path | None = peer.best_path(now)
    if best is not None:
        link = RootLink.UDP if best.is_direct else RootLink.TCP
        endpoint: str | None = str(best.endpoint)
        latency = best.latency.smoothed_s
    else:
        link, latency = RootLink.NONE, None
        configured = state.roots[address].endpoints
        endpoint = str(configured[0]) if configured else None
    seen = state.observed.get(address)
    v4 = str(seen) if seen is not None and not seen.is_ipv6 else None
    v6 = str(seen) if seen is not None and seen.is_ipv6 else None
    return RootCheck(
        address=format_address(address),
        link=link,
        endpoint=endpoint,
        latency_ms=None if latency is None else round(latency * 1000, 3),
        external_v4=v4,
        external_v6=v6,
    )


def _verdict(
    state: Facts,
    roots: tuple[RootCheck, ...],
    tunneled: bool,
    mapping: str,
    nat_hops: tuple[str, ...],
    has_v6: bool,
    local_port: int | None,
) -> tuple[Level, str, str]:
    """(level, verdict, advice): the first row that applies, most fundamental first."""
    port = f"UDP port {local_port}" if local_port else "overlayd's UDP port"
    if not roots:
        if state.config.is_root:
            return (
                "ok",
                "This node is a root (there are no other roots to check against)",
                (f"make sure {port} (and TCP on the same number) reaches it from the internet"),
            )
        return (
            "bad",
            "No roots configured: this node cannot find its peers",
            ("give it a roots file: ztui roots set FILE (the running node takes it at once)"),
        )
    if all(r.link == RootLink.NONE for r in roots):
        return (
            "bad",
            "Offline: no root answers, over UDP or TCP",
            ("check the internet connection and the roots file"),
        )
    if tunneled:
        root_ports = sorted({e.port for r in state.roots.values() for e in r.endpoints})
        to = f" to port {root_ports[0]}" if len(root_ports) == 1 else ""
        return (
            "bad",
            "UDP blocked: everything goes through the roots over TCP",
            (f"allow outbound UDP{to} in the firewall"),
        )
    if mapping == MAPPING_NONE:
        return "ok", "Direct connections should work (public address, no NAT)", "nothing to do"
    if mapping == MAPPING_INDEPENDENT:
        return "ok", "Direct connections should work (endpoint-independent NAT)", "nothing to do"
    if mapping == MAPPING_DEPENDENT:
        verdict = "Symmetric NAT: peers behind another symmetric NAT will be relayed"
        if is_cgnat(nat_hops) or len(nat_hops) > 1:
            # Our own router's port forward ends at the ISP's NAT.
            return (
                "warn",
                verdict,
                (
                    "ask the ISP for a public IPv4 address; a port forward on your own router "
                    "cannot pass their NAT"
                ),
            )
        return "warn", verdict, f"forward {port} to this device on the router"
    if has_v6:
        return (
            "ok",
            "Direct connections should work over IPv6 (IPv4 NAT not known)",
            ("nothing to do"),
        )
    if mapping == MAPPING_ONE_ROOT:
        if len(roots) < 2:
            return (
                "warn",
                "NAT type unknown: only one root to compare with",
                ("list a second root in the roots file to tell"),
            )
        return (
            "warn",
            "NAT type not known yet: one root has reported our address",
            ("wait a few seconds for the other roots"),
        )
    return (
        "warn",
        "NAT type not known yet: no root has reported our address",
        ("wait a few seconds"),
    )
