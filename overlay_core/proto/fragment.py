"""Reassembly of fragmented packets, with hard bounds on memory and time.

A packet larger than the path's datagram size leaves as a head (the packet header with
FRAGMENTED set) plus up to 14 fragments (see wire.py). Pieces can arrive in any order,
twice, or never. An entry is keyed by (source, packet id) and completes once the head has
told us nothing (the head doesn't carry the count) and a fragment has told us the total
and all pieces are present. Entries older than REASSEMBLY_TIMEOUT_S are dropped and
counted, and so is the oldest entry when MAX_PENDING_BYTES would be exceeded: a flood of
unfinished packets costs a bounded amount of memory, never the process.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .wire import Fragment

REASSEMBLY_TIMEOUT_S = 2.0
MAX_PENDING_PACKETS = 256
MAX_PENDING_BYTES = 1 << 20


@dataclass(slots=True)
class _Entry:
    created: float
    total: int = 0  # 0 until a fragment tells us
    pieces: dict[int, bytes] = field(default_factory=dict)
    size: int = 0


class Reassembler:
    def __init__(self, drops: Counter[str]) -> None:
        self._pending: dict[tuple[int, int], _Entry] = {}
        self._bytes = 0
        self._drops = drops

    @property
    def pending_packets(self) -> int:
        return len(self._pending)

    @property
    def pending_bytes(self) -> int:
        return self._bytes

    def add_head(self, source: int, packet_id: int, data: bytes, now: float) -> bytes | None:
        """The first piece (still carrying the FRAGMENTED flag). Returns the whole packet
        when this completes it."""
        return self._add(source, packet_id, 0, 0, data, now)

    def add_fragment(self, fragment: Fragment, now: float) -> bytes | None:
        return self._add(
            fragment.source, fragment.packet_id, fragment.number, fragment.total, fragment.data, now
        )

    def _add(
        self, source: int, packet_id: int, number: int, total: int, data: bytes, now: float
    ) -> bytes | None:
        key = (source, packet_id)
        entry = self._pending.get(key)
        if entry is None:
            self._make_room(len(data))
            entry = self._pending[key] = _Entry(now)
        if total:
            if entry.total and entry.total != total:
                self._discard(key, "fragment_mismatch")
                return None
            entry.total = total
        if number in entry.pieces:
            self._drops["fragment_duplicate"] += 1
            return None
        entry.pieces[number] = data
        entry.size += len(data)
        self._bytes += len(data)
        if self._bytes > MAX_PENDING_BYTES:
            self._make_room(0)
            if key not in self._pending:
                return None
        if entry.total and len(entry.pieces) == entry.total:
            del self._pending[key]
            self._bytes -= entry.size
            return b"".join(entry.pieces[i] for i in range(entry.total))
        return None

    def _make_room(self, incoming: int) -> None:
        while self._pending and (
            len(self._pending) >= MAX_PENDING_PACKETS or self._bytes + incoming > MAX_PENDING_BYTES
        ):
            oldest = next(iter(self._pending))  # dicts keep insertion order: oldest first
            self._discard(oldest, "reassembly_overflow")

    def _discard(self, key: tuple[int, int], reason: str) -> None:
        entry = self._pending.pop(key)
        self._bytes -= entry.size
        self._drops[reason] += 1

    def expire(self, now: float) -> None:
        for key in [k for k, e in self._pending.items() if now - e.created > REASSEMBLY_TIMEOUT_S]:
            self._discard(key, "reassembly_timeout")
