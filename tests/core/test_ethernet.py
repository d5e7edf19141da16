"""Derived MACs and the bounds-checked frame views in overlay_core.proto.ethernet."""

from __future__ import annotations

import ipaddress
import random
import struct

import pytest

from overlay_core.proto.ethernet import (
    ETHERTYPE_ARP,
    ETHERTYPE_IPV4,
    ETHERTYPE_IPV6,
    EthernetFrame,
    FrameError,
    IpView,
    address_from_mac,
    format_mac,
    is_broadcast,
    is_multicast,
    mac_for,
    parse_mac,
)
from overlay_core.proto.identity import is_reserved_address
from tests.core import frames

NWID = 0x8056C2E21C000001
ADDRESS = 0x1122334455


def test_derived_mac_round_trips_and_is_locally_administered_unicast() -> None:
    """For many networks and addresses, mac_for gives a unicast, locally administered MAC
    that never starts with QEMU's 0x52, and address_from_mac gives the address back."""
    rng = random.Random(1)
    for _ in range(2000):
        nwid = rng.getrandbits(64)
        address = rng.randrange(1, 0xFF00000000)
        mac = mac_for(nwid, address)
        assert len(mac) == 6
        assert not is_multicast(mac)
        assert mac[0] & 0x02 and not mac[0] & 0x01
        assert mac[0] != 0x52
        assert address_from_mac(nwid, mac) == address


def test_qemu_prefix_is_never_used_even_when_the_hash_lands_on_it() -> None:
    """Some network ids hash to a 0x52 first octet; those get 0x32 instead, and the MACs
    still decode."""
    hits = [n for n in range(5000) if mac_for(n, ADDRESS)[0] == 0x32]
    assert hits, "expected some network id to hit the substitution"
    for nwid in hits[:20]:
        assert address_from_mac(nwid, mac_for(nwid, ADDRESS)) == ADDRESS


def test_same_member_has_different_macs_on_different_networks() -> None:
    """Network ids differing in any single bit give the member a different MAC, and one
    network's MAC doesn't decode to the member on the other."""
    mac = mac_for(NWID, ADDRESS)
    for bit in range(64):
        other = NWID ^ (1 << bit)
        assert mac_for(other, ADDRESS) != mac
        assert address_from_mac(other, mac) != ADDRESS


def test_non_derived_macs_decode_to_none() -> None:
    """Vendor MACs, broadcast, multicast, wrong lengths and MACs decoding to a reserved
    address (0 or 0xff..) are not members' MACs."""
    assert address_from_mac(NWID, frames.HOST_A) is None
    assert address_from_mac(NWID, frames.BROADCAST) is None
    assert address_from_mac(NWID, bytes.fromhex("333300000001")) is None
    assert address_from_mac(NWID, b"\x02\x00") is None
    first = mac_for(NWID, ADDRESS)[0]
    zero_mac = mac_for(NWID, 1)[:5] + bytes([mac_for(NWID, 1)[5] ^ 1])  # decodes to 0
    assert zero_mac[0] == first and address_from_mac(NWID, zero_mac) is None
    assert is_reserved_address(0) and is_reserved_address(0xFF00000001)
    ff_mac = bytes([first]) + bytes(
        a ^ b
        for a, b in zip(mac_for(NWID, 1)[1:], (1 ^ 0xFF00000001).to_bytes(5, "big"), strict=True)
    )
    assert address_from_mac(NWID, ff_mac) is None


def test_mac_for_rejects_out_of_range_inputs() -> None:
    """Addresses are 40 bits and network ids 64: anything wider is a caller bug."""
    with pytest.raises(ValueError):
        mac_for(NWID, 1 << 40)
    with pytest.raises(ValueError):
        mac_for(1 << 64, ADDRESS)


def test_format_and_parse_mac() -> None:
    """MACs print as lowercase colon pairs and parse from colons or dashes, any case;
    anything else is a ValueError that shows the input."""
    mac = bytes.fromhex("02ABCDEF0123")
    assert format_mac(mac) == "02:ab:cd:ef:01:23"
    assert parse_mac("02:ab:cd:ef:01:23") == mac
    assert parse_mac("02-AB-CD-EF-01-23") == mac
    for bad in ("02:ab:cd:ef:01", "02:ab:cd:ef:01:2g", "02abcdef0123", "", "2:ab:cd:ef:01:23"):
        with pytest.raises(ValueError, match="MAC"):
            parse_mac(bad)
    with pytest.raises(ValueError):
        format_mac(b"\x00")


