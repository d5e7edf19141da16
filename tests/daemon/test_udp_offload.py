"""UDP GSO/GRO (io/udp_offload.py, io/udp.py) on real loopback sockets, and the fallback.

Loopback carries a GSO send whole, and a socket with UDP_GRO receives it whole with its
segment size, so one send_many of a super-frame's segments is one sendmsg and one recvmsg.
"""

from __future__ import annotations

import asyncio
import errno
import socket

import pytest

from overlay_core.io import udp_offload
from overlay_core.io.udp import UdpSockets
from overlay_core.proto.effects import Endpoint, udp


def test_runs_split_where_a_gso_send_must_end() -> None:
    big, small = b"x" * 1400, b"y" * 100
    runs = udp_offload.gso_runs([big] * 3 + [small] + [big] * 2)
    assert runs == [[big, big, big, small], [big, big]]
    # a longer datagram after shorter ones starts a new run
    assert udp_offload.gso_runs([small, big]) == [[small], [big]]
    # the segment and byte caps
    runs = udp_offload.gso_runs([b"z" * 100] * 150)
    assert [len(r) for r in runs] == [64, 64, 22]
    runs = udp_offload.gso_runs([b"z" * 9000] * 10)
    assert all(sum(map(len, r)) <= udp_offload.MAX_GSO_BYTES for r in runs)
    assert sum(len(r) for r in runs) == 10


def test_split_gro_keeps_a_short_tail() -> None:
    data = memoryview(b"a" * 1400 * 3 + b"b" * 10)
    parts = udp_offload.split_gro(data, 1400)
    assert [len(p) for p in parts] == [1400, 1400, 1400, 10]
    assert udp_offload.split_gro(memoryview(b"abc"), 0) == [b"abc"]


async def _pair(
    offload: bool, batch: bool = True
) -> tuple[UdpSockets, UdpSockets, asyncio.Queue[tuple[list[bytes], Endpoint]]]:
    got: asyncio.Queue[tuple[list[bytes], Endpoint]] = asyncio.Queue()
    receiver = await UdpSockets.open(
        ["127.0.0.1"],
        0,
        on_batch=lambda d, s: got.put_nowait((d, s)),
        offload=offload,
        batch=batch,
    )
    sender = await UdpSockets.open(
        ["127.0.0.1"], 0, on_batch=lambda d, s: None, offload=offload, batch=batch
    )
    return sender, receiver, got


async def _collect(got: asyncio.Queue[tuple[list[bytes], Endpoint]], count: int) -> list[bytes]:
    out: list[bytes] = []
    while len(out) < count:
        batch, _ = await asyncio.wait_for(got.get(), 2.0)
        out += batch
    return out


# --offload auto, tap and off: GSO/GRO; sendmmsg/recvmmsg; one call per datagram.
MODES = {"auto": (True, True), "tap": (False, True), "off": (False, False)}


@pytest.mark.parametrize("mode", MODES)
async def test_send_many_arrives_whole_and_in_order(mode: str) -> None:
    offload, batch = MODES[mode]
    sender, receiver, got = await _pair(offload, batch)
    try:
        datagrams = [bytes([i]) * 1400 for i in range(40)] + [b"tail"]
        sender.send_many(udp("127.0.0.1", receiver.port), datagrams)
        assert await _collect(got, len(datagrams)) == datagrams
        assert sender.counters["udp_datagrams_sent"] == len(datagrams)
        assert sender.offloads == {"gso": offload, "gro": offload, "mmsg": batch}
        assert sender.counters["udp_gso_sends"] == (1 if offload else 0)
        assert (receiver.counters["udp_gro_reads"] >= 1) is offload
        # without GSO the 41 datagrams went in one sendmmsg; with batching on they came in
        # with few recvmmsg (with GRO: one coalesced receive, split back into datagrams)
        assert sender.counters["udp_mmsg_sends"] == (1 if mode == "tap" else 0)
        assert receiver.counters["udp_mmsg_reads"] == (1 if batch else 0)
    finally:
        sender.close()
        receiver.close()


class _NoSegmentation:
    """A socket whose GSO sends fail as on a device without checksum offload (EIO)."""

    def __init__(self, real: socket.socket) -> None:
        self._real = real

    def sendmsg(self, *args: object) -> int:
        raise OSError(errno.EIO, "Input/output error")

    def __getattr__(self, name: str) -> object:
        return getattr(self._real, name)


async def test_eio_turns_gso_off_and_loses_nothing() -> None:
    sender, receiver, got = await _pair(True)
    try:
        bound = sender._sockets[0]
        bound.sock = _NoSegmentation(bound.sock)  # type: ignore[assignment]
        # two GSO runs (a short datagram ends the first): the EIO comes on the first
        datagrams = [bytes([i]) * 1000 for i in range(10)] + [b"short"] + [b"z" * 1000] * 5
        target = udp("127.0.0.1", receiver.port)
        sender.send_many(target, datagrams)
        # both runs went by sendmmsg, the one that failed and the one after it
        assert sender.counters["udp_mmsg_sends"] == 2
        sender.send_many(target, datagrams)  # the second goes without GSO from the start
        assert await _collect(got, 32) == datagrams * 2
        assert bound.gso is False
        assert sender.counters["udp_gso_fallbacks"] == 1
    finally:
        sender.close()
        receiver.close()
