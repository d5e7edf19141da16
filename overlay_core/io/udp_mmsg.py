"""sendmmsg / recvmmsg: many datagrams per system call where UDP GSO / GRO are missing.

A kernel before 4.18 (a Synology DSM 7 NAS runs 4.4) has no UDP_SEGMENT and no UDP_GRO
(udp_offload.py), so without this every datagram costs its own sendto and recvmsg. It does
have sendmmsg (3.0) and recvmmsg (2.6.33), the batch path wireguard-go takes on such
kernels; Python's socket module offers neither, so they are called from the C library
through ctypes (which releases the GIL around the call, like any socket call).

With UDP_GRO on the socket (kernel 5.0+), a receive may hold a run of datagrams glued
together, as a recvmsg's would; each receive has room for the control message that gives
the run's segment size, and the run is split back into its datagrams. recvmmsg is used
then too: GRO only coalesces where the receiving device does GRO (a physical NIC's NAPI;
not a veth without it, where every recvmsg returns one datagram).

Measured on the bench rig (pc1 to pc2 through two NAT routers, 1432-byte datagrams, Python
sender and receiver; bench-overlay's bare UDP lines, bench/overlay/bare_udp.py): one
sendto each moves ~1.0 Gbit/s, sendmmsg of 45 ~1.25 Gbit/s; the kernel still routes each
datagram alone, only the calls are fewer. UDP GSO, where the kernel has it, stays ahead
(~2.0 Gbit/s) and is preferred.

Everything the kernel reads or writes is allocated once per socket and never moves:
`MESSAGES` slots of `SLOT_BYTES` (a whole UDP datagram, so a receive is never truncated)
for sends and as many for receives, each in an anonymous mmap whose pages only take memory
once a datagram has touched them, and the iovec / mmsghdr / sockaddr / control arrays that
point into them. A send copies each datagram into its slot and sets its length; a receive
hands back copies, so nothing a caller keeps can change under it at the next call. One
`Batcher` per socket, used from the event loop's thread only. (Sending from a thread of
its own, so the kernel's share of a send overlaps the loop's Python, was tried on the
bench rig: slower, 0.80 against 0.96 Gbit/s with GSO, 0.59 against 0.74 without.)
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import mmap
import os
import socket
import struct
from collections.abc import Sequence
from functools import lru_cache

from .udp_offload import SOL_UDP, UDP_GRO, split_gro

# Datagrams per call: as many as a GSO send carries (udp_offload.MAX_SEGMENTS), and as
# many as udp.py reads per wakeup.
MESSAGES = 64
SLOT_BYTES = 65536  # more than any UDP payload (65,507 bytes over IPv4)
# A sockaddr_in6 is 28 bytes; 32 keeps each one aligned.
NAME_BYTES = 32
# Room for one control message holding an int (UDP_GRO's segment size), aligned.
CONTROL_BYTES = socket.CMSG_SPACE(4) + 8
_MSG_DONTWAIT = socket.MSG_DONTWAIT


class _Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _Msghdr(ctypes.Structure):
    # <sys/socket.h> struct msghdr (glibc; musl's padded ints line up the same on the
    # little-endian machines a NAS uses).
    _fields_ = [
        ("name", ctypes.c_void_p),
        ("namelen", ctypes.c_uint32),
        ("iov", ctypes.c_void_p),
        ("iovlen", ctypes.c_size_t),
        ("control", ctypes.c_void_p),
        ("controllen", ctypes.c_size_t),
        ("flags", ctypes.c_int),
    ]


class _Mmsghdr(ctypes.Structure):
    _fields_ = [("hdr", _Msghdr), ("len", ctypes.c_uint)]


_MMSGHDR_BYTES = ctypes.sizeof(_Mmsghdr)
_U32 = ctypes.sizeof(ctypes.c_uint32)
# Where, in 32-bit words, each message's received length and sockaddr length are.
_LEN_WORD = _Mmsghdr.len.offset // _U32
_NAMELEN_WORD = _Msghdr.namelen.offset // _U32
_STRIDE_WORDS = _MMSGHDR_BYTES // _U32
# A receive's msg_controllen as a pointer-sized word (size_t), and the control message's
# header: cmsg_len (size_t), cmsg_level, cmsg_type (int each); native order.
_LONG = ctypes.sizeof(ctypes.c_void_p)
_CONTROLLEN_LONG = _Msghdr.controllen.offset // _LONG
_STRIDE_LONGS = _MMSGHDR_BYTES // _LONG
_CMSGHDR = struct.Struct("=" + ("Q" if _LONG == 8 else "I") + "ii")
_INT = struct.Struct("=i")
# An iovec as two pointer-sized words (size_t is as wide on Linux): base, then length.
_IOV_WORDS = ctypes.sizeof(_Iovec) // ctypes.sizeof(ctypes.c_size_t)


class _Calls:
    """The two C functions, typed; None when the C library lacks them."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self.sendmmsg = libc.sendmmsg
        self.sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
        self.sendmmsg.restype = ctypes.c_int
        self.recvmmsg = libc.recvmmsg
        self.recvmmsg.argtypes = [
            ctypes.c_int,
            ctypes.c_void_p,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_void_p,
        ]
        self.recvmmsg.restype = ctypes.c_int


