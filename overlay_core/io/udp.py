"""UDP sockets: one per bind address, IPv4 and (optionally) IPv6, all on one port.

`UdpSockets` is the real `BindLike` (the contract, and the types it hands on: IcmpError,
BindError, the handlers, are in udp_contract and re-exported here). How it keeps it:
- Each socket is read with loop.add_reader and recvmmsg (udp_mmsg.py; recvmsg where the
  C library lacks it), and what one read brings, a GRO run (udp_offload.py) split back
  into datagrams too, is handed to on_batch in runs of one source.
- `send_many` sends runs of equal size with one UDP GSO sendmsg each; where the kernel
  (before 4.18) or the route can't, runs go out with one sendmmsg each, and one call per
  datagram only where even that is missing (or `batch` is off: --offload off).
- IPv6 sockets set IPV6_V6ONLY so the IPv4 socket owns IPv4 traffic on the same port.
- ICMP errors for our own datagrams: every socket sets IP_RECVERR / IPV6_RECVERR, so the
  kernel queues them on the socket's error queue (even in IP_PMTUDISC_PROBE mode) and
  reports the first as a pending socket error, which fails whichever call comes first, a
  receive or a send; a failed send is tried once more. (Inside one sendmmsg a later
  datagram may take that error silently: the entry stays queued and the socket polls as
  errored, so a wakeup that finds nothing to read drains the queue too.)
  Then the queue is drained (at most ERRQUEUE_DRAIN_MAX entries per turn of the loop),
  each entry parsed by `parse_recverr` into an `IcmpError` and passed to `on_error`, and
  counted by kind (`udp_errqueue_<kind>`); nothing is logged per packet. The daemon turns
  "mtu" ones (fragmentation needed / packet too big) into `node.path_mtu_hint`, and
  "ttl_exceeded", "port_unreachable" and "unreachable" (with the offender's address) into
  `node.icmp_error` (hole punching learns from them, punch.py); "local" and "other" are
  only counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import socket
from collections import Counter
from functools import lru_cache
from typing import TYPE_CHECKING

from overlay_core.proto.effects import Endpoint, udp

from .udp_contract import (
    BatchHandler,
    BindError,
    BindOpener,
    DatagramHandler,
    ErrorHandler,
)
from .udp_contract import IcmpError as IcmpError  # re-exported: the error-queue record
from .udp_errors import parse_recverr
from .udp_mmsg import MESSAGES, Batcher, sockaddr, source_of
from .udp_offload import (
    GRO_CMSG_SPACE,
    enable_gro,
    gro_size,
    gso_control,
    gso_runs,
    probe_gso,
    split_gro,
)

log = logging.getLogger(__name__)

# <linux/errqueue.h>, <linux/in.h>, <linux/in6.h>; the socket module lacks some of them.
_SOL_IP = socket.IPPROTO_IP
_SOL_IPV6 = socket.IPPROTO_IPV6
_IP_RECVERR = getattr(socket, "IP_RECVERR", 11)
_IPV6_RECVERR = getattr(socket, "IPV6_RECVERR", 25)
_MSG_ERRQUEUE = getattr(socket, "MSG_ERRQUEUE", 0x2000)
# IP_TTL / IPV6_UNICAST_HOPS value that means "the system default" again.
_DEFAULT_TTL = -1
# Entries read per call; the rest wait for the next turn of the loop (call_soon), so an
# ICMP flood cannot keep the loop in here.
ERRQUEUE_DRAIN_MAX = 32
_CMSG_SPACE = 512

# Bigger kernel buffers absorb bursts while the event loop is busy running the node.
SOCKET_BUFFER_BYTES = 4 << 20
# One receive holds a whole GRO run (at most 64 KB of UDP payload).
RECV_BUFFER_BYTES = 65536
# Receives per wakeup, and datagrams per batch handed on: enough to amortise the loop,
# few enough that timers and the TAPs get their turn under a flood.
MAX_READS_PER_WAKEUP = 64
MAX_BATCH_DATAGRAMS = 128


@lru_cache(maxsize=4096)
def _endpoint(host: str, port: int) -> Endpoint:
    """Received-from endpoints, shared: one per source instead of one per datagram."""
    return udp(host, port)


# Errors that mean "this host has no IPv6", as opposed to "this port is taken".
_NO_IPV6_ERRNOS = {errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL, errno.EPROTONOSUPPORT}


@lru_cache(maxsize=1024)
def _family_of(host: str) -> int | None:
    """AF_INET/AF_INET6 for an IP literal, None for anything else (a hostname)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    return socket.AF_INET6 if ip.version == 6 else socket.AF_INET


