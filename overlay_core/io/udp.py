"""UDP sockets: one per bind address, IPv4 and (optionally) IPv6, all on one port.

Contract (the wireguard-go `conn.Bind` shape):
- `UdpSockets.open(binds, port, on_datagram)` binds every address in `binds` on `port`
  (0 = pick one; all sockets then share the port the first one got). Each received datagram
  is handed to `on_datagram(data, udp(host, port))` synchronously; nothing is parsed here.
- `send(endpoint, data)` picks a socket of the endpoint's address family and sends one
  datagram. It never raises: UDP is lossy anyway, so failures are counted and dropped.
- IPv6 sockets set IPV6_V6ONLY so the IPv4 socket owns IPv4 traffic on the same port. The
  default IPv6 wildcard is optional: on a host without IPv6 it is skipped with a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import socket
from collections import Counter
from collections.abc import Callable
from functools import lru_cache

from overlay_core.proto.effects import Endpoint, udp

log = logging.getLogger(__name__)

DatagramHandler = Callable[[bytes, Endpoint], None]

# Bigger kernel buffers absorb bursts while the event loop is busy running the node.
SOCKET_BUFFER_BYTES = 1 << 20
# Errors that mean "this host has no IPv6", as opposed to "this port is taken".
_NO_IPV6_ERRNOS = {errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL, errno.EPROTONOSUPPORT}


class BindError(Exception):
    """A socket could not be bound; the message is one line for the operator."""


@lru_cache(maxsize=1024)
def _family_of(host: str) -> int | None:
    """AF_INET/AF_INET6 for an IP literal, None for anything else (a hostname)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    return socket.AF_INET6 if ip.version == 6 else socket.AF_INET


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: DatagramHandler, counters: Counter[str]) -> None:
        self._on_datagram = on_datagram
        self._counters = counters

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        # IPv6 addresses come as (host, port, flowinfo, scope_id); the first two are enough.
        self._on_datagram(data, udp(str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        # ICMP errors for earlier sends (port unreachable...) land here; expected, and the
        # path logic notices silence on its own.
        self._counters["udp_icmp_errors"] += 1
        log.debug("udp error: %s", exc)


class UdpSockets:
    """The bound sockets and their transports. Build with `await UdpSockets.open(...)`."""

    def __init__(self) -> None:
        self.counters: Counter[str] = Counter()
        self._transports: list[tuple[int, asyncio.DatagramTransport]] = []
        self._warned_hosts: set[str] = set()

    @classmethod
    async def open(cls, binds: list[str], port: int, on_datagram: DatagramHandler) -> UdpSockets:
        self = cls()
        loop = asyncio.get_running_loop()
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
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _Protocol(on_datagram, self.counters), sock=sock
                )
                self._transports.append((family, transport))
        except BaseException:
            self.close()
            raise
        return self

    @property
    def port(self) -> int:
        return self.local_addresses()[0][1]

    @property
    def has_ipv6(self) -> bool:
        return any(family == socket.AF_INET6 for family, _ in self._transports)

    def local_addresses(self) -> list[tuple[str, int]]:
        return [t.get_extra_info("sockname")[:2] for _, t in self._transports]

    def send(self, endpoint: Endpoint, data: bytes) -> bool:
        family = _family_of(endpoint.host)
        if family is None:
            # Sending to a hostname would block the loop in getaddrinfo; refuse and say so once.
            self.counters["udp_send_unresolved"] += 1
            if endpoint.host not in self._warned_hosts:
                self._warned_hosts.add(endpoint.host)
                log.warning("not sending to %s: hostnames are not resolved, use an IP", endpoint)
            return False
        for fam, transport in self._transports:
            if fam == family and not transport.is_closing():
                transport.sendto(data, (endpoint.host, endpoint.port))
                self.counters["udp_datagrams_sent"] += 1
                return True
        self.counters["udp_send_no_socket"] += 1
        return False

    def close(self) -> None:
        for _, transport in self._transports:
            transport.close()
        self._transports.clear()


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
