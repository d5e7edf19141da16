"""What the Paths screen looks like at 80x24 and 120x40: the NAS story's `home` with five
members (a matrix) and `mesh` with 200 (the worst pairs as a list), and the five in 16
colours as TERM=linux draws them. Deterministic as test_snapshots.py's are: the fake's
clock stands still, nothing polls on its own. Regenerate after a deliberate change with
`pytest tests/console/test_paths_snapshots.py --snapshot-update`, and look at the SVGs."""

from __future__ import annotations

import pytest
from textual.pilot import Pilot

from console.screens.paths import PathsScreen
from console.testing.fake import FakeNode
from console.testing.fake_data import HOME_NWID, LAPTOP
from console.testing.fakenode.paths import MESH_NWID

from .conftest import loaded, make_app, select_member, wait_for

SIZES = {"80x24": (80, 24), "120x40": (120, 40)}


def _story(members: int) -> tuple[FakeNode, str, str]:
    """The node, the network and a member of it to open Paths from."""
    if members == 5:
        return FakeNode.paths_sample(), HOME_NWID, LAPTOP
    node = FakeNode.mesh(members=members)
    return node, MESH_NWID, min(node.state.members[MESH_NWID])


def _open(nwid: str, member: str):  # type: ignore[no-untyped-def]
    async def run_before(pilot: Pilot[None]) -> None:
        app = await loaded(pilot)
        app.clear_notifications()
        await select_member(pilot, nwid, member)
        await pilot.press("p")
        screen = app.screen
        assert isinstance(screen, PathsScreen)
        await wait_for(pilot, lambda: screen.mode != "none")
        await pilot.pause()

    return run_before


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("members", [5, 200])
def test_paths(snap_compare, members: int, size: str) -> None:  # type: ignore[no-untyped-def]
    node, nwid, member = _story(members)
    app = make_app(node)
    assert snap_compare(app, terminal_size=SIZES[size], run_before=_open(nwid, member))


def test_paths_sixteen_colours(snap_compare) -> None:  # type: ignore[no-untyped-def]
    node, nwid, member = _story(5)
    app = make_app(node, theme="ansi-dark")
    assert snap_compare(app, terminal_size=(80, 24), run_before=_open(nwid, member))