@lru_cache(maxsize=1)
def _calls() -> _Calls | None:
    try:
        return _Calls()
    except (OSError, AttributeError):  # no C library by that name, or no such function
        return None


def _error() -> OSError:
    """The OSError for the errno a failed call left, as the socket module raises it
    (BlockingIOError for EAGAIN, InterruptedError for EINTR, ...)."""
    code = ctypes.get_errno()
    return OSError(code, os.strerror(code))


class Batcher:
    """One socket's sendmmsg / recvmmsg, with its fixed buffers (module docstring).
    Build with `Batcher.open(sock)`, which says None where the kernel or C library can't."""

    def __init__(self, sock: socket.socket, calls: _Calls, gro: bool) -> None:
        self._fd = sock.fileno()  # -1 once closed: the buffers are gone then
        self._calls = calls
        # Receives that came in coalesced (GRO), counted for the caller's counters.
        self.coalesced = 0
        # Sends and receives each have their own slots and iovecs: a send sets its iovecs'
        # lengths to its datagrams', and a receive must offer whole slots.
        self._send_area = mmap.mmap(-1, MESSAGES * SLOT_BYTES)
        self._recv_area = mmap.mmap(-1, MESSAGES * SLOT_BYTES)
        self._send_view = memoryview(self._send_area)
        self._recv_view = memoryview(self._recv_area)
        # Sends: every message names one destination; receives: each its own source.
        self._send_name = ctypes.create_string_buffer(NAME_BYTES)
        self._recv_names = ctypes.create_string_buffer(MESSAGES * NAME_BYTES)
        self._names_view = memoryview(self._recv_names).cast("B")
        self._send_iov = (_Iovec * MESSAGES)()
        self._recv_iov = (_Iovec * MESSAGES)()
        self._send_msgs = (_Mmsghdr * MESSAGES)()
        self._recv_msgs = (_Mmsghdr * MESSAGES)()
        for area, iovs, msgs, name, name_step in (
            (self._send_area, self._send_iov, self._send_msgs, self._send_name, 0),
            (self._recv_area, self._recv_iov, self._recv_msgs, self._recv_names, NAME_BYTES),
        ):
            base = ctypes.addressof(ctypes.c_char.from_buffer(area))
            for i in range(MESSAGES):
                iovs[i].base = base + i * SLOT_BYTES
                iovs[i].len = SLOT_BYTES
                msgs[i].hdr.iov = ctypes.addressof(iovs) + i * ctypes.sizeof(_Iovec)
                msgs[i].hdr.iovlen = 1
                msgs[i].hdr.name = ctypes.addressof(name) + i * name_step
                msgs[i].hdr.namelen = NAME_BYTES
        # With UDP_GRO on the socket a message may be a run of datagrams glued together,
        # its segment size in a control message: each receive gets room for one.
        self._control_bytes = CONTROL_BYTES if gro else 0
        self._control = ctypes.create_string_buffer(MESSAGES * CONTROL_BYTES)
        self._control_view = memoryview(self._control).cast("B")
        for i in range(MESSAGES):
            self._recv_msgs[i].hdr.control = ctypes.addressof(self._control) + i * CONTROL_BYTES
            self._recv_msgs[i].hdr.controllen = self._control_bytes
        # Word views the per-datagram loops index: the send iovecs' lengths, the received
        # lengths, and the receives' control lengths (which the kernel shrinks to what it
        # wrote, so they are set back before the next call).
        self._iov_words = memoryview(self._send_iov).cast("B").cast("P")
        self._recv_words = memoryview(self._recv_msgs).cast("B").cast("I")
        self._recv_longs = memoryview(self._recv_msgs).cast("B").cast("P")
        self._used_controls = 0

    @classmethod
    def open(cls, sock: socket.socket, gro: bool = False) -> Batcher | None:
        """A Batcher for `sock`, or None without sendmmsg/recvmmsg (no such C function, or
        ENOSYS from the kernel). Probed with zero messages: nothing is sent or consumed.
        `gro`: the socket has UDP_GRO on, so receives may come coalesced."""
        calls = _calls()
        if calls is None:
            return None
        try:
            batcher = cls(sock, calls, gro)
        except (OSError, ValueError):  # no memory for the buffers (a small NAS): go singly
            return None
        send = calls.sendmmsg(batcher._fd, ctypes.addressof(batcher._send_msgs), 0, 0)
        recv = calls.recvmmsg(batcher._fd, ctypes.addressof(batcher._recv_msgs), 0, 0, None)
        if send < 0 or recv < 0:
            batcher.close()
            return None
        return batcher

    def send(self, sockaddr: bytes, datagrams: Sequence[bytes]) -> int:
        """Send up to MESSAGES datagrams to one `sockaddr` (see `sockaddr`); how many the
        kernel took, which may be fewer: the next one failed (the kernel keeps no error for
        a call that sent some; the caller's next call tells). Raises OSError when the first
        fails: BlockingIOError for a full buffer, else its error."""
        if self._fd < 0:
            raise OSError(errno.EBADF, "closed")
        if len(sockaddr) > NAME_BYTES:
            raise ValueError(f"a sockaddr of {len(sockaddr)} bytes")
        count = min(len(datagrams), MESSAGES)
        ctypes.memmove(self._send_name, sockaddr, len(sockaddr))
        namelen = len(sockaddr)
        view, words = self._send_view, self._iov_words
        for i in range(count):
            data = datagrams[i]
            size = len(data)
            if size > SLOT_BYTES:  # no UDP datagram is that long: the kernel would refuse it
                if i == 0:
                    raise OSError(errno.EMSGSIZE, os.strerror(errno.EMSGSIZE))
                count = i
                break
            at = i * SLOT_BYTES
            view[at : at + size] = data
            words[i * _IOV_WORDS + 1] = size
        msgs = self._send_msgs
        if msgs[0].hdr.namelen != namelen:  # one family per socket: set once
            for i in range(MESSAGES):
                msgs[i].hdr.namelen = namelen
        sent = self._calls.sendmmsg(self._fd, ctypes.addressof(msgs), count, 0)
        if sent < 0:
            raise _error()
        return int(sent)

    def receive(self) -> list[tuple[bytes, bytes]]:
        """What is waiting, up to MESSAGES receives: (payload, raw sockaddr) for each
        datagram, in arrival order (a coalesced receive split back into its datagrams).
        Raises BlockingIOError when nothing is, OSError for a pending error (an ICMP error
        queued by IP_RECVERR fails the next receive, as recvmsg's would)."""
        if self._fd < 0:
            raise OSError(errno.EBADF, "closed")
        longs, control_bytes = self._recv_longs, self._control_bytes
        if control_bytes:
            for i in range(self._used_controls):
                longs[i * _STRIDE_LONGS + _CONTROLLEN_LONG] = control_bytes
        # The slots were set to full length once. The kernel writes msg_len, msg_flags,
        # msg_controllen (given back above) and msg_namelen, which stays what it was: one
        # address family per socket (IPv6 ones are V6ONLY).
        got = self._calls.recvmmsg(
            self._fd, ctypes.addressof(self._recv_msgs), MESSAGES, _MSG_DONTWAIT, None
        )
        if got < 0:
            self._used_controls = 0  # nothing was written
            raise _error()
        self._used_controls = got
        view, words, names = self._recv_view, self._recv_words, self._names_view
        out = []
        coalesced = 0
        for i in range(got):
            at = i * _STRIDE_WORDS
            size = words[at + _LEN_WORD]
            namelen = min(words[at + _NAMELEN_WORD], NAME_BYTES)
            start = i * SLOT_BYTES
            name_at = i * NAME_BYTES
            name = bytes(names[name_at : name_at + namelen])
            segment = 0
            if control_bytes and longs[i * _STRIDE_LONGS + _CONTROLLEN_LONG]:
                segment = self._segment_size(i)
            if 0 < segment < size:
                coalesced += 1
                run = split_gro(view[start : start + size], segment)
                out += [(datagram, name) for datagram in run]
            else:
                out.append((bytes(view[start : start + size]), name))
        self.coalesced = coalesced
        return out

    def _segment_size(self, i: int) -> int:
        """The UDP_GRO segment size in receive i's control message; 0 if none."""
        at = i * CONTROL_BYTES
        length, level, kind = _CMSGHDR.unpack_from(self._control_view, at)
        if level != SOL_UDP or kind != UDP_GRO or length < _CMSGHDR.size + _INT.size:
            return 0
        return int(_INT.unpack_from(self._control_view, at + _CMSGHDR.size)[0])

    def close(self) -> None:
        """Let go of the buffers (the socket is the caller's to close); later calls raise."""
        self._fd = -1
        for view in (self._send_view, self._recv_view, self._names_view, self._control_view):
            view.release()
        for words in (self._iov_words, self._recv_words, self._recv_longs):
            words.release()
        # The ctypes objects that exported the mmaps' buffers (for their addresses) are
        # gone by now, so the mmaps can close; if anything still holds one, the GC will.
        for area in (self._send_area, self._recv_area):
            with contextlib.suppress(BufferError):
                area.close()


