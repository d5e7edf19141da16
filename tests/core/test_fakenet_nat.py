"""The FakeNet's model of Linux routers (conntrack + MASQUERADE), nested NATs and TTL.

Issue 10: a home router doing plain MASQUERADE without an input firewall takes a peer's
punch that arrives before its own host has sent anything to that peer as its own traffic,
keeps an UNREPLIED conntrack entry for it (answering ICMP port unreachable) and then has to
move its host's mapping towards that peer to another port, which the peer's NAT drops.
These tests pin the model down with stand-in nodes that only send what a test tells them
to; the last two run real nodes on it.
"""

from __future__ import annotations

import pytest

from overlay_core.proto.effects import Effect, Endpoint, Send, udp
from overlay_core.testing.fakenat import UDP_REPLIED_S, UDP_UNREPLIED_S
from overlay_core.testing.fakenet import (
    CGNAT_INSIDE_IP,
    PORT,
    FakeNet,
    Host,
    IcmpError,
    Nat,
    NatKind,
    isp_router_ip,
)

LINUX = NatKind.LINUX_MASQUERADE


class Probe:
    """A stand-in node: sends nothing by itself, records what reaches it."""

    address = 0

    def __init__(self) -> None:
        self.received: list[tuple[bytes, Endpoint]] = []
        self.icmp: list[tuple[str, Endpoint, str | None]] = []

    def tick(self, now: float) -> list[Effect]:
        return []

    def receive_datagram(self, data: bytes, source: Endpoint, now: float) -> list[Effect]:
        self.received.append((data, source))
        return []

    def icmp_error(
        self, kind: str, endpoint: Endpoint, offender: str | None, now: float
    ) -> list[Effect]:
        self.icmp.append((kind, endpoint, offender))
        return []


def probe(net: FakeNet, name: str, nat: Nat | None = None) -> tuple[Host, Probe]:
    host = net.add_host(name, nat=nat)  # no roots: its real node says nothing
    host.node = stub = Probe()  # type: ignore[assignment]
    return host, stub


def send(
    net: FakeNet, host: Host, dest: Endpoint, data: bytes = b"x", ttl: int | None = None
) -> Endpoint | None:
    """`host` sends one datagram; returns the source it left its NATs with (or None)."""
    net.wiretap = []
    net.call(host, [Send(dest, data, ttl=ttl)])
    tapped = [source for source, to, sent in net.wiretap if to == dest and sent == data]
    net.wiretap = None
    net.run(0.05)  # there and an ICMP error back
    return tapped[0] if tapped else None


def public(nat: Nat, port: int = PORT) -> Endpoint:
    return udp(nat.public_ip, port)


def two_homes(
    input_firewall: bool, isp_hops: int = 1
) -> tuple[FakeNet, Nat, Nat, Host, Probe, Host, Probe]:
    net = FakeNet(isp_hops=isp_hops)
    ra = net.add_nat("ra", LINUX, input_firewall=input_firewall)
    rb = net.add_nat("rb", LINUX, input_firewall=input_firewall)
    a, pa = probe(net, "a", ra)
    b, pb = probe(net, "b", rb)
    return net, ra, rb, a, pa, b, pb


# ---------------------------------------------------------------- mapping and filtering


def test_masquerade_keeps_the_port_unless_the_reply_tuple_is_taken() -> None:
    net = FakeNet()
    r = net.add_nat("r", LINUX, input_firewall=False)
    h, ph = probe(net, "h", r)
    h2, ph2 = probe(net, "h2", r)
    p, pp = probe(net, "p")
    q, _ = probe(net, "q")

    assert send(net, h, p.endpoint) == public(r)
    assert pp.received == [(b"x", public(r))]
    entry = r.entry(h.endpoint, p.endpoint, net.now)
    assert entry is not None and not entry.local and entry.state == "UNREPLIED"
    assert entry.public == public(r)
    assert entry.expires - net.now == pytest.approx(UDP_UNREPLIED_S - 0.05)
    # Linux reuses the port towards another destination (the reply tuple differs)...
    assert send(net, h, q.endpoint) == public(r)
    # ...and moves a second inside host's 9993 only where the reply tuple is taken.
    assert send(net, h2, q.endpoint) == public(r, 40000)
    assert r.stats["port_changed"] == 1

    # Inbound is admitted only as the reply of an entry: from p to the port h used.
    send(net, p, public(r), b"answer")
    assert ph.received == [(b"answer", p.endpoint)]
    assert entry.state == "ASSURED"
    assert entry.expires - net.now == pytest.approx(UDP_REPLIED_S - 0.05, abs=0.01)
    send(net, q, public(r, 40000), b"to h2")  # h2's own mapping works
    assert ph2.received == [(b"to h2", q.endpoint)]
    stranger, _ = probe(net, "stranger")
    send(net, stranger, public(r), b"from a stranger")  # the router's own: not h's
    assert len(ph.received) == 1


