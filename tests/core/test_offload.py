"""TCP segmentation and coalescing for vnet-header TAPs (overlay_core.proto.offload).

Frames are built here with struct and checked against tests/core/frames.py's from-scratch
checksums, never against the module's own arithmetic. The builders (`tcp_frame`,
`gso_frame`) are shared with tests/fuzz and tests/netns/test_offload_kernel.py.
"""

from __future__ import annotations

import ipaddress
import struct
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from overlay_core.proto import offload
from overlay_core.proto.offload import (
    DATA_VALID,
    GSO_ECN,
    GSO_NONE,
    GSO_TCPV4,
    GSO_TCPV6,
    GSO_UDP,
    NEEDS_CSUM,
    NO_OFFLOAD,
    VNET_HDR_BYTES,
    OffloadError,
    VnetHeader,
    coalesce,
    segment,
    split_vnet,
    validate,
)
from tests.core import frames

MAC_A = bytes.fromhex("02aabbccdd01")
MAC_B = bytes.fromhex("02aabbccdd02")
V4 = ("10.1.0.1", "10.1.0.2")
V6 = ("fd00::1", "fd00::2")
FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80
DF = 0x4000
# NOP, NOP, timestamps: what Linux puts on every data segment.
TS_OPTIONS = b"\x01\x01" + struct.pack("!BBII", 8, 10, 0x01020304, 0x0A0B0C0D)


def pattern(n: int, salt: int = 0) -> bytes:
    return bytes((i * 7 + salt + (i >> 8)) & 0xFF for i in range(n))


def tcp_frame(
    payload: bytes = b"",
    *,
    v6: bool = False,
    seq: int = 1000,
    ack: int = 5000,
    flags: int = ACK,
    ip_id: int = 0x1234,
    frag: int = DF,
    options: bytes = TS_OPTIONS,
    ports: tuple[int, int] = (40000, 5201),
    window: int = 502,
    ttl: int = 64,
    addresses: tuple[str, str] | None = None,
    macs: tuple[bytes, bytes] = (MAC_B, MAC_A),
    checksum: str = "full",
    ip_length: int | None = None,
) -> bytes:
    """An untagged Ethernet frame with one TCP segment. `checksum`: "full" (from scratch,
    tests/core/frames.py), "pseudo" (the NEEDS_CSUM convention) or "zero"."""
    src, dst = addresses or (V6 if v6 else V4)
    doff = (20 + len(options)) // 4
    th = struct.pack("!HHIIBBHHH", *ports, seq, ack, doff << 4, flags, window, 0, 0)
    segment_ = th + options + payload
    pseudo = frames.pseudo_header(src, dst, 6, len(segment_))
    value = {
        "full": frames.checksum(pseudo + segment_),
        "pseudo": frames.ones_sum(pseudo),
        "zero": 0,
    }[checksum]
    segment_ = segment_[:16] + struct.pack("!H", value) + segment_[18:]
    if v6:
        ip = struct.pack(
            "!IHBB16s16s",
            0x60000000,
            len(segment_) if ip_length is None else ip_length,
            6,
            ttl,
            ipaddress.IPv6Address(src).packed,
            ipaddress.IPv6Address(dst).packed,
        )
    else:
        ip = struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            20 + len(segment_) if ip_length is None else ip_length,
            ip_id,
            frag,
            ttl,
            6,
            0,
            ipaddress.IPv4Address(src).packed,
            ipaddress.IPv4Address(dst).packed,
        )
        ip = ip[:10] + struct.pack("!H", frames.checksum(ip)) + ip[12:]
    return macs[0] + macs[1] + (b"\x86\xdd" if v6 else b"\x08\x00") + ip + segment_


