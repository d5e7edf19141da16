"""Hole punching across simulated NATs, relaying, and falling back and forth.

The story each test tells: a root on the internet, two homes behind NATs of some kind.
The homes talk; the root relays their first packets and introduces them; whether they end
DIRECT depends on their NATs exactly as it does on the real internet.
"""

from __future__ import annotations

import pytest

from overlay_core.proto.path import PATH_ALIVE_S
from overlay_core.testing.fakenet import FakeNet, Host, NatKind

FC, PR, SY = NatKind.FULL_CONE, NatKind.PORT_RESTRICTED, NatKind.SYMMETRIC


def world(
    kind_a: NatKind | None, kind_b: NatKind | None, roots: int = 1
) -> tuple[FakeNet, Host, Host]:
    net = FakeNet()
    for i in range(roots):
        net.add_host(f"root{i}", root=True)
    a = net.add_host("a", nat=net.add_nat("nat-a", kind_a) if kind_a else None)
    b = net.add_host("b", nat=net.add_nat("nat-b", kind_b) if kind_b else None)
    net.run(2)
    return net, a, b


def link(net: FakeNet, host: Host, other: Host) -> str:
    peer = next(
        p for p in host.node.snapshot(net.now).peers if p.address == f"{other.address:010x}"
    )
    return peer.link


def talk(net: FakeNet, a: Host, b: Host, seconds: float = 5.0) -> None:
    """Both sides send a little traffic for a while, as a ping would."""
    for _ in range(int(seconds / 0.5)):
        net.call(a, a.node.send_user_data(b.address, b"ping", net.now))
        net.call(b, b.node.send_user_data(a.address, b"pong", net.now))
        net.run(0.5)


@pytest.mark.parametrize(
    ("kind_a", "kind_b"),
    [(None, None), (FC, FC), (PR, PR), (FC, SY), (SY, FC), (PR, None)],
)
def test_pairs_that_can_punch_end_direct(kind_a: NatKind | None, kind_b: NatKind | None) -> None:
    net, a, b = world(kind_a, kind_b)
    talk(net, a, b)
    assert link(net, a, b) == "DIRECT"
    assert link(net, b, a) == "DIRECT"
    assert len(b.delivered) == 10 and len(a.delivered) == 10


@pytest.mark.parametrize(("kind_a", "kind_b"), [(SY, SY), (SY, PR), (PR, SY)])
def test_pairs_that_cannot_punch_stay_relayed_with_a_reason(
    kind_a: NatKind, kind_b: NatKind
) -> None:
    net, a, b = world(kind_a, kind_b)
    talk(net, a, b, seconds=10)
    assert link(net, a, b) == "RELAY"
    assert len(b.delivered) == 20, "relayed traffic must still arrive"
    peer = next(p for p in a.node.snapshot(net.now).peers if p.link == "RELAY")
    reason = peer.relay_reason
    assert reason is not None
    assert reason.punch_attempts >= 3 and reason.punch_replies == 0
    assert reason.endpoints_learned, "the root introduced the peer"
    assert "got no answer" in reason.summary
    net.run(12)  # relayed peers are probed through the root too: their latency is known
    assert (
        peer.address
        and next(
            p for p in a.node.snapshot(net.now).peers if p.address == peer.address
        ).latency.smoothed_ms
    )


def test_two_roots_let_a_node_recognise_its_symmetric_nat() -> None:
    net, a, b = world(SY, SY, roots=2)
    talk(net, a, b, seconds=6)
    status = a.node.snapshot(net.now)
    assert status.nat.startswith("symmetric")
    relayed = next(p for p in status.peers if p.link == "RELAY")
    assert relayed.relay_reason is not None
    assert any("symmetric" in d for d in relayed.relay_reason.details)
    assert b.node.snapshot(net.now).nat.startswith("symmetric")


def test_two_roots_see_a_cone_nat_at_one_port() -> None:
    net, a, _b = world(PR, PR, roots=2)
    assert a.node.snapshot(net.now).nat.startswith("endpoint-independent")


def test_a_cut_direct_path_falls_back_to_relay_and_recovers() -> None:
    """Cut the direct path: within 10 s traffic flows via the root; restore it: DIRECT again."""
    net, a, b = world(PR, PR)
    talk(net, a, b)
    assert link(net, a, b) == "DIRECT"
    net.block(a, b)
    cut_at = net.now
    delivered_before = len(b.delivered)
    while link(net, a, b) != "RELAY" and net.now - cut_at < 10:
        talk(net, a, b, seconds=0.5)
    assert link(net, a, b) == "RELAY"
    assert net.now - cut_at <= PATH_ALIVE_S + 1
    talk(net, a, b, seconds=2)
    assert len(b.delivered) > delivered_before + 3, "traffic keeps flowing through the root"
    reason = next(p for p in a.node.snapshot(net.now).peers if p.link == "RELAY").relay_reason
    assert reason is not None and "stopped answering" in reason.summary
    net.unblock(a, b)
    restored_at = net.now
    while link(net, a, b) != "DIRECT" and net.now - restored_at < 10:
        talk(net, a, b, seconds=0.5)
    assert link(net, a, b) == "DIRECT"
    assert any("RELAY -> DIRECT" in e.message for e in a.events)


