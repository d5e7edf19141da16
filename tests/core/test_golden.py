"""Golden packets: the wire format is pinned byte for byte.

The packets in tests/data were produced by nodes with fixed identities, a fixed clock and a
seeded random source. If a change alters them, the protocol changed: bump
PROTOCOL_VERSION, and regenerate with `python tests/core/test_golden.py --write`.

hello.bin, ok_hello.bin and echo.bin are the exchange of nodes that speak only XChaCha20
sessions (`NodeConfig.suites = (Suite.XCHACHA20,)`): byte for byte what nodes from before
cipher suites send, so they pin compatibility with those. The *_aesgcm.bin files are the
same exchange between nodes that offer AES-256-GCM and ChaCha20 (the suites are pinned, not
read from this machine's CPU): the HELLO differs from hello.bin only in its flags byte.
"""

from __future__ import annotations

import sys
from pathlib import Path

from overlay_core.proto import wire
from overlay_core.proto.crypto import Suite, open_, static_key
from overlay_core.proto.effects import Send, udp
from overlay_core.proto.identity import Identity
from overlay_core.proto.node import Node, NodeConfig
from overlay_core.proto.roots import RootEntry
from overlay_core.testing.fakenet import _seeded

DATA = Path(__file__).resolve().parent.parent / "data"
NOW = 1_700_000_000.0
ROOT_AT = udp("198.18.0.1", 9993)
LEAF_AT = udp("198.18.5.7", 41000)


OLD_SUITES = (Suite.XCHACHA20,)
NEW_SUITES = (Suite.AES256GCM, Suite.CHACHA20, Suite.XCHACHA20)


def exchange(suites: tuple[Suite, ...] = OLD_SUITES, suffix: str = "") -> dict[str, bytes]:
    """A leaf's first HELLO to a root, the root's OK, and the leaf's first session packet."""
    root_id, leaf_id = Identity.generate(_seeded(11)), Identity.generate(_seeded(22))
    roots = [RootEntry(root_id.public(), (ROOT_AT,))]
    # punch_sync off: the files pin the bytes of nodes from before FEATURE_PUNCH.
    root_config = NodeConfig(version="0.1.0", is_root=True, suites=suites, punch_sync=False)
    root = Node(root_id, root_config, _seeded(33))
    leaf_config = NodeConfig(version="0.1.0", roots=roots, suites=suites, punch_sync=False)
    leaf = Node(leaf_id, leaf_config, _seeded(44))
    root.start(NOW)
    hello = next(e.data for e in leaf.start(NOW) if isinstance(e, Send))
    ok = next(
        e.data for e in root.receive_datagram(hello, LEAF_AT, NOW + 0.01) if isinstance(e, Send)
    )
    echo = next(
        e.data for e in leaf.receive_datagram(ok, ROOT_AT, NOW + 0.02) if isinstance(e, Send)
    )
    return {f"hello{suffix}.bin": hello, f"ok_hello{suffix}.bin": ok, f"echo{suffix}.bin": echo}


def all_exchanges() -> dict[str, bytes]:
    return exchange() | exchange(NEW_SUITES, "_aesgcm")


def test_packets_match_the_golden_files() -> None:
    for name, packet in all_exchanges().items():
        assert (DATA / name).read_bytes() == packet, f"{name} changed: see module docstring"


def _hello_plaintext(name: str) -> bytes:
    packet = (DATA / name).read_bytes()
    root_id, leaf_id = Identity.generate(_seeded(11)), Identity.generate(_seeded(22))
    head = packet[: wire.HEADER_BYTES]
    ad = wire.associated_data(head) + leaf_id.public_key
    plain = open_(static_key(root_id, leaf_id.public()), head, ad, packet[wire.HEADER_BYTES + 32 :])
    assert plain is not None
    return plain


def test_a_new_hello_differs_from_an_old_one_only_in_its_flags_byte() -> None:
    """Verb, protocol, flags: the suites ride in bits an old node's Hello.parse ignores."""
    old, new = _hello_plaintext("hello.bin"), _hello_plaintext("hello_aesgcm.bin")
    assert len(old) == len(new)
    assert [i for i in range(len(old)) if old[i] != new[i]] == [2]
    assert old[2] == 0 and new[2] == wire.FEATURE_AESGCM | wire.FEATURE_CHACHA
    hello = wire.Hello.parse(wire.Reader(new[1 : -wire.HELLO_PADDING_BYTES]))
    assert not hello.is_root and hello.features == wire.FEATURE_SUITES


def test_golden_headers_decode_to_the_documented_fields() -> None:
    hello = wire.parse_header((DATA / "hello.bin").read_bytes())
    ok = wire.parse_header((DATA / "ok_hello.bin").read_bytes())
    echo = wire.parse_header((DATA / "echo.bin").read_bytes())
    assert hello.cipher is wire.Cipher.HELLO and hello.hops == 0 and not hello.fragmented
    assert ok.cipher is wire.Cipher.STATIC and ok.dest == hello.source and ok.source == hello.dest
    assert echo.cipher is wire.Cipher.SESSION and echo.packet_id == 1
    # The HELLO carries the sender's key in the clear right after the header.
    key = (DATA / "hello.bin").read_bytes()[wire.HEADER_BYTES : wire.HEADER_BYTES + 32]
    assert Identity.from_public_key(key).address == hello.source


def test_a_root_answers_the_golden_hello_and_the_leaf_accepts_the_golden_ok() -> None:
    """A root with this machine's suites answers an old node's HELLO with an OK naming no
    suite (XChaCha20) and an old-format session."""
    root_id = Identity.generate(_seeded(11))
    root = Node(root_id, NodeConfig(version="0.1.0", is_root=True, punch_sync=False), _seeded(33))
    effects = root.receive_datagram((DATA / "hello.bin").read_bytes(), LEAF_AT, NOW + 0.01)
    assert any(isinstance(e, Send) for e in effects) and not root.drops
    (peer,) = root.peers.values()
    assert peer.features == 0 and peer.tx_session is not None
    assert peer.tx_session.suite is Suite.XCHACHA20


if __name__ == "__main__" and "--write" in sys.argv:
    DATA.mkdir(exist_ok=True)
    for name, packet in all_exchanges().items():
        (DATA / name).write_bytes(packet)
        print(f"wrote {DATA / name} ({len(packet)} bytes)")
