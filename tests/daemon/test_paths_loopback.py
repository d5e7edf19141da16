"""A root and three leaves on 127.0.0.1: direct paths, losing one, and getting it back.

The story: every leaf pings every other leaf; the root introduces them and they all end
DIRECT within a few seconds. Then the direct path between a and b breaks (a and b bind
through LossyBinds, which drop what each sends to the other's UDP endpoint, as a broken
router would; the root and c keep plain sockets). Traffic keeps flowing, through the
root, within 10 s; when the path heals, they go DIRECT again.
"""

from __future__ import annotations

import asyncio
import itertools
import time

from overlay_core.io.daemon import Daemon
from overlay_core.lab.loopback import LoopbackOverlay
from overlay_core.proto.effects import udp
from overlay_core.proto.identity import format_address
from overlay_core.testing.fakebind import DROPPED_COUNTER, LossyBindFactory


def link(daemon: Daemon, other: Daemon) -> str:
    peer = daemon.peer(other.address)
    return peer.link if peer is not None else "NONE"


async def ping_until(a: Daemon, b: Daemon, wanted: str, timeout_s: float) -> list[str]:
    """Echo a -> b every 0.25 s until an echo comes back over `wanted`; the links seen."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        reply = await a.echo(b.address, timeout_s=1.0)
        seen.append(reply.link if reply is not None else "LOST")
        if seen[-1] == wanted and link(a, b) == wanted:
            return seen
        await asyncio.sleep(0.25)
    raise AssertionError(f"no {wanted} within {timeout_s} s; echoes came back over {seen}")


async def test_three_leaves_go_direct_lose_a_path_relay_and_recover(
    overlay: LoopbackOverlay,
) -> None:
    await overlay.add_root()
    a_binds, b_binds = LossyBindFactory(), LossyBindFactory()
    a = await overlay.add_leaf("a", udp_factory=a_binds.open)
    b = await overlay.add_leaf("b", udp_factory=b_binds.open)
    c = await overlay.add_leaf("c")
    leaves = [a, b, c]
    await overlay.wait_online()

    started = time.monotonic()
    for x, y in itertools.permutations(leaves, 2):
        await ping_until(x, y, "DIRECT", timeout_s=5)
    all_direct_s = time.monotonic() - started
    assert all(link(x, y) == "DIRECT" for x, y in itertools.permutations(leaves, 2))
    assert all_direct_s < 10

    a_binds.live.unreachable.add(udp("127.0.0.1", b.udp_port))
    b_binds.live.unreachable.add(udp("127.0.0.1", a.udp_port))
    cut_at = time.monotonic()
    seen = await ping_until(a, b, "RELAY", timeout_s=10)
    assert time.monotonic() - cut_at <= 10
    assert "LOST" not in seen[-1:], seen
    # The relay carries real data too, and the reason names the dead path.
    await a.send_user_data(b.address, b"via the root")
    delivered = await b.receive_user_data(timeout_s=3)
    assert delivered.payload == b"via the root"
    peer = a.peer(b.address)
    assert peer is not None and peer.relay_reason is not None
    assert "stopped answering" in peer.relay_reason.summary
    assert link(a, c) == "DIRECT", "only the a-b path was cut"
    assert a_binds.live.dropped > 0 and b_binds.live.dropped > 0, "the cut was in the path"
    assert a.io_counters()[DROPPED_COUNTER] == a_binds.live.dropped

    a_binds.live.unreachable.clear()
    b_binds.live.unreachable.clear()
    await ping_until(a, b, "DIRECT", timeout_s=10)
    back = f"{format_address(b.address)}: RELAY -> DIRECT"
    deadline = time.monotonic() + 2.0  # link events are written on the node's next tick
    while back not in (events := [e["message"] for e in a.recent_events()]):
        assert time.monotonic() < deadline, events
        await asyncio.sleep(0.1)
    assert f"{format_address(b.address)}: DIRECT -> RELAY" in events
