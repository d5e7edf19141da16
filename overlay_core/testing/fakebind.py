"""LossyBind: the UDP sockets' test double, for cutting one path on loopback.

On 127.0.0.1 no firewall can cut the path between two daemons and leave the rest; a
LossyBind can. It is a `BindLike` (udp_contract) over real UdpSockets, because loopback
tests still need datagrams to travel, that drops whatever is sent to an endpoint in its
`unreachable` set, as a broken router on that path would, and counts the drops. All
else, receiving included, is the real sockets' (the wireguard-go `bindtest` idea: the
network below the daemon, under the test's control).

A daemon under test binds through a factory (a `BindOpener`); `LossyBindFactory.open`
has the signature of `UdpSockets.open` and keeps every bind it made:

    binds = LossyBindFactory()
    a = await net.add_leaf("a", udp_factory=binds.open)
    ...
    binds.live.unreachable.add(udp("127.0.0.1", b.udp_port))  # a can no longer reach b
    binds.live.unreachable.clear()  # the path heals
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from ..io.udp import UdpSockets
from ..io.udp_contract import (
    BatchHandler,
    BindLike,
    BindOpener,
    DatagramHandler,
    ErrorHandler,
)
from ..proto.effects import Endpoint

# The name the drops have in `counters` (and so in the daemon's io_counters).
DROPPED_COUNTER = "lossy_send_dropped"


class LossyBind:
    """Real sockets (`inner`) behind a switchable cut. Attributes a test may read or set:

    Attributes:
        unreachable: endpoints whose datagrams are dropped (set, clear, add at will).
        dropped: how many datagrams were dropped for being sent there.
        closed: close() was called.
    """

    def __init__(self, inner: BindLike) -> None:
        self.inner = inner
        self.unreachable: set[Endpoint] = set()
        self.dropped = 0
        self.closed = False

    @property
    def port(self) -> int:
        return self.inner.port

    @property
    def has_ipv6(self) -> bool:
        return self.inner.has_ipv6

    @property
    def offloads(self) -> dict[str, bool]:
        return self.inner.offloads

    @property
    def counters(self) -> Counter[str]:
        """The real sockets' counters, plus DROPPED_COUNTER once anything was dropped."""
        merged = Counter(self.inner.counters)
        if self.dropped:
            merged[DROPPED_COUNTER] += self.dropped
        return merged

    def local_addresses(self) -> list[tuple[str, int]]:
        return self.inner.local_addresses()

    def send(self, endpoint: Endpoint, data: bytes, ttl: int | None = None) -> bool:
        """As UdpSockets.send; False (and counted) for an unreachable endpoint."""
        if endpoint in self.unreachable:
            self.dropped += 1
            return False
        return self.inner.send(endpoint, data, ttl)

    def send_many(self, endpoint: Endpoint, datagrams: list[bytes]) -> None:
        """As UdpSockets.send_many; all of them dropped (and counted) for an unreachable
        endpoint."""
        if endpoint in self.unreachable:
            self.dropped += len(datagrams)
            return
        self.inner.send_many(endpoint, datagrams)

    def close(self) -> None:
        self.closed = True
        self.inner.close()


class LossyBindFactory:
    """Opens LossyBinds over `opener`'s sockets (UdpSockets.open unless told otherwise)
    and remembers them.

    Attributes:
        opened: every LossyBind made, in order, closed ones included.
    """

    def __init__(self, opener: BindOpener = UdpSockets.open) -> None:
        self._opener = opener
        self.opened: list[LossyBind] = []

    async def open(
        self,
        binds: list[str],
        port: int,
        on_datagram: DatagramHandler | None = None,
        on_error: ErrorHandler | None = None,
        *,
        on_batch: BatchHandler | None = None,
        offload: bool = True,
        batch: bool = True,
    ) -> LossyBind:
        inner = await self._opener(
            binds, port, on_datagram, on_error, on_batch=on_batch, offload=offload, batch=batch
        )
        bind = LossyBind(inner)
        self.opened.append(bind)
        return bind

    @property
    def live(self) -> LossyBind:
        """The bind opened last, if it is still open (a daemon has one at a time; a root
        on port 0 may have closed earlier ones while looking for a free TCP port)."""
        if not self.opened or self.opened[-1].closed:
            raise LookupError("no open LossyBind: the daemon is not started")
        return self.opened[-1]


if TYPE_CHECKING:  # mypy proves the fakes fit the same interface as UdpSockets
    _bind: BindLike = LossyBind(UdpSockets())
    _factory_opener: BindOpener = LossyBindFactory().open
