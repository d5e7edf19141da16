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

Anyone can connect to a root, so inbound connections are strangers until the node says
otherwise: the daemon calls `authenticated(endpoint)` once the node has taken an
authenticated packet from that endpoint (a real leaf's first record is its HELLO). Until
then an inbound link

- counts against MAX_INBOUND_PER_SOURCE (per IPv4 address or IPv6 /64) and
  MAX_INBOUND_LINKS, beyond which new connections are closed at once;
- must authenticate within TCP_AUTH_DEADLINE_S, and within UNAUTHENTICATED_RECORDS records;
- may hold a partial record of at most UNAUTHENTICATED_RECORD_BYTES, not 64 KiB;
- does not reset its idle timer: only records of an authenticated link do.

One IP holding 1,024 sockets used to lock every TCP-only leaf out; now it holds 16, each
for a few seconds, with a few kilobytes of memory. Every close or refusal is counted in
`counters` and logged at a bounded rate (ratelog.py), because a remote party triggers them.
On_down is reported only for links that were up for the node: outbound ones, and inbound
ones that authenticated; a stranger that never authenticated left nothing to forget.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
from collections import Counter
from collections.abc import Callable

from overlay_core.proto.effects import Endpoint, tcp

from .framing import MAX_RECORD_BYTES, FramingError, RecordDecoder, encode_record
from .ratelog import RateLimitedLog

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
# Several leaves of one household or office share a NAT, and so one public IPv4 address;
# some of them may need the TCP fallback at once. 16 leaves room for that, while one
# hostile address now takes 16 of the 1,024 inbound links instead of all of them. An IPv6
# host usually has a whole /64 to pick source addresses from, so IPv6 counts per /64.
MAX_INBOUND_PER_SOURCE = 16
IPV6_SOURCE_PREFIX = 64
# A leaf sends HELLO as soon as it connects and the root answers within a round trip;
# 5 s is slack for a slow link and a busy root, and still ends a silent squatter quickly.
TCP_AUTH_DEADLINE_S = 5.0
# The first record of a real leaf is its HELLO, which authenticates the link. A few more
# leave room for what it queued right behind it; a stranger cannot make the root verify or
# forward more than this per connection.
UNAUTHENTICATED_RECORDS = 8
# A leaf's HELLO is 118 bytes (header, public key, sealed hello with an ephemeral key and
# an endpoint); 2 KiB leaves room for the protocol to grow, and bounds what a stranger's
# partial record holds (1,000 of them holding 64 KiB each used to double the root's memory).
UNAUTHENTICATED_RECORD_BYTES = 2048
TCP_LOG_INTERVAL_S = 10.0  # at most one line per kind of close or refusal per this
WRITE_BUFFER_LIMIT_BYTES = 256 * 1024


def _key(endpoint: Endpoint) -> Endpoint:
    return tcp(endpoint.host, endpoint.port)


def source_of(host: str) -> str:
    """The unit MAX_INBOUND_PER_SOURCE counts: an IPv4 address (also when it arrives as an
    IPv4-mapped IPv6 address on a dual-stack socket), or the /64 of an IPv6 address."""
    try:
        address = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, IPV6_SOURCE_PREFIX), strict=False))
    return str(address)


_CLOSE_COUNTERS = {
    "framing": "tcp_framing_errors",
    "idle": "tcp_idle_closed",
    "deadline": "tcp_auth_deadline_closed",
    "unauthenticated": "tcp_unauthenticated_closed",
}