class _Socket:
    """One bound socket, read with loop.add_reader: asyncio's datagram transport offers
    neither recvmsg (GRO, the error queue) nor sendmsg (GSO)."""

    def __init__(
        self,
        sock: socket.socket,
        family: int,
        on_batch: BatchHandler,
        on_error: ErrorHandler | None,
        counters: Counter[str],
        offload: bool,
        batch: bool,
    ) -> None:
        self.sock = sock
        self.family = family
        self._on_batch = on_batch
        self._on_error = on_error
        self._counters = counters
        self.gso = offload and probe_gso(sock)
        self.gro = offload and enable_gro(sock)
        self.mmsg = Batcher.open(sock, self.gro) if batch else None
        # recvmsg's buffer, for a socket without a Batcher (whose receives have slots)
        self._view = memoryview(bytearray(RECV_BUFFER_BYTES if self.mmsg is None else 0))
        self._cmsg = GRO_CMSG_SPACE if self.gro else 0
        self._drain_scheduled = False
        self.closed = False

    # ---- receiving

    def readable(self) -> None:
        """Read what is waiting; consecutive datagrams from one source go to on_batch
        together (a GRO read is such a run already), so the node handles them as a batch."""
        if self.mmsg is not None:
            self._read_batched(self.mmsg)
            return
        batch: list[bytes] = []
        source: Endpoint | None = None
        for attempt in range(MAX_READS_PER_WAKEUP):
            try:
                n, ancdata, _flags, addr = self.sock.recvmsg_into([self._view], self._cmsg)
            except (BlockingIOError, InterruptedError):
                if not attempt:  # woken with nothing to read: an error queued (docstring)
                    self.drain_errors()
                break
            except OSError:
                # The pending error of an ICMP for an earlier send (IP_RECVERR): counted,
                # never logged per packet; the error queue says the rest.
                self._counters["udp_icmp_errors"] += 1
                self.drain_errors()
                continue
            if self.closed:
                return
            here = _endpoint(str(addr[0]), int(addr[1]))
            if here != source and batch:
                self._deliver(batch, source)
                batch = []
            source = here
            size = gro_size(ancdata) if ancdata else 0
            if size:
                self._counters["udp_gro_reads"] += 1
            batch += split_gro(self._view[:n], size)
            if len(batch) >= MAX_BATCH_DATAGRAMS:
                self._deliver(batch, source)
                batch = []
        if batch:
            self._deliver(batch, source)

    def _read_batched(self, mmsg: Batcher) -> None:
        """`readable` with recvmmsg: one call takes what is waiting, up to as many
        receives as MAX_READS_PER_WAKEUP recvmsg calls would (GRO runs come split); the
        loop calls again if more is."""
        try:
            received = mmsg.receive()
        except (BlockingIOError, InterruptedError):
            self.drain_errors()  # woken with nothing to read: an error queued (docstring)
            return
        except OSError:  # a pending ICMP error, as in readable()
            self._counters["udp_icmp_errors"] += 1
            self.drain_errors()
            return
        if self.closed:
            return
        self._counters["udp_mmsg_reads"] += 1
        if mmsg.coalesced:
            self._counters["udp_gro_reads"] += mmsg.coalesced
        batch: list[bytes] = []
        source: Endpoint | None = None
        last: bytes = b""
        for data, raw in received:
            if raw != last:
                address = source_of(raw)
                if address is None:  # not an IP sockaddr: never on our sockets
                    self._counters["udp_unknown_source"] += 1
                    continue
                here = _endpoint(*address)
                if here != source and batch:
                    self._deliver(batch, source)
                    batch = []
                source, last = here, raw
            batch.append(data)
            if len(batch) >= MAX_BATCH_DATAGRAMS:
                self._deliver(batch, source)
                batch = []
        if batch:
            self._deliver(batch, source)

    def _deliver(self, batch: list[bytes], source: Endpoint | None) -> None:
        assert source is not None
        if self.closed:  # a handler closed the sockets: nothing more is delivered
            return
        try:
            self._on_batch(batch, source)
        except Exception:  # one bad batch must not unregister the reader
            log.exception("handling %d datagrams from %s failed", len(batch), source)

    def drain_errors(self) -> None:
        """Read up to ERRQUEUE_DRAIN_MAX entries of the error queue (see the module
        docstring); if more may be waiting, come back on the next turn of the loop."""
        if self.sock.fileno() < 0:
            return
        for _ in range(ERRQUEUE_DRAIN_MAX):
            try:
                _, ancdata, _, dest = self.sock.recvmsg(
                    0, _CMSG_SPACE, _MSG_ERRQUEUE | socket.MSG_DONTWAIT
                )
            except OSError:  # EAGAIN: empty (or no error queue at all)
                return
            record = None
            for level, kind, data in ancdata:
                record = parse_recverr(level, kind, data, dest or ())
                if record is not None:
                    break
            self._counters[f"udp_errqueue_{record.kind if record else 'unparsed'}"] += 1
            if record is not None and self._on_error is not None:
                self._on_error(record)
        if not self._drain_scheduled:
            self._drain_scheduled = True
            asyncio.get_running_loop().call_soon(self._drain_again)

    def _drain_again(self) -> None:
        self._drain_scheduled = False
        self.drain_errors()

    # ---- sending

    def send(self, address: tuple[str, int], data: bytes, ttl: int | None = None) -> bool:
        if ttl is None:
            return self._send(address, data)
        # One datagram with its own TTL: set, send, restore. The loop is single-threaded,
        # so no other send sees the small TTL; a socket option works on every kernel
        # (an IP_TTL control message on sendmsg needs a newer one than DSM 7's).
        level, option = (
            (_SOL_IPV6, socket.IPV6_UNICAST_HOPS)
            if self.family == socket.AF_INET6
            else (_SOL_IP, socket.IP_TTL)
        )
        try:
            self.sock.setsockopt(level, option, ttl)
        except OSError:
            self._counters["udp_ttl_refused"] += 1
            return False
        try:
            return self._send(address, data)
        finally:
            with contextlib.suppress(OSError):
                self.sock.setsockopt(level, option, _DEFAULT_TTL)

    def _send(self, address: tuple[str, int], data: bytes) -> bool:
        for attempt in (0, 1):
            try:
                self.sock.sendto(data, address)
                return True
            except (BlockingIOError, InterruptedError):
                self._counters["udp_send_dropped_full"] += 1  # a lossy wire, not a queue
                return False
            except OSError:
                if attempt:
                    break
                # Most likely the pending error of an ICMP for an earlier datagram (the
                # kernel fails the next send with it), not this datagram's fault: the
                # error queue is read, and the datagram sent once more.
                self._counters["udp_icmp_errors"] += 1
                self._counters["udp_send_retried"] += 1
                self.drain_errors()
        self._counters["udp_send_failed"] += 1
        return False

    def send_many(self, address: tuple[str, int], datagrams: list[bytes]) -> int:
        """Send in order, runs of equal size with one GSO call each (without GSO, runs
        of any size with one sendmmsg each); how many were sent."""
        if not self.gso:
            return self._send_batched(address, datagrams)
        sent = 0
        for run in gso_runs(datagrams):
            if len(run) == 1 or not self.gso:  # GSO gone (EIO) partway: the rest in runs too
                sent += self._send_batched(address, run)
                continue
            try:
                self.sock.sendmsg(run, gso_control(len(run[0])), 0, address)
                self._counters["udp_gso_sends"] += 1
                sent += len(run)
                continue
            except (BlockingIOError, InterruptedError):
                self._counters["udp_send_dropped_full"] += len(run)
                continue
            except OSError as exc:
                self._counters["udp_gso_fallbacks"] += 1
                if exc.errno == errno.EIO:  # this device can't segment: never again here
                    self.gso = False
                    log.info("UDP GSO is unavailable on this route (EIO); sending without it")
                else:  # most likely an earlier datagram's ICMP error, as in send()
                    self._counters["udp_icmp_errors"] += 1
                    self.drain_errors()
            sent += self._send_batched(address, run)
        return sent

    def _send_batched(self, address: tuple[str, int], datagrams: list[bytes]) -> int:
        """Send in order with sendmmsg, MESSAGES a call; one by one where it is missing.
        A failing datagram is treated as `_send` treats one: the error queue is read and it
        is tried once more, then dropped and counted, and the rest go on."""
        mmsg = self.mmsg
        raw = sockaddr(self.family, *address) if mmsg is not None and len(datagrams) > 1 else None
        if mmsg is None or raw is None:
            return sum(self.send(address, d) for d in datagrams)
        sent = at = 0
        retried = False
        while at < len(datagrams):
            try:
                took = mmsg.send(raw, datagrams[at : at + MESSAGES])
            except (BlockingIOError, InterruptedError):
                self._counters["udp_send_dropped_full"] += len(datagrams) - at
                break
            except OSError:
                if retried:  # this datagram failed twice: drop it alone
                    self._counters["udp_send_failed"] += 1
                    at += 1
                    retried = False
                    self.drain_errors()  # its own error (EMSGSIZE, ...) is queued too
                    continue
                self._counters["udp_icmp_errors"] += 1
                self._counters["udp_send_retried"] += 1
                self.drain_errors()
                retried = True
                continue
            self._counters["udp_mmsg_sends"] += 1
            sent += took
            at += took
            retried = False
        return sent

    def close(self) -> None:
        self.closed = True
        if self.mmsg is not None:
            self.mmsg.close()
        self.sock.close()


