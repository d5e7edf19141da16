"""The TCP fallback transport, for nodes whose UDP is blocked.

Roots listen for TCP on their UDP port number; a leaf that the node tells to (`OpenTcp`)
connects to a root and keeps the connection up, reconnecting with exponential backoff for as
long as it is wanted. Either way a connection carries the same datagrams the UDP socket
would, framed as records (framing.py), and `TcpLinks` makes the streams look like
addressable datagram paths:

- every live connection is keyed by its remote end as a TCP `Endpoint`: for a leaf that is
  the root's (host, port); for a root it is the leaf's source (host, port);
- each record received is handed to `on_record(data, endpoint)`;
- `send(endpoint, data)` writes one record, or drops it (and counts) if there is no such
  connection or its write buffer is full. Queueing without bound behind a slow stream would
  only add latency the overlay's own retransmissions cannot fix;
- outbound connections report `on_up(endpoint)` when connected and `on_down(endpoint)` when
  a connection that was up drops by itself (not when `unwant` closed it on request);
- a framing error, or an inbound connection silent for TCP_IDLE_S, aborts that connection.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Callable

from overlay_core.proto.effects import Endpoint, tcp

from .framing import FramingError, RecordDecoder, encode_record

log = logging.getLogger(__name__)

RecordHandler = Callable[[bytes, Endpoint], None]
LinkHandler = Callable[[Endpoint], None]

TCP_CONNECT_TIMEOUT_S = 5.0
TCP_BACKOFF_MIN_S = 1.0
TCP_BACKOFF_MAX_S = 30.0
TCP_STABLE_S = 30.0  # a connection that lived this long resets the backoff
TCP_IDLE_S = 180.0  # leaves keep their root link busy with keepalives far more often
TCP_SWEEP_S = 10.0
MAX_INBOUND_LINKS = 1024
WRITE_BUFFER_LIMIT_BYTES = 256 * 1024


def _key(endpoint: Endpoint) -> Endpoint:
    return tcp(endpoint.host, endpoint.port)


class _Link(asyncio.Protocol):
    """One TCP connection, inbound or outbound, turning its byte stream into records."""

    def __init__(self, owner: TcpLinks, endpoint: Endpoint | None) -> None:
        self.owner = owner
        self.outbound = endpoint is not None
        self.endpoint = endpoint or tcp("", 0)  # inbound: known at connection_made
        self.transport: asyncio.Transport | None = None
        self.decoder = RecordDecoder()
        self.last_receive = asyncio.get_running_loop().time()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.silent = False  # closed on request: do not report on_down

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if not self.outbound:
            peer = transport.get_extra_info("peername")
            self.endpoint = tcp(str(peer[0]), int(peer[1]))
        self.owner._link_made(self)

    def data_received(self, data: bytes) -> None:
        self.last_receive = asyncio.get_running_loop().time()
        error: FramingError | None = None
        try:
            records = self.decoder.feed(data)
        except FramingError as exc:
            error, records = exc, exc.records
        for record in records:
            self.owner.counters["tcp_records_received"] += 1
            self.owner._on_record(record, self.endpoint)
        if error is not None:
            self.owner.counters["tcp_framing_errors"] += 1
            log.info("closing TCP link %s: %s", self.endpoint, error)
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        self.owner._link_lost(self)

    def send(self, data: bytes) -> bool:
        transport = self.transport
        if transport is None or transport.is_closing():
            return False
        if transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT_BYTES:
            self.owner.counters["tcp_send_backpressure"] += 1
            return False
        transport.write(encode_record(data))
        return True

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class TcpLinks:
    """All TCP fallback connections of one daemon, keyed by remote endpoint."""

    def __init__(
        self,
        on_record: RecordHandler,
        on_up: LinkHandler | None = None,
        on_down: LinkHandler | None = None,
    ) -> None:
        self._on_record = on_record
        self._on_up = on_up or (lambda endpoint: None)
        self._on_down = on_down or (lambda endpoint: None)
        self.counters: Counter[str] = Counter()
        self._links: dict[Endpoint, _Link] = {}
        self._wanted: dict[Endpoint, asyncio.Task[None]] = {}
        self._servers: list[asyncio.Server] = []
        self._sweeper: asyncio.Task[None] | None = None

    # -- root side

    async def serve(self, binds: list[str], port: int) -> None:
        """Accept TCP on every bind address at `port` (the UDP port). OSError on failure."""
        loop = asyncio.get_running_loop()
        for host in binds:
            server = await loop.create_server(lambda: _Link(self, None), host, port)
            self._servers.append(server)
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_idle(), name="tcp-idle-sweep")

    async def _sweep_idle(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(TCP_SWEEP_S)
            cutoff = loop.time() - TCP_IDLE_S
            for link in list(self._links.values()):
                if not link.outbound and link.last_receive < cutoff:
                    self.counters["tcp_idle_closed"] += 1
                    link.abort()

    # -- leaf side

    def want(self, endpoint: Endpoint) -> None:
        """Keep a connection to `endpoint` up until `unwant`. Idempotent."""
        key = _key(endpoint)
        if key not in self._wanted:
            self._wanted[key] = asyncio.create_task(self._keep(key), name=f"tcp-{key}")

    def unwant(self, endpoint: Endpoint) -> None:
        key = _key(endpoint)
        task = self._wanted.pop(key, None)
        if task is not None:
            task.cancel()
        link = self._links.get(key)
        if link is not None and link.outbound:
            link.silent = True
            link.abort()

    async def _keep(self, endpoint: Endpoint) -> None:
        loop = asyncio.get_running_loop()
        backoff = TCP_BACKOFF_MIN_S
        while True:
            started = loop.time()
            try:
                async with asyncio.timeout(TCP_CONNECT_TIMEOUT_S):
                    _, link = await loop.create_connection(
                        lambda: _Link(self, endpoint), endpoint.host, endpoint.port
                    )
            except (OSError, TimeoutError) as exc:
                self.counters["tcp_connect_failures"] += 1
                log.debug("TCP connect to %s failed: %s", endpoint, exc)
            else:
                try:
                    await asyncio.shield(link.closed)
                except asyncio.CancelledError:
                    link.silent = True
                    link.abort()
                    raise
                if loop.time() - started >= TCP_STABLE_S:
                    backoff = TCP_BACKOFF_MIN_S
            # Jitter keeps a fleet of leaves that lost the same root from reconnecting in step.
            await asyncio.sleep(backoff * random.uniform(0.8, 1.2))
            backoff = min(backoff * 2, TCP_BACKOFF_MAX_S)

    # -- both

    def send(self, endpoint: Endpoint, data: bytes) -> bool:
        link = self._links.get(_key(endpoint))
        if link is None:
            self.counters["tcp_send_no_link"] += 1
            return False
        try:
            sent = link.send(data)
        except FramingError:
            self.counters["tcp_send_oversize"] += 1
            return False
        if sent:
            self.counters["tcp_records_sent"] += 1
        return sent

    def links(self) -> list[Endpoint]:
        return list(self._links)

    def is_up(self, endpoint: Endpoint) -> bool:
        return _key(endpoint) in self._links

    def _link_made(self, link: _Link) -> None:
        if not link.outbound:
            inbound = sum(1 for other in self._links.values() if not other.outbound)
            if inbound >= MAX_INBOUND_LINKS:
                self.counters["tcp_inbound_refused"] += 1
                link.silent = True
                link.abort()
                return
        old = self._links.get(link.endpoint)
        if old is not None and old is not link:
            old.silent = True
            old.abort()
        self._links[link.endpoint] = link
        self.counters["tcp_links_opened"] += 1
        log.debug("TCP link up: %s", link.endpoint)
        if link.outbound:
            self._on_up(link.endpoint)

    def _link_lost(self, link: _Link) -> None:
        if self._links.get(link.endpoint) is link:
            del self._links[link.endpoint]
            log.debug("TCP link down: %s", link.endpoint)
            # Inbound links matter too: a root must stop routing to a leaf whose stream died.
            if not link.silent:
                self._on_down(link.endpoint)

    async def close(self) -> None:
        for task in self._wanted.values():
            task.cancel()
        tasks = [*self._wanted.values(), *([self._sweeper] if self._sweeper else [])]
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        self._wanted.clear()
        for link in list(self._links.values()):
            link.silent = True
            link.abort()
        for server in self._servers:
            server.close()
        await asyncio.gather(*tasks, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