def gso_frame(payload: bytes, mss: int, *, v6: bool = False, **kw: Any) -> tuple[VnetHeader, bytes]:
    """A super-frame as the kernel hands it over: NEEDS_CSUM, pseudo-header checksum."""
    frame = tcp_frame(payload, v6=v6, checksum="pseudo", **kw)
    l4 = 54 if v6 else 34
    hdrs = l4 + (frame[l4 + 12] >> 4) * 4
    gso = GSO_TCPV6 if v6 else GSO_TCPV4
    return VnetHeader(NEEDS_CSUM, gso, hdrs, mss, l4, 16), frame


def parsed(frame: bytes) -> dict[str, int]:
    """The fields the tests look at, read independently of the module."""
    v6 = frame[12:14] == b"\x86\xdd"
    l4 = 54 if v6 else 14 + (frame[14] & 15) * 4
    seq, ack, doff, flags, _, check = struct.unpack("!IIBBHH", frame[l4 + 4 : l4 + 18])
    hdrs = l4 + (doff >> 4) * 4
    ip_len = (
        40 + struct.unpack("!H", frame[18:20])[0] if v6 else struct.unpack("!H", frame[16:18])[0]
    )
    return {
        "seq": seq,
        "ack": ack,
        "flags": flags,
        "check": check,
        "ip_len": ip_len,
        "ip_id": -1 if v6 else struct.unpack("!H", frame[18:20])[0],
        "hdrs": hdrs,
        "l4": l4,
        "payload": len(frame) - hdrs,
    }


def payload_of(frame: bytes) -> bytes:
    return frame[parsed(frame)["hdrs"] :]


def pseudo_sum(frame: bytes) -> int:
    """The NEEDS_CSUM field a frame should carry, from tests/core/frames.py."""
    v6 = frame[12:14] == b"\x86\xdd"
    f = parsed(frame)
    if v6:
        src, dst = (str(ipaddress.IPv6Address(frame[i : i + 16])) for i in (22, 38))
    else:
        src, dst = (str(ipaddress.IPv4Address(frame[i : i + 4])) for i in (26, 30))
    return frames.ones_sum(frames.pseudo_header(src, dst, 6, len(frame) - f["l4"]))


def udp_frame() -> bytes:
    body = frames.udp(*V4, 5353, 5353, b"hello udp")
    return frames.ethernet(MAC_B, MAC_A, 0x0800, frames.ipv4(*V4, 17, body))


# ---- the header ---------------------------------------------------------------------------


def test_vnet_header_packs_native_endian_and_round_trips() -> None:
    header = VnetHeader(NEEDS_CSUM, GSO_TCPV4, 66, 1448, 34, 16)
    raw = header.pack()
    assert raw == struct.pack("=BBHHHH", 1, 1, 66, 1448, 34, 16)
    if sys.byteorder == "little":
        assert raw == bytes.fromhex("01014200a80522001000")
    frame = tcp_frame(b"x")
    assert split_vnet(raw + frame) == (header, frame)
    assert NO_OFFLOAD == b"\0" * VNET_HDR_BYTES == VnetHeader().pack()
    assert split_vnet(NO_OFFLOAD) == (VnetHeader(), b"")


def test_split_vnet_refuses_a_short_read() -> None:
    with pytest.raises(OffloadError) as info:
        split_vnet(b"\x01" * 9)
    assert info.value.reason == "vnet_short"