# ---- socket addresses ------------------------------------------------------------------

_FAMILY = struct.Struct("=H")
_PORT = struct.Struct("!H")
_V6_TAIL = struct.Struct("=I")  # flowinfo and scope id, both 0


@lru_cache(maxsize=4096)
def sockaddr(family: int, host: str, port: int) -> bytes | None:
    """The sockaddr_in / sockaddr_in6 for an IP literal; None for anything sendto would
    have to resolve (a scoped IPv6 address such as fe80::1%eth0: the caller sends that one
    on its own)."""
    try:
        packed = socket.inet_pton(family, host)
    except OSError:
        return None
    head = _FAMILY.pack(family) + _PORT.pack(port)
    if family == socket.AF_INET6:
        return head + _V6_TAIL.pack(0) + packed + _V6_TAIL.pack(0)
    return head + packed + bytes(8)


@lru_cache(maxsize=4096)
def source_of(raw: bytes) -> tuple[str, int] | None:
    """(host, port) of a received sockaddr, as recvmsg would say it; None when it is
    neither IPv4 nor IPv6 (never, on our sockets)."""
    if len(raw) < 8:
        return None
    (family,) = _FAMILY.unpack_from(raw)
    (port,) = _PORT.unpack_from(raw, 2)
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw[4:8]), port
    if family == socket.AF_INET6 and len(raw) >= 24:
        return socket.inet_ntop(socket.AF_INET6, raw[8:24]), port
    return None
