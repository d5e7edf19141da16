"""Golden packets: the wire format is pinned byte for byte.

The packets in tests/data were produced by nodes with fixed identities, a fixed clock and a
seeded random source. If a change alters them, the protocol changed: bump
PROTOCOL_VERSION, and regenerate with `python tests/core/test_golden.py --write`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from overlay_core.proto import wire
from overlay_core.proto.effects import Send, udp
from overlay_core.proto.identity import Identity
from overlay_core.proto.node import Node, NodeConfig
from overlay_core.proto.roots import RootEntry
from overlay_core.testing.fakenet import _seeded

DATA = Path(__file__).resolve().parent.parent / "data"
NOW = 1_700_000_000.0
ROOT_AT = udp("198.18.0.1", 9993)
LEAF_AT = udp("198.18.5.7", 41000)


def exchange() -> dict[str, bytes]:
    """A leaf's first HELLO to a root, the root's OK, and the leaf's first session packet."""
    root_id, leaf_id = Identity.generate(_seeded(11)), Identity.generate(_seeded(22))
    roots = [RootEntry(root_id.public(), (ROOT_AT,))]
    root = Node(root_id, NodeConfig(version="0.1.0", is_root=True), _seeded(33))
    leaf = Node(leaf_id, NodeConfig(version="0.1.0", roots=roots), _seeded(44))
    root.start(NOW)
    hello = next(e.data for e in leaf.start(NOW) if isinstance(e, Send))
    ok = next(
        e.data for e in root.receive_datagram(hello, LEAF_AT, NOW + 0.01) if isinstance(e, Send)
    )
    echo = next(
        e.data for e in leaf.receive_datagram(ok, ROOT_AT, NOW + 0.02) if isinstance(e, Send)
    )
    return {"hello.bin": hello, "ok_hello.bin": ok, "echo.bin": echo}


def test_packets_match_the_golden_files() -> None:
    for name, packet in exchange().items():
        assert (DATA / name).read_bytes() == packet, f"{name} changed: see module docstring"


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
    root_id = Identity.generate(_seeded(11))
    root = Node(root_id, NodeConfig(version="0.1.0", is_root=True), _seeded(33))
    effects = root.receive_datagram((DATA / "hello.bin").read_bytes(), LEAF_AT, NOW + 0.01)
    assert any(isinstance(e, Send) for e in effects) and not root.drops


if __name__ == "__main__" and "--write" in sys.argv:
    DATA.mkdir(exist_ok=True)
    for name, packet in exchange().items():
        (DATA / name).write_bytes(packet)
        print(f"wrote {DATA / name} ({len(packet)} bytes)")
