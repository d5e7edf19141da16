"""Ethernet-layer views of frames, and the MAC address each member has on a network.

Two halves, both pure (stdlib only, no I/O):

* **Derived MACs.** A member's MAC on a network is a function of its 40-bit overlay address
  and the 64-bit network id, and the function can be run backwards. A switch therefore
  needs no table entry for ordinary members: the destination MAC names the member. Only
  hosts behind a bridging member have MACs we cannot decode; those are learned (switch.py).

* **Frame views.** `EthernetFrame.parse` reads the header (skipping one 802.1Q/802.1ad
  tag); `IpView.parse` reads the IPv4/IPv6 header and, where present, the TCP/UDP/SCTP ports or
  the ICMP/ICMPv6 type. The data path runs them on every frame from a TAP or a peer, so
  every read is bounds-checked: for any bytes at all, the only exception they raise is
  `FrameError` (a ValueError). Fields the frame is too short to hold beyond the IP header
  (e.g. ports of a truncated datagram) come back as None rather than raising.
"""

from __future__ import annotations

import hashlib
import ipaddress
from functools import lru_cache
from typing import NamedTuple

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_ARP = 0x0806
ETHERTYPE_IPV6 = 0x86DD
ETHERTYPE_VLAN = 0x8100  # 802.1Q
ETHERTYPE_QINQ = 0x88A8  # 802.1ad outer tag; we skip one tag of either kind

IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_ICMPV6 = 58
IPPROTO_SCTP = 132
# Transport protocols whose header starts with 16-bit source and destination ports.
PORT_PROTOCOLS = frozenset({IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP})

ETH_HEADER_LEN = 14
VLAN_TAG_LEN = 4
MAC_LEN = 6
BROADCAST_MAC = b"\xff" * MAC_LEN

# A hostile frame could chain extension headers to make us loop; real traffic uses a few.
MAX_IPV6_EXT_HEADERS = 8
_IPV6_EXT_PLAIN = frozenset({0, 43, 60})  # hop-by-hop, routing, destination options
_IPV6_EXT_FRAGMENT = 44
_IPV6_EXT_AH = 51

_ADDRESS_MASK = (1 << 40) - 1
_NWID_MASK = (1 << 64) - 1
_QEMU_FIRST_OCTET = 0x52  # 52:54:00 is QEMU's default prefix; ZeroTier avoids it too
_QEMU_SUBSTITUTE = 0x32


class FrameError(ValueError):
    """The frame is too short or malformed for the view asked of it (or isn't IP at all,
    for IpView). The only exception the parsers here raise: callers count and drop."""


# --------------------------------------------------------------------------- derived MACs
#
# Construction: h = BLAKE2b-64(b"ztui-mac" + nwid as 8 bytes, big-endian).
#   first octet = (h[0] & 0xFE) | 0x02, with 0x52 replaced by 0x32
#   octets 1..5 = address (40 bits, big-endian) XOR h[1:6]
#
# Clearing 0x01 makes every derived MAC unicast; setting 0x02 marks it locally
# administered, so it can never collide with a vendor-assigned (globally unique) NIC MAC
# behind a bridge. XOR with a per-network mask gives one member a different MAC on each
# network (a host bridging two networks would otherwise see the same MAC on two ports) and
# is its own inverse, which is what makes address_from_mac possible. ZeroTier XORs the
# address with the raw bytes of the network id instead; we hash first so that every bit
# of the id changes the MACs, not only the bits that happen to land in the mask (two of
# our network numbers differing in their lowest two bits would share MACs under ZeroTier's
# layout). The first octet doubles as a network tag: a MAC whose first octet differs is
# rejected without looking further.


@lru_cache(maxsize=256)
def _mac_key(nwid: int) -> tuple[int, int]:
    """(first octet, 40-bit XOR mask) for a network; cached, since lookups are per frame."""
    digest = hashlib.blake2b(b"ztui-mac" + nwid.to_bytes(8, "big"), digest_size=8).digest()
    first = (digest[0] & 0xFE) | 0x02
    if first == _QEMU_FIRST_OCTET:
        first = _QEMU_SUBSTITUTE
    return first, int.from_bytes(digest[1:6], "big")


def _is_reserved_address(address: int) -> bool:
    # Same rule as identity.is_reserved_address (kept here so this module is stdlib-only):
    # 0 is "nobody" and a first byte of 0xff marks a fragment on the wire.
    return address == 0 or (address >> 32) == 0xFF