def test_broadcast_and_multicast_bits() -> None:
    """Broadcast is multicast too; 33:33 (IPv6) and 01:00:5e (IPv4) are multicast."""
    assert is_broadcast(frames.BROADCAST) and is_multicast(frames.BROADCAST)
    assert is_multicast(bytes.fromhex("333300000001")) and not is_broadcast(
        bytes.fromhex("333300000001")
    )
    assert is_multicast(bytes.fromhex("01005e000001"))
    assert not is_multicast(frames.HOST_A)


def test_arp_broadcast_header() -> None:
    """An ARP request parses as a broadcast with ethertype 0x0806 and isn't IP."""
    frame = frames.arp_request(frames.HOST_A, "10.0.0.1", "10.0.0.2")
    eth = EthernetFrame.parse(frame)
    assert (eth.dst, eth.src, eth.ethertype, eth.vlan_id) == (
        frames.BROADCAST,
        frames.HOST_A,
        ETHERTYPE_ARP,
        None,
    )
    assert eth.is_broadcast and eth.is_multicast
    with pytest.raises(FrameError, match="not IP"):
        IpView.parse(frame)


def test_dhcp_discover_view() -> None:
    """A DHCP discover is IPv4 UDP 0.0.0.0:68 -> 255.255.255.255:67."""
    view = IpView.parse(frames.dhcp_discover(frames.HOST_A))
    assert view.version == 4 and view.protocol == 17
    assert view.src == ipaddress.IPv4Address("0.0.0.0")
    assert view.dst == ipaddress.IPv4Address("255.255.255.255")
    assert (view.src_port, view.dst_port, view.icmp_type) == (68, 67, None)
    assert not view.is_fragment


def test_router_advertisement_view() -> None:
    """An RA is IPv6 ICMPv6 type 134 to ff02::1 with no ports."""
    frame = frames.router_advertisement(frames.HOST_A)
    assert EthernetFrame.parse(frame).ethertype == ETHERTYPE_IPV6
    view = IpView.parse(frame)
    assert view.version == 6 and view.protocol == 58 and view.icmp_type == 134
    assert view.dst == ipaddress.IPv6Address("ff02::1")
    assert view.src_port is None


def test_vlan_tag_is_skipped() -> None:
    """With one 802.1Q tag the inner ethertype and the IP view come through, and the VLAN
    id is reported."""
    frame = frames.syn_v4(vlan=42)
    eth = EthernetFrame.parse(frame)
    assert (eth.ethertype, eth.vlan_id, eth.payload_offset) == (ETHERTYPE_IPV4, 42, 18)
    view = IpView.parse(frame)
    assert (view.protocol, view.src_port, view.dst_port, view.ip_offset) == (6, 40000, 443, 18)


def test_ipv4_options_and_later_fragments() -> None:
    """IPv4 options move the transport header; a later fragment has no transport header
    (no ports), while a first fragment with MF set does."""
    payload = frames.udp("10.0.0.1", "10.0.0.2", 5000, 53, b"q")
    with_options = frames.ethernet(
        frames.HOST_B,
        frames.HOST_A,
        0x0800,
        frames.ipv4("10.0.0.1", "10.0.0.2", 17, payload, options=b"\x01\x01\x01\x00"),
    )
    view = IpView.parse(with_options)
    assert view.l4_offset == 14 + 24 and view.dst_port == 53
    first = frames.ethernet(
        frames.HOST_B,
        frames.HOST_A,
        0x0800,
        frames.ipv4("10.0.0.1", "10.0.0.2", 17, payload, flags_fragment=0x2000),
    )
    assert IpView.parse(first).dst_port == 53 and IpView.parse(first).is_fragment
    later = frames.ethernet(
        frames.HOST_B,
        frames.HOST_A,
        0x0800,
        frames.ipv4("10.0.0.1", "10.0.0.2", 17, payload, flags_fragment=185),
    )
    view = IpView.parse(later)
    assert view.l4_offset is None and view.src_port is None and view.fragment_offset == 1480


