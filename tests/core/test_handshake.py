"""Sessions: two identities agree on keys; tampered, truncated, replayed and wrong-key packets
are rejected and counted by reason, never delivered."""

from __future__ import annotations

import random

import pytest

from overlay_core.proto import wire
from overlay_core.proto.crypto import REPLAY_WINDOW, ReplayWindow
from overlay_core.proto.effects import Endpoint
from overlay_core.proto.node import NodeConfig
from overlay_core.testing.fakenet import FakeNet, Host


@pytest.fixture
def net() -> FakeNet:
    net = FakeNet()
    net.add_host("root", root=True)
    net.add_host("a")
    net.add_host("b")
    net.run(2)
    return net


def send_data(
    net: FakeNet, src: Host, dst: Host, payload: bytes
) -> list[tuple[Endpoint, Endpoint, bytes]]:
    net.wiretap = []
    net.call(src, src.node.send_user_data(dst.address, payload, net.now))
    net.run(1)
    captured, net.wiretap = net.wiretap, None
    return [(s, d, data) for s, d, data in captured if wire.dest_of(data) == dst.address]


def test_two_nodes_handshake_and_exchange_data(net: FakeNet) -> None:
    """First contact goes WHOIS -> HELLO -> OK; data then arrives exactly once, intact."""
    a, b = net.hosts["a"], net.hosts["b"]
    send_data(net, a, b, b"hello bob")
    assert [d.payload for d in b.delivered] == [b"hello bob"]
    assert b.delivered[0].source == a.address
    peer_ab = a.node.peers[b.address]
    peer_ba = b.node.peers[a.address]
    assert peer_ab.tx_session is not None and peer_ba.tx_session is not None
    assert peer_ab.tx_session.tx_key == peer_ba.tx_session.rx_key
    assert peer_ab.tx_session.rx_key == peer_ba.tx_session.tx_key


def test_replayed_tampered_truncated_and_wrong_key_packets_are_dropped(net: FakeNet) -> None:
    a, b = net.hosts["a"], net.hosts["b"]
    send_data(net, a, b, b"warm up")
    captured = send_data(net, a, b, b"secret payload")
    source, _, packet = next(
        c for c in captured if wire.parse_header(c[2]).cipher is wire.Cipher.SESSION
    )
    delivered = len(b.delivered)

    def inject(data: bytes) -> None:
        net.call(b, b.node.receive_datagram(data, source, net.now))

    inject(packet)  # an exact replay
    assert b.node.drops["replay"] == 1

    flipped = bytearray(packet)
    flipped[-20] ^= 0x01  # one bit of ciphertext
    flipped[0:8] = (10**9).to_bytes(8, "big")  # a fresh counter, so only the MAC can object
    inject(bytes(flipped))
    header_flip = bytearray(packet)
    header_flip[0:8] = (10**9 + 1).to_bytes(8, "big")  # header is authenticated too
    inject(bytes(header_flip))
    assert b.node.drops["bad_mac"] == 2

    inject(packet[:25])  # shorter than header + tag
    inject(packet[:10])
    assert b.node.drops["malformed"] == 2

    wrong_key = bytearray(packet)
    wrong_key[19] ^= 0xFF  # a key id nobody agreed on
    inject(bytes(wrong_key))
    assert b.node.drops["unknown_session"] == 1
    assert len(b.delivered) == delivered


def test_a_relay_may_change_the_hop_count_without_breaking_authentication(net: FakeNet) -> None:
    a, b = net.hosts["a"], net.hosts["b"]
    send_data(net, a, b, b"warm up")
    source, _, packet = send_data(net, a, b, b"x")[-1]
    delivered = len(b.delivered)
    relayed = wire.with_hops(packet, 2)
    fresh = (10**9).to_bytes(8, "big") + relayed[8:]  # new counter: MAC must fail...
    net.call(b, b.node.receive_datagram(fresh, source, net.now))
    assert b.node.drops["bad_mac"] == 1
    # ...but the original with only hops changed is not a MAC failure (it's a replay here).
    net.call(b, b.node.receive_datagram(relayed, source, net.now))
    assert b.node.drops["replay"] == 1
    assert len(b.delivered) == delivered


