"""ICMP errors for our own datagrams (IP_RECVERR): parsing the error queue's control
messages, draining the queue of a real socket, and the daemon handing a smaller path MTU
to the node (overlay_core/io/udp.py, Daemon._on_udp_error)."""

from __future__ import annotations

import asyncio
import errno
import socket
import sys
from pathlib import Path

import pytest

from overlay_core.io.udp import IcmpError, UdpSockets, parse_recverr
from overlay_core.lab.loopback import LoopbackOverlay
from overlay_core.proto.effects import Endpoint, udp

little_endian = pytest.mark.skipif(
    sys.byteorder != "little", reason="golden bytes are little-endian (host byte order)"
)

SOL_IP, IP_RECVERR = 0, 11
SOL_IPV6, IPV6_RECVERR = 41, 25

# struct sock_extended_err (u32 errno; u8 origin, type, code, pad; u32 info, data) and the
# offender's sockaddr, as Linux queues them: ICMP "fragmentation needed, next-hop MTU 1280"
# from the router 198.18.1.11 ...
FRAG_NEEDED_V4 = bytes.fromhex(
    "5a000000 02030400 00050000 00000000"  # EMSGSIZE; ICMP, type 3 code 4; info 1280
    " 0200 0000 c612010b 0000000000000000"  # sockaddr_in 198.18.1.11
)
# ... ICMPv6 "packet too big, MTU 1280" from 2001:db8::198:18:1:11 ...
TOO_BIG_V6 = bytes.fromhex(
    "5a000000 03020000 00050000 00000000"  # EMSGSIZE; ICMP6, type 2 code 0; info 1280
    " 0a00 0000 00000000"  # sockaddr_in6: family, port, flowinfo
    " 20010db8000000000198001800010011 00000000"  # address, scope id
)
# ... and port unreachable, as a 6.x kernel queued them on loopback (bytes copied from it).
PORT_UNREACHABLE_V4 = bytes.fromhex(
    "6f000000 02030300 00000000 00000000 0200 0000 7f000001 0000000000000000"
)
PORT_UNREACHABLE_V6 = bytes.fromhex(
    "6f000000 03010400 00000000 00000000 0a00 0000 00000000"
    " 00000000000000000000000000000001 00000000"
)


@little_endian
def test_fragmentation_needed_gives_the_next_hop_mtu_and_the_original_destination() -> None:
    got = parse_recverr(SOL_IP, IP_RECVERR, FRAG_NEEDED_V4, ("198.18.1.20", 41641))
    assert got == IcmpError(
        "mtu", udp("198.18.1.20", 41641), errno.EMSGSIZE, 2, 3, 4, 1280, "198.18.1.11"
    )


@little_endian
def test_packet_too_big_gives_the_mtu_and_the_original_destination() -> None:
    dest = ("2001:db8::198:18:1:20", 9993, 0, 0)
    got = parse_recverr(SOL_IPV6, IPV6_RECVERR, TOO_BIG_V6, dest)
    assert got == IcmpError(
        "mtu", udp("2001:db8::198:18:1:20", 9993), errno.EMSGSIZE, 3, 2, 0, 1280,
        "2001:db8::198:18:1:11",
    )  # fmt: skip


@little_endian
def test_port_unreachable_is_its_own_kind_without_an_mtu() -> None:
    v4 = parse_recverr(SOL_IP, IP_RECVERR, PORT_UNREACHABLE_V4, ("127.0.0.1", 4000))
    v6 = parse_recverr(SOL_IPV6, IPV6_RECVERR, PORT_UNREACHABLE_V6, ("::1", 4000, 0, 0))
    assert v4 is not None and v6 is not None
    assert (v4.kind, v4.mtu, v4.errno) == ("port_unreachable", None, errno.ECONNREFUSED)
    assert (v6.kind, v6.mtu, v6.endpoint) == ("port_unreachable", None, udp("::1", 4000))
    assert (v4.offender, v6.offender) == ("127.0.0.1", "::1")  # who sent the ICMP