def _hostile() -> list[tuple[str, VnetHeader, bytes, str]]:
    h4, f4 = gso_frame(pattern(3000), 1448)
    h6, f6 = gso_frame(pattern(3000), 1428, v6=True)
    fragment = tcp_frame(pattern(3000), checksum="pseudo", frag=0x2000)
    offset_fragment = tcp_frame(pattern(3000), checksum="pseudo", frag=DF | 8)
    udp = udp_frame()
    bare = tcp_frame(b"", checksum="pseudo", options=b"")  # 54 bytes
    arp = frames.arp_request(MAC_A, *V4) + b"\0" * 40
    tagged_arp = arp[:12] + b"\x81\x00\x00\x07" + arp[12:]  # (tagged TCP is segmented)
    r = VnetHeader
    return [
        ("unknown gso type", r(NEEDS_CSUM, 2, 66, 1448, 34, 16), f4, "vnet_bad_gso_type"),
        ("UDP (UFO) gso", r(NEEDS_CSUM, GSO_UDP, 42, 1000, 34, 6), udp, "vnet_bad_gso_type"),
        ("UDP_L4 gso", r(NEEDS_CSUM, 5, 42, 1000, 34, 6), udp, "vnet_bad_gso_type"),
        ("ECN without TCP", r(0, GSO_ECN, 0, 0, 0, 0), f4, "vnet_bad_gso_type"),
        ("unknown flag", r(NEEDS_CSUM | 4, GSO_TCPV4, 66, 1448, 34, 16), f4, "vnet_bad_flags"),
        ("flag above 8 bits", r(0x100, 0, 0, 0, 0, 0), f4, "vnet_bad_field"),
        ("negative field", r(0, 0, 0, 0, -1, 0), f4, "vnet_bad_field"),
        ("GSO without csum", r(0, GSO_TCPV4, 66, 1448, 34, 16), f4, "vnet_gso_without_csum"),
        ("TCPV4 on IPv6", r(NEEDS_CSUM, GSO_TCPV4, 86, 1428, 54, 16), f6, "vnet_bad_ethertype"),
        ("TCPV6 on IPv4", r(NEEDS_CSUM, GSO_TCPV6, 66, 1448, 34, 16), f4, "vnet_bad_ethertype"),
        ("GSO on ARP", h4, frames.arp_request(MAC_A, *V4) + b"\0" * 40, "vnet_bad_ethertype"),
        ("GSO on tagged ARP", h4, tagged_arp, "vnet_bad_ethertype"),
        ("GSO on UDP", r(NEEDS_CSUM, GSO_TCPV4, 42, 1000, 34, 16), udp + b"\0" * 20, "vnet_bad_l4"),
        ("IPv4 MF fragment", h4, fragment, "vnet_ip_fragment"),
        ("IPv4 offset fragment", h4, offset_fragment, "vnet_ip_fragment"),
        ("csum_start wrong", r(NEEDS_CSUM, GSO_TCPV4, 66, 1448, 30, 16), f4, "vnet_bad_offsets"),
        ("csum_offset UDP's", r(NEEDS_CSUM, GSO_TCPV4, 66, 1448, 34, 6), f4, "vnet_bad_offsets"),
        (
            "hdr_len past the end",
            r(NEEDS_CSUM, GSO_TCPV4, 65000, 1448, 34, 16),
            f4,
            "vnet_bad_offsets",
        ),
        ("gso_size 0", r(NEEDS_CSUM, GSO_TCPV4, 66, 0, 34, 16), f4, "vnet_bad_gso_size"),
        ("gso_size 65535", r(NEEDS_CSUM, GSO_TCPV6, 86, 65535, 54, 16), f6, "vnet_bad_gso_size"),
        ("truncated super-frame", h4, f4[:-1], "vnet_bad_length"),
        ("trailing bytes", h4, f4 + b"\0", "vnet_bad_length"),
        ("truncated to headers", h4, f4[:50], "vnet_short"),
        ("empty frame", h4, b"", "vnet_short"),
        ("TCP data offset 4", h4, f4[:46] + b"\x40" + f4[47:], "vnet_bad_tcp"),
        (
            "TCP data offset 60 past the end",
            r(NEEDS_CSUM, GSO_TCPV4, 54, 1448, 34, 16),
            bare[:46] + b"\xf0" + bare[47:],
            "vnet_bad_tcp",
        ),
        ("IPv6 extension header", h6, f6[:20] + b"\x00" + f6[21:], "vnet_bad_l4"),
        ("IPv4 IHL 4", h4, f4[:14] + b"\x44" + f4[15:], "vnet_bad_ip"),
        ("IPv4 IHL 15 in 54 bytes", h4, bare[:14] + b"\x4f" + bare[15:], "vnet_bad_tcp"),
        ("IPv6 version 4", h6, f6[:14] + b"\x40" + f6[15:], "vnet_bad_ip"),
        ("csum past the end", r(NEEDS_CSUM, GSO_NONE, 0, 0, 40, 16), f4[:57], "vnet_bad_offsets"),
        ("csum in the MAC header", r(NEEDS_CSUM, GSO_NONE, 0, 0, 4, 16), f4, "vnet_bad_offsets"),
        ("csum_offset SCTP's", r(NEEDS_CSUM, GSO_NONE, 0, 0, 34, 8), f4, "vnet_bad_offsets"),
    ]


