"""Real Ethernet frames built with struct, for the data-path tests (ethernet, rules, MSS,
switch). Checksums are computed from scratch here, independently of overlay_core."""

from __future__ import annotations

import ipaddress
import struct

BROADCAST = b"\xff" * 6
HOST_A = bytes.fromhex("001122334455")  # a vendor (globally administered) MAC
HOST_B = bytes.fromhex("00aabbccddee")

TCP_SYN, TCP_ACK = 0x02, 0x10


def ones_sum(data: bytes) -> int:
    """16-bit one's-complement sum (RFC 1071), folded."""
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def checksum(data: bytes) -> int:
    return ~ones_sum(data) & 0xFFFF


def pseudo_header(src: str, dst: str, protocol: int, length: int) -> bytes:
    s, d = ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed
    if len(s) == 4:
        return s + d + struct.pack("!BBH", 0, protocol, length)
    return s + d + struct.pack("!IxxxB", length, protocol)


def ethernet(
    dst: bytes, src: bytes, ethertype: int, payload: bytes, vlan: int | None = None
) -> bytes:
    tag = struct.pack("!HH", 0x8100, vlan) if vlan is not None else b""
    return dst + src + tag + struct.pack("!H", ethertype) + payload


def ipv4(
    src: str,
    dst: str,
    protocol: int,
    payload: bytes,
    *,
    flags_fragment: int = 0,
    options: bytes = b"",
) -> bytes:
    ihl = (20 + len(options)) // 4
    header = (
        struct.pack(
            "!BBHHHBBH4s4s",
            0x40 | ihl,
            0,
            4 * ihl + len(payload),
            0x1234,
            flags_fragment,
            64,
            protocol,
            0,
            ipaddress.IPv4Address(src).packed,
            ipaddress.IPv4Address(dst).packed,
        )
        + options
    )
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + payload


def ipv6(src: str, dst: str, next_header: int, payload: bytes, *, hop_limit: int = 64) -> bytes:
    return (
        struct.pack(
            "!IHBB16s16s",
            0x60000000,
            len(payload),
            next_header,
            hop_limit,
            ipaddress.IPv6Address(src).packed,
            ipaddress.IPv6Address(dst).packed,
        )
        + payload
    )


