"""ICMP errors for our own datagrams, as the kernel queues them (IP_RECVERR).

`parse_recverr` turns one error-queue entry's control message into an `IcmpError`
(udp_contract): what kind it is ("mtu", "port_unreachable", "unreachable",
"ttl_exceeded", "local", "other"), the endpoint our datagram was for, the MTU a "too big"
names, and the router that sent it. udp.py reads the queue; this only parses.
"""

from __future__ import annotations

import errno
import socket
import struct
from dataclasses import dataclass

from overlay_core.proto.effects import udp

from .udp_contract import IcmpError

# <linux/errqueue.h>, <linux/in.h>, <linux/in6.h>; the socket module lacks some of them.
_SOL_IP = socket.IPPROTO_IP
_SOL_IPV6 = socket.IPPROTO_IPV6
_IP_RECVERR = getattr(socket, "IP_RECVERR", 11)
_IPV6_RECVERR = getattr(socket, "IPV6_RECVERR", 25)
SO_EE_ORIGIN_LOCAL = 1
SO_EE_ORIGIN_ICMP = 2
SO_EE_ORIGIN_ICMP6 = 3
# struct sock_extended_err: u32 ee_errno; u8 ee_origin, ee_type, ee_code, ee_pad;
# u32 ee_info, ee_data; host byte order. The offender's sockaddr follows it.
_EXTENDED_ERR = struct.Struct("=IBBBBII")


@dataclass(frozen=True, slots=True)
class _IcmpCodes:
    """Where one ICMP version puts what we read: "too big" and "unreachable"."""

    too_big: int  # ICMP dest-unreachable / ICMPv6 packet-too-big type...
    too_big_codes: range  # ...and the codes that mean "too big" (v6: the type says it)
    unreachable: int  # the destination-unreachable type
    port_unreachable: int  # its port-unreachable code
    time_exceeded: int  # TTL / hop limit ran out on the way


_ICMP_CODES = {
    SO_EE_ORIGIN_ICMP: _IcmpCodes(3, range(4, 5), 3, port_unreachable=3, time_exceeded=11),
    SO_EE_ORIGIN_ICMP6: _IcmpCodes(2, range(256), 1, port_unreachable=4, time_exceeded=3),
}
# The offender's address follows the extended error (SO_EE_OFFENDER): a sockaddr_in or
# sockaddr_in6, family AF_UNSPEC when the kernel does not know it.
_SOCKADDR_FAMILY = struct.Struct("=H")


def parse_recverr(
    level: int, kind: int, data: bytes, dest: tuple[str | int, ...]
) -> IcmpError | None:
    """One IP_RECVERR / IPV6_RECVERR control message (`level`, `kind` = cmsg_type,
    `data`) of an error-queue entry whose msg_name was `dest`; None for anything else."""
    if not (
        (level == _SOL_IP and kind == _IP_RECVERR) or (level == _SOL_IPV6 and kind == _IPV6_RECVERR)
    ):
        return None
    if len(data) < _EXTENDED_ERR.size or len(dest) < 2:
        return None
    err, origin, icmp_type, code, _pad, info, _data = _EXTENDED_ERR.unpack_from(data)
    mtu: int | None = None
    codes = _ICMP_CODES.get(origin)
    if codes is None:
        what = "local" if origin == SO_EE_ORIGIN_LOCAL else "other"
    elif icmp_type == codes.too_big and code in codes.too_big_codes and err == errno.EMSGSIZE:
        what, mtu = "mtu", info
    elif icmp_type == codes.unreachable:
        what = "port_unreachable" if code == codes.port_unreachable else "unreachable"
    elif icmp_type == codes.time_exceeded:
        what = "ttl_exceeded"
    else:
        what = "other"
    endpoint = udp(str(dest[0]), int(dest[1]))
    offender = _offender(data[_EXTENDED_ERR.size :])
    return IcmpError(what, endpoint, err, origin, icmp_type, code, mtu, offender)


def _offender(raw: bytes) -> str | None:
    """The address in a sockaddr_in / sockaddr_in6 (SO_EE_OFFENDER); None if absent."""
    if len(raw) < _SOCKADDR_FAMILY.size:
        return None
    (family,) = _SOCKADDR_FAMILY.unpack_from(raw)
    if family == socket.AF_INET and len(raw) >= 8:
        return socket.inet_ntop(socket.AF_INET, raw[4:8])
    if family == socket.AF_INET6 and len(raw) >= 24:
        return socket.inet_ntop(socket.AF_INET6, raw[8:24])
    return None