HOSTILE = _hostile()


@pytest.mark.parametrize(
    ("header", "frame", "reason"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE]
)
def test_hostile_headers_are_refused_with_their_reason(
    header: VnetHeader, frame: bytes, reason: str
) -> None:
    for call in (lambda: validate(header, frame), lambda: segment(header, frame)):
        with pytest.raises(OffloadError) as info:
            call()
        assert info.value.reason == reason, str(info.value)


def test_the_hostile_cases_differ_from_accepted_ones_only_in_what_they_name() -> None:
    """The frames above are refused for the named reason, not by accident: their
    well-formed originals pass, also with the ECN bit and DATA_VALID set."""
    for v6, mss in ((False, 1448), (True, 1428)):
        header, frame = gso_frame(pattern(3000), mss, v6=v6)
        validate(header, frame)
        ecn = VnetHeader(
            NEEDS_CSUM | DATA_VALID, header.gso_type | GSO_ECN, 0, mss, header.csum_start, 16
        )
        validate(ecn, frame)
    validate(VnetHeader(NEEDS_CSUM, GSO_NONE, 0, 0, 34, 6), udp_frame())
    validate(VnetHeader(DATA_VALID), b"")


# ---- segmentation --------------------------------------------------------------------------


@pytest.mark.parametrize("v6", [False, True], ids=["v4", "v6"])
@pytest.mark.parametrize("full", [True, False], ids=["full", "partial"])
def test_a_super_frame_is_cut_into_mss_segments(v6: bool, full: bool) -> None:
    mss = 1428 if v6 else 1448
    data = pattern(10 * mss + 333)
    header, frame = gso_frame(
        data, mss, v6=v6, seq=0xFFFFF000, ip_id=0xFFFE, flags=ACK | PSH | FIN | CWR
    )
    out = segment(header, frame, full_checksum=full)
    assert len(out) == 11
    assert b"".join(payload_of(s) for s in out) == data
    hdrs = header.hdr_len
    for i, seg in enumerate(out):
        f = parsed(seg)
        last = i == len(out) - 1
        assert f["payload"] == (333 if last else mss)
        assert f["seq"] == (0xFFFFF000 + i * mss) % 2**32  # wraps past 2^32
        assert f["ack"] == 5000
        assert f["ip_len"] == len(seg) - 14
        expected_flags = ACK | (PSH | FIN if last else 0) | (CWR if i == 0 else 0)
        assert f["flags"] == expected_flags
        if not v6:
            assert f["ip_id"] == (0xFFFE + i) % 2**16  # wraps past 2^16
        # Everything else in the headers is the super-frame's.
        assert seg[:14] == frame[:14]
        assert seg[hdrs - 12 : hdrs] == TS_OPTIONS
        if full:
            assert frames.frame_checksums_ok(seg)
            assert frames.tcp_checksum_ok(*(V6 if v6 else V4), seg[f["l4"] :])
        else:
            assert f["check"] == pseudo_sum(seg)
            assert not frames.frame_checksums_ok(seg)
        if not v6:  # the IPv4 header checksum is always complete
            assert frames.ones_sum(seg[14:34]) == 0xFFFF


