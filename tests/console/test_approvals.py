"""Join requests and member removal (issue 11, defect 3): a request shows in a bar that
names the member the keys act on, from any tab; `a` on the Members tab acts on the row
under the cursor and never on another; removing a member asks first, naming it."""

from __future__ import annotations

from textual.widgets import TabbedContent

from console.app import ZtuiApp
from console.fake import FakeNode
from console.fake_data import HOME_NWID, LAPTOP, PHONE
from console.screens.modals import ConfirmModal
from console.screens.peer_detail import PeerScreen
from console.widgets.keyed_table import KeyedTable
from console.widgets.requests_bar import RequestsBar

from .conftest import loaded, make_app, wait_for
from .test_app import notifications, text_of

NEWCOMER = "c0ffee0001"
ANOTHER = "c0ffee0002"


def bar_text(app: ZtuiApp) -> str:
    return "\n".join(line.plain for line in app.screen.query_one(RequestsBar).lines(80))


def patches(node: FakeNode) -> list[str]:
    return [r for r in node.requests if r.startswith("PATCH /controller/")]


async def test_a_request_shows_in_a_bar_that_covers_nothing(node: FakeNode) -> None:
    """The old toast covered ~40% of an 80x24 screen and stacked; the bar takes its own
    line above the footer, says which keys do what, and pops no notification."""
    async with make_app(node).run_test(size=(80, 24)) as pilot:
        app = await loaded(pilot)
        app.clear_notifications()
        await pilot.press("4")
        node.add_pending_member(HOME_NWID, NEWCOMER)
        await wait_for(pilot, lambda: NEWCOMER in bar_text(app))
        await pilot.pause()
        bar = app.screen.query_one(RequestsBar)
        assert f"▶ {PHONE} asks to join home" in bar_text(app)
        assert "a approve · x dismiss" in bar_text(app)
        assert f"  {NEWCOMER} asks to join home from 198.51.100.61:9993" in bar_text(app)
        assert bar.region.height == 2 and bar.region.bottom == 23  # right above the footer
        peers = app.screen.query_one("#traffic-peers", KeyedTable)
        assert not peers.region.overlaps(bar.region)
        assert NEWCOMER not in notifications(app)


async def test_a_approves_the_member_the_bar_names_from_any_tab(node: FakeNode) -> None:
    """From Peers (where `a` did nothing) and from a peer's view, `a` approves the member
    marked ▶ in the bar; the next one is then marked, in the order they asked."""
    async with make_app(node).run_test(size=(80, 24)) as pilot:
        app = await loaded(pilot)
        node.add_pending_member(HOME_NWID, NEWCOMER)
        await wait_for(pilot, lambda: NEWCOMER in bar_text(app))
        await pilot.press("a")
        await wait_for(pilot, lambda: node.state.members[HOME_NWID][PHONE]["authorized"])
        assert patches(node) == [f"PATCH /controller/networks/{HOME_NWID}/members/{PHONE}"]
        await wait_for(pilot, lambda: f"▶ {NEWCOMER}" in bar_text(app))
        app.screen.query_one("#peers-table", KeyedTable).select_key(PHONE)
        await pilot.press("enter")
        assert isinstance(app.screen, PeerScreen)
        await pilot.press("a")
        await wait_for(pilot, lambda: node.state.members[HOME_NWID][NEWCOMER]["authorized"])
        await wait_for(pilot, lambda: not app.screen.query_one(RequestsBar).display)
        assert f"approved {NEWCOMER} on home" in notifications(app)


