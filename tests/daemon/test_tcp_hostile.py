"""The TCP fallback against hostile clients, over real loopback sockets.

A probe held 1,024 sockets to a root from one IP, sending junk or nothing, and every
TCP-only leaf stayed OFFLINE; 1,000 connections each holding a 64 KB partial record
doubled the root's memory; every close logged a line. These pin down the defences: a cap
per source IP, a deadline to authenticate, small records until then, an idle timer that
only authenticated records reset, and counted, rate-limited closes.

"Authenticated" comes from the node through the daemon (`TcpLinks.authenticated`); here a
record starting with AUTH stands in for a packet the node authenticated.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress

import pytest

from overlay_core.io import tcp as tcp_module
from overlay_core.io.framing import encode_record
from overlay_core.io.tcp import (
    MAX_INBOUND_PER_SOURCE,
    UNAUTHENTICATED_RECORD_BYTES,
    UNAUTHENTICATED_RECORDS,
    TcpLinks,
    source_of,
)
from overlay_core.lab.loopback import LoopbackOverlay
from overlay_core.proto.effects import Endpoint

from .test_tcp_links import eventually, free_port

Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class Root:
    """A serving TcpLinks that records what it gets and authenticates AUTH... records
    from inside on_record, as the daemon does after the node accepted a packet."""

    def __init__(self) -> None:
        self.records: list[tuple[bytes, Endpoint]] = []
        self.downs: list[Endpoint] = []
        self.links = TcpLinks(self._on_record, None, self.downs.append)
        self.port = free_port()

    def _on_record(self, data: bytes, endpoint: Endpoint) -> None:
        self.records.append((data, endpoint))
        if data.startswith(b"AUTH"):
            self.links.authenticated(endpoint)

    async def connect(self, source: str = "127.0.0.1") -> Conn:
        return await asyncio.open_connection("127.0.0.1", self.port, local_addr=(source, 0))


ServeRoot = Callable[..., AbstractAsyncContextManager[Root]]


@pytest.fixture
def serve_root(monkeypatch: pytest.MonkeyPatch) -> ServeRoot:
    """serve_root(CONSTANT=value, ...): a Root on 127.0.0.1 with tcp.py's constants patched
    before it starts (the idle sweeper reads TCP_SWEEP_S when it is started)."""

    @asynccontextmanager
    async def serve(**constants: float) -> AsyncIterator[Root]:
        for name, value in constants.items():
            monkeypatch.setattr(tcp_module, name, value)
        root = Root()
        await root.links.serve(["127.0.0.1"], root.port)
        try:
            yield root
        finally:
            await root.links.close()

    return serve


async def hung_up(reader: asyncio.StreamReader, timeout_s: float) -> bool:
    """True if the other end closed (EOF or reset) within `timeout_s`."""
    try:
        async with asyncio.timeout(timeout_s):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return True


async def close_all(conns: list[Conn]) -> None:
    for _, writer in conns:
        writer.close()
        with suppress(ConnectionError):
            await writer.wait_closed()


async def test_per_source_cap_refuses_the_17th_from_one_ip_not_another_ip(
    serve_root: ServeRoot,
) -> None:
    """16 links from 127.0.0.1 are served; the 17th from it is closed at once and counted,
    while 127.0.0.2 still gets in: one address cannot take the root's links from others."""
    async with serve_root() as root:
        conns = [await root.connect("127.0.0.1") for _ in range(MAX_INBOUND_PER_SOURCE)]
        await eventually(lambda: len(root.links.links()) == MAX_INBOUND_PER_SOURCE)
        extra = await root.connect("127.0.0.1")
        assert await hung_up(extra[0], 5)
        assert root.links.counters["tcp_inbound_refused_per_source"] == 1
        other = await root.connect("127.0.0.2")
        other[1].write(encode_record(b"from elsewhere"))
        await eventually(lambda: any(d == b"from elsewhere" for d, _ in root.records))
        assert [ep.host for d, ep in root.records] == ["127.0.0.2"]
        assert len(root.links.links()) == MAX_INBOUND_PER_SOURCE + 1
        # Closing some frees their slots for that address again.
        await close_all(conns[:2])
        await eventually(lambda: len(root.links.links()) == MAX_INBOUND_PER_SOURCE - 1)
        again = await root.connect("127.0.0.1")
        assert not await hung_up(again[0], 0.3)
        await close_all([*conns[2:], extra, other, again])


