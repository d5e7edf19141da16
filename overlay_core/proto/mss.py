"""TCP MSS clamping in the data path, so hosts on a network need no iptables rule.

A TCP endpoint announces in its SYN (and SYN-ACK) the largest segment it will accept; the
peer then sends segments up to that size. If the announced MSS is larger than what fits the
overlay without fragmenting (or than the network's fixed MSS policy), we lower the option
in flight. Only the two bytes of the option change, so the TCP checksum is patched
incrementally (RFC 1624, eqn. 3) instead of being recomputed over the whole segment.

Performance: clamp_mss runs on every frame leaving (or entering) a TAP when clamping is on.
Almost none are TCP SYNs, so it reads the ethertype and IP protocol bytes directly and
returns the same object before building any view; only TCP frames pay for a parse.
"""

from __future__ import annotations

from .ethernet import (
    ETH_HEADER_LEN,
    ETHERTYPE_IPV4,
    ETHERTYPE_IPV6,
    ETHERTYPE_QINQ,
    ETHERTYPE_VLAN,
    IPPROTO_TCP,
    VLAN_TAG_LEN,
    FrameError,
    IpView,
)

IPV4_HEADER_LEN = 20  # without options
IPV6_HEADER_LEN = 40  # without extension headers
TCP_HEADER_LEN = 20  # without options
_TCP_SYN = 0x02
_OPT_END, _OPT_NOP, _OPT_MSS = 0, 1, 2
# Next-header values that may precede TCP in IPv6 (hop-by-hop, routing, fragment, dest
# options, AH): only these send an IPv6 frame down the slow path.
_IPV6_MAYBE_TCP = frozenset({IPPROTO_TCP, 0, 43, 44, 51, 60})


def mss_for(mtu: int, ipv6: bool) -> int:
    """The MSS that makes a full TCP segment fill, and not exceed, an IP packet of `mtu`.

    MSS counts TCP payload only: mtu - IP header (20 or 40) - TCP header (20), assuming no
    IP or TCP options (RFC 879; options eat into the payload, so that errs small). Pass the
    MTU the inner IP packet must fit: the network (TAP) MTU for a fixed policy, or for
    "auto" the path MTU minus the overlay's encapsulation and the 14-byte Ethernet header.
    """
    overhead = (IPV6_HEADER_LEN if ipv6 else IPV4_HEADER_LEN) + TCP_HEADER_LEN
    if mtu <= overhead:
        raise ValueError(f"an MTU of {mtu} leaves no room for TCP payload")
    return min(mtu - overhead, 0xFFFF)


def clamp_mss_to_mtu(frame: bytes, mtu: int) -> bytes:
    """clamp_mss with the limit mss_for(mtu) for the frame's own IP version (looked up
    past a VLAN tag), for the "auto" policy where IPv4 and IPv6 need different limits.
    An MTU too small for any TCP payload leaves the frame unchanged: the overlay still
    fragments it, clamping just can't help."""
    if len(frame) < ETH_HEADER_LEN + IPV4_HEADER_LEN + TCP_HEADER_LEN:
        return frame
    ethertype = (frame[12] << 8) | frame[13]
    if ethertype in (ETHERTYPE_VLAN, ETHERTYPE_QINQ):
        ethertype = (frame[16] << 8) | frame[17]
    if ethertype not in (ETHERTYPE_IPV4, ETHERTYPE_IPV6):
        return frame
    ipv6 = ethertype == ETHERTYPE_IPV6
    if mtu <= (IPV6_HEADER_LEN if ipv6 else IPV4_HEADER_LEN) + TCP_HEADER_LEN:
        return frame
    return clamp_mss(frame, mss_for(mtu, ipv6))


def _add16(a: int, b: int) -> int:
    total = a + b
    return (total & 0xFFFF) + (total >> 16)


def _swap16(value: int) -> int:
    return ((value & 0xFF) << 8) | (value >> 8)


def clamp_mss(frame: bytes, max_mss: int) -> bytes:
    """`frame` with the MSS option of a TCP SYN lowered to `max_mss`, or the same object if
    there is nothing to change (not TCP, not SYN, no MSS option, MSS already small enough,
    a later IP fragment, or a truncated/malformed frame)."""
    if not 0 < max_mss <= 0xFFFF:
        raise ValueError(f"max_mss {max_mss} out of range 1..65535")
    # Fast path: decide from fixed offsets whether this can be TCP at all.
    if len(frame) < ETH_HEADER_LEN + IPV4_HEADER_LEN + TCP_HEADER_LEN:
        return frame
    offset = 12
    ethertype = (frame[offset] << 8) | frame[offset + 1]
    if ethertype in (ETHERTYPE_VLAN, ETHERTYPE_QINQ):
        offset += VLAN_TAG_LEN
        ethertype = (frame[offset] << 8) | frame[offset + 1]
    ip = offset + 2
    # (The length check above covers every byte read here, VLAN tag or not.) Where the TCP
    # header's place is obvious, reject non-SYN segments before parsing anything: that is
    # nearly all TCP. A wrong guess (IPv4 later fragment) only costs the full parse below.
    if ethertype == ETHERTYPE_IPV4:
        if frame[ip + 9] != IPPROTO_TCP:
            return frame
        flags_at = ip + (frame[ip] & 0x0F) * 4 + 13
    elif ethertype == ETHERTYPE_IPV6:
        if frame[ip + 6] not in _IPV6_MAYBE_TCP:
            return frame
        flags_at = ip + IPV6_HEADER_LEN + 13 if frame[ip + 6] == IPPROTO_TCP else 0
    else:
        return frame
    if flags_at and (flags_at >= len(frame) or not frame[flags_at] & _TCP_SYN):
        return frame
    try:
        view = IpView.parse(frame)
    except FrameError:
        return frame
    t = view.l4_offset
    if view.protocol != IPPROTO_TCP or t is None or t + TCP_HEADER_LEN > view.end:
        return frame
    if not frame[t + 13] & _TCP_SYN:
        return frame
    header_len = (frame[t + 12] >> 4) * 4
    if header_len < TCP_HEADER_LEN or t + header_len > view.end:
        return frame
    position = _find_mss(frame, t + TCP_HEADER_LEN, t + header_len)
    if position is None:
        return frame
    old = (frame[position] << 8) | frame[position + 1]
    if old <= max_mss:
        return frame
    out = bytearray(frame)
    out[position : position + 2] = max_mss.to_bytes(2, "big")
    # RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'). The checksum sums 16-bit words aligned to
    # the TCP header; a field at an odd offset straddles two words and contributes its
    # bytes swapped, and one's-complement sums commute with byte swapping.
    old_word, new_word = old, max_mss
    if (position - t) % 2:
        old_word, new_word = _swap16(old), _swap16(max_mss)
    checksum = (frame[t + 16] << 8) | frame[t + 17]
    total = _add16(_add16(~checksum & 0xFFFF, ~old_word & 0xFFFF), new_word)
    out[t + 16 : t + 18] = (~total & 0xFFFF).to_bytes(2, "big")
    return bytes(out)


def _find_mss(frame: bytes, start: int, end: int) -> int | None:
    """Offset of the 2-byte MSS value among the TCP options in [start, end), or None."""
    i = start
    while i < end:
        kind = frame[i]
        if kind == _OPT_END:
            return None
        if kind == _OPT_NOP:
            i += 1
            continue
        if i + 1 >= end:
            return None
        length = frame[i + 1]
        if length < 2 or i + length > end:
            return None  # malformed options: leave the segment to the receiver's judgement
        if kind == _OPT_MSS:
            return i + 2 if length == 4 else None
        i += length
    return None
