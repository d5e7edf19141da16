"""sendmmsg / recvmmsg (io/udp_mmsg.py, and udp.py's use of it) on real loopback sockets.

The batch path of kernels without UDP GSO/GRO (`--offload tap`): many datagrams per call,
each still its own datagram on the wire, with sources, sizes and order kept, and a failing
datagram dropped alone.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

from overlay_core.io import udp_mmsg, udp_offload
from overlay_core.io.udp import UdpSockets
from overlay_core.io.udp_mmsg import MESSAGES, Batcher, sockaddr, source_of
from overlay_core.proto.effects import Endpoint, udp


def _bound(family: int, host: str) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)  # hold a whole test's worth
    sock.bind((host, 0))
    sock.setblocking(False)
    return sock


@pytest.fixture(params=[(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")], ids=["v4", "v6"])
def pair(request: pytest.FixtureRequest) -> Iterator[tuple[socket.socket, socket.socket]]:
    family, host = request.param
    try:
        a, b = _bound(family, host), _bound(family, host)
    except OSError as exc:  # a host without IPv6
        pytest.skip(f"no {host}: {exc.strerror}")
    yield a, b
    a.close()
    b.close()


def _drain(batcher: Batcher) -> list[tuple[bytes, bytes]]:
    got: list[tuple[bytes, bytes]] = []
    while True:
        try:
            got += batcher.receive()
        except BlockingIOError:
            return got


def test_batches_keep_sizes_order_and_sources(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    sender, receiver = Batcher.open(a), Batcher.open(b)
    assert sender is not None and receiver is not None
    try:
        with pytest.raises(BlockingIOError):
            receiver.receive()  # nothing waiting: EAGAIN, as recvmsg says it
        host, port = b.getsockname()[:2]
        # more than one call's worth, every size different, one as long as UDP allows
        datagrams = [bytes([i % 251]) * (1 + i * 37) for i in range(MESSAGES + 6)]
        datagrams[3] = b"\x07" * (65507 if a.family == socket.AF_INET else 65527)
        target = sockaddr(a.family, host, port)
        assert target is not None
        assert sender.send(target, datagrams) == MESSAGES  # one call takes MESSAGES
        got = _drain(receiver)
        assert sender.send(target, datagrams[MESSAGES:]) == 6
        got += _drain(receiver)
        assert [data for data, _ in got] == datagrams
        assert {source_of(raw) for _, raw in got} == {a.getsockname()[:2]}
    finally:
        sender.close()
        receiver.close()


def test_a_short_send_never_shortens_the_next_receive(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """One Batcher both sends and receives on a socket: the lengths a send gives its
    datagrams must not become the room a later receive offers (that truncated HELLOs)."""
    a, b = pair
    here, there = Batcher.open(a), Batcher.open(b)
    assert here is not None and there is not None
    try:
        to_b = sockaddr(a.family, *b.getsockname()[:2])
        to_a = sockaddr(b.family, *a.getsockname()[:2])
        assert to_b is not None and to_a is not None
        assert here.send(to_b, [b"s"] * MESSAGES) == MESSAGES
        long = [bytes([i]) * 1400 for i in range(MESSAGES)]
        assert there.send(to_a, long) == MESSAGES
        assert [data for data, _ in _drain(here)] == long
    finally:
        here.close()
        there.close()


def test_a_datagram_no_udp_can_carry_is_refused_alone(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = pair
    sender, receiver = Batcher.open(a), Batcher.open(b)
    assert sender is not None and receiver is not None
    try:
        target = sockaddr(a.family, *b.getsockname()[:2])
        assert target is not None
        # the call stops before the oversized one...
        assert sender.send(target, [b"one", b"x" * 70000, b"three"]) == 1
        # ...which fails on its own, as a sendto of it would
        with pytest.raises(OSError):
            sender.send(target, [b"x" * 70000, b"three"])
        assert [data for data, _ in _drain(receiver)] == [b"one"]
    finally:
        sender.close()
        receiver.close()


def test_socket_addresses_both_ways() -> None:
    v4 = sockaddr(socket.AF_INET, "198.18.1.2", 9993)
    assert v4 is not None and len(v4) == 16
    assert source_of(v4) == ("198.18.1.2", 9993)
    v6 = sockaddr(socket.AF_INET6, "2001:db8::1", 443)
    assert v6 is not None and len(v6) == 28
    assert source_of(v6) == ("2001:db8::1", 443)
    # what sendto would have to resolve is left to it
    assert sockaddr(socket.AF_INET6, "fe80::1%lo", 1) is None
    assert sockaddr(socket.AF_INET, "example.org", 1) is None
    assert source_of(b"\x00" * 4) is None


async def test_sources_interleaved_split_into_runs() -> None:
    """Without GRO (--offload tap) one recvmmsg may hold several senders' datagrams: each
    consecutive run from one source is handed on as one batch, in arrival order."""
    got: list[tuple[list[bytes], Endpoint]] = []
    receiver = await UdpSockets.open(
        ["127.0.0.1"], 0, on_batch=lambda d, s: got.append((d, s)), offload=False
    )
    one, two = _bound(socket.AF_INET, "127.0.0.1"), _bound(socket.AF_INET, "127.0.0.1")
    try:
        # queue everything before the loop reads, so one recvmmsg sees it all
        for sock, tag in ((one, b"a"), (one, b"b"), (two, b"c"), (one, b"d")):
            sock.sendto(tag, ("127.0.0.1", receiver.port))
        for _ in range(100):
            await asyncio.sleep(0.01)
            if sum(len(d) for d, _ in got) == 4:
                break
        ends = {s: udp(*s.getsockname()) for s in (one, two)}
        assert got == [([b"a", b"b"], ends[one]), ([b"c"], ends[two]), ([b"d"], ends[one])]
        assert receiver.counters["udp_mmsg_reads"] == 1
    finally:
        receiver.close()
        one.close()
        two.close()


async def test_a_failing_datagram_is_dropped_alone_and_the_rest_go() -> None:
    """A pending ICMP error (port unreachable for an earlier datagram: on loopback it is
    queued before sendto returns) fails the next sendmmsg: the error queue is read and the
    call made again, nothing lost. A datagram the kernel refuses (one byte over UDP's
    IPv4 limit) ends a call part-way, fails on its own twice and is dropped and counted;
    the ones after it still go, and its queued error is read too."""
    got: list[bytes] = []
    receiver = await UdpSockets.open(
        ["127.0.0.1"], 0, on_batch=lambda d, s: got.extend(d), offload=False
    )
    sender = await UdpSockets.open(["127.0.0.1"], 0, on_batch=lambda d, s: None, offload=False)
    closed = _bound(socket.AF_INET, "127.0.0.1")
    nobody = closed.getsockname()[1]
    closed.close()
    try:
        assert sender.send(udp("127.0.0.1", nobody), b"lost")  # ICMP port unreachable
        # no await in between: the sender's reader can't take the pending error first
        datagrams = [b"first", b"x" * 65508, b"second", b"third"]
        sender.send_many(udp("127.0.0.1", receiver.port), datagrams)
        counters = sender.counters
        assert counters["udp_send_retried"] == 2  # the ICMP's error, then the big one's
        assert counters["udp_errqueue_port_unreachable"] == 1
        assert counters["udp_send_failed"] == 1
        assert counters["udp_datagrams_sent"] == 1 + 3
        for _ in range(100):
            if len(got) == 3:
                break
            await asyncio.sleep(0.01)
        assert got == [b"first", b"second", b"third"]
        # the big one's EMSGSIZE was queued too (the kernel files it as a "too big"), and read
        queued = sum(v for k, v in counters.items() if k.startswith("udp_errqueue_"))
        assert queued >= 2
    finally:
        sender.close()
        receiver.close()


@pytest.mark.parametrize("batch", [True, False], ids=["recvmmsg", "recvmsg"])
async def test_a_queued_error_nobody_reported_is_read_not_spun_on(batch: bool) -> None:
    """An error-queue entry whose pending error was taken by someone else (a later
    datagram of a sendmmsg; here SO_ERROR) leaves the socket polling as errored: the
    reader, woken with nothing to read, drains the queue instead of being woken forever."""
    icmp: list[str] = []
    bound = await UdpSockets.open(
        ["127.0.0.1"],
        0,
        on_batch=lambda d, s: None,
        on_error=lambda e: icmp.append(e.kind),
        offload=False,
        batch=batch,
    )
    socket_ = bound._sockets[0]
    calls = 0
    if socket_.mmsg is not None:  # count the wakeups (the recvmsg path's can't be wrapped)
        receive = socket_.mmsg.receive

        def counted() -> list[tuple[bytes, bytes]]:
            nonlocal calls
            calls += 1
            return receive()

        socket_.mmsg.receive = counted  # type: ignore[method-assign]
    closed = _bound(socket.AF_INET, "127.0.0.1")
    nobody = closed.getsockname()[1]
    closed.close()
    try:
        socket_.sock.sendto(b"lost", ("127.0.0.1", nobody))
        assert socket_.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)  # taken here
        await asyncio.sleep(0.2)
        assert icmp == ["port_unreachable"]
        assert calls <= 3, f"woken {calls} times in 0.2 s"
    finally:
        bound.close()


def test_coalesced_receives_come_split_call_after_call() -> None:
    """With UDP_GRO on, a GSO send over loopback arrives as one coalesced receive: it is
    split back into its datagrams; the room for the segment-size control message is given
    back before each call (the kernel shrinks it), so the third call still sees it."""
    a, b = _bound(socket.AF_INET, "127.0.0.1"), _bound(socket.AF_INET, "127.0.0.1")
    if not (udp_offload.probe_gso(a) and udp_offload.enable_gro(b)):
        a.close()
        b.close()
        pytest.skip("this kernel has no UDP GSO/GRO")
    receiver = Batcher.open(b, gro=True)
    assert receiver is not None
    try:
        run = [bytes([i]) * 1000 for i in range(10)] + [b"tail"]
        where = b.getsockname()
        for round_ in range(3):
            if round_ == 1:  # plain datagrams between the coalesced ones
                for data in run[:3]:
                    a.sendto(data, where)
                assert [d for d, _ in _drain(receiver)] == run[:3]
                assert receiver.coalesced == 0
                continue
            a.sendmsg(run, udp_offload.gso_control(1000), 0, where)
            got = receiver.receive()
            assert [d for d, _ in got] == run
            assert receiver.coalesced == 1
            assert {source_of(raw) for _, raw in got} == {a.getsockname()}
    finally:
        receiver.close()
        a.close()
        b.close()


def test_a_closed_batcher_refuses_and_no_memory_means_none(
    pair: tuple[socket.socket, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    """After close() the buffers are gone, so nothing may reach the kernel with their
    addresses; and where the buffers can't be had (a small NAS), open() says None and
    the socket goes one datagram per call."""
    a, b = pair
    batcher = Batcher.open(a)
    assert batcher is not None
    target = sockaddr(a.family, *b.getsockname()[:2])
    assert target is not None
    batcher.close()
    with pytest.raises(OSError):
        batcher.send(target, [b"late"])
    with pytest.raises(OSError):
        batcher.receive()

    def no_memory(*args: object) -> None:
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(udp_mmsg.mmap, "mmap", no_memory)
    assert Batcher.open(a) is None
