"""What each screen looks like at 80x24 and 120x40, on the NAS story (FakeNode.sample).

Deterministic: the fake's data and clock are fixed, nothing polls on its own (conftest's
STILL intervals), rates come from exactly one tick of the fake's clock, the cursor does
not blink and times print in UTC. Regenerate after a deliberate change with
`pytest tests/console/test_snapshots.py --snapshot-update`, and look at the SVGs first.
"""

from __future__ import annotations

import pytest
from textual.pilot import Pilot

from console.testing.fake import FakeNode
from console.testing.fake_data import PHONE
from console.widgets.keyed_table import KeyedTable

from .conftest import loaded, make_app, second_poll, wait_for
from .test_approvals import bar_text

SIZES = {"80x24": (80, 24), "120x40": (120, 40)}
SCREENS: dict[str, list[str]] = {
    "peers": [],
    "networks": ["2"],
    "members": ["3"],
    "traffic": ["4"],
    "events": ["5"],
    "peer_detail": ["enter"],  # the phone: RELAY, with its reason
    "edit_network": ["2", "e"],
    "join": ["2", "j", *"8056c2e21c00001"],
    "help": ["question_mark"],
}


def _prepare(node: FakeNode, keys: list[str]):  # type: ignore[no-untyped-def]
    async def run_before(pilot: Pilot[None]) -> None:
        app = await loaded(pilot)
        await second_poll(pilot, node)
        await wait_for(pilot, lambda: f"▶ {PHONE}" in bar_text(app))  # the replayed request
        app.clear_notifications()
        app.screen.query_one("#peers-table", KeyedTable).select_key(PHONE)
        for key in keys:
            await pilot.press(key)
            await pilot.pause()
        await pilot.pause()

    return run_before


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("screen", SCREENS)
def test_screen(snap_compare, screen: str, size: str) -> None:  # type: ignore[no-untyped-def]
    node = FakeNode.sample()
    app = make_app(node)
    assert snap_compare(app, terminal_size=SIZES[size], run_before=_prepare(node, SCREENS[screen]))


@pytest.mark.parametrize(
    "screen", ["peers", "networks", "members", "events", "peer_detail", "edit_network"]
)
def test_sixteen_colours(snap_compare, screen: str) -> None:  # type: ignore[no-untyped-def]
    """The ANSI theme chosen for TERM=linux / screen: the terminal's palette draws it. The
    phone's join request shows in the bar above the footer on every screen."""
    node = FakeNode.sample()
    app = make_app(node, theme="ansi-dark")
    assert snap_compare(app, terminal_size=(80, 24), run_before=_prepare(node, SCREENS[screen]))


def test_too_small(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(make_app(FakeNode.sample()), terminal_size=(79, 23))
