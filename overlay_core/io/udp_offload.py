"""UDP segmentation (GSO) on send and coalescing (GRO) on receive, with their probes.

One `sendmsg` with a UDP_SEGMENT control message hands the kernel up to 64 datagrams of
one size (the last may be shorter), which it sends as separate datagrams: one system call
and one trip through the stack instead of 40. With UDP_GRO set on a socket, one
`recvmsg` returns a run of datagrams from one sender glued together, the run's segment
size in a UDP_GRO control message. Measured with 1400-byte datagrams on loopback: 2.0
Gbit/s with one send each, 29 Gbit/s with GSO/GRO.

Both are Linux-only and newer than the kernels some NAS vendors ship: UDP_SEGMENT came in
4.18, UDP_GRO in 5.0 (Synology DSM 7 runs 4.4). Each is probed per socket at start;
without them datagrams go by sendmmsg / recvmmsg, many per call (udp_mmsg.py). A GSO
send can still fail at run time: EIO where the outgoing device has no checksum offload
(the kernel can't segment there), EINVAL for a run the route's MTU can't carry; the
caller falls back to sendmmsg (for EIO, for good).

Python's socket module has neither constant (linux/udp.h: SOL_UDP 17, UDP_SEGMENT 103,
UDP_GRO 104).
"""

from __future__ import annotations

import socket
import struct

SOL_UDP = 17
UDP_SEGMENT = 103
UDP_GRO = 104
# linux/udp.h UDP_MAX_SEGMENTS (64 before 6.x kernels raised it; 64 works everywhere).
MAX_SEGMENTS = 64
# A UDP datagram's length field is 16 bits; the IPv6 header doesn't count, the UDP one does.
MAX_GSO_BYTES = 65535 - 8 - 40
_U16 = struct.Struct("=H")
_INT = struct.Struct("=i")
# Room for one int control message (UDP_GRO) and the address-family extras.
GRO_CMSG_SPACE = socket.CMSG_SPACE(4) + 64


def enable_gro(sock: socket.socket) -> bool:
    """Ask for coalesced receives; False where the kernel has no UDP_GRO (< 5.0)."""
    try:
        sock.setsockopt(SOL_UDP, UDP_GRO, 1)
    except OSError:
        return False
    return True


def probe_gso(sock: socket.socket) -> bool:
    """Does this kernel take UDP_SEGMENT? Sets and clears the socket-wide default size."""
    try:
        sock.setsockopt(SOL_UDP, UDP_SEGMENT, 1280)
        sock.setsockopt(SOL_UDP, UDP_SEGMENT, 0)
    except OSError:
        return False
    return True


def gso_control(size: int) -> list[tuple[int, int, bytes]]:
    """The ancillary data of a sendmsg that segments its payload into `size`-byte datagrams."""
    return [(SOL_UDP, UDP_SEGMENT, _U16.pack(size))]


def gro_size(ancdata: list[tuple[int, int, bytes]]) -> int:
    """The segment size of a coalesced receive, 0 when the read is one datagram."""
    for level, kind, data in ancdata:
        if level == SOL_UDP and kind == UDP_GRO and len(data) >= _INT.size:
            return int(_INT.unpack_from(data)[0])
    return 0


def split_gro(data: memoryview, size: int) -> list[bytes]:
    """The datagrams of one coalesced receive (every one `size` bytes, the last maybe less)."""
    if size <= 0 or len(data) <= size:
        return [bytes(data)]
    return [bytes(data[i : i + size]) for i in range(0, len(data), size)]


def gso_runs(datagrams: list[bytes]) -> list[list[bytes]]:
    """Split `datagrams` (kept in order) into runs one GSO send can carry: every datagram
    of a run as long as its first, except the last, which may be shorter and ends it; at
    most MAX_SEGMENTS datagrams and MAX_GSO_BYTES bytes."""
    runs: list[list[bytes]] = []
    run: list[bytes] = []
    size = total = 0
    for datagram in datagrams:
        n = len(datagram)
        if run and (n > size or len(run) >= MAX_SEGMENTS or total + n > MAX_GSO_BYTES):
            runs.append(run)
            run = []
        if not run:
            size = n
            total = 0
        run.append(datagram)
        total += n
        if n < size:  # a short one can only end a run
            runs.append(run)
            run = []
    if run:
        runs.append(run)
    return runs
