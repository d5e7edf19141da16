"""How a daemon comes up (io/startup.py): the checks on its config, binding a root's UDP
and TCP on one port number, and the line it logs once started."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from overlay_core.io.startup import DaemonConfig, StartupError, open_sockets, started_line
from overlay_core.io.tcp import TcpLinks
from overlay_core.io.udp import UdpSockets
from overlay_core.io.udp_contract import BindLike

LOOPBACK = "127.0.0.1"


@pytest.mark.parametrize(("field", "value"), [("tcp_fallback", "maybe"), ("offload", "gso")])
def test_check_refuses_an_unknown_mode(field: str, value: str) -> None:
    config = DaemonConfig(Path("/nonexistent"), **{field: value})
    with pytest.raises(StartupError, match=f"{field} must be one of"):
        config.check()


def test_check_accepts_every_known_mode() -> None:
    for fallback in ("auto", "force", "off"):
        for offload in ("auto", "tap", "off"):
            DaemonConfig(Path("/nonexistent"), tcp_fallback=fallback, offload=offload).check()


class TakenFirst:
    """A UDP opener whose first bind lands on `port`, where TCP is already taken (as when
    the kernel's pick for port 0 is free for UDP only); later ones ask for port 0."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.opened: list[BindLike] = []
        self.ports: list[int] = []  # each one's port, as bound (a closed bind has none)

    async def open(self, binds: list[str], port: int, *args: Any, **kwargs: Any) -> BindLike:
        bound = await UdpSockets.open(binds, self.port if not self.opened else port, **kwargs)
        self.opened.append(bound)
        self.ports.append(bound.port)
        return bound


@pytest.fixture
async def tcp_links() -> AsyncIterator[TcpLinks]:
    links = TcpLinks(lambda data, source: None)
    yield links
    await links.close()


@pytest.fixture
def taken_tcp_port() -> socket.socket:
    """A TCP port held by someone else for the whole test."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind((LOOPBACK, 0))
    holder.listen()
    return holder


async def test_a_root_on_port_0_tries_again_when_tcp_is_taken(
    tcp_links: TcpLinks, taken_tcp_port: socket.socket
) -> None:
    """Roots take TCP on their UDP port number; with port 0 a pick whose TCP is taken is
    given back and another one is tried."""
    taken = taken_tcp_port.getsockname()[1]
    opener = TakenFirst(taken)
    config = DaemonConfig(Path("/nonexistent"), port=0, binds=[LOOPBACK], is_root=True)
    config.udp_factory = opener.open
    try:
        bound = await open_sockets(config, tcp_links, lambda error: None, lambda d, s: None)
        assert len(opener.opened) == 2 and opener.ports[0] == taken
        assert bound is opener.opened[1] and bound.port != taken
        assert opener.opened[0].local_addresses() == []  # the first pick was given back
        bound.close()
    finally:
        taken_tcp_port.close()


async def test_a_root_on_a_fixed_port_says_tcp_is_taken(
    tcp_links: TcpLinks, taken_tcp_port: socket.socket
) -> None:
    """A port the operator chose is not replaced by another: one line naming it."""
    taken = taken_tcp_port.getsockname()[1]
    config = DaemonConfig(Path("/nonexistent"), port=taken, binds=[LOOPBACK], is_root=True)
    try:
        with pytest.raises(StartupError, match=f"cannot listen on TCP port {taken}"):
            await open_sockets(config, tcp_links, lambda error: None, lambda d, s: None)
    finally:
        taken_tcp_port.close()


async def test_started_line_says_what_the_daemon_got() -> None:
    """Role, sockets, the offloads granted (or the mode that asked for none), the root's TCP
    port, API endpoints, roots; that a hook is set, never its command (it may hold a
    token)."""
    bound = await UdpSockets.open(
        [LOOPBACK], 0, lambda data, source: None, offload=False, batch=False
    )
    batched = await UdpSockets.open([LOOPBACK], 0, lambda data, source: None, offload=False)
    try:
        # --offload tap on a kernel without GSO/GRO: the batch calls are what it got
        tap = started_line("a1b2c3d4e5", DaemonConfig(Path("/h")), batched, (None, None), False)
        assert "(offloads: MMSG)" in tap
        root = DaemonConfig(Path("/h"), is_root=True, offload="off", on_member_request="x")
        line = started_line("a1b2c3d4e5", root, bound, (Path("/h/control.sock"), 4242), True)
        assert line == (
            f"overlayd a1b2c3d4e5 started as root; UDP {LOOPBACK}:{bound.port} (offloads: "
            f"none (--offload off)); TCP fallback on port {bound.port}; API /h/control.sock; "
            "API 127.0.0.1:4242 (token); 0 roots; on-member-request hook set"
        )
        leaf = started_line("a1b2c3d4e5", DaemonConfig(Path("/h")), bound, (None, None), False)
        assert "started as leaf" in leaf and "TCP fallback" not in leaf and "API" not in leaf
    finally:
        bound.close()
        batched.close()