class UdpSockets:
    """The bound sockets. Build with `await UdpSockets.open(...)`."""

    def __init__(self) -> None:
        self.counters: Counter[str] = Counter()
        self._sockets: list[_Socket] = []
        self._warned_hosts: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    async def open(
        cls,
        binds: list[str],
        port: int,
        on_datagram: DatagramHandler | None = None,
        on_error: ErrorHandler | None = None,
        *,
        on_batch: BatchHandler | None = None,
        offload: bool = True,
        batch: bool = True,
    ) -> UdpSockets:
        """Bind; each received datagram goes to `on_datagram(data, source)`, or runs of
        them from one source to `on_batch(datagrams, source)`. `offload`: use UDP GSO and
        GRO where the kernel has them (module udp_offload); `batch`: where they are not
        used, sendmmsg / recvmmsg (udp_mmsg); without either, one call per datagram."""
        if on_batch is None:
            if on_datagram is None:
                raise ValueError("give on_datagram or on_batch")
            single = on_datagram

            def on_batch(datagrams: list[bytes], source: Endpoint) -> None:
                for datagram in datagrams:
                    single(datagram, source)

        self = cls()
        self._loop = loop = asyncio.get_running_loop()
        try:
            for host in binds:
                family = _family_of(host)
                if family is None:
                    raise BindError(f"--bind {host!r}: expected an IP address")
                optional = host == "::" and len(binds) > 1
                sock = _bind_socket(family, host, port, optional)
                if sock is None:
                    continue
                port = sock.getsockname()[1]  # later sockets share the port this one got
                bound = _Socket(sock, family, on_batch, on_error, self.counters, offload, batch)
                self._sockets.append(bound)
                loop.add_reader(sock.fileno(), bound.readable)
        except BaseException:
            self.close()
            raise
        return self

    @property
    def port(self) -> int:
        return self.local_addresses()[0][1]

    @property
    def has_ipv6(self) -> bool:
        return any(s.family == socket.AF_INET6 for s in self._sockets)

    @property
    def offloads(self) -> dict[str, bool]:
        """Which offloads the sockets got (all of them: the first decides what is shown);
        "mmsg": sendmmsg / recvmmsg, used where GSO / GRO are not."""
        first = self._sockets[0] if self._sockets else None
        return {
            "gso": bool(first and first.gso),
            "gro": bool(first and first.gro),
            "mmsg": bool(first and first.mmsg),
        }

    def local_addresses(self) -> list[tuple[str, int]]:
        return [s.sock.getsockname()[:2] for s in self._sockets]

    def _socket_for(self, endpoint: Endpoint) -> _Socket | None:
        family = _family_of(endpoint.host)
        if family is None:
            # Sending to a hostname would block the loop in getaddrinfo; refuse and say so once.
            self.counters["udp_send_unresolved"] += 1
            if endpoint.host not in self._warned_hosts:
                self._warned_hosts.add(endpoint.host)
                log.warning("not sending to %s: hostnames are not resolved, use an IP", endpoint)
            return None
        for bound in self._sockets:
            if bound.family == family and not bound.closed:
                return bound
        self.counters["udp_send_no_socket"] += 1
        return None

    def send(self, endpoint: Endpoint, data: bytes, ttl: int | None = None) -> bool:
        bound = self._socket_for(endpoint)
        if bound is None or not bound.send((endpoint.host, endpoint.port), data, ttl):
            return False
        self.counters["udp_datagrams_sent"] += 1
        return True

    def send_many(self, endpoint: Endpoint, datagrams: list[bytes]) -> None:
        bound = self._socket_for(endpoint)
        if bound is not None:
            sent = bound.send_many((endpoint.host, endpoint.port), datagrams)
            self.counters["udp_datagrams_sent"] += sent

    def close(self) -> None:
        for bound in self._sockets:
            if self._loop is not None and not self._loop.is_closed() and not bound.closed:
                self._loop.remove_reader(bound.sock.fileno())
            bound.close()
        self._sockets.clear()