class _Link(asyncio.Protocol):
    """One TCP connection, inbound or outbound, turning its byte stream into records."""

    def __init__(self, owner: TcpLinks, endpoint: Endpoint | None) -> None:
        self.owner = owner
        self.outbound = endpoint is not None
        self.endpoint = endpoint or tcp("", 0)  # inbound: known at connection_made
        self.source = ""  # inbound: what MAX_INBOUND_PER_SOURCE counts (source_of)
        self.transport: asyncio.Transport | None = None
        # We dialled an outbound link ourselves, to a root we chose; inbound ones must
        # prove themselves (TcpLinks.authenticated) before they get full-size records.
        self.authenticated = self.outbound
        self.decoder = RecordDecoder(
            MAX_RECORD_BYTES if self.outbound else UNAUTHENTICATED_RECORD_BYTES
        )
        self.unauthenticated_records = 0
        self.last_receive = asyncio.get_running_loop().time()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.silent = False  # closed on request: do not report on_down
        self.admitted = False  # counted in the owner's inbound totals until it is lost
        self.deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if not self.outbound:
            peer = transport.get_extra_info("peername")
            if peer is None:  # reset before we got to it: nothing to serve
                self.silent = True
                transport.abort()
                return
            self.endpoint = tcp(str(peer[0]), int(peer[1]))
            self.source = source_of(self.endpoint.host)
        self.owner._link_made(self)

    def data_received(self, data: bytes) -> None:
        owner = self.owner
        transport = self.transport
        try:
            self.decoder.push(data)
            while transport is not None and not transport.is_closing():
                record = self.decoder.pop()
                if record is None:
                    break
                owner.counters["tcp_records_received"] += 1
                # Delivering may authenticate this link (the daemon calls back into
                # TcpLinks.authenticated), which raises the decoder's limit for the next
                # record, even one in this same read.
                owner._on_record(record, self.endpoint)
                if self.authenticated:
                    self.last_receive = asyncio.get_running_loop().time()
                    continue
                self.unauthenticated_records += 1
                if self.unauthenticated_records >= UNAUTHENTICATED_RECORDS:
                    why = f"{UNAUTHENTICATED_RECORDS} records and none authenticated"
                    owner._close(self, "unauthenticated", why)
                    break
        except FramingError as error:
            owner._close(self, "framing", str(error))

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
        self._log = RateLimitedLog(log, TCP_LOG_INTERVAL_S)
        self._links: dict[Endpoint, _Link] = {}
        self._inbound = 0  # admitted inbound links not yet lost
        self._per_source: Counter[str] = Counter()
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
                    self._close(link, "idle", f"silent for {TCP_IDLE_S:g} s")

    def authenticated(self, endpoint: Endpoint) -> None:
        """The node took an authenticated packet from `endpoint`: that link is a real peer's.
        It may now carry full-size records, has no deadline, and its records keep it alive."""
        link = self._links.get(_key(endpoint))
        if link is None or link.authenticated:
            return
        link.authenticated = True
        link.decoder.max_record_bytes = MAX_RECORD_BYTES
        link.last_receive = asyncio.get_running_loop().time()
        if link.deadline is not None:
            link.deadline.cancel()
            link.deadline = None
        self.counters["tcp_links_authenticated"] += 1

    def is_authenticated(self, endpoint: Endpoint) -> bool:
        link = self._links.get(_key(endpoint))
        return link is not None and link.authenticated

    def _auth_deadline(self, link: _Link) -> None:
        link.deadline = None
        if not link.authenticated:
            self._close(link, "deadline", f"not authenticated within {TCP_AUTH_DEADLINE_S:g} s")

    def _close(self, link: _Link, kind: str, why: str) -> None:
        """Abort `link` for a reason the remote side caused: count it, log it rate-limited."""
        if link.transport is None or link.transport.is_closing():
            return
        self.counters[_CLOSE_COUNTERS[kind]] += 1
        self._log.info(kind, "closing TCP link %s: %s", link.endpoint, why)
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
        if not link.outbound and not self._admit(link):
            link.silent = True
            link.abort()
            return
        old = self._links.get(link.endpoint)
        if old is not None and old is not link:
            old.silent = True
            old.abort()
            if not old.outbound and old.authenticated:
                # The node's path at this endpoint was the old stream's: the new stream
                # must authenticate by itself, not inherit it.
                self._on_down(link.endpoint)
        self._links[link.endpoint] = link
        self.counters["tcp_links_opened"] += 1
        self._log.debug("up", "TCP link up: %s", link.endpoint)
        if link.outbound:
            self._on_up(link.endpoint)

    def _admit(self, link: _Link) -> bool:
        """Count a new inbound link in, or refuse it (False) past a cap."""
        if self._inbound >= MAX_INBOUND_LINKS:
            self.counters["tcp_inbound_refused"] += 1
            self._log.info(
                "refused", "refusing TCP link %s: %d links", link.endpoint, self._inbound
            )
            return False
        if self._per_source[link.source] >= MAX_INBOUND_PER_SOURCE:
            self.counters["tcp_inbound_refused_per_source"] += 1
            self._log.info(
                "refused_per_source",
                "refusing TCP link %s: %d links from %s already",
                link.endpoint,
                self._per_source[link.source],
                link.source,
            )
            return False
        link.admitted = True
        self._inbound += 1
        self._per_source[link.source] += 1
        link.deadline = asyncio.get_running_loop().call_later(
            TCP_AUTH_DEADLINE_S, self._auth_deadline, link
        )
        return True

    def _link_lost(self, link: _Link) -> None:
        if link.deadline is not None:
            link.deadline.cancel()
            link.deadline = None
        if link.admitted:
            link.admitted = False
            self._inbound -= 1
            self._per_source[link.source] -= 1
            if self._per_source[link.source] <= 0:
                del self._per_source[link.source]
        if self._links.get(link.endpoint) is link:
            del self._links[link.endpoint]
            self._log.debug("down", "TCP link down: %s", link.endpoint)
            # Inbound links matter too: a root must stop routing to a leaf whose stream
            # died. One that never authenticated was never a path of any peer.
            if not link.silent and link.authenticated:
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
            if link.deadline is not None:
                link.deadline.cancel()
                link.deadline = None
            link.abort()
        for server in self._servers:
            server.close()
        await asyncio.gather(*tasks, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