def mac_for(nwid: int, address: int) -> bytes:
    """The 6-byte MAC the member `address` has on network `nwid`."""
    if not 0 <= address <= _ADDRESS_MASK:
        raise ValueError(f"an overlay address is 40 bits, got {address:#x}")
    if not 0 <= nwid <= _NWID_MASK:
        raise ValueError(f"a network id is 64 bits, got {nwid:#x}")
    first, mask = _mac_key(nwid)
    return bytes([first]) + (address ^ mask).to_bytes(5, "big")


def address_from_mac(nwid: int, mac: bytes) -> int | None:
    """The member address a derived MAC stands for, or None if `mac` is not of the
    derived form on this network (a host behind a bridge, another network's MAC, junk)."""
    if len(mac) != MAC_LEN or not 0 <= nwid <= _NWID_MASK:
        return None
    first, mask = _mac_key(nwid)
    if mac[0] != first:
        return None
    address = int.from_bytes(mac[1:], "big") ^ mask
    return None if _is_reserved_address(address) else address


def format_mac(mac: bytes) -> str:
    if len(mac) != MAC_LEN:
        raise ValueError(f"a MAC is 6 bytes, got {len(mac)}")
    return ":".join(f"{b:02x}" for b in mac)


def parse_mac(text: str) -> bytes:
    """Parse `aa:bb:cc:dd:ee:ff` (or with dashes); raise ValueError saying what's wrong."""
    parts = text.strip().replace("-", ":").split(":")
    if len(parts) != MAC_LEN or not all(
        len(p) == 2 and all(c in "0123456789abcdefABCDEF" for c in p) for p in parts
    ):
        raise ValueError(f"a MAC is six hex pairs like 02:ab:cd:ef:01:23, got {text!r}")
    return bytes(int(p, 16) for p in parts)


def is_multicast(mac: bytes) -> bool:
    """Group address (the I/G bit); broadcast is a multicast address too."""
    return bool(mac[0] & 0x01)


def is_broadcast(mac: bytes) -> bool:
    return mac == BROADCAST_MAC


# --------------------------------------------------------------------------- frame views
#
# The views are NamedTuples rather than frozen dataclasses: they are built for every frame,
# and a frozen dataclass's __init__ (one object.__setattr__ per field) costs several times
# as much. They are just as immutable.


class EthernetFrame(NamedTuple):
    """The Ethernet header. `ethertype` is the inner one when a VLAN tag is present (values
    below 0x0600 are an 802.3 length, reported as they are); the ethertype's payload starts
    at `payload_offset` in the frame."""

    dst: bytes
    src: bytes
    ethertype: int
    vlan_id: int | None
    payload_offset: int

    @classmethod
    def parse(cls, frame: bytes) -> EthernetFrame:
        if len(frame) < ETH_HEADER_LEN:
            raise FrameError(f"{len(frame)}-byte frame is shorter than an Ethernet header")
        ethertype = (frame[12] << 8) | frame[13]
        vlan_id = None
        offset = ETH_HEADER_LEN
        if ethertype in (ETHERTYPE_VLAN, ETHERTYPE_QINQ):
            if len(frame) < ETH_HEADER_LEN + VLAN_TAG_LEN:
                raise FrameError("frame ends inside its VLAN tag")
            vlan_id = ((frame[14] << 8) | frame[15]) & 0x0FFF
            ethertype = (frame[16] << 8) | frame[17]
            offset += VLAN_TAG_LEN
        return cls(bytes(frame[0:6]), bytes(frame[6:12]), ethertype, vlan_id, offset)

    @property
    def is_broadcast(self) -> bool:
        return is_broadcast(self.dst)

    @property
    def is_multicast(self) -> bool:
        return is_multicast(self.dst)


