"""`netcheck(state, now)`: naming the NAT, the UDP/TCP state and the verdict from a node.

Each story puts a real Node behind one of FakeNet's NATs with two roots on the internet,
lets it talk to them for a few seconds (long enough for both roots to report where they
see it), and reads the report the way `GET /netcheck` would.
"""

from __future__ import annotations

import itertools
import json

from overlay_core.api.schema import NetcheckJson, netcheck_to_json
from overlay_core.proto.effects import udp
from overlay_core.proto.hops import HopTrace
from overlay_core.proto.netcheck import (
    MAPPING_DEPENDENT,
    MAPPING_INDEPENDENT,
    MAPPING_NONE,
    MAPPING_ONE_ROOT,
    MAPPING_UNKNOWN,
    NetcheckReport,
    classify_mapping,
    describe_hops,
    netcheck,
)
from overlay_core.testing.fakenet import PORT, FakeNet, Host, NatKind

SETTLE_S = 3.0  # HELLO/OK with both roots and a keepalive round: every root has reported
TCP_SETTLE_S = 12.0  # the TCP fallback opens after 8 s without a UDP answer


def world(
    kind: NatKind | None, *, roots: int = 2, preserve_port: bool = False
) -> tuple[FakeNet, Host]:
    """`roots` roots and a leaf behind a NAT of `kind` (None: on the internet itself)."""
    net = FakeNet()
    for i in range(roots):
        net.add_host(f"root{i}", root=True)
    nat = net.add_nat("nat", kind) if kind is not None else None
    if nat is not None and preserve_port:
        # Linux MASQUERADE keeps the source port when it is free: the first mapping gets it.
        nat._ports = itertools.count(PORT)
    leaf = net.add_host("leaf", nat=nat)
    net.run(TCP_SETTLE_S if kind is NatKind.BLOCK_UDP else SETTLE_S)
    return net, leaf


def check(net: FakeNet, host: Host) -> NetcheckReport:
    return netcheck(host.node, net.now)


def traced(*offenders: str | None) -> HopTrace:
    """A finished hop trace whose hops 1, 2, ... answered from `offenders` (None: silent),
    and whose next probe reached the root."""
    trace = HopTrace(started=0.0)
    trace.offenders.update(enumerate(offenders, 1))
    trace.reached, trace.finished = len(offenders) + 1, 1.0
    return trace


# --------------------------------------------------------------------------- the stories


def test_port_preserving_nat_is_endpoint_independent_and_keeps_the_port() -> None:
    """Both roots see the same public ip:port, and the port is our own: the NAT maps one
    public endpoint per inside endpoint (MASQUERADE without --random-fully)."""
    net, leaf = world(NatKind.PORT_RESTRICTED, preserve_port=True)
    report = check(net, leaf)
    assert report.mapping == MAPPING_INDEPENDENT
    assert report.port_preserved is True
    assert report.udp and not report.tunneled and report.ipv4 and not report.ipv6
    assert report.external_v4 == (f"{leaf.nat.public_ip}:{PORT}",)  # type: ignore[union-attr]
    assert report.level == "ok"
    assert report.verdict == "Direct connections should work (endpoint-independent NAT)"
    assert report.advice == "nothing to do"


def test_endpoint_independent_nat_that_moves_the_port() -> None:
    """Same public endpoint for both roots, but not our port: still endpoint-independent
    (hole punching works), with the port not preserved."""
    net, leaf = world(NatKind.PORT_RESTRICTED)
    report = check(net, leaf)
    assert report.mapping == MAPPING_INDEPENDENT
    assert report.port_preserved is False
    assert report.level == "ok"


def test_symmetric_nat_is_endpoint_dependent_and_says_to_forward_the_port() -> None:
    """The roots see one public IP at two ports: a new mapping per destination. The verdict
    warns that symmetric-to-symmetric peers get relayed and says which port to forward."""
    net, leaf = world(NatKind.SYMMETRIC)
    report = check(net, leaf)
    assert report.mapping == MAPPING_DEPENDENT
    assert report.port_preserved is False
    assert len(report.external_v4) == 2
    assert report.level == "warn"
    assert report.verdict.startswith("Symmetric NAT: peers behind another symmetric NAT")
    assert report.advice == f"forward UDP port {PORT} to this device on the router"


