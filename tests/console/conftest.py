"""Fixtures for the console's Pilot and snapshot tests: a FakeNode with the NAS story, an
app wired to it with the fake's clock, and everything that would make a frame differ
between runs (cursor blink, animations, the local time zone) held still; and the steps
many tests take (wait for the first poll, open a peer, pick a member, wait for a tab's
table)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from console.app import ZtuiApp
from console.screens.peer_detail import PeerScreen
from console.sync import Intervals
from console.testing.fake import FakeNode
from console.widgets.keyed_table import KeyedTable

# Long enough that nothing polls on its own during a test: a test pokes or ticks instead,
# so what a frame shows depends only on the steps the test took.
STILL = Intervals(node_s=3600, networks_s=3600, hosted_s=3600, retry_s=0.3, ping_s=0.01)


@pytest.fixture(autouse=True)
def _hold_still(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(Input, "cursor_blink", False)
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def node() -> FakeNode:
    return FakeNode.sample()


def make_app(
    node: FakeNode, *, theme: str = "textual-dark", intervals: Intervals = STILL
) -> ZtuiApp:
    """The console on `node`: rates and ages are computed on the fake's clock."""
    app = ZtuiApp(
        node.client(),
        intervals=intervals,
        clock=lambda: node.now,
        wall_clock=lambda: node.now,
        theme=theme,
    )
    app.animation_level = "none"
    return app


async def wait_for(pilot: Pilot[None], ready: Callable[[], object], timeout_s: float = 5.0) -> None:
    """Let the app run until `ready()` is true; fail with a clear message if it never is."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not ready():
        if loop.time() > deadline:
            raise AssertionError(f"not ready after {timeout_s} s: {ready}")
        await pilot.pause(0.02)


async def loaded(pilot: Pilot[None]) -> ZtuiApp:
    """Wait for the first poll of every resource to land."""
    app = pilot.app
    assert isinstance(app, ZtuiApp)
    store = app.store
    await wait_for(pilot, lambda: store.status and store.networks and store.members_loaded)
    await pilot.pause()
    return app


async def second_poll(pilot: Pilot[None], node: FakeNode, seconds: float = 1.0) -> None:
    """Advance the fake by `seconds` and poll again, so rates exist (two samples)."""
    app = pilot.app
    assert isinstance(app, ZtuiApp)
    node.tick(seconds)
    polled = app.store.node_rates.last.get("node")
    before = polled.at if polled else None
    app.poke("node")
    app.poke("networks")
    await wait_for(pilot, lambda: app.store.node_rates.last["node"].at != before)
    await pilot.pause()


async def open_peer(pilot: Pilot[None], address: str, *keys: str) -> PeerScreen:
    """From the Peers tab, Enter on `address`'s row, then `keys` on its detail screen."""
    app = pilot.app
    app.screen.query_one("#peers-table", KeyedTable).select_key(address)
    await pilot.press("enter")
    screen = app.screen
    assert isinstance(screen, PeerScreen)
    if keys:
        await pilot.press(*keys)
    return screen


async def select_member(pilot: Pilot[None], nwid: str, address: str) -> KeyedTable:
    """The Members tab (key 3), the cursor on `address` in `nwid`; the members table."""
    await pilot.press("3")
    table = pilot.app.screen.query_one("#members-table", KeyedTable)
    table.select_key(f"{nwid}/{address}")
    return table


async def tab_table(pilot: Pilot[None], tab: str, selector: str, rows: int) -> KeyedTable:
    """Press `tab` (a tab's number key); the table `selector` there, once it has `rows`
    rows and has been drawn."""
    await pilot.press(tab)
    table = pilot.app.screen.query_one(selector, KeyedTable)
    await wait_for(pilot, lambda: table.row_count == rows)
    await pilot.pause()
    return table
