"""Session cipher suites: round trips, the key schedule, the CPU probe, the negotiation in
HELLO / OK(HELLO) between new and old nodes, and unique nonces under threads and batches."""

from __future__ import annotations

import copy
import sys
import threading
from pathlib import Path

import pytest

from overlay_core.proto import crypto, wire
from overlay_core.proto.crypto import (
    Session,
    Suite,
    derive_session,
    nonce_for,
    open_,
    preferred_suites,
    seal,
    static_key,
)
from overlay_core.proto.effects import Send, udp
from overlay_core.proto.identity import Identity
from overlay_core.proto.node import Node, NodeConfig
from overlay_core.proto.roots import RootEntry
from overlay_core.proto.wire import Cipher, Verb
from overlay_core.testing.fakenet import FakeNet, _seeded

ALL = (Suite.XCHACHA20, Suite.AES256GCM, Suite.CHACHA20)


def short_nonce(header: bytes) -> bytes:
    """The 12-byte suites' nonce as crypto.py documents it: packet id, cipher bits, key id,
    two zero bytes."""
    return header[:8] + bytes((header[18] & 0x30, header[19], 0, 0))


NEW = (Suite.AES256GCM, Suite.CHACHA20, Suite.XCHACHA20)  # an AES-NI machine
NO_AES = (Suite.CHACHA20, Suite.XCHACHA20)  # a machine without AES instructions
OLD = (Suite.XCHACHA20,)  # a node from before suites
PLAIN = bytes([Verb.USER_DATA]) + bytes(range(256)) * 5


def pair(suite: Suite, now: float = 100.0) -> tuple[Session, Session]:
    """Both ends of one session: (initiator, responder)."""
    args = (b"s" * 32, b"d" * 32, b"i" * 32, b"r" * 32)
    return (
        derive_session(*args, initiator=True, now=now, suite=suite),
        derive_session(*args, initiator=False, now=now, suite=suite),
    )


def head_for(session: Session, packet_id: int, hops: int = 0) -> bytes:
    header = wire.Header(packet_id, 0x0102030405, 0x0A0B0C0D0E, hops, False, Cipher.SESSION, 0)
    return header.pack()[:19] + bytes([session.key_id])


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("suite", ALL)
def test_each_suite_round_trips_and_rejects_tampering(suite: Suite) -> None:
    initiator, responder = pair(suite)
    assert initiator.suite is responder.suite is suite
    assert (initiator.tx_aead is None) is (suite is Suite.XCHACHA20)
    for sender, receiver in ((initiator, responder), (responder, initiator)):
        head = head_for(sender, sender.next_packet_id())
        ad = wire.associated_data(head)
        sealed = sender.seal(head, ad, PLAIN)
        assert len(sealed) == len(PLAIN) + wire.TAG_BYTES
        assert receiver.open(head, ad, sealed) == PLAIN
        # A root relays it with another hop count: nonce and AD ignore the hops.
        relayed = wire.with_hops(head + sealed, 2)
        relayed_head = relayed[: wire.HEADER_BYTES]
        opened = receiver.open(relayed_head, wire.associated_data(relayed_head), sealed)
        assert opened == PLAIN
        flipped = bytearray(sealed)
        flipped[5] ^= 1
        assert receiver.open(head, ad, bytes(flipped)) is None
        other_id = head_for(sender, 10**9)  # the nonce (packet id) is bound too
        assert receiver.open(other_id, wire.associated_data(other_id), sealed) is None
        assert receiver.open(head, ad[:-1] + b"\xff", sealed) is None
        for short in (b"", sealed[: wire.TAG_BYTES - 1]):
            assert receiver.open(head, ad, short) is None
        assert sender.open(head, ad, sealed) is None  # the other direction's key