def test_public_address_is_no_nat() -> None:
    """A leaf on the internet itself: the roots see one of its own addresses."""
    net, leaf = world(None)
    report = check(net, leaf)
    assert report.mapping == MAPPING_NONE
    assert report.port_preserved is True
    assert report.verdict == "Direct connections should work (public address, no NAT)"


def test_one_root_cannot_tell_cone_from_symmetric() -> None:
    """With one root there is nothing to compare: unknown, and the advice is a second root."""
    net, leaf = world(NatKind.SYMMETRIC, roots=1)
    report = check(net, leaf)
    assert report.mapping == MAPPING_ONE_ROOT
    assert report.port_preserved is False  # the one report still shows a moved port
    assert report.level == "warn"
    assert "second root" in report.advice


def test_udp_blocked_means_tunneled_over_tcp() -> None:
    """No UDP gets through: the node falls back to TCP to every root, and the verdict says
    UDP is blocked and to allow it. Nothing was reported over UDP, so the NAT is unknown."""
    net, leaf = world(NatKind.BLOCK_UDP)
    report = check(net, leaf)
    assert report.tunneled and not report.udp
    assert {r.link for r in report.roots} == {"TCP"}
    assert all(r.endpoint and r.endpoint.startswith("tcp://") for r in report.roots)
    assert report.mapping == MAPPING_UNKNOWN and report.port_preserved is None
    assert report.level == "bad"
    assert report.verdict == "UDP blocked: everything goes through the roots over TCP"
    assert report.advice == f"allow outbound UDP to port {PORT} in the firewall"


def test_roots_latency_and_nearest() -> None:
    """Every root is listed with the UDP endpoint we reach it at, a measured latency and
    the endpoint it reports for us; the nearest is the one with the lowest latency."""
    net, leaf = world(NatKind.PORT_RESTRICTED)
    report = check(net, leaf)
    assert len(report.roots) == 2
    for root in report.roots:
        assert root.link == "UDP"
        assert root.endpoint is not None and root.endpoint.endswith(f":{PORT}")
        assert root.latency_ms is not None and root.latency_ms > 0
        assert root.external_v4 in report.external_v4 and root.external_v6 is None
    fastest = min(report.roots, key=lambda r: r.latency_ms or 0.0)
    assert report.nearest_root == fastest.address
    assert report.last_udp_ago_s is not None and report.last_udp_ago_s < SETTLE_S


def test_only_roots_count_not_peers() -> None:
    """A peer on our LAN reports our LAN address; that says nothing about the NAT and must
    not turn an endpoint-independent NAT into a 'symmetric' one."""
    net, leaf = world(NatKind.PORT_RESTRICTED)
    leaf.node.observed[0x1234567890] = udp("198.18.1.200", 41234)
    assert check(net, leaf).mapping == MAPPING_INDEPENDENT


def test_double_nat_from_the_hop_trace() -> None:
    """Two NAT hops, the outer one in carrier-grade space: the report lists them, nearest
    first, with the opener TTL; a symmetric mapping then advises the ISP, not a port
    forward, which could not pass the carrier's NAT."""
    net, leaf = world(NatKind.SYMMETRIC)
    leaf.node.outbound.hops = traced("10.1.0.1", "100.64.0.1", None)
    report = check(net, leaf)
    assert report.hops_traced
    assert report.nat_hops == ("10.1.0.1", "100.64.0.1")
    assert report.opener_ttl == 3
    assert report.hops == "behind 2 NATs (10.1.0.1, 100.64.0.1): carrier-grade NAT"
    assert "ask the ISP" in report.advice


def test_hops_while_tracing_and_for_a_single_nat() -> None:
    """Before the trace has finished (or while nothing drives it) the report says
    "tracing" and lists no hops; one NAT hop reads "behind 1 NAT"."""
    net, leaf = world(NatKind.PORT_RESTRICTED)
    leaf.node.outbound.hops = HopTrace()
    report = check(net, leaf)
    assert not report.hops_traced and report.nat_hops == () and report.hops == "tracing"
    leaf.node.outbound.hops = traced("192.168.1.1")
    report = check(net, leaf)
    assert report.hops == "behind 1 NAT (192.168.1.1)" and report.opener_ttl == 2


def test_offline_before_any_root_answers() -> None:
    """A node whose roots never answered says it is offline, not that UDP is blocked."""
    net = FakeNet()
    net.add_host("root0", root=True)
    leaf = net.add_host("leaf")
    report = check(net, leaf)  # started, nothing delivered yet
    assert report.level == "bad" and report.verdict.startswith("Offline")
    assert report.roots[0].link == "NONE" and report.roots[0].latency_ms is None


