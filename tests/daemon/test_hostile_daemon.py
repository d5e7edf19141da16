"""Hostile traffic against real daemons on loopback (issue 8, daemon side): what a flood
costs in events and log lines, and that the overlay keeps working through it."""

from __future__ import annotations

import asyncio
import logging
import os
import socket

import pytest

from overlay_core.io.eventlimit import EVENT_BURST, EventLimiter
from overlay_core.lab.loopback import LoopbackOverlay
from overlay_core.proto import wire
from overlay_core.proto.effects import Event
from overlay_core.proto.identity import Identity


def test_event_limiter_passes_a_burst_then_counts_and_reports_what_it_left_out() -> None:
    limiter = EventLimiter(rate_per_s=1.0, burst=3.0)
    passed = [limiter.admit(Event("whois", f"n{i}"), now=0.0) for i in range(10)]
    assert [e.message for e in passed if e is not None] == ["n0", "n1", "n2"]
    assert limiter.suppressed["whois"] == 7
    assert limiter.admit(Event("link", "other kinds have their own budget"), 0.0) is not None
    later = limiter.admit(Event("whois", "n10"), now=1.0)
    assert later is not None and later.message == "n10 (+7 more whois events left out)"
    assert limiter.suppressed_total == 7 and not limiter.suppressed


async def test_a_flood_from_unknown_sources_writes_a_bounded_number_of_log_lines(
    overlay: LoopbackOverlay, caplog: pytest.LogCaptureFixture
) -> None:
    """30,000 packets from random unknown sources wrote 4.3 MB of log; now the leaf asks
    the root about a budgeted few, announces none, and its log stays short."""
    await overlay.add_root()
    leaf = await overlay.add_leaf("a")
    await overlay.wait_online()
    caplog.set_level(logging.INFO)
    caplog.clear()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for i in range(3000):
            source = 0x2000000000 + i
            header = wire.Header(i, leaf.address, source, 0, False, wire.Cipher.SESSION, 1)
            sock.sendto(header.pack() + bytes(40), ("127.0.0.1", leaf.udp_port))
            if i % 500 == 499:
                await asyncio.sleep(0.05)
        await asyncio.sleep(2)
    finally:
        sock.close()
    status = leaf.status()
    assert status.drops.get("unknown_peer", 0) >= 2500  # loopback may drop a few
    assert status.drops.get("whois_limited", 0) >= 2000
    assert len(caplog.records) < 20, [r.getMessage() for r in caplog.records[:5]]
    assert leaf.io_counters().get("events_suppressed", 0) <= EVENT_BURST


async def test_leaves_stay_direct_while_strangers_flood_the_root_with_hellos(
    overlay: LoopbackOverlay, caplog: pytest.LogCaptureFixture
) -> None:
    """Random-key HELLOs from many addresses cost the root a hash and a small cookie each
    once its new-identity budget is spent, never an argon2id, and never a traceback: the
    leaves' echoes keep working while the flood goes on."""
    root = await overlay.add_root()
    a, b = await overlay.add_leaf("a"), await overlay.add_leaf("b")
    await overlay.wait_online()
    assert await a.echo(b.address, timeout_s=3) is not None
    socks = []
    for i in range(2, 42):  # 40 source addresses, all on this machine's loopback
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((f"127.0.0.{i}", 0))
        sock.setblocking(False)
        socks.append(sock)
    sent = received = 0
    try:
        for i in range(2000):
            header = wire.Header(i, root.address, 0x3000000000 + i, 0, False, wire.Cipher.HELLO, 0)
            key = Identity.generate().public_key if i < 5 else os.urandom(32)
            hello = header.pack() + key + os.urandom(90)
            socks[i % len(socks)].sendto(hello, ("127.0.0.1", root.udp_port))
            sent += len(hello)
            if i % 200 == 199:
                await asyncio.sleep(0.02)
        reply = await a.echo(b.address, timeout_s=3)
        assert reply is not None
        await asyncio.sleep(0.5)
        for sock in socks:
            while True:
                try:
                    received += len(sock.recv(2048))
                except BlockingIOError:
                    break
    finally:
        for sock in socks:
            sock.close()
    counters = root.status().counters
    assert counters.get("identity_checks", 0) <= 150
    assert counters.get("cookies_sent", 0) >= 1000
    assert received <= sent  # amplification <= 1 toward addresses nobody confirmed
    assert root.io_counters().get("node_errors", 0) == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