def _bind_socket(family: int, host: str, port: int, optional: bool) -> socket.socket | None:
    shown = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
    try:
        sock = socket.socket(family, socket.SOCK_DGRAM)
    except OSError as exc:
        if optional and exc.errno in _NO_IPV6_ERRNOS:
            log.info("IPv6 is unavailable here (%s); listening on IPv4 only", exc.strerror)
            return None
        raise BindError(f"cannot open a UDP socket for {shown}: {exc.strerror}") from None
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            # The kernel caps this at net.core.*mem_max; if it refuses, the default works too.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER_BYTES)
        _set_dont_fragment(sock, family)
        _set_recverr(sock, family)
        sock.setblocking(False)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if optional and exc.errno in _NO_IPV6_ERRNOS:
            log.info("IPv6 is unavailable here (%s); listening on IPv4 only", exc.strerror)
            return None
        raise BindError(f"cannot bind UDP {shown}: {exc.strerror}") from None
    return sock


# Linux values from <linux/in.h> and <linux/in6.h>; the socket module lacks the PROBE ones.
_IP_MTU_DISCOVER = getattr(socket, "IP_MTU_DISCOVER", 10)
_IP_PMTUDISC_PROBE = 3
_IPV6_MTU_DISCOVER = getattr(socket, "IPV6_MTU_DISCOVER", 23)
_IPV6_PMTUDISC_PROBE = 3