@pytest.mark.parametrize("suite", [Suite.AES256GCM, Suite.CHACHA20])
def test_session_nonce_is_the_packet_id_cipher_bits_and_key_id(suite: Suite) -> None:
    session, _ = pair(suite)
    head = head_for(session, 0x1122334455667788, hops=3)
    nonce = short_nonce(head)
    assert nonce == bytes.fromhex("1122334455667788") + bytes([0x20, session.key_id, 0, 0])
    assert len(nonce) == 12
    aead = crypto._aead(suite, session.tx_key)
    assert aead is not None
    assert session.seal(head, b"ad", PLAIN) == aead.encrypt(nonce, PLAIN, b"ad")


def test_xchacha20_sessions_seal_exactly_as_before() -> None:
    """The XCHACHA20 suite is today's format: what old peers open."""
    session, peer = pair(Suite.XCHACHA20)
    head = head_for(session, session.next_packet_id())
    ad = wire.associated_data(head)
    assert session.seal(head, ad, PLAIN) == seal(session.tx_key, head, ad, PLAIN)
    assert open_(peer.rx_key, head, ad, session.seal(head, ad, PLAIN)) == PLAIN
    assert len(nonce_for(head)) == 24


def test_the_suite_is_mixed_into_the_key_schedule() -> None:
    keys = {suite: pair(suite)[0] for suite in ALL}
    tx = [s.tx_key for s in keys.values()] + [s.rx_key for s in keys.values()]
    assert len(set(tx)) == 6
    # XCHACHA20 keeps the derivation of nodes from before suites, byte for byte.
    material = crypto._kdf(b"s" * 32, b"d" * 32, b"i" * 32, b"r" * 32, person=b"ztui-session-v1\0")
    assert keys[Suite.XCHACHA20].tx_key == material[:32]
    assert keys[Suite.XCHACHA20].rx_key == material[32:]
    # Opening under a session of another suite fails (other keys, other AEAD).
    aes, _ = pair(Suite.AES256GCM)
    _, chacha = pair(Suite.CHACHA20)
    head = head_for(aes, 1)
    assert chacha.open(head, b"", aes.seal(head, b"", PLAIN)) is None


def test_a_copied_session_rebuilds_its_aead_and_continues_the_ids() -> None:
    session, peer = pair(Suite.AES256GCM)
    session.take_ids(5)
    twin = copy.deepcopy(session)
    assert twin.tx_aead is not None and twin.tx_aead is not session.tx_aead
    assert twin.next_packet_id() == 6 and session.next_packet_id() == 6
    head = head_for(twin, 7)
    assert peer.open(head, b"", twin.seal(head, b"", PLAIN)) == PLAIN


# --------------------------------------------------------------------------- the CPU probe


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("processor\t: 0\nflags\t\t: fpu sse2 aes avx2\n", NEW),
        ("processor\t: 0\nflags\t\t: fpu sse2 avx2\n", NO_AES),
        ("processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1\n", NEW),
        ("processor\t: 0\nFeatures\t: half thumb fastmult vfp edsp neon\n", NO_AES),
        ("flags\t\t: aesni-like\n", NO_AES),  # a word, not a prefix
        ("processor\t: 0\ncpu\t\t: POWER9\n", (Suite.CHACHA20, Suite.AES256GCM, Suite.XCHACHA20)),
        ("", (Suite.CHACHA20, Suite.AES256GCM, Suite.XCHACHA20)),
    ],
)
def test_preferred_suites_follow_the_cpu(tmp_path: Path, text: str, expected: tuple) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(text)
    assert preferred_suites(str(cpuinfo)) == expected


def test_preferred_suites_never_fail(tmp_path: Path) -> None:
    unknown = (Suite.CHACHA20, Suite.AES256GCM, Suite.XCHACHA20)
    assert preferred_suites(str(tmp_path / "missing")) == unknown
    assert preferred_suites(str(tmp_path)) == unknown  # a directory
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\xff\xfe\x00junk\nflags\t: \xc3 aes\n")  # not UTF-8
    assert preferred_suites(str(garbage)) == NEW


