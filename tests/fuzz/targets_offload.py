"""Fuzz targets for overlay_core.proto.offload: TAP reads in, peers' frames in.

* `offload.segment`: the bytes of a TAP read (vnet header + frame), real ones mutated,
  header fields set to the values that matter, or random bytes. split_vnet + validate +
  segment raise only OffloadError, and what they return is what they promise: segments
  no larger than gso_size that add up to the super-frame's payload, with right checksums.
* `offload.coalesce`: a batch of peers' frames, real segments mostly (in order, shuffled,
  duplicated, mutated). coalesce never raises, every buffer it returns carries a header
  our own `validate` accepts (what reaches the kernel's virtio_net_hdr_to_skb), and cutting
  the buffers up again gives exactly one frame per frame it was given.

Registered like tests/fuzz/targets_codec.py's; the short run is tests/fuzz/
test_offload_fuzz.py (`make fuzz` runs tests/fuzz/run.py's registries, not this one yet).
"""

from __future__ import annotations

from hypothesis import strategies as st

from overlay_core.proto.offload import (
    GSO_NONE,
    NEEDS_CSUM,
    NO_OFFLOAD,
    OffloadError,
    VnetHeader,
    coalesce,
    segment,
    split_vnet,
    validate,
)
from tests.core import frames
from tests.core.test_offload import (
    ACK,
    FIN,
    PSH,
    SYN,
    gso_frame,
    pattern,
    tcp_frame,
    udp_frame,
    with_ip_options,
)
from tests.fuzz.harness import ContractError, Registry, expect, mutated

registry = Registry()

SUPER_FRAMES = [
    gso_frame(pattern(3 * 1448 + 5), 1448),
    gso_frame(pattern(2 * 1428), 1428, v6=True, flags=ACK | PSH),
    gso_frame(pattern(700), 200, flags=ACK | FIN | PSH, seq=2**32 - 300, ip_id=0xFFFF),
    gso_frame(pattern(999), 333, v6=True, options=b""),
]
# A super-frame with IPv4 options: IHL 6, csum_start 38.
_OPTS = with_ip_options(tcp_frame(pattern(1000), checksum="pseudo"))
SUPER_FRAMES.append((VnetHeader(NEEDS_CSUM, 1, 70, 400, 38, 16), _OPTS))
PLAIN = [
    tcp_frame(pattern(500), checksum="pseudo"),
    udp_frame(),
    tcp_frame(flags=SYN, options=frames.LINUX_SYN_OPTIONS),
    frames.arp_request(frames.HOST_A, "10.0.0.1", "10.0.0.2"),
    frames.syn_v6(vlan=7),
]
READS = [h.pack() + f for h, f in SUPER_FRAMES]
READS += [NO_OFFLOAD + f for f in PLAIN]
READS.append(VnetHeader(NEEDS_CSUM, GSO_NONE, 0, 0, 34, 16).pack() + PLAIN[0])
READS.append(VnetHeader(NEEDS_CSUM, GSO_NONE, 0, 0, 34, 6).pack() + PLAIN[1])
SEGMENTS = [s for h, f in SUPER_FRAMES for s in segment(h, f)]
SEGMENTS_PARTIAL = [s for h, f in SUPER_FRAMES for s in segment(h, f, full_checksum=False)]
FIELD_VALUES = [0, 1, 2, 3, 4, 5, 6, 8, 14, 16, 34, 38, 54, 66, 86, 0x80, 0x81, 0x84, 0xFF]
FIELD_VALUES += [1448, 0xFFFE, 0xFFFF]


@st.composite
def tap_reads(draw: st.DrawFn) -> bytes:
    """A real read with its frame mutated and/or header fields replaced (or neither)."""
    raw = bytearray(draw(st.one_of(st.sampled_from(READS), mutated(READS))))
    if len(raw) >= 10 and draw(st.booleans()):
        header, _ = split_vnet(bytes(raw))
        values = [header.flags, header.gso_type, header.hdr_len, header.gso_size]
        values += [header.csum_start, header.csum_offset]
        for _ in range(draw(st.integers(1, 3))):
            i = draw(st.integers(0, 5))
            limit = 0xFF if i < 2 else 0xFFFF
            frame_len = len(raw) - 10
            choice = draw(st.sampled_from([*FIELD_VALUES, frame_len, frame_len - 1, -1]))
            values[i] = draw(st.integers(0, limit)) if choice == -1 else choice & limit
        raw[:10] = VnetHeader(*values).pack()
    return bytes(raw)


@registry.add("offload.segment", st.one_of(tap_reads(), tap_reads(), st.binary(max_size=200)))
def fuzz_segment(raw: bytes) -> None:
    """OffloadError, or segments that keep their promises (see the module docstring)."""
    with expect(OffloadError):
        header, frame = split_vnet(raw)
        validate(header, frame)
        for full in (True, False):
            out = segment(header, frame, full_checksum=full)
            if header.gso_type & 0x7F == GSO_NONE:
                if len(out) != 1 or len(out[0]) != len(frame):
                    raise ContractError("a frame without GSO changed size")
                continue
            hdrs = header.csum_start + (frame[header.csum_start + 12] >> 4) * 4
            payload = frame[hdrs:]
            if b"".join(s[hdrs:] for s in out) != payload:
                raise ContractError("segments do not add up to the payload")
            if any(len(s) - hdrs > header.gso_size for s in out):
                raise ContractError("a segment is larger than gso_size")
            if full and not all(frames.frame_checksums_ok(s) for s in out):
                raise ContractError("a segment with a wrong checksum")


@st.composite
def batches(draw: st.DrawFn) -> list[bytes]:
    """Real segments in order with a few swapped, dropped, repeated or mutated; other
    frames mixed in."""
    pool = draw(st.sampled_from([SEGMENTS, SEGMENTS_PARTIAL]))
    start = draw(st.integers(0, len(pool) - 1))
    batch = list(pool[start : start + draw(st.integers(1, 12))])
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.integers(0, 4))
        at = draw(st.integers(0, len(batch)))
        if op == 0 and len(batch) > 1:
            j = draw(st.integers(0, len(batch) - 1))
            batch[at % len(batch)], batch[j] = batch[j], batch[at % len(batch)]
        elif op == 1 and batch:
            del batch[at % len(batch)]
        elif op == 2 and batch:
            batch.insert(at, batch[at % len(batch)])
        elif op == 3:
            batch.insert(at, draw(mutated(SEGMENTS + PLAIN)))
        else:
            batch.insert(at, draw(st.sampled_from(PLAIN)))
    return batch


@registry.add("offload.coalesce", batches())
def fuzz_coalesce(batch: list[bytes]) -> None:
    """Never raises; every buffer passes validate; one segment back per frame given."""
    out = coalesce(batch, max_bytes=8000)
    count = 0
    for buffer in out:
        try:
            header, frame = split_vnet(buffer)
            validate(header, frame)
            count += len(segment(header, frame))
        except OffloadError as exc:
            raise ContractError(f"coalesce wrote a header we refuse: {exc}") from exc
        if header == VnetHeader() and frame not in batch:
            raise ContractError("a frame without offload was changed")
    if count != len(batch):
        raise ContractError(f"{len(batch)} frames in, {count} segments out")