def test_entries_time_out_30_s_unreplied_and_120_s_assured() -> None:
    net = FakeNet()
    r = net.add_nat("r", LINUX)
    h, _ = probe(net, "h", r)
    p, _ = probe(net, "p")
    send(net, h, p.endpoint)
    net.run(UDP_UNREPLIED_S - 0.2)
    assert r.entry(h.endpoint, p.endpoint, net.now) is not None
    net.run(0.2)
    assert r.entries(net.now) == []
    send(net, h, p.endpoint)
    send(net, p, public(r))  # answered: ASSURED
    net.run(UDP_REPLIED_S - 0.2)
    assert r.entry(h.endpoint, p.endpoint, net.now) is not None
    net.run(0.2)
    assert r.entries(net.now) == []


# ---------------------------------------------------------------- the issue 10 trap


def test_an_early_punch_at_a_router_without_input_firewall_moves_the_peers_mapping() -> None:
    net, ra, rb, a, pa, b, pb = two_homes(input_firewall=False)
    # a punches b's router before b has sent anything towards a.
    assert send(net, a, public(rb)) == public(ra)
    assert pb.received == []
    local = rb.entry(public(ra), public(rb), net.now)
    assert local is not None and local.local and local.state == "UNREPLIED"
    unreachable = ("port_unreachable", public(rb), rb.public_ip)
    assert pa.icmp == [unreachable]  # the router answered; it came in through ra
    assert a.icmp[0] == IcmpError(*unreachable, at=a.icmp[0].at)

    # b's punch towards a now clashes with that entry (reply tuple ra:9993 -> rb:9993):
    # MASQUERADE takes another port, which ra does not admit (a sent to rb:9993 only),
    # so ra takes it as its own traffic as well.
    assert send(net, b, public(ra)) == public(rb, 40000)
    assert rb.stats["port_changed"] == 1
    assert pa.received == []
    assert pb.icmp == [("port_unreachable", public(ra), ra.public_ip)]
    assert ra.entry(public(rb, 40000), public(ra), net.now).local  # type: ignore[union-attr]

    # Every later punch of a keeps rb's stale entry alive; nothing gets through.
    for _ in range(3):
        net.run(10)
        send(net, a, public(rb))
        send(net, b, public(ra))
    assert pa.received == [] and pb.received == []
    assert local.packets == 4 and rb.entry(public(ra), public(rb), net.now) is local


def test_with_an_input_firewall_the_early_punch_leaves_no_trace() -> None:
    net, ra, rb, a, pa, b, pb = two_homes(input_firewall=True)
    send(net, a, public(rb))
    assert rb.entries(net.now) == [] and rb.stats["unsolicited_dropped"] == 1
    assert pa.icmp == [] and a.icmp == []
    assert send(net, b, public(ra)) == public(rb)  # the port is kept
    assert pa.received == [(b"x", public(rb))]
    send(net, a, public(rb), b"back")
    assert pb.received == [(b"back", public(ra))]


def test_a_stale_local_entry_expires_30_s_after_its_last_packet() -> None:
    net = FakeNet()
    r = net.add_nat("r", LINUX, input_firewall=False)
    h, _ = probe(net, "h", r)
    p, pp = probe(net, "p")
    send(net, p, public(r))
    assert pp.icmp == [("port_unreachable", public(r), r.public_ip)]
    net.run(UDP_UNREPLIED_S - 1)
    assert r.entry(p.endpoint, public(r), net.now) is not None
    net.run(1)
    assert r.entries(net.now) == []
    assert send(net, h, p.endpoint) == public(r)  # nothing clashes any more