def test_a_stranger_cannot_forge_a_hello_for_someone_elses_address(net: FakeNet) -> None:
    """HELLO carries the sender's key; the address must match it and the MAC must verify."""
    a, b, root = net.hosts["a"], net.hosts["b"], net.hosts["root"]
    net.wiretap = []
    mallory = net.add_host("mallory")
    net.run(1)
    hello = next(d for _, _, d in net.wiretap if wire.parse_header(d).cipher is wire.Cipher.HELLO)
    net.wiretap = None
    forged = bytearray(hello)
    forged[13:18] = a.address.to_bytes(5, "big")  # claim to be a
    net.call(root, root.node.receive_datagram(bytes(forged), mallory.endpoint, net.now))
    assert root.node.drops["bad_identity"] == 1
    assert b.node.drops["bad_identity"] == 0


def test_sessions_rekey_after_a_volume_of_packets() -> None:
    """A new session (fresh ephemeral keys) replaces the old one; traffic never stops."""
    net = FakeNet()
    net.add_host("root", root=True)
    a = net.add_host("a", config=NodeConfig(rekey_after_packets=20))
    b = net.add_host("b")
    net.run(2)
    first_key = None
    for i in range(60):
        net.call(a, a.node.send_user_data(b.address, f"m{i}".encode(), net.now))
        net.run(0.05)
        session = a.node.peers[b.address].tx_session
        if first_key is None and session is not None:
            first_key = session.tx_key
    net.run(1)
    assert [d.payload for d in b.delivered] == [f"m{i}".encode() for i in range(60)]
    peer = a.node.peers[b.address]
    assert peer.rekeys >= 2
    assert peer.tx_session is not None and peer.tx_session.tx_key != first_key


def test_sessions_rekey_on_time_and_old_ones_expire() -> None:
    net = FakeNet()
    net.add_host("root", root=True)
    a, b = net.add_host("a"), net.add_host("b")
    net.run(2)
    net.call(a, a.node.send_user_data(b.address, b"first", net.now))
    net.run(1)
    first = a.node.peers[b.address].tx_session
    net.run(200)  # keepalives flow all along; REKEY_AFTER_S is 120, REJECT_AFTER_S 180
    net.call(a, a.node.send_user_data(b.address, b"later", net.now))
    net.run(1)
    assert [d.payload for d in b.delivered] == [b"first", b"later"]
    assert first is not None
    assert all(s is not first for s in a.node.peers[b.address].sessions.values())
    assert a.node.peers[b.address].rekeys >= 1


def test_replay_window_accepts_each_counter_once_and_refuses_old_ones() -> None:
    window = ReplayWindow()
    for counter in (5, 3, 4, 1, 2):
        assert window.check(counter)
        window.accept(counter)
        assert not window.check(counter)
    window.accept(5 + REPLAY_WINDOW + 10)
    assert not window.check(6)  # fell out of the window
    assert window.check(5 + REPLAY_WINDOW + 9)


@pytest.mark.parametrize("seed", range(8))
def test_accept_run_is_accept_for_each_id_of_the_run(seed: int) -> None:
    rng = random.Random(seed)
    one, runs = ReplayWindow(), ReplayWindow()
    for _ in range(300):
        base = max(one.highest, -1)
        first = base + 1 + rng.choice([0, 0, 1, 5, REPLAY_WINDOW - 3, 3 * REPLAY_WINDOW])
        last = first + rng.choice([0, 1, 40, REPLAY_WINDOW - 1, REPLAY_WINDOW + 7])
        for counter in range(first, last + 1):
            one.accept(counter)
        runs.accept_run(first, last)
        assert (runs.highest, runs.bitmap) == (one.highest, one.bitmap)
        late = rng.randrange(max(0, one.highest - REPLAY_WINDOW - 2), one.highest + 1)
        assert runs.check(late) == one.check(late)


def test_accept_run_refuses_what_is_no_run_above_the_window() -> None:
    window = ReplayWindow()
    window.accept(10)
    for first, last in ((10, 12), (5, 20), (14, 13)):
        with pytest.raises(ValueError):
            window.accept_run(first, last)
    assert (window.highest, window.bitmap) == (10, 1)