def test_ipv6_sources_count_per_64_and_mapped_ipv4_as_ipv4() -> None:
    """An IPv6 host picks source addresses from its whole /64, so that is one source; an
    IPv4 client on a dual-stack socket is counted as its IPv4 address."""
    assert source_of("2001:db8:1:2::1") == source_of("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert source_of("2001:db8:1:3::1") != source_of("2001:db8:1:2::1")
    assert source_of("::ffff:192.0.2.7") == source_of("192.0.2.7") == "192.0.2.7"


async def test_a_link_that_does_not_authenticate_is_closed_at_the_deadline(
    serve_root: ServeRoot,
) -> None:
    """Well-framed junk does not make a link a peer's: it is closed when the deadline runs
    out and counted, while a link that authenticated in time stays up and carries records."""
    async with serve_root(TCP_AUTH_DEADLINE_S=0.3) as root:
        stranger = await root.connect()
        stranger[1].write(encode_record(b"junk, well framed"))
        peer = await root.connect()
        peer[1].write(encode_record(b"AUTH hello"))
        assert await hung_up(stranger[0], 3)
        assert root.links.counters["tcp_auth_deadline_closed"] == 1
        assert not await hung_up(peer[0], 0.5)
        peer[1].write(encode_record(b"still here"))
        await eventually(lambda: root.records[-1][0] == b"still here")
        assert len(root.links.links()) == 1
        assert root.downs == []  # a stranger was never a path: nothing for the node to forget
        await close_all([stranger, peer])


async def test_a_strangers_partial_record_is_bounded(serve_root: ServeRoot) -> None:
    """Before authenticating, a header announcing 60,000 bytes closes the link at once
    instead of buffering up to 64 KiB; the deadline is far off, so the bound did it. After
    authenticating, full-size records pass, even right behind the authenticating record."""
    async with serve_root(TCP_AUTH_DEADLINE_S=30.0) as root:
        hog = await root.connect()
        hog[1].write(b"\xea\x60")  # 60000
        for _ in range(5):
            hog[1].write(b"x" * 1000)
            await asyncio.sleep(0.02)
        assert await hung_up(hog[0], 2)
        assert root.links.counters["tcp_framing_errors"] == 1
        # Right up to the bound is allowed, and that is all a stranger's link holds.
        near = await root.connect()
        near[1].write(len(b"y" * UNAUTHENTICATED_RECORD_BYTES).to_bytes(2, "big") + b"y" * 100)
        await eventually(lambda: len(root.links.links()) == 1)
        await asyncio.sleep(0.1)
        (link,) = root.links._links.values()
        assert 0 < link.decoder.buffered <= UNAUTHENTICATED_RECORD_BYTES + 2
        big = b"z" * 60000
        peer = await root.connect()
        peer[1].write(encode_record(b"AUTH") + encode_record(big))
        await eventually(lambda: bool(root.records) and root.records[-1][0] == big)
        assert root.links.counters["tcp_framing_errors"] == 1
        await close_all([hog, near, peer])


async def test_idle_timer_is_not_reset_by_a_strangers_bytes(serve_root: ServeRoot) -> None:
    """A stranger trickling bytes of a record that never completes is idle as far as the
    root cares: the idle sweep closes it, while an authenticated link sending records as
    seldom stays up. (The deadline is far off, so the idle timer did it.)"""
    constants = {"TCP_IDLE_S": 0.8, "TCP_SWEEP_S": 0.05, "TCP_AUTH_DEADLINE_S": 30.0}
    async with serve_root(**constants) as root:
        stranger = await root.connect()
        peer = await root.connect()
        stranger[1].write(b"\x03\xe8")  # a 1000-byte record, sent one byte at a time
        peer[1].write(encode_record(b"AUTH"))

        async def trickle() -> None:
            for _ in range(60):
                stranger[1].write(b"t")
                peer[1].write(encode_record(b"keepalive"))
                await asyncio.sleep(0.05)

        trickling = asyncio.create_task(trickle())
        try:
            assert await hung_up(stranger[0], 2.5)
        finally:
            trickling.cancel()
            with suppress(asyncio.CancelledError, ConnectionError):
                await trickling
        assert root.links.counters["tcp_idle_closed"] == 1
        assert not await hung_up(peer[0], 0.1)
        await close_all([stranger, peer])


async def test_a_stranger_gets_only_a_few_records_through(serve_root: ServeRoot) -> None:
    """A link whose records the node keeps refusing is closed after UNAUTHENTICATED_RECORDS
    of them, however fast they come: a stranger cannot make the root verify or forward
    more per connection."""
    async with serve_root() as root:
        stranger = await root.connect()
        stranger[1].write(b"".join(encode_record(b"junk %d" % n) for n in range(50)))
        assert await hung_up(stranger[0], 3)
        assert len(root.records) == UNAUTHENTICATED_RECORDS
        assert root.links.counters["tcp_unauthenticated_closed"] == 1
        await close_all([stranger])


async def test_closes_and_refusals_are_counted_but_logged_at_a_bounded_rate(
    serve_root: ServeRoot, caplog: pytest.LogCaptureFixture
) -> None:
    """30 links with bad framing and 10 refused ones are all counted, but write one log
    line per kind: a remote party cannot flood the log (a test used to log 4,095 lines)."""
    caplog.set_level(logging.DEBUG, logger="overlay_core.io.tcp")
    async with serve_root(MAX_INBOUND_PER_SOURCE=2) as root:
        for _ in range(30):
            reader, writer = await root.connect()
            writer.write(b"\x00\x00")
            assert await hung_up(reader, 3)
            writer.close()
        conns = [await root.connect() for _ in range(12)]
        await eventually(lambda: root.links.counters["tcp_inbound_refused_per_source"] == 10)
        assert root.links.counters["tcp_framing_errors"] == 30
        lines = [r.getMessage() for r in caplog.records if r.name == "overlay_core.io.tcp"]
        closing = [line for line in lines if line.startswith("closing TCP link")]
        refusing = [line for line in lines if line.startswith("refusing TCP link")]
        assert len(closing) == 1 and "bad record length 0" in closing[0]
        assert len(refusing) == 1
        assert len(lines) <= 6, lines  # plus at most one link up and one link down line
        await close_all(conns)


async def squat(port: int, source: str, count: int, stop: asyncio.Event) -> None:
    """Hold `count` connections to `port` from `source`, each sending one junk record and
    then nothing, reconnecting whenever the root drops one (as the probe did)."""

    async def hold() -> None:
        while not stop.is_set():
            try:
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", port, local_addr=(source, 0)
                )
            except OSError:
                await asyncio.sleep(0.25)
                continue
            writer.write(encode_record(b"\x00" * 40))
            with suppress(ConnectionError):
                while await reader.read(65536):
                    pass
            writer.close()
            await asyncio.sleep(0.25)  # gently: the machine is shared

    tasks = [asyncio.create_task(hold()) for _ in range(count)]
    try:
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_tcp_only_leaf_comes_online_while_one_ip_squats_on_the_root(
    overlay: LoopbackOverlay, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """With the root's inbound cap lowered to 32 and 127.0.0.2 holding 48 junk connections,
    a leaf that reaches its root only over TCP (tcp_fallback="force") still comes ONLINE,
    TUNNELED, and its link is the authenticated one; the squatter is refused per source,
    and its hundreds of refused connections write a line or two to the log, not hundreds."""
    caplog.set_level(logging.INFO, logger="overlay_core")
    monkeypatch.setattr(tcp_module, "MAX_INBOUND_LINKS", 32)
    root = await overlay.add_root()
    stop = asyncio.Event()
    squatter = asyncio.create_task(squat(root.udp_port, "127.0.0.2", 48, stop))
    try:
        await eventually(lambda: root.io_counters().get("tcp_links_opened", 0) >= 16)
        await asyncio.sleep(0.3)  # let the rest of the squatter's connections land
        leaf = await overlay.add_leaf("tunneled", tcp_fallback="force")
        await overlay.wait_online(timeout_s=15)
        await eventually(lambda: leaf.status().tunneled, timeout_s=10)
        counters = root.io_counters()
        assert counters["tcp_inbound_refused_per_source"] > 0
        assert counters["tcp_links_authenticated"] >= 1
        reply = await leaf.echo(root.address, timeout_s=3)
        assert reply is not None and reply.link == "TCP"
        tcp_lines = [r for r in caplog.records if "TCP link" in r.getMessage()]
        assert len(tcp_lines) <= 4, [r.getMessage() for r in tcp_lines]
    finally:
        stop.set()
        await squatter