async def test_a_on_an_authorized_row_never_approves_another(node: FakeNode) -> None:
    """The cursor stays where the user put it when a request lands (the new member is
    listed first, above it); `a` there says who is waiting instead of approving anyone,
    and `p` jumps to the first pending member."""
    async with make_app(node).run_test(size=(80, 24)) as pilot:
        app = await loaded(pilot)
        await pilot.press("3")
        table = app.screen.query_one("#members-table", KeyedTable)
        table.select_key(f"{HOME_NWID}/{LAPTOP}")
        node.add_pending_member(HOME_NWID, "0000000001")
        await wait_for(pilot, lambda: table.row_count == 4)
        assert table.selected_key == f"{HOME_NWID}/{LAPTOP}"
        assert table.get_row_at(0)[1] == "0000000001"  # pending first
        app.clear_notifications()
        await pilot.press("a")
        await pilot.pause()
        said = notifications(app)
        assert f"{LAPTOP} is already a member of home" in said
        assert "pending: 2 — press p to jump to the first pending" in said
        assert patches(node) == []
        await pilot.press("p")
        assert table.selected_key == f"{HOME_NWID}/0000000001"


async def test_dismiss_hides_the_request_not_the_member(node: FakeNode) -> None:
    """Three waiting: two lines, numbered, never more. `x` takes the marked one off the
    bar (it stays pending on Members) and marks the next."""
    async with make_app(node).run_test(size=(80, 24)) as pilot:
        app = await loaded(pilot)
        node.add_pending_member(HOME_NWID, NEWCOMER)
        node.add_pending_member(HOME_NWID, ANOTHER)
        await wait_for(pilot, lambda: "1/3" in bar_text(app))
        lines = bar_text(app).splitlines()
        assert len(lines) == 2 and lines[0].endswith("1/3") and lines[1].endswith("2/3")
        await pilot.press("x")
        assert PHONE not in bar_text(app)
        assert f"▶ {NEWCOMER}" in bar_text(app) and bar_text(app).endswith("2/2")
        assert app.store.members[f"{HOME_NWID}/{PHONE}"]["state"] == "pending"
        await pilot.press("3")
        assert app.screen.query_one("#members-table", KeyedTable).get_row_at(0)[1] == PHONE
        assert "3 pending" in str(app.screen.query_one(TabbedContent).get_tab("members").label)


async def test_enter_and_escape_on_the_bar(node: FakeNode) -> None:
    """Tab reaches the bar; there ↓ chooses, Enter approves and Escape dismisses."""
    async with make_app(node).run_test(size=(80, 24)) as pilot:
        app = await loaded(pilot)
        node.add_pending_member(HOME_NWID, NEWCOMER)
        node.add_pending_member(HOME_NWID, ANOTHER)
        await wait_for(pilot, lambda: "1/3" in bar_text(app))
        bar = app.screen.query_one(RequestsBar)
        for _ in range(6):
            if app.focused is bar:
                break
            await pilot.press("tab")
        assert app.focused is bar
        await pilot.press("down", "escape")  # dismisses the newcomer, not the phone
        assert NEWCOMER not in bar_text(app) and f"▶ {ANOTHER}" in bar_text(app)
        await pilot.press("enter")
        await wait_for(pilot, lambda: node.state.members[HOME_NWID][ANOTHER]["authorized"])
        assert not node.state.members[HOME_NWID][PHONE]["authorized"]


async def test_remove_asks_naming_the_member_then_deletes_it(node: FakeNode) -> None:
    async with make_app(node).run_test(size=(80, 24)) as pilot:
        app = await loaded(pilot)
        await pilot.press("3")
        key = f"{HOME_NWID}/{LAPTOP}"
        app.screen.query_one("#members-table", KeyedTable).select_key(key)
        await pilot.press("D")
        assert isinstance(app.screen, ConfirmModal)
        question = text_of(app, ".dialog-body")
        assert f"Remove {LAPTOP} (laptop, authorized) from home ({HOME_NWID})?" in question
        assert "frees 10.147.17.2" in question
        await pilot.press("n")
        assert LAPTOP in node.state.members[HOME_NWID]
        await pilot.press("delete", "y")
        await wait_for(pilot, lambda: key not in app.store.members)
        assert f"DELETE /controller/networks/{HOME_NWID}/members/{LAPTOP}" in node.requests
        assert f"removed {LAPTOP} from home" in notifications(app)