def test_no_roots_configured() -> None:
    net = FakeNet()
    leaf = net.add_host("leaf")
    report = check(net, leaf)
    assert report.roots == () and report.level == "bad"
    assert "ztui roots set FILE" in report.advice


# --------------------------------------------------------------------------- pure pieces


def test_classify_mapping_table() -> None:
    """The module docstring's table, row by row; different IPs count as dependent."""
    mine = {"10.0.0.2"}
    assert classify_mapping([], mine) == MAPPING_UNKNOWN
    assert classify_mapping([udp("10.0.0.2", 9993)] * 2, mine) == MAPPING_NONE
    assert classify_mapping([udp("198.18.1.1", 9993)], mine) == MAPPING_ONE_ROOT
    same = [udp("198.18.1.1", 4000), udp("198.18.1.1", 4000)]
    assert classify_mapping(same, mine) == MAPPING_INDEPENDENT
    ports = [udp("198.18.1.1", 4000), udp("198.18.1.1", 4001)]
    assert classify_mapping(ports, mine) == MAPPING_DEPENDENT
    hosts = [udp("198.18.1.1", 4000), udp("198.18.1.2", 4000)]
    assert classify_mapping(hosts, mine) == MAPPING_DEPENDENT


def test_describe_hops() -> None:
    assert describe_hops(False, (), MAPPING_INDEPENDENT) == "tracing"
    assert describe_hops(True, (), MAPPING_NONE) == "none"
    assert describe_hops(True, (), MAPPING_INDEPENDENT).startswith("none seen")
    assert describe_hops(True, ("10.1.0.1", "10.2.0.1"), MAPPING_DEPENDENT).endswith("double NAT")


def test_json_has_every_field_and_serialises() -> None:
    """`GET /netcheck`'s body: every NetcheckJson key, plain JSON types only."""
    net, leaf = world(NatKind.SYMMETRIC)
    leaf.node.outbound.hops = traced("10.1.0.1")
    body = netcheck_to_json(check(net, leaf))
    assert set(body) == set(NetcheckJson.__annotations__)
    assert json.loads(json.dumps(body)) == body
    assert body["mapping"] == MAPPING_DEPENDENT and body["nat_hops"] == ["10.1.0.1"]
    assert body["roots"][0]["link"] == "UDP" and body["role"] == "LEAF"


def test_ipv6_reports_are_kept_apart_from_ipv4() -> None:
    """A root that reports an IPv6 endpoint fills external_v6, never the IPv4 NAT's
    classification; with no IPv4 report at all the verdict still says IPv6 works."""
    net, leaf = world(None)
    node = leaf.node
    roots = sorted(node.roots)
    node.observed[roots[0]] = udp("2001:db8::198:18:0:12", PORT)
    report = check(net, leaf)
    first = next(r for r in report.roots if r.address == f"{roots[0]:010x}")
    assert first.external_v6 == f"[2001:db8::198:18:0:12]:{PORT}" and first.external_v4 is None
    assert report.external_v6 == (f"[2001:db8::198:18:0:12]:{PORT}",)
    assert report.mapping == MAPPING_NONE  # the other root's IPv4 report decides
    for address in roots:
        node.observed[address] = udp("2001:db8::198:18:0:12", PORT)
    report = check(net, leaf)
    assert report.mapping == MAPPING_UNKNOWN and report.port_preserved is None
    assert report.verdict.startswith("Direct connections should work over IPv6")


def test_a_silent_roots_old_report_does_not_count() -> None:
    """A root we no longer reach may remember a mapping our NAT has dropped since: its
    report must not make an endpoint-independent NAT look symmetric."""
    net, leaf = world(NatKind.PORT_RESTRICTED)
    gone = sorted(leaf.node.roots)[0]
    net.block(leaf, next(h for h in net.hosts.values() if h.address == gone))
    net.run(10)  # its path dies (PATH_ALIVE_S) while the other root keeps answering
    leaf.node.observed[gone] = udp(leaf.nat.public_ip, 40999)  # type: ignore[union-attr]
    report = check(net, leaf)
    assert [r.link for r in report.roots].count("NONE") == 1
    assert report.mapping == MAPPING_ONE_ROOT
