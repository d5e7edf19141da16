"""Record framing for the TCP fallback transport: a sans-IO codec.

Over TCP every overlay datagram travels as one record:

    +--------+--------+----------------------------+
    | length (u16 BE) | length bytes of datagram   |
    +--------+--------+----------------------------+

A length of 0 is invalid (no datagram is empty), and so is anything above the decoder's
limit; either means the stream is garbage or hostile, and the only safe reaction is to drop
the connection, because there is no way to find the next record boundary again.
"""

from __future__ import annotations

import struct

MAX_RECORD_BYTES = 0xFFFF
_HEADER = struct.Struct(">H")


class FramingError(ValueError):
    """The stream broke the framing rules; close the connection.

    `records` holds the whole records that arrived before the bad length, in the same
    `feed` call; they are as genuine as any, so the caller should still deliver them.
    """

    def __init__(self, message: str, records: list[bytes] | None = None) -> None:
        super().__init__(message)
        self.records = records or []


def encode_record(data: bytes) -> bytes:
    if not 0 < len(data) <= MAX_RECORD_BYTES:
        raise FramingError(f"record of {len(data)} bytes cannot be framed")
    return _HEADER.pack(len(data)) + data


class RecordDecoder:
    """Feed stream bytes in, get whole records out.

    `feed` raises FramingError on a bad length; after that the decoder is poisoned and keeps
    raising, so a caller that forgets to close cannot resynchronise on garbage.

    `push` and `pop` are the same, one record at a time: `max_record_bytes` is checked as
    each record's header is read, so a caller may raise it between records (the TCP
    transport allows full-size records once a connection has authenticated, which can
    happen in the middle of one read).
    """

    def __init__(self, max_record_bytes: int = MAX_RECORD_BYTES) -> None:
        self.max_record_bytes = max_record_bytes
        self._buffer = bytearray()
        # The message only, raised afresh each time: a stored exception would keep the
        # traceback of its first raise, and with it the frames and the data they held.
        self._error: str | None = None

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        self.push(data)
        records: list[bytes] = []
        try:
            while (record := self.pop()) is not None:
                records.append(record)
        except FramingError as exc:
            raise FramingError(str(exc), records) from None
        return records

    def push(self, data: bytes) -> None:
        """Append stream bytes; take the records out with `pop`."""
        if self._error is not None:
            raise FramingError(self._error)
        self._buffer += data

    def pop(self) -> bytes | None:
        """The next whole record, or None until all of it has arrived."""
        if self._error is not None:
            raise FramingError(self._error)
        buffer = self._buffer
        if len(buffer) < _HEADER.size:
            return None
        (length,) = _HEADER.unpack_from(buffer)
        if length == 0 or length > self.max_record_bytes:
            self._error = f"bad record length {length}"
            buffer.clear()
            raise FramingError(self._error)
        end = _HEADER.size + length
        if end > len(buffer):
            return None
        record = bytes(buffer[_HEADER.size : end])
        del buffer[:end]  # O(1) in CPython: a bytearray drops its head by moving its start
        return record
