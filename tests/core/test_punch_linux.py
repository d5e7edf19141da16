"""Punching through Linux routers that keep a clashing conntrack entry (issue 10), in FakeNet.

The routers are FakeNet's LINUX_MASQUERADE (overlay_core/testing/fakenat.py): conntrack
entries per 5-tuple, port preservation unless the reply tuple clashes, and, without an input
firewall, an unsolicited packet to the router kept as a "local" entry for 30 s (refreshed
by every later one). One ISP router sits between the homes, as on the internet.

The stories: the naive order (full-TTL probes at once, as before issue 10) leaves a local
entry at one router and the pair RELAYed; the ordered punch (punch.py: low-TTL opener,
PUNCH through the root, then probes) goes DIRECT within 2 s of the first packet for every
pairing that can punch, stays DIRECT after 2 minutes, and leaves no local entry behind.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from overlay_core.proto.effects import Effect
from overlay_core.proto.node import NodeConfig
from overlay_core.proto.path import Path
from overlay_core.proto.peer import Peer
from overlay_core.testing.fakenat import Nat
from overlay_core.testing.fakenet import FakeNet, Host, NatKind

LINUX = NatKind.LINUX_MASQUERADE


def link(net: FakeNet, host: Host, other: Host) -> str:
    wanted = f"{other.address:010x}"
    return next(p for p in host.node.snapshot(net.now).peers if p.address == wanted).link


def homes(
    build: Callable[[FakeNet], tuple[Nat, Nat]], config: NodeConfig | None = None
) -> tuple[FakeNet, Host, Host]:
    net = FakeNet(isp_hops=1)
    net.add_host("root0", root=True)
    net.add_host("root1", root=True)
    nat_a, nat_b = build(net)
    a = net.add_host("a", nat=nat_a, config=config)
    b = net.add_host("b", nat=nat_b, config=config)
    net.run(5)  # online, and the hop trace done
    return net, a, b


def plain(net: FakeNet) -> tuple[Nat, Nat]:
    return (
        net.add_nat("ra", LINUX, input_firewall=False),
        net.add_nat("rb", LINUX, input_firewall=False),
    )


def behind_cgnat(net: FakeNet) -> tuple[Nat, Nat]:
    cgnat = net.add_nat("cgnat", LINUX, input_firewall=False)
    return (
        net.add_nat("ra", LINUX, upstream=cgnat, input_firewall=False),
        net.add_nat("rb", LINUX, input_firewall=False),
    )


def one_firewall(net: FakeNet) -> tuple[Nat, Nat]:
    return (
        net.add_nat("ra", LINUX, input_firewall=True),
        net.add_nat("rb", LINUX, input_firewall=False),
    )


def until_direct(net: FakeNet, a: Host, b: Host, limit_s: float) -> float | None:
    """a sends b a packet every 0.1 s from now; seconds until both see DIRECT, or None."""
    start = net.now
    while net.now - start < limit_s:
        net.call(a, a.node.send_user_data(b.address, b"ping", net.now))
        net.run(0.1)
        if link(net, a, b) == "DIRECT" and link(net, b, a) == "DIRECT":
            return net.now - start
    return None


def local_entries(net: FakeNet) -> list[str]:
    return [
        f"{nat.name}: {c}" for nat in net.nats.values() for c in nat.entries(net.now) if c.local
    ]


@pytest.mark.parametrize("build", [plain, behind_cgnat, one_firewall])
def test_the_ordered_punch_goes_direct_within_2_s_and_stays(
    build: Callable[[FakeNet], tuple[Nat, Nat]],
) -> None:
    net, a, b = homes(build)
    took = until_direct(net, a, b, limit_s=2.0)
    assert took is not None, f"still {link(net, a, b)}; local entries {local_entries(net)}"
    assert not local_entries(net), "no punch reached a router before its host had opened"
    net.run(120)
    assert link(net, a, b) == "DIRECT" and link(net, b, a) == "DIRECT"


def test_the_opener_ttl_passes_a_carrier_grade_nat_too() -> None:
    """The trace sees two inside hops behind the CGNAT and sends openers with TTL 3."""
    _net, a, b = homes(behind_cgnat)
    assert a.node.hops.nat_hops[-1] == "100.64.0.1" and a.node.hops.opener_ttl == 3
    assert b.node.hops.opener_ttl == 2


def _naive(
    self: object, peer: Peer, path: Path, now: float, peer_opened: bool = False
) -> list[Effect]:
    """The order before issue 10: full-TTL probes at once, nobody waits for anybody."""
    punching = self  # a Punching; typed loosely to patch the class
    path.last_burst = now
    path.punch_allowance = 7
    return punching._start_probes(peer, path.endpoint, now)  # type: ignore[attr-defined,no-any-return]


def test_the_naive_order_leaves_a_local_entry_and_the_pair_relayed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without the opener and PUNCH, the first probe to arrive at a router with no input
    firewall is kept there as its own traffic, and that router's host is moved to another
    port: the model reproduces issue 10, which is what the ordered punch is measured on."""
    from overlay_core.proto.punch import Punching

    monkeypatch.setattr(Punching, "_round", _naive)
    net, a, b = homes(plain)
    assert until_direct(net, a, b, limit_s=10.0) is None
    assert local_entries(net), "a probe arrived before the peer had opened"
    assert sum(nat.stats["port_changed"] for nat in net.nats.values()) >= 1


def test_symmetric_on_both_sides_stays_relayed_and_says_why() -> None:
    def symmetric(net: FakeNet) -> tuple[Nat, Nat]:
        return net.add_nat("ra", NatKind.SYMMETRIC), net.add_nat("rb", NatKind.SYMMETRIC)

    net, a, b = homes(symmetric)
    assert until_direct(net, a, b, limit_s=10.0) is None
    peer = next(p for p in a.node.snapshot(net.now).peers if p.link == "RELAY")
    assert peer.relay_reason is not None and "symmetric" in peer.relay_reason.summary
