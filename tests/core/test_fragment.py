"""Fragmentation: any order, duplicates, loss, and a hard memory bound."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from overlay_core.proto import wire
from overlay_core.proto.fragment import (
    MAX_PENDING_BYTES,
    MAX_PENDING_PACKETS,
    REASSEMBLY_TIMEOUT_S,
    Reassembler,
)

SOURCE, DEST = 0x1122334455, 0x66778899AA


def make_packet(size: int, packet_id: int = 7) -> bytes:
    header = wire.Header(packet_id, DEST, SOURCE, 0, False, wire.Cipher.SESSION, 3).pack()
    return header + random.Random(packet_id).randbytes(size - 20)


def feed(reassembler: Reassembler, piece: bytes, now: float) -> bytes | None:
    if wire.is_fragment(piece):
        return reassembler.add_fragment(wire.parse_fragment(piece), now)
    return reassembler.add_head(SOURCE, int.from_bytes(piece[:8], "big"), piece, now)


def test_small_packets_are_not_fragmented() -> None:
    packet = make_packet(500)
    assert wire.fragment_packet(packet, 1432) == [packet]


@pytest.mark.parametrize("size", [1433, 3000, 9000, 20000])
def test_fragments_in_any_order_reassemble_to_the_original(size: int) -> None:
    packet = make_packet(size)
    pieces = wire.fragment_packet(packet, 1432)
    assert all(len(p) <= 1432 for p in pieces)
    random.Random(size).shuffle(pieces)
    drops: Counter[str] = Counter()
    reassembler = Reassembler(drops)
    results = [feed(reassembler, p, 0.0) for p in pieces]
    whole = [r for r in results if r is not None]
    assert len(whole) == 1
    # The head went out with FRAGMENTED set; everything else is byte-identical.
    assert whole[0][:18] == packet[:18] and whole[0][19:] == packet[19:]
    assert whole[0][18] & wire.FLAG_FRAGMENTED
    assert reassembler.pending_packets == 0 and reassembler.pending_bytes == 0


def test_duplicates_are_counted_and_do_not_complete_twice() -> None:
    pieces = wire.fragment_packet(make_packet(4000), 1432)
    drops: Counter[str] = Counter()
    reassembler = Reassembler(drops)
    assert feed(reassembler, pieces[1], 0.0) is None
    assert feed(reassembler, pieces[1], 0.0) is None
    assert drops["fragment_duplicate"] == 1
    assert feed(reassembler, pieces[0], 0.0) is None
    assert feed(reassembler, pieces[2], 0.0) is not None


def test_a_lost_fragment_times_out_and_is_counted() -> None:
    pieces = wire.fragment_packet(make_packet(4000), 1432)
    drops: Counter[str] = Counter()
    reassembler = Reassembler(drops)
    for piece in pieces[:-1]:
        assert feed(reassembler, piece, 10.0) is None
    reassembler.expire(10.0 + REASSEMBLY_TIMEOUT_S / 2)
    assert reassembler.pending_packets == 1
    reassembler.expire(10.0 + REASSEMBLY_TIMEOUT_S + 0.1)
    assert reassembler.pending_packets == 0 and reassembler.pending_bytes == 0
    assert drops["reassembly_timeout"] == 1


def test_a_flood_of_unfinished_packets_stays_within_the_memory_bound() -> None:
    drops: Counter[str] = Counter()
    reassembler = Reassembler(drops)
    for packet_id in range(MAX_PENDING_PACKETS * 4):
        head = wire.fragment_packet(make_packet(9000, packet_id), 1432)[0]
        feed(reassembler, head, 0.0)
        assert reassembler.pending_packets <= MAX_PENDING_PACKETS
        assert reassembler.pending_bytes <= MAX_PENDING_BYTES
    assert drops["reassembly_overflow"] >= MAX_PENDING_PACKETS * 3


def test_too_many_fragments_is_refused_at_the_sender() -> None:
    with pytest.raises(ValueError):
        wire.fragment_packet(make_packet(30000), 1432)


@pytest.mark.parametrize(
    "bad",
    [
        bytes(8) + bytes(5) + b"\xff" + bytes(5) + bytes([0x00, 0]) + b"x",  # number 0
        bytes(8) + bytes(5) + b"\xff" + bytes(5) + bytes([0x32, 0]) + b"x",  # number >= total
        bytes(8) + bytes(5) + b"\xff" + bytes(5) + bytes([0x12, 0]),  # no data
    ],
)
def test_malformed_fragments_raise(bad: bytes) -> None:
    with pytest.raises(wire.MalformedError):
        wire.parse_fragment(bad)