def _cpu_has_aes() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as lines:
            return bool(crypto.cpu_has_aes(lines))
    except OSError:
        return False


# --------------------------------------------------------------------------- HELLO features


def test_hello_features_share_the_flags_byte_with_is_root() -> None:
    hello = wire.Hello(2, "0.1.0", True, 5, bytes(32), None, wire.FEATURE_SUITES | 0x01)
    packed = hello.pack()
    assert packed[1] == 0x01 | wire.FEATURE_AESGCM | wire.FEATURE_CHACHA  # bit 0 stays is_root
    parsed = wire.Hello.parse(wire.Reader(packed))
    assert parsed.is_root and parsed.features == wire.FEATURE_SUITES
    # What a node from before features did with the byte: `bool(flags & 1)`, nothing else.
    plain = wire.Hello.parse(wire.Reader(wire.Hello(2, "v", False, 5, bytes(32), None).pack()))
    assert not plain.is_root and plain.features == 0
    unknown = bytearray(packed)
    unknown[1] = 0xF0  # bits nobody knows yet: kept, and no suite is implied by them
    parsed = wire.Hello.parse(wire.Reader(bytes(unknown)))
    assert not parsed.is_root and parsed.features == 0xF0
    assert crypto.choose_suite(NEW, parsed.features) is Suite.XCHACHA20


def test_suite_choice_and_the_ok_check() -> None:
    both = wire.FEATURE_AESGCM | wire.FEATURE_CHACHA
    assert crypto.choose_suite(NEW, both) is Suite.AES256GCM
    assert crypto.choose_suite(NO_AES, both) is Suite.CHACHA20
    assert crypto.choose_suite(NEW, wire.FEATURE_CHACHA) is Suite.CHACHA20
    assert crypto.choose_suite(OLD, both) is Suite.XCHACHA20
    assert crypto.choose_suite((Suite.AES256GCM,), wire.FEATURE_CHACHA) is Suite.XCHACHA20
    assert crypto.answer_suite(NEW, both, partial_csum=True) == (
        Suite.AES256GCM,
        wire.FEATURE_AESGCM | wire.FEATURE_PUNCH | wire.FEATURE_PARTIAL_CSUM,
    )
    assert crypto.suite_in_ok(0, both) is Suite.XCHACHA20
    assert crypto.suite_in_ok(wire.FEATURE_PARTIAL_CSUM, 0) is Suite.XCHACHA20
    assert crypto.suite_in_ok(wire.FEATURE_AESGCM, both) is Suite.AES256GCM
    assert crypto.suite_in_ok(wire.FEATURE_AESGCM, wire.FEATURE_CHACHA) is None  # not offered
    assert crypto.suite_in_ok(both, both) is None  # two at once


# --------------------------------------------------------------------------- negotiation


def negotiated(initiator: tuple[Suite, ...], responder: tuple[Suite, ...]) -> FakeNet:
    """A root and leaves a (initiator) and b (responder); a sends b data, b answers."""
    net = FakeNet()
    net.add_host("root", root=True)
    net.add_host("a", config=NodeConfig(suites=initiator))
    net.add_host("b", config=NodeConfig(suites=responder))
    net.run(2)
    a, b = net.hosts["a"], net.hosts["b"]
    net.call(a, a.node.send_user_data(b.address, b"to b", net.now))
    net.run(1)
    net.call(b, b.node.send_user_data(a.address, b"to a", net.now))
    net.run(1)
    assert [d.payload for d in b.delivered] == [b"to b"]
    assert [d.payload for d in a.delivered] == [b"to a"]
    return net


