"""`Node.set_roots(entries, now)`: a running node takes new roots without a restart, and
`parse_roots` refuses the roots files that can only be mistakes.

The stories run real Nodes on FakeNet: a leaf that started with no roots (or other ones)
is handed a roots list the way `PUT /roots` hands it, and must reach the new roots,
forget the removed ones, and leave alone the ones it already had.
"""

from __future__ import annotations

import pytest

from overlay_core.proto import roots as roots_module
from overlay_core.proto.effects import CloseTcp, Event, OpenTcp, Send, Transport, tcp, udp
from overlay_core.proto.identity import Identity
from overlay_core.proto.roots import RootEntry, parse_roots, roots_text
from overlay_core.testing.fakenet import FakeNet, Host, NatKind

SETTLE_S = 3.0  # HELLO/OK and a keepalive round with every root
TCP_SETTLE_S = 12.0  # the TCP fallback opens after 8 s without a UDP answer


def entry_of(host: Host) -> RootEntry:
    return RootEntry(host.node.identity.public(), (host.endpoint,))


def root_status(host: Host, root: Host, now: float) -> tuple[str, str] | None:
    """(role, link) of `root` in `host`'s snapshot, as GET /peers shows it."""
    for peer in host.node.snapshot(now).peers:
        if peer.address == root.node.identity.address_text:
            return peer.role, peer.link
    return None


def test_a_node_given_roots_at_run_time_reaches_them() -> None:
    """A leaf that started without roots is offline; given a root at run time it sends the
    HELLO at once (not at the next tick), and the root shows up as a root with a live
    link, the node online."""
    net = FakeNet()
    leaf = net.add_host("leaf")  # added first: it starts with no roots
    root = net.add_host("root", root=True)
    net.run(SETTLE_S)
    assert not leaf.node.snapshot(net.now).online
    assert root_status(leaf, root, net.now) is None

    effects = leaf.node.set_roots(list(net.roots), net.now)
    hellos = [e for e in effects if isinstance(e, Send) and e.endpoint == root.endpoint]
    assert hellos, effects
    (event,) = [e for e in effects if isinstance(e, Event)]
    assert event.kind == "roots" and f"added {root.node.identity.address_text}" in event.message
    net.call(leaf, effects)
    net.run(SETTLE_S)

    status = leaf.node.snapshot(net.now)
    assert status.online and (status.roots_reachable, status.roots_total) == (1, 1)
    assert root_status(leaf, root, net.now) == ("ROOT", "DIRECT")


def test_a_removed_root_is_forgotten_and_hears_no_more_from_the_node() -> None:
    """Of two roots, the one left out of the new list is dropped: no peer, no endpoint it
    reported, not counted, and the node sends it nothing more; the kept root keeps its
    session (the same peer object, no new HELLO)."""
    net = FakeNet()
    kept = net.add_host("kept", root=True)
    gone = net.add_host("gone", root=True)
    leaf = net.add_host("leaf")
    net.run(SETTLE_S)
    assert leaf.node.snapshot(net.now).roots_reachable == 2
    kept_peer = leaf.node.peers[kept.address]

    effects = leaf.node.set_roots([entry_of(kept)], net.now)
    assert not [e for e in effects if isinstance(e, Send)]  # nothing to say to anyone
    net.call(leaf, effects)
    net.wiretap = []
    net.run(60.0)  # long past every keepalive and retry interval

    assert gone.address not in leaf.node.peers and gone.address not in leaf.node.observed
    assert leaf.node.peers[kept.address] is kept_peer
    status = leaf.node.snapshot(net.now)
    assert (status.roots_reachable, status.roots_total) == (1, 1)
    assert root_status(leaf, gone, net.now) is None
    sent = [to for source, to, _ in net.wiretap if source == leaf.endpoint]
    assert gone.endpoint not in sent
    assert kept.endpoint in sent  # keepalives go on


def test_the_same_roots_again_change_nothing() -> None:
    """Handing a node the roots it has is free: no effects, no event, sessions kept."""
    net = FakeNet()
    root = net.add_host("root", root=True)
    leaf = net.add_host("leaf")
    net.run(SETTLE_S)
    peer = leaf.node.peers[root.address]
    assert leaf.node.set_roots(list(net.roots), net.now) == []
    assert leaf.node.peers[root.address] is peer and peer.tx_session is not None


def test_a_root_at_new_endpoints_is_contacted_afresh() -> None:
    """A root listed again with other endpoints is a new contact: its old peer state goes
    (its old endpoint may be someone else's now) and HELLOs go to every listed endpoint."""
    net = FakeNet()
    root = net.add_host("root", root=True)
    leaf = net.add_host("leaf")
    net.run(SETTLE_S)
    old_peer = leaf.node.peers[root.address]
    elsewhere = udp("198.18.0.250", 9993)
    moved = RootEntry(root.node.identity.public(), (elsewhere, root.endpoint))

    effects = leaf.node.set_roots([moved], net.now)
    sent_to = {e.endpoint for e in effects if isinstance(e, Send)}
    assert {elsewhere, root.endpoint} <= sent_to
    (event,) = [e for e in effects if isinstance(e, Event)]
    assert f"moved {root.node.identity.address_text}" in event.message
    net.call(leaf, effects)
    net.run(SETTLE_S)
    assert leaf.node.peers[root.address] is not old_peer
    assert root_status(leaf, root, net.now) == ("ROOT", "DIRECT")


