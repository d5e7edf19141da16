"""Node.path_mtu_hint: an ICMP "fragmentation needed" / "packet too big" for one of our
datagrams lowers the MTU of the direct paths to that endpoint (see proto/path.py)."""

from __future__ import annotations

from overlay_core.proto.effects import Endpoint, tcp, udp
from overlay_core.proto.path import PMTU_MIN, Path
from overlay_core.testing.fakenet import FakeNet, Host, NatKind

PR = NatKind.PORT_RESTRICTED


def direct_pair() -> tuple[FakeNet, Host, Host, Host]:
    """A root and two homes that went DIRECT and settled their path MTUs (1432)."""
    net = FakeNet()
    root = net.add_host("root0", root=True)
    a = net.add_host("a", nat=net.add_nat("nat-a", PR))
    b = net.add_host("b", nat=net.add_nat("nat-b", PR))
    net.run(2)
    for _ in range(6):
        net.call(a, a.node.send_user_data(b.address, b"ping", net.now))
        net.call(b, b.node.send_user_data(a.address, b"pong", net.now))
        net.run(0.5)
    net.run(3)
    return net, root, a, b


def best(net: FakeNet, host: Host, other: Host) -> Path:
    path = host.node.peers[other.address].best_path(net.now)
    assert path is not None and path.is_direct
    return path


def test_a_hint_lowers_the_matching_direct_path_only() -> None:
    net, root, a, b = direct_pair()
    to_b, to_root = best(net, a, b), best(net, a, root)
    assert to_b.mtu == 1432 and to_root.mtu == 1432
    a.node.path_mtu_hint(to_b.endpoint, 1280, net.now)  # IPv4: 1280 - 20 - 8
    assert to_b.mtu == 1252 and to_b.mtu_ceiling == 1252
    assert to_root.mtu == 1432, "another endpoint's path is not touched"
    assert a.node.counters["pmtu_icmp_lowered"] == 1
    # Packets to b are fragmented to the new size at once, and still arrive whole.
    net.call(a, a.node.send_user_data(b.address, bytes(3000), net.now))
    net.run(1)
    assert len(b.delivered[-1].payload) == 3000


def test_a_hint_never_raises_nor_goes_below_the_minimum() -> None:
    net, _root, a, b = direct_pair()
    to_b = best(net, a, b)
    a.node.path_mtu_hint(to_b.endpoint, 9000, net.now)
    a.node.path_mtu_hint(to_b.endpoint, 1500, net.now)
    assert to_b.mtu == 1432
    a.node.path_mtu_hint(to_b.endpoint, 576, net.now)  # anyone on the path can say this
    assert to_b.mtu == PMTU_MIN
    a.node.path_mtu_hint(to_b.endpoint, 1500, net.now)
    assert to_b.mtu == PMTU_MIN
    assert a.node.counters["pmtu_icmp_lowered"] == 1


def test_unknown_endpoints_and_tcp_are_ignored() -> None:
    net, root, a, _b = direct_pair()
    before = {
        (p.address, e): path.mtu for p in a.node.peers.values() for e, path in p.paths.items()
    }
    for endpoint in (udp("198.18.99.99", 9993), tcp(best(net, a, root).endpoint.host, 9993)):
        assert a.node.path_mtu_hint(endpoint, 1280, net.now) == []
    after = {(p.address, e): path.mtu for p in a.node.peers.values() for e, path in p.paths.items()}
    assert after == before and a.node.counters["pmtu_icmp_lowered"] == 0


def test_an_ipv6_hint_takes_the_ipv6_header_off() -> None:
    net, _root, a, b = direct_pair()
    peer = a.node.peers[b.address]
    v6: Endpoint = udp("2001:db8::198:18:1:20", 9993)
    path = peer.path(v6, net.now)
    path.start_mtu_search(1432)
    path.mtu_fits(1432)
    a.node.path_mtu_hint(v6, 1280, net.now)  # 1280 - 40 - 8
    assert path.mtu == 1232
    assert best(net, a, b).mtu == 1432