@pytest.mark.parametrize(
    ("initiator", "responder", "suite"),
    [
        (NEW, NEW, Suite.AES256GCM),
        (OLD, NEW, Suite.XCHACHA20),  # initiator old
        (NEW, OLD, Suite.XCHACHA20),  # responder old
        (OLD, OLD, Suite.XCHACHA20),
        (NO_AES, NEW, Suite.CHACHA20),  # AES not offered
        (NEW, NO_AES, Suite.CHACHA20),  # the responder's order decides
        (NEW, (Suite.CHACHA20, Suite.AES256GCM, Suite.XCHACHA20), Suite.CHACHA20),
    ],
)
def test_negotiation_matrix(
    initiator: tuple[Suite, ...], responder: tuple[Suite, ...], suite: Suite
) -> None:
    net = negotiated(initiator, responder)
    a, b = net.hosts["a"], net.hosts["b"]
    ab, ba = a.node.peers[b.address], b.node.peers[a.address]
    assert ab.tx_session is not None and ba.tx_session is not None
    assert ab.tx_session.suite is ba.tx_session.suite is suite
    assert ab.tx_session.tx_key == ba.tx_session.rx_key
    # b stored what a's HELLO offered; a stored the one suite b's OK named.
    suites = wire.FEATURE_SUITES
    assert ba.features & suites == crypto.suite_bits(initiator)
    assert ab.features & suites == crypto.suite_bits([suite])
    assert ba.features & ab.features & wire.FEATURE_PUNCH  # every version since offers it
    assert not a.node.drops["bad_suite"] and not b.node.drops["bad_mac"]
    # Leaves and the root (both NodeConfig() defaults or the pinned ones) agree too.
    root = net.hosts["root"]
    for leaf in (a, b):
        mine = leaf.node.peers[root.address].tx_session
        theirs = root.node.peers[leaf.address].tx_session
        assert mine is not None and theirs is not None and mine.suite is theirs.suite


@pytest.mark.skipif(not _cpu_has_aes(), reason="this CPU has no AES instructions")
def test_default_nodes_on_this_cpu_pick_aes_gcm() -> None:
    assert NodeConfig().suites[0] is Suite.AES256GCM
    net = FakeNet()
    net.add_host("root", root=True)
    leaf = net.add_host("a")
    net.run(2)
    session = leaf.node.peers[net.hosts["root"].address].tx_session
    assert session is not None and session.suite is Suite.AES256GCM


def test_partial_csum_is_carried_in_hello_and_ok() -> None:
    net = FakeNet()
    net.add_host("root", root=True, config=NodeConfig(partial_csum=True))
    leaf = net.add_host("a", config=NodeConfig(partial_csum=True, suites=NEW))
    plain = net.add_host("b", config=NodeConfig(suites=OLD))
    net.run(2)
    root = net.hosts["root"]
    assert root.node.peers[leaf.address].features & wire.FEATURE_PARTIAL_CSUM  # from HELLO
    assert leaf.node.peers[root.address].features & wire.FEATURE_PARTIAL_CSUM  # from OK
    assert not root.node.peers[plain.address].features & wire.FEATURE_PARTIAL_CSUM
    # XChaCha20: no suite bit in the OK, only the other features.
    assert plain.node.peers[root.address].features & wire.FEATURE_SUITES == 0


# --------------------------------------------------------------------------- a forged OK

ROOT_AT, LEAF_AT = udp("198.18.0.1", 9993), udp("198.18.5.7", 41000)


def _reseal_ok(ok: bytes, root_id: Identity, leaf_id: Identity, flags: int) -> bytes:
    """The OK(HELLO) with another flags byte, sealed again under the static key: what a
    responder holding that key (nobody else can) could send."""
    key = static_key(root_id, leaf_id.public())
    head = ok[: wire.HEADER_BYTES]
    ad = wire.associated_data(head)
    plain = open_(key, head, ad, ok[wire.HEADER_BYTES :])
    assert plain is not None and plain[:2] == bytes([Verb.OK, Verb.HELLO])
    flags_at = 1 + 1 + 8 + 1  # verb, in-re verb, in-re packet id, protocol
    forged = plain[:flags_at] + bytes([flags]) + plain[flags_at + 1 :]
    return head + seal(key, head, ad, forged)


