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
    """

    def __init__(self, max_record_bytes: int = MAX_RECORD_BYTES) -> None:
        self.max_record_bytes = max_record_bytes
        self._buffer = bytearray()
        self._error: FramingError | None = None

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        if self._error is not None:
            raise self._error
        self._buffer += data
        records: list[bytes] = []
        offset = 0
        buffer = self._buffer
        while len(buffer) - offset >= _HEADER.size:
            (length,) = _HEADER.unpack_from(buffer, offset)
            if length == 0 or length > self.max_record_bytes:
                self._error = FramingError(f"bad record length {length}")
                self._buffer.clear()
                raise FramingError(str(self._error), records)
            end = offset + _HEADER.size + length
            if end > len(buffer):
                break
            records.append(bytes(buffer[offset + _HEADER.size : end]))
            offset = end
        del buffer[:offset]
        return records