class IpView(NamedTuple):
    """The IP header of a frame and the first bytes of what it carries.

    Offsets index the frame. `protocol` is the upper-layer protocol (for IPv6, after the
    extension headers). `l4_offset` is where the transport header starts, or None in a
    fragment other than the first (it has no transport header). `end` is where the IP
    packet ends: its stated length, cut at the frame's end if the frame is truncated.
    Ports are set for TCP/UDP/SCTP and `icmp_type` for ICMP (IPv4) / ICMPv6 (IPv6), when the
    frame holds them.
    """

    version: int
    protocol: int
    ip_offset: int
    l4_offset: int | None
    end: int
    fragment_offset: int  # bytes; IPv6 from its Fragment header, else 0
    more_fragments: bool
    src_raw: bytes
    dst_raw: bytes
    src_port: int | None = None
    dst_port: int | None = None
    icmp_type: int | None = None

    @property
    def src(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        return ipaddress.ip_address(self.src_raw)

    @property
    def dst(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        return ipaddress.ip_address(self.dst_raw)

    @property
    def is_fragment(self) -> bool:
        return self.fragment_offset != 0 or self.more_fragments

    @classmethod
    def parse(cls, frame: bytes, eth: EthernetFrame | None = None) -> IpView:
        """Raise FrameError if the frame isn't IPv4/IPv6 or its IP header is malformed."""
        if eth is None:
            eth = EthernetFrame.parse(frame)
        if eth.ethertype == ETHERTYPE_IPV4:
            return _parse_ipv4(frame, eth.payload_offset)
        if eth.ethertype == ETHERTYPE_IPV6:
            return _parse_ipv6(frame, eth.payload_offset)
        raise FrameError(f"ethertype {eth.ethertype:#06x} is not IP")


def _parse_ipv4(frame: bytes, o: int) -> IpView:
    if len(frame) < o + 20:
        raise FrameError("frame ends inside its IPv4 header")
    if frame[o] >> 4 != 4:
        raise FrameError("IPv4 ethertype but IP version is not 4")
    ihl = (frame[o] & 0x0F) * 4
    total = (frame[o + 2] << 8) | frame[o + 3]
    if ihl < 20 or total < ihl:
        raise FrameError(f"bad IPv4 header length {ihl} / total length {total}")
    end = min(len(frame), o + total)
    if o + ihl > end:
        raise FrameError("frame ends inside its IPv4 options")
    flags_fragment = (frame[o + 6] << 8) | frame[o + 7]
    fragment_offset = (flags_fragment & 0x1FFF) * 8
    protocol = frame[o + 9]
    l4_offset = o + ihl if fragment_offset == 0 else None
    return IpView(
        4,
        protocol,
        o,
        l4_offset,
        end,
        fragment_offset,
        bool(flags_fragment & 0x2000),
        bytes(frame[o + 12 : o + 16]),
        bytes(frame[o + 16 : o + 20]),
        *_transport(frame, 4, protocol, l4_offset, end),
    )


def _parse_ipv6(frame: bytes, o: int) -> IpView:
    if len(frame) < o + 40:
        raise FrameError("frame ends inside its IPv6 header")
    if frame[o] >> 4 != 6:
        raise FrameError("IPv6 ethertype but IP version is not 6")
    end = min(len(frame), o + 40 + ((frame[o + 4] << 8) | frame[o + 5]))
    next_header = frame[o + 6]
    pos = o + 40
    fragment_offset, more_fragments = 0, False
    for _ in range(MAX_IPV6_EXT_HEADERS + 1):  # the last turn may only find the end
        if next_header in _IPV6_EXT_PLAIN or next_header == _IPV6_EXT_AH:
            if pos + 2 > end:
                raise FrameError("frame ends inside an IPv6 extension header")
            units = frame[pos + 1]
            length = (units + 2) * 4 if next_header == _IPV6_EXT_AH else (units + 1) * 8
        elif next_header == _IPV6_EXT_FRAGMENT:
            if pos + 8 > end:
                raise FrameError("frame ends inside an IPv6 fragment header")
            word = (frame[pos + 2] << 8) | frame[pos + 3]
            fragment_offset, more_fragments = word & 0xFFF8, bool(word & 0x0001)
            length = 8
        else:
            break
        next_header = frame[pos]
        pos += length
    else:
        raise FrameError(f"more than {MAX_IPV6_EXT_HEADERS} IPv6 extension headers")
    if pos > end:
        raise FrameError("frame ends inside an IPv6 extension header")
    l4_offset = pos if fragment_offset == 0 else None
    return IpView(
        6,
        next_header,
        o,
        l4_offset,
        end,
        fragment_offset,
        more_fragments,
        bytes(frame[o + 8 : o + 24]),
        bytes(frame[o + 24 : o + 40]),
        *_transport(frame, 6, next_header, l4_offset, end),
    )


def _transport(
    frame: bytes, version: int, protocol: int, t: int | None, end: int
) -> tuple[int | None, int | None, int | None]:
    """(src port, dst port, ICMP type) from the transport header, where the frame has it."""
    if t is None:
        return None, None, None
    if protocol in PORT_PROTOCOLS and t + 4 <= end:
        return (frame[t] << 8) | frame[t + 1], (frame[t + 2] << 8) | frame[t + 3], None
    icmp = IPPROTO_ICMP if version == 4 else IPPROTO_ICMPV6
    if protocol == icmp and t + 1 <= end:
        return None, None, frame[t]
    return None, None, None