@pytest.mark.parametrize(
    "flags",
    [
        wire.FEATURE_CHACHA,  # a suite the leaf did not offer
        wire.FEATURE_AESGCM | wire.FEATURE_CHACHA,  # two suites
        0x01 | wire.FEATURE_CHACHA | wire.FEATURE_PARTIAL_CSUM,
    ],
)
def test_an_ok_naming_a_suite_not_offered_is_dropped_and_counted(flags: int) -> None:
    root_id, leaf_id = Identity.generate(_seeded(11)), Identity.generate(_seeded(22))
    root = Node(root_id, NodeConfig(is_root=True, suites=NEW), _seeded(33))
    roots = [RootEntry(root_id.public(), (ROOT_AT,))]
    leaf_suites = (Suite.AES256GCM, Suite.XCHACHA20)
    leaf = Node(leaf_id, NodeConfig(roots=roots, suites=leaf_suites), _seeded(44))
    now = 1_700_000_000.0
    root.start(now)
    hello = next(e.data for e in leaf.start(now) if isinstance(e, Send))
    ok = next(e.data for e in root.receive_datagram(hello, LEAF_AT, now) if isinstance(e, Send))
    peer = leaf.peers[root_id.address]

    assert leaf.receive_datagram(_reseal_ok(ok, root_id, leaf_id, flags), ROOT_AT, now) == []
    assert leaf.drops["bad_suite"] == 1
    assert peer.tx_session is None and peer.handshake is not None and peer.features == 0

    assert leaf.receive_datagram(ok, ROOT_AT, now)  # the real OK still completes it
    assert peer.tx_session is not None and peer.tx_session.suite is Suite.AES256GCM
    assert peer.features & wire.FEATURE_SUITES == wire.FEATURE_AESGCM
    assert leaf.drops == {"bad_suite": 1}


# --------------------------------------------------------------------------- nonces


@pytest.mark.parametrize("batch", [1, 7])
def test_take_ids_from_four_threads_never_repeats(batch: int) -> None:
    session, _ = pair(Suite.AES256GCM)
    per_thread, threads = 10_000, 4
    taken: list[list[int]] = [[] for _ in range(threads)]
    start = threading.Barrier(threads)

    def worker(out: list[int]) -> None:
        start.wait()
        while len(out) < per_thread:
            first = session.take_ids(batch)
            out.extend(range(first, first + batch))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as CPython allows
    try:
        workers = [threading.Thread(target=worker, args=(out,)) for out in taken]
        for t in workers:
            t.start()
        for t in workers:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    ids = [i for out in taken for i in out]
    assert len(ids) == len(set(ids)) >= threads * per_thread
    assert min(ids) == 1 and max(ids) == len(ids)  # no gaps either: a replay window's view
    assert session.next_packet_id() == len(ids) + 1


def test_take_ids_is_consecutive_and_refuses_nothing() -> None:
    session, _ = pair(Suite.CHACHA20)
    assert session.take_ids(3) == 1
    assert session.next_packet_id() == 4
    assert session.take_ids(64) == 5 and session.tx_counter == 68
    with pytest.raises(ValueError):
        session.take_ids(0)


@pytest.mark.parametrize("suite", ALL)
def test_the_same_plaintext_at_consecutive_ids_seals_differently(suite: Suite) -> None:
    session, peer = pair(suite)
    first = session.take_ids(100)
    heads = [head_for(session, first + i) for i in range(100)]
    nonce = nonce_for if suite is Suite.XCHACHA20 else short_nonce
    assert len({nonce(h) for h in heads}) == 100
    sealed = [session.seal(h, wire.associated_data(h), PLAIN) for h in heads]
    assert len(set(sealed)) == 100
    assert all(
        peer.open(h, wire.associated_data(h), s) == PLAIN
        for h, s in zip(heads, sealed, strict=True)
    )