def test_segments_equal_frames_built_from_scratch() -> None:
    data = pattern(4000)
    header, frame = gso_frame(data, 1448, ip_id=7, seq=100, flags=ACK | PSH)
    expected = [
        tcp_frame(data[:1448], ip_id=7, seq=100),
        tcp_frame(data[1448:2896], ip_id=8, seq=1548),
        tcp_frame(data[2896:], ip_id=9, seq=2996, flags=ACK | PSH),
    ]
    assert segment(header, frame) == expected


def test_a_frame_without_gso_gets_its_checksum_completed() -> None:
    full = tcp_frame(pattern(777))
    partial = tcp_frame(pattern(777), checksum="pseudo")
    header = VnetHeader(NEEDS_CSUM, GSO_NONE, 0, 0, 34, 16)
    assert segment(header, partial) == [full]
    assert segment(header, partial, full_checksum=False) == [partial]
    assert segment(VnetHeader(), full) == [full]
    assert segment(VnetHeader(DATA_VALID), full) == [full]
    udp = udp_frame()
    udp_partial = bytearray(udp)
    l4 = 34
    length = len(udp) - l4
    struct.pack_into(
        "!H", udp_partial, l4 + 6, frames.ones_sum(frames.pseudo_header(*V4, 17, length))
    )
    udp_header = VnetHeader(NEEDS_CSUM, GSO_NONE, 0, 0, l4, 6)
    for full_checksum in (True, False):  # nobody downstream would complete UDP's
        assert segment(udp_header, bytes(udp_partial), full_checksum=full_checksum) == [udp]


def test_a_gso_frame_with_one_segment_or_none_of_payload() -> None:
    header, frame = gso_frame(pattern(100), 1448)
    assert segment(header, frame) == [tcp_frame(pattern(100))]
    header, frame = gso_frame(b"", 1448)
    assert segment(header, frame) == [tcp_frame(b"")]


def with_ip_options(frame: bytes, options: bytes = b"\x01\x01\x01\x00") -> bytes:
    """An IPv4 frame with `options` (NOP x3, EOL) added: IHL, total length and header
    checksum redone; the TCP checksum (full or pseudo) does not depend on them."""
    ihl = 5 + len(options) // 4
    ip = bytearray(frame[14:34] + options)
    ip[0] = 0x40 | ihl
    struct.pack_into("!H", ip, 2, len(frame) - 14 + len(options))
    struct.pack_into("!H", ip, 10, 0)
    struct.pack_into("!H", ip, 10, frames.checksum(bytes(ip)))
    return frame[:14] + bytes(ip) + frame[34:]


def test_ip_options_and_odd_lengths_are_carried() -> None:
    data = pattern(2 * 501 + 37)
    framed = with_ip_options(tcp_frame(data, checksum="pseudo"))
    header = VnetHeader(NEEDS_CSUM, GSO_TCPV4, 70, 501, 38, 16)
    out = segment(header, framed)
    assert [parsed(s)["payload"] for s in out] == [501, 501, 37]
    assert all(frames.frame_checksums_ok(s) and s[34:38] == b"\x01\x01\x01\x00" for s in out)
    # ...and they merge back, options and all.
    assert coalesce(out) == [header.pack() + framed]


# ---- ones'-complement arithmetic -------------------------------------------------------------


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.binary(max_size=3000))
def test_the_fast_sum_matches_rfc1071(data: bytes) -> None:
    reference = frames.ones_sum(data)
    assert offload._sum(data) == reference % 0xFFFF
    if any(data):  # "zero" is 0xFFFF for nonzero data; all-zero data never reaches it
        assert offload._complement(offload._sum(data)) == frames.checksum(data)
        assert offload._pseudo(offload._sum(data)) == reference


