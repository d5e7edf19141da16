"""TcpLinks: the TCP fallback transport between a leaf and a root, over real loopback TCP."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from overlay_core.io.framing import encode_record
from overlay_core.io.tcp import TcpLinks
from overlay_core.proto.effects import Endpoint, Transport, tcp


@dataclass
class Side:
    """One TcpLinks with everything it reported recorded."""

    records: asyncio.Queue[tuple[bytes, Endpoint]] = field(default_factory=asyncio.Queue)
    ups: list[Endpoint] = field(default_factory=list)
    downs: list[Endpoint] = field(default_factory=list)
    links: TcpLinks = field(init=False)

    def __post_init__(self) -> None:
        self.links = TcpLinks(
            lambda data, ep: self.records.put_nowait((data, ep)), self.ups.append, self.downs.append
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def eventually(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not check():
            await asyncio.sleep(0.01)


@pytest.fixture
async def pair() -> AsyncIterator[tuple[Side, Side, Endpoint]]:
    root, leaf = Side(), Side()
    port = free_port()
    await root.links.serve(["127.0.0.1"], port)
    try:
        yield root, leaf, tcp("127.0.0.1", port)
    finally:
        await leaf.links.close()
        await root.links.close()


async def test_records_flow_both_ways_keyed_by_remote_end(
    pair: tuple[Side, Side, Endpoint],
) -> None:
    """A leaf's link is keyed by the root's endpoint, the root's by the leaf's source; a
    record sent on either arrives whole, tagged with the sender's TCP endpoint."""
    root, leaf, root_ep = pair
    leaf.links.want(root_ep)
    await eventually(lambda: leaf.ups == [root_ep])
    assert leaf.links.send(root_ep, b"hello root")
    data, leaf_ep = await asyncio.wait_for(root.records.get(), 5)
    assert data == b"hello root"
    assert leaf_ep.transport is Transport.TCP and leaf_ep.host == "127.0.0.1"
    assert root.links.send(leaf_ep, b"hello leaf")
    assert await asyncio.wait_for(leaf.records.get(), 5) == (b"hello leaf", root_ep)


async def test_send_without_link_is_dropped_and_counted() -> None:
    """No connection means drop (the overlay is lossy by design), never an exception."""
    links = TcpLinks(lambda d, e: None)
    assert not links.send(tcp("127.0.0.1", 9), b"x")
    assert links.counters["tcp_send_no_link"] == 1


async def test_bad_length_closes_the_connection_and_counts(
    pair: tuple[Side, Side, Endpoint],
) -> None:
    """A zero-length record cannot be resynchronised: the root drops that connection."""
    root, _, root_ep = pair
    reader, writer = await asyncio.open_connection(root_ep.host, root_ep.port)
    writer.write(encode_record(b"ok") + b"\x00\x00")
    assert (await asyncio.wait_for(root.records.get(), 5))[0] == b"ok"
    assert await asyncio.wait_for(reader.read(), 5) == b""  # EOF: the root hung up
    writer.close()
    assert root.links.counters["tcp_framing_errors"] == 1
    await eventually(lambda: root.links.links() == [])


async def test_dropped_connection_reports_down_and_reconnects(
    pair: tuple[Side, Side, Endpoint],
) -> None:
    """When the root side closes, the leaf reports down, then reconnects by itself."""
    root, leaf, root_ep = pair
    leaf.links.want(root_ep)
    await eventually(lambda: len(root.links.links()) == 1)
    for link in list(root.links._links.values()):
        link.abort()
    await eventually(lambda: leaf.downs == [root_ep])
    await eventually(lambda: len(leaf.ups) == 2, timeout_s=5)


async def test_unwant_closes_without_reporting_down(pair: tuple[Side, Side, Endpoint]) -> None:
    """Closing on the node's own request (CloseTcp) is not news to the node."""
    _, leaf, root_ep = pair
    leaf.links.want(root_ep)
    await eventually(lambda: leaf.links.is_up(root_ep))
    leaf.links.unwant(root_ep)
    await eventually(lambda: not leaf.links.is_up(root_ep))
    await asyncio.sleep(0.1)
    assert leaf.downs == []
