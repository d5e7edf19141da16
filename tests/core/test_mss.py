"""TCP MSS clamping (overlay_core.proto.mss), checked against checksums recomputed from
scratch over the pseudo-header and segment."""

from __future__ import annotations

import random
import struct

import pytest

from overlay_core.proto.ethernet import IpView
from overlay_core.proto.mss import clamp_mss, clamp_mss_to_mtu, mss_for
from tests.core import frames

V4 = ("10.1.0.1", "10.1.0.2")
V6 = ("fd00::1", "fd00::2")


def segment_of(frame: bytes) -> bytes:
    view = IpView.parse(frame)
    assert view.l4_offset is not None
    return frame[view.l4_offset : view.end]


def mss_option(frame: bytes) -> int | None:
    segment = segment_of(frame)
    options = segment[20 : (segment[12] >> 4) * 4]
    i = 0
    while i < len(options):
        if options[i] == 1:
            i += 1
            continue
        if options[i] == 0:
            return None
        if options[i] == 2:
            return int(struct.unpack("!H", options[i + 2 : i + 4])[0])
        i += options[i + 1]
    return None


def assert_checksum_correct(frame: bytes, addresses: tuple[str, str]) -> None:
    segment = segment_of(frame)
    assert frames.tcp_checksum_ok(*addresses, segment)
    assert struct.unpack("!H", segment[16:18])[0] == frames.tcp_checksum_recomputed(
        *addresses, segment
    )


@pytest.mark.parametrize(
    ("frame", "addresses"),
    [
        (frames.syn_v4(), V4),
        (frames.syn_v6(), V6),
        (frames.syn_v4(vlan=100), V4),
        (frames.syn_v6(vlan=100), V6),
        (frames.syn_v4(flags=frames.TCP_SYN | frames.TCP_ACK), V4),
    ],
    ids=["v4", "v6", "v4-vlan", "v6-vlan", "v4-synack"],
)
def test_syn_mss_is_lowered_with_a_correct_checksum(
    frame: bytes, addresses: tuple[str, str]
) -> None:
    """A SYN (or SYN-ACK) announcing 1460 leaves with 1380, a checksum equal to a full
    recomputation, and every other byte unchanged (SACK, timestamps, window scale too)."""
    assert_checksum_correct(frame, addresses)
    clamped = clamp_mss(frame, 1380)
    assert clamped != frame and len(clamped) == len(frame)
    assert mss_option(clamped) == 1380
    assert_checksum_correct(clamped, addresses)
    changed = [i for i in range(len(frame)) if frame[i] != clamped[i]]
    mss_at = clamped.index(struct.pack("!BBH", 2, 4, 1380)) + 2
    checksum_at = IpView.parse(frame).l4_offset + 16  # type: ignore[operator]
    assert set(changed) <= {mss_at, mss_at + 1, checksum_at, checksum_at + 1}


def test_mss_at_odd_offset_and_many_values() -> None:
    """The MSS option after a single NOP sits at an odd offset in the TCP header (so it
    straddles checksum words); for many random announced/limit pairs and both IP versions
    the incremental checksum matches the from-scratch one."""
    rng = random.Random(5)
    for _ in range(500):
        announced = rng.randrange(2, 65536)
        limit = rng.randrange(1, 65536)
        options = (
            struct.pack("!BBBH", 1, 2, 4, announced) + b"\x04\x02\x00"
        )  # NOP, MSS, SACK-OK, EOL
        v6 = rng.random() < 0.5
        frame = frames.syn_v6(options) if v6 else frames.syn_v4(options)
        clamped = clamp_mss(frame, limit)
        if announced <= limit:
            assert clamped is frame
            continue
        assert mss_option(clamped) == limit
        assert_checksum_correct(clamped, V6 if v6 else V4)


def test_small_enough_mss_is_left_alone() -> None:
    """An MSS at or under the limit comes back as the same object."""
    frame = frames.syn_v4()
    assert clamp_mss(frame, 1460) is frame
    assert clamp_mss(frame, 9000) is frame