def test_the_sum_edge_where_the_folded_sum_is_ffff() -> None:
    data = b"\x00\x06\xff\xf9"  # 0x0006 + 0xfff9 = 0xffff
    assert frames.ones_sum(data) == 0xFFFF
    assert offload._sum(data) == 0
    assert offload._complement(offload._sum(data)) == 0 == frames.checksum(data)
    assert offload._pseudo(offload._sum(data)) == 0xFFFF


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    st.binary(min_size=0, max_size=9000),
    st.integers(1, 3000),
    st.booleans(),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**16 - 1),
)
def test_segments_checksum_right_for_any_payload(
    data: bytes, mss: int, v6: bool, seq: int, ip_id: int
) -> None:
    header, frame = gso_frame(data, mss, v6=v6, seq=seq, ip_id=ip_id)
    out = segment(header, frame)
    assert b"".join(payload_of(s) for s in out) == data
    for seg in out:
        l4 = parsed(seg)["l4"]
        assert parsed(seg)["check"] == frames.tcp_checksum_recomputed(*(V6 if v6 else V4), seg[l4:])
        assert frames.frame_checksums_ok(seg)
    # ...and coalescing them gives the super-frame back, byte for byte.
    if len(out) > 1:
        assert coalesce(out) == [header.pack() + frame]


def test_frame_checksums_ok_catches_corruption() -> None:
    good = tcp_frame(pattern(300))
    assert frames.frame_checksums_ok(good)
    assert frames.frame_checksums_ok(tcp_frame(pattern(301), v6=True))
    assert frames.frame_checksums_ok(udp_frame())
    flipped = bytearray(good)
    flipped[-5] ^= 0x10
    assert not frames.frame_checksums_ok(bytes(flipped))
    bad_ip = bytearray(good)
    bad_ip[22] ^= 1  # TTL: IP header checksum now wrong, TCP's unaffected
    assert not frames.frame_checksums_ok(bytes(bad_ip))
    assert not frames.frame_checksums_ok(tcp_frame(pattern(300), checksum="pseudo"))
    assert not frames.frame_checksums_ok(frames.arp_request(MAC_A, *V4))
    assert not frames.frame_checksums_ok(good[:40])


# ---- coalescing -------------------------------------------------------------------------------


def written(buffers: list[bytes]) -> list[tuple[VnetHeader, bytes]]:
    """Split coalesce's output; every header in it must pass our own validation."""
    out = [split_vnet(b) for b in buffers]
    for header, frame in out:
        validate(header, frame)
    return out


@pytest.mark.parametrize("v6", [False, True], ids=["v4", "v6"])
@pytest.mark.parametrize("full", [True, False], ids=["full", "partial"])
def test_coalescing_segments_rebuilds_the_super_frame(v6: bool, full: bool) -> None:
    mss = 1428 if v6 else 1448
    header, frame = gso_frame(pattern(44 * mss + 100), mss, v6=v6, flags=ACK | PSH, ip_id=0xFFF0)
    segments = segment(header, frame, full_checksum=full)
    assert len(segments) == 45
    assert coalesce(segments) == [header.pack() + frame]


def test_a_lone_tcp_frame_is_written_with_the_pseudo_header_sum() -> None:
    for frame in (tcp_frame(pattern(500)), tcp_frame(pattern(500), checksum="pseudo")):
        [(header, out)] = written(coalesce([frame]))
        assert header == VnetHeader(NEEDS_CSUM, GSO_NONE, 66, 0, 34, 16)
        assert parsed(out)["check"] == pseudo_sum(frame)
        # What the kernel will do with it: complete the checksum, giving the right one.
        assert segment(header, out) == [tcp_frame(pattern(500))]


def test_ethernet_padding_is_cut_from_tcp_frames() -> None:
    ack = tcp_frame(options=b"")  # 54 bytes: a NIC pads it to 60
    [(header, out)] = written(coalesce([ack + b"\0" * 6]))
    assert len(out) == 54
    assert segment(header, out) == [ack]