def _set_dont_fragment(sock: socket.socket, family: int) -> None:
    """Send every datagram with DF and never let the kernel's PMTU cache refuse a send.

    The node discovers each path's MTU itself with padded probes and fragments its packets
    to fit (proto/path.py); routers must drop what is too big rather than fragment it, or
    a probe would "succeed" at sizes the path only carries as IP fragments, which NATs and
    firewalls often drop. PROBE mode (not DO) keeps the kernel from turning our own probes
    into EMSGSIZE errors after one ICMP "fragmentation needed".
    """
    with contextlib.suppress(OSError):
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_MTU_DISCOVER, _IPV6_PMTUDISC_PROBE)
        else:
            sock.setsockopt(socket.IPPROTO_IP, _IP_MTU_DISCOVER, _IP_PMTUDISC_PROBE)


def _set_recverr(sock: socket.socket, family: int) -> None:
    """Queue ICMP errors for our datagrams on the socket's error queue (module docstring).

    Without it, Linux reports nothing for an unconnected UDP socket: a shrinking path MTU
    would only be found by the next search, up to PMTU_REPROBE_S later (proto/path.py)."""
    with contextlib.suppress(OSError):
        if family == socket.AF_INET6:
            sock.setsockopt(_SOL_IPV6, _IPV6_RECVERR, 1)
        else:
            sock.setsockopt(_SOL_IP, _IP_RECVERR, 1)


if TYPE_CHECKING:  # mypy proves the real sockets fit the daemon's interface
    _opener: BindOpener = UdpSockets.open