def test_frames_with_nothing_to_clamp_come_back_unchanged() -> None:
    """Not TCP, not SYN, no MSS option, later IPv4 fragments and truncated frames are
    returned as the same object."""
    ack = frames.syn_v4(flags=frames.TCP_ACK)
    no_mss = frames.syn_v4(b"\x04\x02\x01\x01")
    segment = frames.tcp(*V4, 40000, 443, frames.TCP_SYN, frames.LINUX_SYN_OPTIONS)
    later_fragment = frames.ethernet(
        frames.HOST_B, frames.HOST_A, 0x0800, frames.ipv4(*V4, 6, segment, flags_fragment=3)
    )
    cases = [
        frames.arp_request(frames.HOST_A, "10.0.0.1", "10.0.0.2"),
        frames.dhcp_discover(frames.HOST_A),
        frames.router_advertisement(frames.HOST_A),
        ack,
        no_mss,
        later_fragment,
    ]
    full = frames.syn_v4()
    cases += [full[:cut] for cut in range(len(full))]  # every truncation, down to empty
    cases += [frames.syn_v6()[:cut] for cut in range(len(frames.syn_v6()))]
    for frame in cases:
        assert clamp_mss(frame, 536) is frame


def test_first_fragment_with_more_fragments_is_clamped() -> None:
    """An IPv4 first fragment (offset 0, MF set) carries the TCP header, so it is clamped."""
    segment = frames.tcp(*V4, 40000, 443, frames.TCP_SYN, frames.LINUX_SYN_OPTIONS)
    frame = frames.ethernet(
        frames.HOST_B, frames.HOST_A, 0x0800, frames.ipv4(*V4, 6, segment, flags_fragment=0x2000)
    )
    assert mss_option(clamp_mss(frame, 1200)) == 1200


def test_malformed_options_are_left_alone() -> None:
    """An option with length 0/1, one running past the header, or an MSS option of the
    wrong length: unchanged, no exception."""
    for options in (
        b"\x08\x00\x00\x00",
        b"\x08\x01\x02\x04",
        b"\x08\x09\x02\x04",
        b"\x02\x03\x05\xb4",
    ):
        frame = frames.syn_v4(options)
        assert clamp_mss(frame, 500) is frame


def test_fuzzed_frames_never_raise() -> None:
    """Random mutations of SYNs never raise and never change the frame's length."""
    rng = random.Random(11)
    samples = [frames.syn_v4(), frames.syn_v6(), frames.syn_v4(vlan=3)]
    for _ in range(5000):
        data = bytearray(rng.choice(samples))
        for _ in range(rng.randrange(1, 5)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        data = data[: rng.randrange(len(data) + 1)]
        assert len(clamp_mss(bytes(data), 1000)) == len(data)


def test_mss_for_subtracts_ip_and_tcp_headers() -> None:
    """1500 gives the familiar 1460 (IPv4) and 1440 (IPv6); absurd MTUs raise."""
    assert mss_for(1500, ipv6=False) == 1460
    assert mss_for(1500, ipv6=True) == 1440
    assert mss_for(2800, ipv6=False) == 2760
    with pytest.raises(ValueError):
        mss_for(40, ipv6=False)
    with pytest.raises(ValueError):
        clamp_mss(frames.syn_v4(), 0)


def test_clamp_to_mtu_uses_each_ip_versions_headers() -> None:
    """For one MTU, IPv4 SYNs get mtu-40 and IPv6 SYNs mtu-60, VLAN tag or not; non-IP and
    hopelessly small MTUs leave the frame alone."""
    assert mss_option(clamp_mss_to_mtu(frames.syn_v4(), 1400)) == 1360
    assert mss_option(clamp_mss_to_mtu(frames.syn_v6(), 1400)) == 1340
    assert mss_option(clamp_mss_to_mtu(frames.syn_v6(vlan=9), 1400)) == 1340
    assert_checksum_correct(clamp_mss_to_mtu(frames.syn_v6(vlan=9), 1400), V6)
    arp = frames.arp_request(frames.HOST_A, "10.0.0.1", "10.0.0.2")
    assert clamp_mss_to_mtu(arp, 1400) is arp
    syn = frames.syn_v6()
    assert clamp_mss_to_mtu(syn, 60) is syn
