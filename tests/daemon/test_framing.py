"""The TCP fallback's record framing, as a pure codec."""

from __future__ import annotations

import pytest

from overlay_core.io.framing import FramingError, RecordDecoder, encode_record


def test_records_survive_arbitrary_stream_splits() -> None:
    """Records come out whole and in order however TCP happens to chop the stream."""
    records = [b"a", b"hello" * 100, bytes(range(256)) * 3]
    stream = b"".join(encode_record(r) for r in records)
    for chunk in (1, 2, 3, 7, 1000):
        decoder = RecordDecoder()
        out: list[bytes] = []
        for i in range(0, len(stream), chunk):
            out += decoder.feed(stream[i : i + chunk])
        assert out == records
        assert decoder.buffered == 0


def test_zero_length_record_poisons_the_decoder() -> None:
    """A zero length is garbage: it raises, and keeps raising, so the caller must close."""
    decoder = RecordDecoder()
    with pytest.raises(FramingError):
        decoder.feed(b"\x00\x00rest")
    with pytest.raises(FramingError):
        decoder.feed(encode_record(b"fine"))


def test_oversized_record_is_rejected_before_buffering_it() -> None:
    """A length above the limit fails on the header alone, without waiting for the body."""
    decoder = RecordDecoder(max_record_bytes=1500)
    with pytest.raises(FramingError):
        decoder.feed(b"\x05\xdd")  # 1501


def test_cannot_frame_empty_or_huge_datagrams() -> None:
    """The sender refuses what the receiver would reject."""
    with pytest.raises(FramingError):
        encode_record(b"")
    with pytest.raises(FramingError):
        encode_record(b"x" * 65536)
    assert encode_record(b"x" * 65535)[:2] == b"\xff\xff"


def test_records_before_the_garbage_are_still_delivered() -> None:
    """Whole records that preceded a bad length in the same read are genuine: keep them."""
    decoder = RecordDecoder()
    with pytest.raises(FramingError) as caught:
        decoder.feed(encode_record(b"one") + encode_record(b"two") + b"\x00\x00")
    assert caught.value.records == [b"one", b"two"]


def test_limit_raised_between_records_applies_to_the_rest_of_the_same_read() -> None:
    """push/pop check the limit as each header is read: a caller that raises it after one
    record (a TCP link that just authenticated) gets the big record right behind it in the
    same read, where `feed` would already have refused it."""
    decoder = RecordDecoder(max_record_bytes=100)
    decoder.push(encode_record(b"hello") + encode_record(b"x" * 5000))
    assert decoder.pop() == b"hello"
    decoder.max_record_bytes = 65535
    assert decoder.pop() == b"x" * 5000
    assert decoder.pop() is None and decoder.buffered == 0


def test_pop_refuses_a_header_above_the_limit_at_once() -> None:
    """A header announcing more than the limit fails as soon as its 2 bytes are in, so a
    partial record never holds more than the limit of memory."""
    decoder = RecordDecoder(max_record_bytes=2048)
    decoder.push(b"\x00")
    assert decoder.pop() is None
    decoder.push(b"\xea")  # 234: fine
    assert decoder.pop() is None
    decoder = RecordDecoder(max_record_bytes=2048)
    decoder.push(b"\xea\x60")  # 60000
    with pytest.raises(FramingError, match="60000"):
        decoder.pop()
    assert decoder.buffered == 0
