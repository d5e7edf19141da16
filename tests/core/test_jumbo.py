"""Jumbo underlays: two members on a 9000-byte link use 9000-byte datagrams, so a frame of
a 2800-byte TAP crosses in one datagram instead of being fragmented to 1432."""

from __future__ import annotations

from overlay_core.proto import wire
from overlay_core.proto.node import NodeConfig
from overlay_core.testing.fakenet import FakeNet, Host

JUMBO_DATAGRAM = 9000 - 28  # IPv4 + UDP headers: what FakeNet's link carries
PHYS_MTU = 8932  # what the daemon derives from a 9000-byte interface (interfaces.py)


def jumbo_pair(phys_mtu: int | None, seconds: float) -> tuple[FakeNet, Host, Host]:
    """A root and two members whose links carry jumbo datagrams, talking for `seconds`;
    `phys_mtu` None: the members keep the default search ceiling."""
    net = FakeNet()
    net.add_host("root", root=True)

    def config() -> NodeConfig:
        return NodeConfig() if phys_mtu is None else NodeConfig(phys_mtu=phys_mtu)

    a, b = net.add_host("a", config=config()), net.add_host("b", config=config())
    for host in (a, b):
        net.link_mtu[host.endpoint.host] = JUMBO_DATAGRAM
    net.run(2)
    for _ in range(int(seconds / 0.5)):
        net.call(a, a.node.send_user_data(b.address, b"x", net.now))
        net.run(0.5)
    return net, a, b


def test_members_on_a_jumbo_link_search_up_to_it_and_send_big_packets_whole() -> None:
    net, a, b = jumbo_pair(PHYS_MTU, seconds=5)
    path = a.node.peers[b.address].best_path(net.now)
    assert path is not None and path.mtu == PHYS_MTU
    net.wiretap = []
    net.call(a, a.node.send_user_data(b.address, b"y" * 5000, net.now))
    net.run(0.5)
    to_b = [d for _, dest, d in net.wiretap if dest == b.endpoint and wire.dest_of(d) == b.address]
    assert len([d for d in to_b if len(d) > 5000]) == 1  # one datagram...
    assert not any(wire.is_fragment(d) for d in to_b)  # ...not a head and fragments
    assert b.delivered[-1].payload == b"y" * 5000


def test_set_phys_mtu_lets_existing_paths_search_higher() -> None:
    """An interface's MTU raised at run time (the daemon re-reads them every 30 s)."""
    net, a, b = jumbo_pair(None, seconds=3)
    path = a.node.peers[b.address].best_path(net.now)
    assert path is not None and path.mtu == 1432
    a.node.set_phys_mtu(PHYS_MTU)
    net.call(a, a.node.probe_mtu(b.address, net.now))
    net.run(3)
    assert path.mtu == PHYS_MTU
