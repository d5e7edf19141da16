"""Join requests and member removal (issue 11, defect 3): a request shows in a bar that
names the member the keys act on, from any tab; on the Members tab `a` approves a pending
row under the cursor, and on a row that is in already the member the bar names; an
approval is sent once however often `a` is pressed before a poll shows it; removing a
member asks first, naming it, and says when it is this node."""

from __future__ import annotations

import asyncio

import httpx
from textual.pilot import Pilot
from textual.widgets import TabbedContent

from console.app import ZtuiApp
from console.screens.modals import ConfirmModal
from console.testing.fake import FakeNode
from console.testing.fake_data import HOME_NWID, LAPTOP, NODE, PHONE
from console.widgets.keyed_table import KeyedTable
from console.widgets.requests_bar import RequestsBar

from .conftest import loaded, make_app, open_peer, select_member, wait_for
from .test_app import notifications, text_of

NEWCOMER = "c0ffee0001"
ANOTHER = "c0ffee0002"


def bar_text(app: ZtuiApp) -> str:
    return "\n".join(line.plain for line in app.screen.query_one(RequestsBar).lines(80))


def patches(node: FakeNode) -> list[str]:
    return [r for r in node.requests if r.startswith("PATCH /controller/")]


class Gate:
    """Holds the fake's answers to requests starting with a prefix ("PATCH /controller")
    until released, as a slow controller would. `before`: the fake sees the request only
    when released (an approval still on its way); otherwise it answers at once and the
    answer is held (a poll saying what the controller said when it started, landing
    late). Install it before make_app: node.client() takes `node.handle` then."""

    def __init__(self, node: FakeNode) -> None:
        self._answer = node.handle
        node.handle = self.handle  # type: ignore[method-assign]
        self._prefix: str | None = None
        self._before = False
        self.held: list[asyncio.Event] = []
        self.arrived: list[str] = []

    def hold(self, prefix: str, *, before: bool) -> None:
        self._prefix, self._before = prefix, before

    def release(self) -> None:
        """Let everything held go, and hold nothing more."""
        self._prefix = None
        for release in self.held:
            release.set()

    async def handle(self, request: httpx.Request) -> httpx.Response:
        target = f"{request.method} {request.url.path}"
        if self._prefix is None or not target.startswith(self._prefix):
            return self._answer(request)
        self.arrived.append(target)
        answer = None if self._before else self._answer(request)
        release = asyncio.Event()
        self.held.append(release)
        await release.wait()
        return answer if answer is not None else self._answer(request)


async def hosted_poll(pilot: Pilot[None], app: ZtuiApp) -> None:
    """Poll the controller now and wait for the answer to land."""
    before = app.store.members  # set_hosted replaces it
    app.poke("hosted")
    await wait_for(pilot, lambda: app.store.members is not before)
    await pilot.pause()


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
        await open_peer(pilot, PHONE, "a")
        await wait_for(pilot, lambda: node.state.members[HOME_NWID][NEWCOMER]["authorized"])
        await wait_for(pilot, lambda: not app.screen.query_one(RequestsBar).display)
        assert f"approved {NEWCOMER} on home" in notifications(app)


async def test_a_on_an_authorized_row_approves_the_member_the_bar_names(
    node: FakeNode,
) -> None:
    """The cursor stays where the user put it when a request lands (the new member is
    listed first, above it). The bar there says "a approve" naming the phone: `a` approves
    the phone, never the authorized row under the cursor ("already a member", issue 11)
    and never the row listed first; the detail says whom `a` approves."""
    first = "0000000001"
    async with make_app(node).run_test(size=(80, 24)) as pilot:
        app = await loaded(pilot)
        table = await select_member(pilot, HOME_NWID, LAPTOP)
        node.add_pending_member(HOME_NWID, first)
        await wait_for(pilot, lambda: table.row_count == 4)
        assert table.selected_key == f"{HOME_NWID}/{LAPTOP}"
        assert table.get_row_at(0)[1] == first  # pending first
        assert f"▶ {PHONE}" in bar_text(app)  # it asked first
        assert f"a approves {PHONE}" in text_of(app, "#members-detail")
        app.clear_notifications()
        await pilot.press("a")
        await wait_for(pilot, lambda: node.state.members[HOME_NWID][PHONE]["authorized"])
        assert patches(node) == [f"PATCH /controller/networks/{HOME_NWID}/members/{PHONE}"]
        assert "already a member" not in notifications(app)
        await wait_for(pilot, lambda: f"▶ {first}" in bar_text(app))
        assert table.selected_key == f"{HOME_NWID}/{LAPTOP}"
        assert f"a approves {first}" in text_of(app, "#members-detail")
        await pilot.press("w")  # w: to the first pending
        assert table.selected_key == f"{HOME_NWID}/{first}"


