"""Daemons carrying real overlay traffic over loopback UDP (and the TCP fallback)."""

from __future__ import annotations

import asyncio

import pytest

from overlay_core.io.daemon import Daemon, StartupError
from overlay_core.lab.loopback import LoopbackOverlay


async def test_user_data_is_delivered(overlay: LoopbackOverlay) -> None:
    """send_user_data on one leaf comes out of receive_user_data on the other, tagged with
    the sender's address."""
    await overlay.add_root()
    a, b = await overlay.add_leaf("a"), await overlay.add_leaf("b")
    await overlay.wait_online()
    await a.send_user_data(b.address, b"over the overlay")
    delivered = await b.receive_user_data(timeout_s=5)
    assert delivered.source == a.address
    assert delivered.payload == b"over the overlay"


async def test_leaves_end_up_direct_after_relayed_start(overlay: LoopbackOverlay) -> None:
    """The first echo may be relayed by the root; on loopback the punch succeeds, so
    echoes soon come back DIRECT over the peer's own UDP endpoint."""
    await overlay.add_root()
    a, b = await overlay.add_leaf("a"), await overlay.add_leaf("b")
    await overlay.wait_online()
    links = []
    for _ in range(20):
        reply = await a.echo(b.address, timeout_s=2)
        assert reply is not None
        links.append(reply.link)
        if reply.link == "DIRECT":
            assert reply.endpoint.port == b.udp_port
            break
        await asyncio.sleep(0.2)
    assert links[-1] == "DIRECT", links


async def test_forced_tcp_fallback_tunnels_to_the_root(overlay: LoopbackOverlay) -> None:
    """--tcp-fallback force: the leaf reaches its root over TCP only, reports TUNNELED, and
    echoes to the root still work."""
    root = await overlay.add_root()
    leaf = await overlay.add_leaf("tunneled", tcp_fallback="force")
    await overlay.wait_online()
    async with asyncio.timeout(10):
        while not leaf.status().tunneled:
            await asyncio.sleep(0.05)
    reply = await leaf.echo(root.address, timeout_s=3)
    assert reply is not None and reply.link == "TCP"


async def test_echoing_ourselves_is_refused(overlay: LoopbackOverlay) -> None:
    """An echo to our own address is a caller error, not a 2-second timeout."""
    root = await overlay.add_root()
    with pytest.raises(ValueError):
        await root.echo(root.address, timeout_s=1)


async def test_second_daemon_on_the_same_home_is_refused(overlay: LoopbackOverlay) -> None:
    """Two daemons cannot share a home: the second sees the live control socket and stops
    with one line, leaving the first one serving."""
    first = await overlay.add_root()
    second = Daemon(overlay.config("root"))
    with pytest.raises(StartupError, match="already serving"):
        await second.start()
    assert first.control_socket_path.exists()
    assert first.status().address == first.identity.address_text


async def test_stale_control_socket_is_replaced(overlay: LoopbackOverlay) -> None:
    """A socket file left by a crashed daemon is removed, not mistaken for a live one."""
    import socket

    home = overlay.base_dir / "crashed"
    home.mkdir(mode=0o700)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(home / "control.sock"))
    stale.close()  # the file stays, nobody listens
    daemon = await overlay.add_leaf("crashed")
    assert daemon.control_socket_path.exists()


async def test_stop_removes_the_control_socket(overlay: LoopbackOverlay) -> None:
    """After stop() nothing is left listening and control.sock is gone."""
    daemon = await overlay.add_root()
    path = daemon.control_socket_path
    await overlay.stop("root")
    assert not path.exists()
    await daemon.stop()  # idempotent


async def test_echo_to_an_address_nobody_has_fails_fast_with_the_reason(
    overlay: LoopbackOverlay,
) -> None:
    """The root answers WHOIS with 'not found': the echo fails at once, naming the address,
    instead of timing out."""
    await overlay.add_root()
    leaf = await overlay.add_leaf("a")
    await overlay.wait_online()
    with pytest.raises(LookupError, match="no node 0123456789 is known to root"):
        await leaf.echo(0x0123456789, timeout_s=5)