def udp(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    length = 8 + len(payload)
    segment = struct.pack("!HHHH", sport, dport, length, 0) + payload
    value = checksum(pseudo_header(src, dst, 17, length) + segment) or 0xFFFF
    return segment[:6] + struct.pack("!H", value) + segment[8:]


def tcp(
    src: str,
    dst: str,
    sport: int,
    dport: int,
    flags: int,
    options: bytes = b"",
    payload: bytes = b"",
) -> bytes:
    assert len(options) % 4 == 0
    header = struct.pack(
        "!HHIIBBHHH", sport, dport, 1000, 0, (5 + len(options) // 4) << 4, flags, 64240, 0, 0
    )
    segment = header + options + payload
    value = checksum(pseudo_header(src, dst, 6, len(segment)) + segment)
    return segment[:16] + struct.pack("!H", value) + segment[18:]


def tcp_checksum_ok(src: str, dst: str, segment: bytes) -> bool:
    """The full from-scratch check: the sum over pseudo-header and segment is 0xFFFF."""
    return ones_sum(pseudo_header(src, dst, 6, len(segment)) + segment) == 0xFFFF


def frame_checksums_ok(frame: bytes) -> bool:
    """Whether an untagged frame's IPv4 header checksum and TCP/UDP checksum are right
    (False for anything else, fragments included; an IPv4 UDP checksum of 0 means none
    was sent and counts as right). From scratch, for the offload tests."""
    n, ethertype = len(frame), frame[12:14]
    if ethertype == b"\x08\x00" and n >= 34 and frame[14] >> 4 == 4:
        ihl = (frame[14] & 0x0F) * 4
        if ihl < 20 or 14 + ihl > n or ones_sum(frame[14 : 14 + ihl]) != 0xFFFF:
            return False
        if frame[20] & 0x3F or frame[21]:
            return False
        end, l4, proto, addresses = (
            14 + int.from_bytes(frame[16:18], "big"),
            14 + ihl,
            frame[23],
            frame[26:34],
        )
    elif ethertype == b"\x86\xdd" and n >= 54 and frame[14] >> 4 == 6:
        end, l4, proto, addresses = (
            54 + int.from_bytes(frame[18:20], "big"),
            54,
            frame[20],
            frame[22:54],
        )
    else:
        return False
    if end > n or proto not in (6, 17) or end - l4 < (20 if proto == 6 else 8):
        return False
    if proto == 17 and ethertype == b"\x08\x00" and frame[l4 + 6 : l4 + 8] == b"\0\0":
        return True
    pseudo = addresses + struct.pack("!BBH", 0, proto, end - l4)
    return ones_sum(pseudo + frame[l4:end]) == 0xFFFF


def tcp_checksum_recomputed(src: str, dst: str, segment: bytes) -> int:
    zeroed = segment[:16] + b"\x00\x00" + segment[18:]
    return checksum(pseudo_header(src, dst, 6, len(segment)) + zeroed)


MSS_1460 = struct.pack("!BBH", 2, 4, 1460)
# A Linux-style SYN option block: MSS, SACK permitted, timestamps, NOP, window scale.
LINUX_SYN_OPTIONS = (
    MSS_1460 + b"\x04\x02" + struct.pack("!BBII", 8, 10, 123456, 0) + b"\x01\x03\x03\x07"
)


def arp_request(sender_mac: bytes, sender_ip: str, target_ip: str) -> bytes:
    body = struct.pack(
        "!HHBBH6s4s6s4s",
        1,
        0x0800,
        6,
        4,
        1,
        sender_mac,
        ipaddress.IPv4Address(sender_ip).packed,
        b"\x00" * 6,
        ipaddress.IPv4Address(target_ip).packed,
    )
    return ethernet(BROADCAST, sender_mac, 0x0806, body + b"\x00" * 18)


def dhcp_discover(client_mac: bytes) -> bytes:
    bootp = struct.pack(
        "!BBBBIHH4s4s4s4s16s",
        1,
        1,
        6,
        0,
        0xDEADBEEF,
        0,
        0x8000,
        b"\0" * 4,
        b"\0" * 4,
        b"\0" * 4,
        b"\0" * 4,
        client_mac.ljust(16, b"\0"),
    )
    bootp += b"\x00" * 192 + b"\x63\x82\x53\x63" + b"\x35\x01\x01\xff"
    return ethernet(
        BROADCAST,
        client_mac,
        0x0800,
        ipv4("0.0.0.0", "255.255.255.255", 17, udp("0.0.0.0", "255.255.255.255", 68, 67, bootp)),
    )


def dhcp_offer(server_mac: bytes, client_mac: bytes) -> bytes:
    bootp = b"\x02\x01\x06\x00" + b"\x00" * 232 + b"\x63\x82\x53\x63\x35\x01\x02\xff"
    return ethernet(
        client_mac,
        server_mac,
        0x0800,
        ipv4("192.168.1.1", "192.168.1.50", 17, udp("192.168.1.1", "192.168.1.50", 67, 68, bootp)),
    )


def router_advertisement(router_mac: bytes) -> bytes:
    src, dst = "fe80::1", "ff02::1"
    body = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 1800, 0, 0) + struct.pack(
        "!BB6s", 1, 1, router_mac
    )
    value = checksum(pseudo_header(src, dst, 58, len(body)) + body)
    body = body[:2] + struct.pack("!H", value) + body[4:]
    return ethernet(
        bytes.fromhex("333300000001"), router_mac, 0x86DD, ipv6(src, dst, 58, body, hop_limit=255)
    )


def icmp_echo_v4(src_mac: bytes, dst_mac: bytes) -> bytes:
    body = struct.pack("!BBHHH", 8, 0, 0, 1, 1) + b"ping"
    body = body[:2] + struct.pack("!H", checksum(body)) + body[4:]
    return ethernet(dst_mac, src_mac, 0x0800, ipv4("10.0.0.1", "10.0.0.2", 1, body))


def syn_v4(
    options: bytes = LINUX_SYN_OPTIONS,
    *,
    vlan: int | None = None,
    flags: int = TCP_SYN,
    src_mac: bytes = HOST_A,
    dst_mac: bytes = HOST_B,
) -> bytes:
    segment = tcp("10.1.0.1", "10.1.0.2", 40000, 443, flags, options)
    return ethernet(dst_mac, src_mac, 0x0800, ipv4("10.1.0.1", "10.1.0.2", 6, segment), vlan)


def syn_v6(
    options: bytes = LINUX_SYN_OPTIONS, *, vlan: int | None = None, flags: int = TCP_SYN
) -> bytes:
    segment = tcp("fd00::1", "fd00::2", 40000, 22, flags, options)
    return ethernet(HOST_B, HOST_A, 0x86DD, ipv6("fd00::1", "fd00::2", 6, segment), vlan)
