"""What a root will and will not relay."""

from __future__ import annotations

from overlay_core.proto import wire
from overlay_core.proto.effects import Send, udp
from overlay_core.proto.ratelimit import TokenBucket
from overlay_core.proto.relay import RELAY_BURST
from overlay_core.testing.fakenet import FakeNet, NatKind


def relayed_world() -> tuple[FakeNet, bytes]:
    net = FakeNet()
    net.add_host("root0", root=True)
    a = net.add_host("a", nat=net.add_nat("na", NatKind.SYMMETRIC))
    b = net.add_host("b", nat=net.add_nat("nb", NatKind.SYMMETRIC))
    net.run(2)
    net.wiretap = []
    net.call(a, a.node.send_user_data(b.address, b"x", net.now))
    net.run(2)
    packet = next(
        d
        for s, to, d in net.wiretap
        if to == net.hosts["root0"].endpoint and wire.dest_of(d) == b.address
    )
    net.wiretap = None
    return net, packet


def test_a_root_relays_only_from_paths_it_authenticated() -> None:
    net, packet = relayed_world()
    root = net.hosts["root0"]
    effects = root.node.receive_datagram(packet, udp("198.18.9.9", 1234), net.now)
    assert effects == [] and root.node.drops["relay_unknown_source"] == 1


def test_a_root_refuses_packets_at_the_hop_limit() -> None:
    net, packet = relayed_world()
    root, a = net.hosts["root0"], net.hosts["a"]
    source = next(iter(root.node.peers[a.address].paths))
    effects = root.node.receive_datagram(wire.with_hops(packet, wire.MAX_HOPS), source, net.now)
    assert effects == [] and root.node.drops["hop_limit"] == 1
    effects = root.node.receive_datagram(packet, source, net.now)
    assert any(isinstance(e, Send) and wire.hops_of(e.data) == 1 for e in effects)


def test_a_root_rate_limits_each_source() -> None:
    net, packet = relayed_world()
    root, a = net.hosts["root0"], net.hosts["a"]
    source = next(iter(root.node.peers[a.address].paths))
    sent = 0
    for _ in range(int(RELAY_BURST) + 500):
        sent += any(
            isinstance(e, Send) for e in root.node.receive_datagram(packet, source, net.now)
        )
    assert sent <= RELAY_BURST + 1
    assert root.node.drops["rate_limited"] >= 499


def test_token_bucket_refills_at_its_rate() -> None:
    bucket = TokenBucket(rate=10.0, burst=2.0, tokens=2.0, updated=0.0)
    assert bucket.take(0.0) and bucket.take(0.0) and not bucket.take(0.0)
    assert bucket.take(0.1) and not bucket.take(0.1)


def test_garbage_is_counted_not_raised() -> None:
    net = FakeNet()
    root = net.add_host("root0", root=True)
    for junk in (b"", b"\x00", bytes(19), bytes(40), b"\xff" * 60):
        root.node.receive_datagram(junk, udp("198.18.9.9", 1), net.now)
    leaf = net.add_host("a")
    for junk in (b"", bytes(19), bytes(range(60))):
        leaf.node.receive_datagram(junk, udp("198.18.9.9", 1), net.now)
    assert sum(root.node.drops.values()) == 5
    assert sum(leaf.node.drops.values()) == 3