async def test_a_on_a_pending_row_approves_that_row(node: FakeNode) -> None:
    """A pending row the user moved to is their pick, even when the bar names another."""
    async with make_app(node).run_test(size=(80, 24)) as pilot:
        app = await loaded(pilot)
        node.add_pending_member(HOME_NWID, NEWCOMER)
        await wait_for(pilot, lambda: NEWCOMER in bar_text(app))
        await select_member(pilot, HOME_NWID, NEWCOMER)
        assert f"▶ {PHONE}" in bar_text(app)
        assert "a approves the row" in text_of(app, "#members-detail")
        await pilot.press("a")
        await wait_for(pilot, lambda: node.state.members[HOME_NWID][NEWCOMER]["authorized"])
        assert patches(node) == [f"PATCH /controller/networks/{HOME_NWID}/members/{NEWCOMER}"]
        assert not node.state.members[HOME_NWID][PHONE]["authorized"]


async def test_a_on_an_authorized_row_with_no_request_shown_says_so(node: FakeNode) -> None:
    """With the only request dismissed from the bar, `a` on a member that is in approves
    nobody: it says so, and how to reach the pending one."""
    async with make_app(node).run_test(size=(80, 24)) as pilot:
        app = await loaded(pilot)
        await wait_for(pilot, lambda: PHONE in bar_text(app))
        await pilot.press("x")
        await select_member(pilot, HOME_NWID, LAPTOP)
        app.clear_notifications()
        await pilot.press("a")
        await pilot.pause()
        said = notifications(app)
        assert f"{LAPTOP} is already a member of home" in said
        assert "pending: 1 — press w to jump to the first pending" in said
        assert patches(node) == []


async def test_a_poll_while_the_approval_is_on_its_way_does_not_send_it_again(
    node: FakeNode,
) -> None:
    """A slow controller: a poll lands while the approval is still out and lists the phone
    as pending. The bar still says "approving…", and `a` again sends nothing (it used to
    clear the mark on every poll, and `a` sent a second approval)."""
    gate = Gate(node)
    async with make_app(node).run_test(size=(80, 24)) as pilot:
        app = await loaded(pilot)
        await wait_for(pilot, lambda: f"▶ {PHONE}" in bar_text(app))
        gate.hold("PATCH /controller/", before=True)
        await pilot.press("a")
        await wait_for(pilot, lambda: gate.arrived)
        assert "approving…" in bar_text(app)
        await hosted_poll(pilot, app)
        assert app.store.members[f"{HOME_NWID}/{PHONE}"]["state"] == "pending"
        assert "approving…" in bar_text(app)
        await pilot.press("a")
        await pilot.pause()
        await pilot.press("3", "a")  # the pending row under the cursor: the same member
        await pilot.pause()
        assert len(gate.arrived) == 1
        gate.release()
        await wait_for(pilot, lambda: not app.screen.query_one(RequestsBar).display)
        await hosted_poll(pilot, app)
        assert patches(node) == [f"PATCH /controller/networks/{HOME_NWID}/members/{PHONE}"]