def test_blocked_udp_falls_back_to_tcp_and_peers_show_tcp() -> None:
    net = FakeNet()
    net.add_host("root", root=True)
    a = net.add_host("a", nat=net.add_nat("nat-a", NatKind.BLOCK_UDP))
    b = net.add_host("b", nat=net.add_nat("nat-b", PR))
    net.run(12)
    status = a.node.snapshot(net.now)
    assert status.online and status.tunneled
    talk(net, a, b, seconds=4)
    assert link(net, a, b) == "TCP"
    assert len(b.delivered) == 8 and len(a.delivered) == 8
    peer_b = next(p for p in a.node.snapshot(net.now).peers if p.address == f"{b.address:010x}")
    assert peer_b.relay_reason is not None and "only over TCP" in peer_b.relay_reason.summary


def test_tcp_is_dropped_again_once_udp_works() -> None:
    net = FakeNet()
    net.add_host("root", root=True)
    nat = net.add_nat("nat-a", NatKind.BLOCK_UDP)
    a = net.add_host("a", nat=nat)
    net.run(12)
    assert a.node.snapshot(net.now).tunneled
    nat.kind = PR
    net.run(10)
    status = a.node.snapshot(net.now)
    assert status.online and not status.tunneled
    assert any("closing TCP" in e.message for e in a.events)


def test_echo_goes_through_the_root_first_then_direct() -> None:
    """What `ztui ping` shows: the first answers come via the root, later ones directly."""
    net, a, b = world(PR, PR)
    for _ in range(5):
        _echo_id, effects = a.node.echo(b.address, net.now)
        net.call(a, effects)
        net.run(1)
    links = [e.link for e in a.echoes]
    assert len(links) == 5
    assert links[0] == "RELAY" and a.echoes[0].relay == net.hosts["root0"].address
    assert links[-1] == "DIRECT"
    assert all(e.rtt_s > 0 for e in a.echoes)


def test_an_echo_to_an_unknown_address_fails_with_the_roots_answer() -> None:
    """WHOIS comes back 'not found': the echo fails at once with a reason, no timeout."""
    net, a, _b = world(None, None)
    echo_id, effects = a.node.echo(0x0123456789, net.now)
    net.call(a, effects)
    net.run(0.1)
    assert [(f.echo_id, f.peer) for f in a.failed] == [(echo_id, 0x0123456789)]
    assert "no node 0123456789 is known to root" in a.failed[0].reason
    assert a.echoes == []


def test_path_mtu_is_discovered_and_big_packets_cross_a_small_link() -> None:
    """A home on a 1280-byte link: its paths settle just under 1252-byte datagrams, and
    payloads of 1300, 2800 and 9000 bytes arrive whole."""
    net = FakeNet()
    root = net.add_host("root0", root=True)
    nat_a = net.add_nat("nat-a", PR)
    net.link_mtu[nat_a.public_ip] = 1252
    a = net.add_host("a", nat=nat_a)
    b = net.add_host("b", nat=net.add_nat("nat-b", PR))
    net.run(2)
    talk(net, a, b, seconds=3)
    net.run(5)
    for peer in (b, root):
        path = a.node.peers[peer.address].best_path(net.now)
        assert path is not None and 1252 - 16 < path.mtu <= 1252, peer.name
    wide = b.node.peers[root.address].best_path(net.now)
    assert wide is not None and wide.mtu == 1432, "b's own link is not small"
    for size in (1300, 2800, 9000):
        net.call(a, a.node.send_user_data(b.address, bytes(size), net.now))
    net.run(1)
    assert [len(d.payload) for d in b.delivered[-3:]] == [1300, 2800, 9000]


def test_a_path_whose_mtu_shrinks_is_searched_again() -> None:
    from overlay_core.proto.path import PMTU_REPROBE_S

    net, a, b = world(PR, PR)
    talk(net, a, b, seconds=3)
    assert a.nat is not None
    net.link_mtu[a.nat.public_ip] = 1252
    net.run(PMTU_REPROBE_S + 10)
    path = a.node.peers[b.address].best_path(net.now)
    assert path is not None and path.mtu <= 1252


def test_retry_direct_punches_again_without_waiting_for_the_back_off() -> None:
    """After a failed punch the node waits 35 s before punching the same endpoint again;
    retry_direct (the console's `r`) punches at once, and wins when the NAT now allows it."""
    net, a, b = world(SY, PR)
    talk(net, a, b, seconds=4)
    assert link(net, a, b) == "RELAY"
    assert a.nat is not None
    a.nat.kind = PR  # the admin fixed the NAT
    net.call(a, a.node.retry_direct(b.address, net.now))
    talk(net, a, b, seconds=3)
    assert link(net, a, b) == "DIRECT"


def test_probe_mtu_searches_again_on_request() -> None:
    net, a, b = world(PR, PR)
    talk(net, a, b, seconds=3)
    assert a.nat is not None
    net.link_mtu[a.nat.public_ip] = 1252
    net.call(a, a.node.probe_mtu(b.address, net.now))
    net.run(8)
    path = a.node.peers[b.address].best_path(net.now)
    assert path is not None and path.mtu <= 1252