def test_a_stale_local_entry_lives_as_long_as_packets_keep_coming() -> None:
    net = FakeNet()
    r = net.add_nat("r", LINUX, input_firewall=False)
    h, _ = probe(net, "h", r)
    p, pp = probe(net, "p")
    for _ in range(6):  # one every 10 s for a minute
        send(net, p, public(r))
        net.run(10)
    assert len(pp.icmp) == 6
    stale = r.entry(p.endpoint, public(r), net.now)
    assert stale is not None and stale.local and stale.packets == 6
    assert send(net, h, p.endpoint) == public(r, 40000)
    net.run(UDP_UNREPLIED_S)  # p stopped; h's moved mapping expires with it
    assert r.entries(net.now) == []
    assert send(net, h, p.endpoint) == public(r)


# ---------------------------------------------------------------- hops and TTL


def test_ttl_2_from_behind_one_nat_opens_it_and_expires_at_the_isp_router() -> None:
    net, ra, rb, a, pa, b, pb = two_homes(input_firewall=False)
    assert send(net, a, public(rb), b"opener", ttl=2) == public(ra)
    opened = ra.entry(a.endpoint, public(rb), net.now)
    assert opened is not None and opened.public == public(ra)
    assert rb.entries(net.now) == [] and pb.received == []  # nothing at the peer's router
    offender = isp_router_ip(0)
    assert offender == "198.18.2.1"  # a public address: not 10/8, not 100.64/10
    assert pa.icmp == [("ttl_exceeded", public(rb), offender)]
    # The opener did its job: b's punch keeps its port and gets in, and a's answer too.
    assert send(net, b, public(ra)) == public(rb)
    assert pa.received == [(b"x", public(rb))]
    send(net, a, public(rb), b"full ttl")
    assert pb.received == [(b"full ttl", public(ra))]


def test_ttl_1_expires_at_our_own_router_and_opens_nothing() -> None:
    net, ra, rb, a, pa, _, _ = two_homes(input_firewall=False)
    assert send(net, a, public(rb), ttl=1) is None
    assert ra.entries(net.now) == [] and rb.entries(net.now) == []
    assert ra.inside_ip.startswith("10.") and ra.inside_ip.endswith(".0.1")
    assert pa.icmp == [("ttl_exceeded", public(rb), ra.inside_ip)]


def test_ttl_across_a_home_router_behind_a_carrier_grade_nat() -> None:
    net = FakeNet()
    cgnat = net.add_nat("cgnat", LINUX)
    home = net.add_nat("home", LINUX, upstream=cgnat, input_firewall=False)
    a, pa = probe(net, "a", home)
    p, pp = probe(net, "p")
    assert home.public_ip.startswith("100.64.") and cgnat.inside_ip == CGNAT_INSIDE_IP
    assert net._public_ip(a) == cgnat.public_ip

    send(net, a, p.endpoint, ttl=1)
    assert pa.icmp[-1] == ("ttl_exceeded", p.endpoint, home.inside_ip)
    assert home.entries(net.now) == [] and cgnat.entries(net.now) == []

    send(net, a, p.endpoint, ttl=2)  # past the home router, expires at the CGNAT
    assert pa.icmp[-1] == ("ttl_exceeded", p.endpoint, "100.64.0.1")
    inner = home.entry(a.endpoint, p.endpoint, net.now)
    assert inner is not None and inner.public == public(home)
    assert cgnat.entries(net.now) == []  # dropped before POSTROUTING: no mapping

    send(net, a, p.endpoint, ttl=3)  # past both, expires at the ISP router
    assert pa.icmp[-1] == ("ttl_exceeded", p.endpoint, isp_router_ip(0))
    outer = cgnat.entry(public(home), p.endpoint, net.now)
    assert outer is not None and outer.public == public(cgnat)
    assert pp.received == []

    assert send(net, a, p.endpoint, b"whole", ttl=4) == public(cgnat)
    assert pp.received == [(b"whole", public(cgnat))]
    send(net, p, public(cgnat), b"answer")  # back in through both
    assert pa.received == [(b"answer", p.endpoint)]
    assert len(pa.icmp) == 3