def test_ipv6_extension_headers_are_walked() -> None:
    """Hop-by-hop and fragment headers before UDP are skipped to find the ports; an IPv6
    later fragment has none; too long a chain is a FrameError."""
    udp = frames.udp("fd00::1", "fd00::2", 546, 547, b"x")
    hop_by_hop = struct.pack("!BB6s", 44, 0, b"\x01\x04\x00\x00\x00\x00")
    fragment = struct.pack("!BBHI", 17, 0, 0x0001, 7)  # offset 0, M=1
    frame = frames.ethernet(
        frames.HOST_B,
        frames.HOST_A,
        0x86DD,
        frames.ipv6("fd00::1", "fd00::2", 0, hop_by_hop + fragment + udp),
    )
    view = IpView.parse(frame)
    assert (view.protocol, view.src_port, view.dst_port, view.more_fragments) == (
        17,
        546,
        547,
        True,
    )
    later_fragment = struct.pack("!BBHI", 17, 0, 8 * 10, 7)
    frame = frames.ethernet(
        frames.HOST_B,
        frames.HOST_A,
        0x86DD,
        frames.ipv6("fd00::1", "fd00::2", 44, later_fragment + udp),
    )
    view = IpView.parse(frame)
    assert view.l4_offset is None and view.fragment_offset == 80
    chain = b"".join(struct.pack("!BB6x", 60, 0) for _ in range(20))
    frame = frames.ethernet(
        frames.HOST_B, frames.HOST_A, 0x86DD, frames.ipv6("fd00::1", "fd00::2", 60, chain + udp)
    )
    with pytest.raises(FrameError, match="extension headers"):
        IpView.parse(frame)


def test_ethernet_padding_is_not_read_as_transport_data() -> None:
    """A short IPv4 packet in a padded 60-byte frame: the view ends at the IP total length,
    so a UDP header cut short by the IP length yields no ports, padding or not."""
    packet = frames.ipv4("10.0.0.1", "10.0.0.2", 17, b"\x13\x88")  # 2 bytes of UDP only
    frame = frames.ethernet(frames.HOST_B, frames.HOST_A, 0x0800, packet).ljust(60, b"\xaa")
    view = IpView.parse(frame)
    assert view.end == 14 + 22 and view.src_port is None


def test_version_mismatch_and_bad_lengths_are_frame_errors() -> None:
    """IPv4 ethertype over a v6 header, IHL < 5, total length < IHL, and options running
    past the packet's end all raise FrameError."""
    packet = frames.ipv4("10.0.0.1", "10.0.0.2", 17, b"\x13\x88")  # total length 22
    good = frames.ethernet(frames.HOST_B, frames.HOST_A, 0x0800, packet)
    IpView.parse(good)
    for offset, value in ((14, b"\x65"), (14, b"\x44"), (16, b"\x00\x10"), (14, b"\x4f")):
        frame = bytearray(good)
        frame[offset : offset + len(value)] = value
        with pytest.raises(FrameError):
            IpView.parse(bytes(frame))


SAMPLES = [
    frames.arp_request(frames.HOST_A, "10.0.0.1", "10.0.0.2"),
    frames.dhcp_discover(frames.HOST_A),
    frames.router_advertisement(frames.HOST_A),
    frames.syn_v4(),
    frames.syn_v4(vlan=7),
    frames.syn_v6(),
    frames.icmp_echo_v4(frames.HOST_A, frames.HOST_B),
]


def _parse_all(data: bytes) -> None:
    try:
        eth = EthernetFrame.parse(data)
        _ = (eth.is_broadcast, eth.is_multicast)
    except FrameError:
        pass
    try:
        view = IpView.parse(data)
        _ = (view.src, view.dst, view.is_fragment)
    except FrameError:
        pass


def test_every_truncation_of_real_frames_raises_only_frame_error() -> None:
    """Cutting any sample frame at any length never raises anything but FrameError."""
    for frame in SAMPLES:
        for cut in range(len(frame) + 1):
            _parse_all(frame[:cut])


def test_fuzzed_frames_raise_only_frame_error() -> None:
    """Random bytes, random bytes behind IPv4/IPv6/VLAN ethertypes, and real frames with
    random bytes flipped: only FrameError, never IndexError/struct.error/etc."""
    rng = random.Random(20240611)
    for _ in range(20000):
        kind = rng.randrange(4)
        if kind == 0:
            data = rng.randbytes(rng.randrange(80))
        elif kind in (1, 2):
            ethertype = (0x0800, 0x86DD)[kind - 1]
            version = 0x40 if ethertype == 0x0800 else 0x60
            body = bytearray(rng.randbytes(rng.randrange(90)))
            if body:
                body[0] = version | (body[0] & 0x0F)
            tag = struct.pack("!HH", 0x8100, 5) if rng.random() < 0.3 else b""
            data = frames.HOST_B + frames.HOST_A + tag + struct.pack("!H", ethertype) + bytes(body)
        else:
            mutable = bytearray(rng.choice(SAMPLES))
            for _ in range(rng.randrange(1, 6)):
                mutable[rng.randrange(len(mutable))] = rng.randrange(256)
            data = bytes(mutable[: rng.randrange(len(mutable) + 1)])
        _parse_all(data)


def test_frame_error_is_a_value_error() -> None:
    """Callers that catch ValueError catch FrameError too."""
    assert issubclass(FrameError, ValueError)
    with pytest.raises(ValueError):
        EthernetFrame.parse(b"\x00" * 13)