async def test_a_poll_that_started_before_the_approval_does_not_undo_it(
    node: FakeNode,
) -> None:
    """The controller says yes while a poll that started earlier is still out; that poll
    lands listing the phone as pending. The mark holds until a poll started after the
    yes: `a` sends nothing meanwhile."""
    gate = Gate(node)
    async with make_app(node).run_test(size=(80, 24)) as pilot:
        app = await loaded(pilot)
        await wait_for(pilot, lambda: f"▶ {PHONE}" in bar_text(app))
        gate.hold(f"GET /controller/networks/{HOME_NWID}/members", before=False)
        stale = app.store.members
        app.poke("hosted")
        await wait_for(pilot, lambda: gate.arrived)  # answered "pending", held
        await pilot.press("a")
        await wait_for(pilot, lambda: f"approved {PHONE}" in notifications(app))
        gate.held[0].set()
        await wait_for(pilot, lambda: app.store.members is not stale)
        await pilot.pause()
        assert app.store.members[f"{HOME_NWID}/{PHONE}"]["state"] == "pending"
        assert "approving…" in bar_text(app)
        await pilot.press("a")
        await pilot.pause()
        gate.release()
        await wait_for(pilot, lambda: not app.screen.query_one(RequestsBar).display)
        await hosted_poll(pilot, app)
        assert patches(node) == [f"PATCH /controller/networks/{HOME_NWID}/members/{PHONE}"]


async def test_a_refused_approval_may_be_tried_again_at_once(node: FakeNode) -> None:
    """The controller's refusal clears the mark by itself, without waiting for a poll."""
    async with make_app(node).run_test(size=(80, 24)) as pilot:
        app = await loaded(pilot)
        await wait_for(pilot, lambda: f"▶ {PHONE}" in bar_text(app))
        # Only the PATCH fails; an approval in flight outlives any poll while pending, so
        # only the refusal itself can clear the mark.
        path = f"/controller/networks/{HOME_NWID}/members/{PHONE}"
        node.fail_with(503, reason="controller busy", path=path, times=1)
        await pilot.press("a")
        await wait_for(pilot, lambda: "controller busy" in notifications(app))
        assert "a approve" in bar_text(app) and "approving…" not in bar_text(app)
        await pilot.press("a")
        await wait_for(pilot, lambda: node.state.members[HOME_NWID][PHONE]["authorized"])
        assert len(patches(node)) == 2


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
        await select_member(pilot, HOME_NWID, LAPTOP)
        await pilot.press("D")
        assert isinstance(app.screen, ConfirmModal)
        question = text_of(app, ".dialog-body")
        assert f"Remove {LAPTOP} (laptop, authorized) from home ({HOME_NWID})?" in question
        assert "frees 10.147.17.2" in question
        assert "It can ask to join again, and then needs approval." in question
        assert "this node" not in question
        await pilot.press("n")
        assert LAPTOP in node.state.members[HOME_NWID]
        await pilot.press("delete", "y")
        await wait_for(pilot, lambda: f"{HOME_NWID}/{LAPTOP}" not in app.store.members)
        assert f"DELETE /controller/networks/{HOME_NWID}/members/{LAPTOP}" in node.requests
        assert f"removed {LAPTOP} from home" in notifications(app)


async def test_removing_this_node_says_it_is_let_in_again(node: FakeNode) -> None:
    """The controller admits its own node without an admin: removing the NAS from its own
    network while it stays joined lasts seconds, so the dialog says so and what to do
    instead of promising it will need approval."""
    async with make_app(node).run_test(size=(80, 24)) as pilot:
        app = await loaded(pilot)
        await select_member(pilot, HOME_NWID, NODE)
        await pilot.press("D")
        assert isinstance(app.screen, ConfirmModal)
        question = " ".join(text_of(app, ".dialog-body").split())  # unwrapped
        assert f"Remove {NODE} (nas, authorized) from home ({HOME_NWID})?" in question
        assert (
            "This is this node; while it stays joined it is let in again at once — leave "
            f"the network on it first (ztui leave {HOME_NWID}) to keep it out." in question
        )
        assert "needs approval" not in question
        await pilot.press("n")
        assert NODE in node.state.members[HOME_NWID]