def test_what_is_not_tcp_or_not_parsable_is_left_alone() -> None:
    udp = udp_frame()
    fragment = tcp_frame(pattern(100), frag=0x2000)
    tagged = tcp_frame(pattern(100))
    tagged = tagged[:12] + b"\x81\x00\x00\x07" + tagged[12:]
    truncated = tcp_frame(pattern(100))[:60]
    junk = [
        b"",
        b"\x00",
        pattern(13),
        udp,
        fragment,
        tagged,
        truncated,
        frames.arp_request(MAC_A, *V4),
    ]
    assert coalesce(junk) == [NO_OFFLOAD + f for f in junk]
    written(coalesce(junk))  # their all-zero headers pass our own validation


def _segments(n: int, size: int = 1000, seq: int = 1000, **kw: Any) -> list[bytes]:
    """n segments of `size` payload bytes continuing one another (IP ids 100, 101, ...)."""
    return [tcp_frame(pattern(size, i), seq=seq + i * size, ip_id=100 + i, **kw) for i in range(n)]


def _merged_sizes(buffers: list[bytes]) -> list[int]:
    """Payload bytes per written buffer (after splitting its vnet header)."""
    return [parsed(frame)["payload"] for _, frame in written(buffers)]


def test_a_syn_a_gap_and_other_flags_are_never_merged() -> None:
    segs = _segments(4)
    syn = tcp_frame(pattern(1000), seq=1000 + 4000, flags=SYN | ACK)
    assert _merged_sizes(coalesce([*segs[:2], syn, *segs[2:]])) == [2000, 1000, 2000]
    gap = [*segs[:2], segs[3]]
    assert _merged_sizes(coalesce(gap)) == [2000, 1000]
    for flag in (FIN, RST, URG, ECE, CWR, SYN):
        odd = tcp_frame(pattern(1000, 2), seq=3000, ip_id=102, flags=ACK | flag)
        assert _merged_sizes(coalesce([*segs[:2], odd, segs[3]])) == [2000, 1000, 1000], flag


def test_a_pure_ack_closes_the_run_so_the_flow_keeps_its_order() -> None:
    segs = _segments(3)
    pure_ack = tcp_frame(seq=3000, ip_id=102)
    out = written(coalesce([segs[0], segs[1], pure_ack, segs[2]]))
    assert [parsed(f)["payload"] for _, f in out] == [2000, 0, 1000]


def test_psh_and_a_short_segment_end_the_run() -> None:
    segs = _segments(3)
    psh = tcp_frame(pattern(1000, 1), seq=2000, ip_id=101, flags=ACK | PSH)
    out = written(coalesce([segs[0], psh, segs[2]]))
    assert [parsed(f)["payload"] for _, f in out] == [2000, 1000]
    assert parsed(out[0][1])["flags"] == ACK | PSH
    assert parsed(out[1][1])["flags"] == ACK
    short = [
        *_segments(2),
        tcp_frame(pattern(10), seq=3000, ip_id=102),
        tcp_frame(pattern(1000), seq=3010, ip_id=103),
    ]
    assert _merged_sizes(coalesce(short)) == [2010, 1000]
    larger = [*_segments(2), tcp_frame(pattern(1001), seq=3000, ip_id=102)]
    assert _merged_sizes(coalesce(larger)) == [2000, 1001]


def test_interleaved_flows_merge_each_in_order() -> None:
    a = _segments(3, ports=(40000, 5201))
    b = _segments(3, ports=(40001, 5201))
    c = _segments(2, v6=True)
    mixed = [a[0], b[0], c[0], a[1], udp_frame(), b[1], c[1], a[2], b[2]]
    out = written(coalesce(mixed))
    assert out[3] == (VnetHeader(), udp_frame())
    assert [parsed(f)["payload"] for _, f in out[:3]] == [3000, 3000, 2000]
    assert [h.gso_type for h, _ in out[:3]] == [GSO_TCPV4, GSO_TCPV4, GSO_TCPV6]
    assert payload_of(out[0][1]) == b"".join(payload_of(s) for s in a)
    assert payload_of(out[1][1]) == b"".join(payload_of(s) for s in b)
    assert [segment(h, f) for h, f in out[:3]] == [a, b, c]


