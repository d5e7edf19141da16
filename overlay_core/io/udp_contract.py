"""The UDP contract: what the daemon relies on, whichever sockets are behind it.

`UdpSockets` (overlay_core.io.udp, real sockets) and `LossyBind` (overlay_core.testing.
fakebind, real sockets behind a switchable cut) both satisfy `BindLike` and are made by a
`BindOpener`; the daemon should depend on these two Protocols only (the wireguard-go
`conn.Bind` shape, with `bindtest` as its double):

1. `await open(binds, port, on_datagram | on_batch=..., on_error=...)` binds every
   address in `binds` on `port`; 0 picks one, and then every socket shares the port the
   first one got (`port`, `local_addresses()` say what was bound). IPv6 sockets are
   V6ONLY; the default IPv6 wildcard is optional, skipped on a host without IPv6
   (`has_ipv6` says whether any IPv6 socket is bound). A failure is a one-line BindError.
2. Received datagrams are handed on synchronously from the event loop, nothing parsed:
   runs of consecutive datagrams from one source go to `on_batch(datagrams, source)` (a
   GRO read, or consecutive reads from one sender), or one at a time to
   `on_datagram(data, source)` when no on_batch is given. Datagrams start arriving as
   soon as open() returns. An exception in the handler is logged; the socket reads on.
3. `send(endpoint, data)` sends one datagram from a socket of the endpoint's address
   family; `send_many(endpoint, datagrams)` sends several, in order (with UDP GSO where
   the kernel has it, else sendmmsg: `offloads` says which of GSO, GRO and the mmsg calls
   the sockets got). Neither raises nor blocks: UDP is lossy anyway, so a datagram that
   cannot go out (a full socket buffer, no socket of that family, a hostname instead of
   an IP) is counted and dropped; `send` says whether it went out.
4. `counters` counts what happened by name (`udp_datagrams_sent`, `udp_send_*` drops,
   `udp_gso_sends`, `udp_errqueue_<kind>`, ...); the daemon shows them in io_counters.
5. ICMP errors for datagrams we sent (fragmentation needed / packet too big, port
   unreachable, ...) are parsed into an `IcmpError` each and passed to `on_error`, from
   the event loop; they are counted by kind, never logged per packet.
6. `close()` unbinds everything; nothing is delivered after it. Idempotent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from overlay_core.proto.effects import Endpoint

DatagramHandler = Callable[[bytes, Endpoint], None]
BatchHandler = Callable[[list[bytes], Endpoint], None]


class BindError(Exception):
    """A socket could not be bound; the message is one line for the operator."""


@dataclass(frozen=True, slots=True)
class IcmpError:
    """One entry of a socket's error queue: what the kernel learned about a datagram we
    sent to `endpoint` (the original destination, not whoever reported it).

    kind: "mtu" (ICMP fragmentation needed / ICMPv6 packet too big; `mtu` is the next
    hop's link MTU, IP header included), "port_unreachable", "unreachable" (another
    destination-unreachable code), "ttl_exceeded" (ICMP time exceeded / ICMPv6 hop limit
    exceeded: a router on the way dropped a datagram we sent with a small TTL), "local"
    (the local stack refused the send), "other". `offender`: the address of whoever sent
    the ICMP (a router on the way, or the destination), when the kernel says.
    """

    kind: str
    endpoint: Endpoint
    errno: int
    origin: int  # SO_EE_ORIGIN_*: 1 local, 2 ICMP, 3 ICMPv6
    icmp_type: int
    icmp_code: int
    mtu: int | None  # only for kind "mtu"
    offender: str | None = None


ErrorHandler = Callable[[IcmpError], None]


class BindLike(Protocol):
    """What the daemon needs from its UDP sockets; UdpSockets and LossyBind provide it."""

    @property
    def port(self) -> int:
        """The bound port (the one the OS picked, if open() was given 0)."""

    @property
    def has_ipv6(self) -> bool: ...
    @property
    def offloads(self) -> dict[str, bool]:
        """{"gso": ..., "gro": ..., "mmsg": ...}: which UDP offloads the sockets got
        (mmsg: sendmmsg / recvmmsg, what is used where GSO / GRO are not)."""

    @property
    def counters(self) -> Mapping[str, int]: ...
    def local_addresses(self) -> list[tuple[str, int]]: ...
    def send(self, endpoint: Endpoint, data: bytes, ttl: int | None = None) -> bool:
        """One datagram; `ttl` sets its IP TTL / IPv6 hop limit (None: the default)."""

    def send_many(self, endpoint: Endpoint, datagrams: list[bytes]) -> None: ...
    def close(self) -> None: ...


class BindOpener(Protocol):
    """How the daemon binds: UdpSockets.open, or LossyBindFactory().open in tests."""

    def __call__(
        self,
        binds: list[str],
        port: int,
        on_datagram: DatagramHandler | None = None,
        on_error: ErrorHandler | None = None,
        *,
        on_batch: BatchHandler | None = None,
        offload: bool = True,
        batch: bool = True,
    ) -> Awaitable[BindLike]: ...