def test_a_tunneled_node_opens_tcp_to_new_roots_and_closes_it_to_removed_ones() -> None:
    """Behind a NAT that drops UDP the node reaches its roots over TCP: a root added then
    gets its TCP link at once (and is reached over it); the one removed has its link
    closed."""
    net = FakeNet()
    first = net.add_host("first", root=True)
    leaf = net.add_host("leaf", nat=net.add_nat("nat", NatKind.BLOCK_UDP))
    second = net.add_host("second", root=True)  # after the leaf: not among its roots
    net.run(TCP_SETTLE_S)
    assert leaf.node.snapshot(net.now).tunneled

    effects = leaf.node.set_roots([entry_of(first), entry_of(second)], net.now)
    second_tcp = tcp(second.endpoint.host, second.endpoint.port)
    assert OpenTcp(second_tcp) in effects
    net.call(leaf, effects)
    net.run(SETTLE_S)
    assert root_status(leaf, second, net.now) == ("ROOT", "TCP")

    effects = leaf.node.set_roots([entry_of(second)], net.now)
    assert CloseTcp(tcp(first.endpoint.host, first.endpoint.port)) in effects
    net.call(leaf, effects)
    net.run(SETTLE_S)
    status = leaf.node.snapshot(net.now)
    assert (status.roots_reachable, status.roots_total, status.online) == (1, 1, True)
    paths = leaf.node.peers[second.address].paths
    assert any(e.transport is Transport.TCP for e in paths)


def test_a_tunneled_node_whose_roots_are_all_replaced_tunnels_to_the_new_ones() -> None:
    """Dropping every old root empties the node's TCP links; whether it was tunneled is
    read before that, so the new roots get TCP links at once, not at a later tick."""
    net = FakeNet()
    first = net.add_host("first", root=True)
    leaf = net.add_host("leaf", nat=net.add_nat("nat", NatKind.BLOCK_UDP))
    second = net.add_host("second", root=True)
    net.run(TCP_SETTLE_S)
    assert leaf.node.snapshot(net.now).tunneled

    effects = leaf.node.set_roots([entry_of(second)], net.now)
    assert OpenTcp(tcp(second.endpoint.host, second.endpoint.port)) in effects
    assert CloseTcp(tcp(first.endpoint.host, first.endpoint.port)) in effects
    net.call(leaf, effects)
    net.run(SETTLE_S)
    assert root_status(leaf, second, net.now) == ("ROOT", "TCP")


def test_a_roots_file_listing_the_node_itself_is_fine() -> None:
    """Every node, roots included, can be handed the same file: a root skips its own line."""
    net = FakeNet()
    a = net.add_host("a", root=True)
    b = net.add_host("b", root=True)
    net.run(SETTLE_S)
    net.call(a, a.node.set_roots([entry_of(a), entry_of(b)], net.now))
    net.run(SETTLE_S)
    assert a.address not in a.node.roots and a.address not in a.node.peers
    assert root_status(a, b, net.now) == ("ROOT", "DIRECT")


# --------------------------------------------------------------------------- the file


def test_parse_roots_refuses_files_that_can_only_be_mistakes(
    alice: Identity, bob: Identity, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A root listed twice, one endpoint for two roots, a secret identity, a port in
    non-ASCII digits and too many roots are each refused, naming the line."""
    a, b = alice.to_public_text(), bob.to_public_text()
    for text, words in (
        (f"{a} 198.18.0.1:9993\n\n{a} 198.18.0.2:9993", "line 3: root .* already on line 1"),
        (f"{a} 198.18.0.1:9993\n{b} 198.18.0.1:9993", "line 2: endpoint .* already on line 1"),
        (f"{alice.to_secret_text()} 198.18.0.1:9993", "line 1: that is a secret identity"),
        (f"{a} 198.18.0.1:\u0661\u0664\u0660\u0660", "line 1: .*port must be"),
    ):
        with pytest.raises(ValueError, match=words):
            parse_roots(text)
    monkeypatch.setattr(roots_module, "MAX_ROOTS", 1)
    with pytest.raises(ValueError, match="line 2: more than 1 roots"):
        parse_roots(f"{a} 198.18.0.1:9993\n{b} 198.18.0.2:9993")


def test_roots_text_round_trips(alice: Identity, bob: Identity) -> None:
    """What overlayd writes to HOME/roots.txt reads back as the same entries."""
    entries = [
        RootEntry(alice.public(), (udp("198.18.0.1", 9993), udp("2001:db8::1", 9993))),
        RootEntry(bob.public(), (udp("198.18.0.2", 443),)),
    ]
    text = roots_text(entries, "written by overlayd\nsecond line")
    assert text.startswith("# written by overlayd\n# second line\n")
    assert parse_roots(text) == entries