@pytest.mark.parametrize(
    ("change", "kw"),
    [
        ("ack", {"ack": 5001}),
        ("window", {"window": 503}),
        ("options", {"options": TS_OPTIONS[:-1] + b"\x0e"}),
        ("no options", {"options": b""}),
        ("ttl", {"ttl": 63}),
        ("mac", {"macs": (MAC_A, MAC_B)}),
    ],
)
def test_segments_that_differ_in_headers_are_not_merged(change: str, kw: dict[str, Any]) -> None:
    segs = _segments(2)
    other = tcp_frame(pattern(1000, 2), seq=3000, ip_id=102, **kw)
    assert _merged_sizes(coalesce([*segs, other])) == [2000, 1000]


def test_ipv4_ids_must_be_consecutive_without_df() -> None:
    segs = _segments(3, frag=0)
    assert _merged_sizes(coalesce(segs)) == [3000]
    jumped = tcp_frame(pattern(1000, 2), seq=3000, ip_id=200, frag=0)
    assert _merged_sizes(coalesce([*segs[:2], jumped])) == [2000, 1000]
    with_df = [tcp_frame(pattern(1000, i), seq=1000 + 1000 * i, ip_id=7 * i) for i in range(3)]
    assert _merged_sizes(coalesce(with_df)) == [3000]


def test_max_bytes_bounds_every_merged_packet() -> None:
    header, frame = gso_frame(pattern(20 * 1448), 1448, flags=ACK | PSH)
    segs = segment(header, frame)
    for limit in (3000, 10_000, 65535, 10**6):
        out = written(coalesce(segs, max_bytes=limit))
        assert all(parsed(f)["ip_len"] <= min(limit, 65535) for _, f in out)
        assert b"".join(payload_of(f) for _, f in out) == pattern(20 * 1448)
        assert [s for h, f in out for s in segment(h, f)] == segs
    assert len(coalesce(segs, max_bytes=3000)) == 10  # 2 x 1448 + 52 header bytes fit
    assert len(coalesce(segs, max_bytes=100)) == 20


def test_more_than_64k_of_a_flow_makes_several_super_frames() -> None:
    segs = _segments(100, size=1400)
    out = written(coalesce(segs))
    assert [parsed(f)["payload"] for _, f in out] == [46 * 1400, 46 * 1400, 8 * 1400]
    assert [s for h, f in out for s in segment(h, f)] == segs


@pytest.mark.parametrize("v6", [False, True], ids=["v4", "v6"])
def test_a_vlan_tagged_super_frame_is_cut_and_every_segment_keeps_the_tag(v6: bool) -> None:
    """A VLAN interface on the TAP inherits its TSO, so super-frames can carry one 802.1Q
    tag: each segment is the untagged segmentation with the tag put back, checksums done."""
    data = pattern(5 * 1400 + 77)
    header, frame = gso_frame(data, 1400, v6=v6)
    tag = b"\x81\x00\x00\x2a"  # VLAN 42
    tagged_header = VnetHeader(
        header.flags, header.gso_type, header.hdr_len + 4, header.gso_size,
        header.csum_start + 4, header.csum_offset,
    )  # fmt: skip
    out = segment(tagged_header, frame[:12] + tag + frame[12:], full_checksum=False)
    expected = segment(header, frame)  # full checksums whatever was asked
    assert len(out) == len(expected) == 6
    for seg, plain in zip(out, expected, strict=True):
        assert seg[12:16] == tag
        assert seg[:12] + seg[16:] == plain
        assert frames.frame_checksums_ok(seg[:12] + seg[16:])
    with pytest.raises(OffloadError):  # validate() itself speaks only untagged frames
        validate(tagged_header, frame[:12] + tag + frame[12:])