@little_endian
def test_other_control_messages_and_short_data_are_not_errors() -> None:
    assert parse_recverr(SOL_IP, 8, FRAG_NEEDED_V4, ("1.2.3.4", 1)) is None  # IP_PKTINFO
    assert parse_recverr(SOL_IP, IP_RECVERR, FRAG_NEEDED_V4[:15], ("1.2.3.4", 1)) is None
    assert parse_recverr(SOL_IPV6, IP_RECVERR, TOO_BIG_V6, ("::1", 1, 0, 0)) is None
    local = bytes.fromhex("5a000000 01000000 dc050000 00000000")
    got = parse_recverr(SOL_IP, IP_RECVERR, local, ("1.2.3.4", 1))
    assert got is not None and got.kind == "local" and got.mtu is None


async def test_the_error_queue_of_a_real_socket_is_drained_and_counted() -> None:
    """A datagram to a closed port on loopback: the kernel's port-unreachable reaches
    on_error with the destination we sent to, and is counted by kind."""
    seen: list[IcmpError] = []
    sockets = await UdpSockets.open(["127.0.0.1", "::1"], 0, lambda d, e: None, seen.append)
    try:
        closed = []
        for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.bind((host, 0))
                closed.append(udp(host, s.getsockname()[1]))
        for endpoint in closed:
            assert sockets.send(endpoint, b"anyone there?")
        for _ in range(100):
            if len(seen) == 2:
                break
            await asyncio.sleep(0.01)
        assert sorted((e.kind, str(e.endpoint)) for e in seen) == sorted(
            ("port_unreachable", str(e)) for e in closed
        )
        assert sockets.counters["udp_errqueue_port_unreachable"] == 2
    finally:
        sockets.close()


async def test_the_daemon_lowers_the_path_mtu_a_router_reports(short_tmp: Path) -> None:
    """What udp.py hands the daemon for a 'fragmentation needed' reaches the node: the
    leaf's path to its root drops from 1432 to 1252 at once."""
    async with LoopbackOverlay(short_tmp) as net:
        root = await net.add_root()
        leaf = await net.add_leaf("leaf")
        await net.wait_online()
        assert leaf.node is not None
        peer = leaf.node.peers[root.address]
        endpoint: Endpoint = udp("127.0.0.1", root.udp_port)
        for _ in range(200):
            path = peer.paths.get(endpoint)
            if path is not None and path.mtu == 1432:
                break
            await asyncio.sleep(0.05)
        path = peer.paths[endpoint]
        assert path.mtu == 1432
        leaf._on_udp_error(IcmpError("mtu", endpoint, errno.EMSGSIZE, 2, 3, 4, 1280))
        assert path.mtu == 1252
        assert leaf.node.counters["pmtu_icmp_lowered"] == 1


async def test_a_long_error_queue_is_drained_and_pending_errors_cost_no_datagram() -> None:
    """More entries than ERRQUEUE_DRAIN_MAX: all arrive, over several turns of the loop.
    Each ICMP also leaves a pending socket error that fails the next send (Linux, with
    IP_RECVERR); send() tries again, so every datagram leaves and draws its ICMP."""
    from overlay_core.io.udp import ERRQUEUE_DRAIN_MAX

    seen: list[IcmpError] = []
    sockets = await UdpSockets.open(["127.0.0.1"], 0, lambda d, e: None, seen.append)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            closed = udp("127.0.0.1", s.getsockname()[1])
        count = ERRQUEUE_DRAIN_MAX + 8
        for _ in range(count):  # no event-loop turn in between: the queue fills up
            sockets.send(closed, b"x")
        for _ in range(100):
            if len(seen) == count:
                break
            await asyncio.sleep(0.01)
        assert len(seen) == count and {e.kind for e in seen} == {"port_unreachable"}
        assert sockets.counters["udp_send_retried"] >= 1
    finally:
        sockets.close()
