"""LossyBind, the UDP double for daemon tests, drops only what it was told to, and says so.

Daemon tests cut paths with it instead of a firewall, so its contract is pinned here, on
real loopback sockets: sends to an unreachable endpoint are dropped and counted (send and
send_many alike), sends anywhere else and receiving are the real sockets', and the factory
keeps what it opened.
"""

from __future__ import annotations

import asyncio

import pytest

from overlay_core.io.udp import UdpSockets
from overlay_core.proto.effects import Endpoint, udp
from overlay_core.testing.fakebind import DROPPED_COUNTER, LossyBindFactory

LOOPBACK = "127.0.0.1"
Received = asyncio.Queue[tuple[bytes, Endpoint]]


async def receiver() -> tuple[UdpSockets, Endpoint, Received]:
    got: Received = asyncio.Queue()
    sockets = await UdpSockets.open([LOOPBACK], 0, lambda d, s: got.put_nowait((d, s)))
    return sockets, udp(LOOPBACK, sockets.port), got


async def drain(got: Received, wait_s: float = 0.2) -> list[bytes]:
    """What arrived within `wait_s` (loopback delivers at once; this only lets it)."""
    await asyncio.sleep(wait_s)
    out = []
    while not got.empty():
        out.append(got.get_nowait()[0])
    return out


async def test_sends_to_unreachable_are_dropped_and_counted_others_pass() -> None:
    binds = LossyBindFactory()
    bind = await binds.open([LOOPBACK], 0, lambda d, s: None)
    cut_socks, cut, cut_got = await receiver()
    open_socks, fine, fine_got = await receiver()
    try:
        assert bind.send(cut, b"before") is True
        assert await drain(cut_got) == [b"before"]

        bind.unreachable.add(cut)
        assert bind.send(cut, b"lost") is False
        assert bind.send(fine, b"kept") is True
        assert await drain(cut_got) == []
        assert await drain(fine_got) == [b"kept"]
        assert bind.dropped == 1
        assert bind.counters[DROPPED_COUNTER] == 1
        assert bind.counters["udp_datagrams_sent"] == 2  # the real sockets' own counters

        bind.unreachable.clear()  # healed
        assert bind.send(cut, b"after") is True
        assert await drain(cut_got) == [b"after"]
        assert bind.dropped == 1
    finally:
        for sockets in (bind, cut_socks, open_socks):
            sockets.close()


async def test_send_many_is_filtered_per_endpoint() -> None:
    """send_many goes to one endpoint: all of it dropped there, all of it sent elsewhere."""
    binds = LossyBindFactory()
    bind = await binds.open([LOOPBACK], 0, lambda d, s: None, offload=False)
    cut_socks, cut, cut_got = await receiver()
    open_socks, fine, fine_got = await receiver()
    try:
        bind.unreachable.add(cut)
        bind.send_many(cut, [b"a", b"b", b"c"])
        bind.send_many(fine, [b"d", b"e"])
        assert await drain(cut_got) == []
        assert await drain(fine_got) == [b"d", b"e"]
        assert bind.dropped == 3 and bind.counters[DROPPED_COUNTER] == 3
    finally:
        for sockets in (bind, cut_socks, open_socks):
            sockets.close()


async def test_only_sending_is_cut_receiving_is_the_real_sockets() -> None:
    """A cut is one-way, like a router dropping one direction: the bind still hears from
    an endpoint it cannot send to, through the handler given to open()."""
    heard: Received = asyncio.Queue()
    binds = LossyBindFactory()
    bind = await binds.open([LOOPBACK], 0, on_batch=lambda ds, s: heard.put_nowait((ds[0], s)))
    peer_socks, peer, _ = await receiver()
    try:
        bind.unreachable.add(peer)
        assert peer_socks.send(udp(LOOPBACK, bind.port), b"hello") is True
        data, source = await asyncio.wait_for(heard.get(), 2)
        assert (data, source) == (b"hello", peer)
        assert bind.local_addresses() == [(LOOPBACK, bind.port)]
        assert bind.has_ipv6 is False
        assert DROPPED_COUNTER not in bind.counters
    finally:
        bind.close()
        peer_socks.close()


async def test_factory_keeps_its_binds_and_names_the_live_one() -> None:
    binds = LossyBindFactory()
    with pytest.raises(LookupError):
        _ = binds.live
    first = await binds.open([LOOPBACK], 0, lambda d, s: None)
    assert binds.live is first
    first.close()
    assert first.closed
    with pytest.raises(LookupError):
        _ = binds.live
    second = await binds.open([LOOPBACK], 0, lambda d, s: None)
    assert binds.live is second and binds.opened == [first, second]
    second.close()