def test_icmp_from_a_router_behind_a_nat_comes_from_that_nats_public_address() -> None:
    net = FakeNet()
    cgnat = net.add_nat("cgnat", NatKind.PORT_RESTRICTED)  # its mappings never time out
    home = net.add_nat("home", LINUX, upstream=cgnat, input_firewall=False)
    a, _ = probe(net, "a", home)
    p, pp = probe(net, "p")
    mapped = send(net, a, p.endpoint)
    assert mapped is not None
    net.run(UDP_UNREPLIED_S)  # the home router forgot; the CGNAT did not
    assert home.entries(net.now) == []
    send(net, p, mapped)  # in through the CGNAT, then the home router's own traffic
    assert pp.icmp == [("port_unreachable", mapped, cgnat.public_ip)]
    send(net, p, mapped, ttl=2)  # past the ISP router, expires forwarding into the CGNAT
    assert pp.icmp[-1] == ("ttl_exceeded", mapped, cgnat.public_ip)


def test_isp_hops_set_how_far_the_peers_router_is() -> None:
    # A flat lab: the peer's router is the next hop, and a TTL-2 opener reaches it.
    net, _, rb, a, pa, _, _ = two_homes(input_firewall=False, isp_hops=0)
    send(net, a, public(rb), ttl=2)
    assert pa.icmp == [("port_unreachable", public(rb), rb.public_ip)]
    assert rb.stats["local_entries"] == 1
    # Two ISP routers: the second answers a TTL 3 from behind one NAT.
    net, _, rb, a, pa, _, _ = two_homes(input_firewall=False, isp_hops=2)
    send(net, a, public(rb), ttl=3)
    assert pa.icmp == [("ttl_exceeded", public(rb), isp_router_ip(1))]
    assert rb.entries(net.now) == []


# ---------------------------------------------------------------- real nodes on it


def _nodes_behind_linux_routers(input_firewall: bool) -> tuple[FakeNet, Nat, Nat, str, str]:
    net = FakeNet(isp_hops=1)
    net.add_host("root0", root=True)
    net.add_host("root1", root=True)
    ra = net.add_nat("ra", LINUX, input_firewall=input_firewall)
    rb = net.add_nat("rb", LINUX, input_firewall=input_firewall)
    a = net.add_host("a", nat=ra)
    b = net.add_host("b", nat=rb)
    net.run(2)
    for _ in range(40):  # 20 s of a ping both ways
        net.call(a, a.node.send_user_data(b.address, b"ping", net.now))
        net.call(b, b.node.send_user_data(a.address, b"pong", net.now))
        net.run(0.5)
    assert len(a.delivered) == 40 and len(b.delivered) == 40  # relayed if not direct

    def link(host: Host, other: Host) -> str:
        peers = host.node.snapshot(net.now).peers
        return next(p for p in peers if p.address == f"{other.address:010x}").link

    return net, ra, rb, link(a, b), link(b, a)


def test_real_nodes_behind_linux_routers_without_input_firewall() -> None:
    # What happens depends on the node, so this records rather than demands an outcome.
    # The node of commit 2f1fd76 (full-TTL punches at once) ends RELAY both ways after
    # 20 s: each router holds a local UNREPLIED entry for the other router's 9993 and
    # moved its host's mapping to 40000 (the issue 10 trap; port_changed == 1 on both).
    # With TTL-limited openers (punch.py) the pair ends DIRECT with no local entry.
    # What must hold either way is that the model explains the outcome:
    _, ra, rb, a_to_b, b_to_a = _nodes_behind_linux_routers(input_firewall=False)
    moved = ra.stats["port_changed"] + rb.stats["port_changed"]
    local = ra.stats["local_entries"] + rb.stats["local_entries"]
    if moved:
        assert local, "a mapping moved only because of a local entry it would clash with"
    if "DIRECT" not in (a_to_b, b_to_a):
        assert moved, f"RELAY ({a_to_b}/{b_to_a}) without a moved mapping: not issue 10"
    if not local:
        assert (a_to_b, b_to_a) == ("DIRECT", "DIRECT")


def test_real_nodes_behind_linux_routers_with_an_input_firewall_go_direct() -> None:
    _, ra, rb, a_to_b, b_to_a = _nodes_behind_linux_routers(input_firewall=True)
    assert (a_to_b, b_to_a) == ("DIRECT", "DIRECT")
    assert ra.stats["local_entries"] == rb.stats["local_entries"] == 0
    assert ra.stats["port_changed"] == rb.stats["port_changed"] == 0
