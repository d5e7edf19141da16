"""The console, driven by keys against a FakeNode: every action does what it says, refuses
what it must with the reason, and the app survives the daemon going away."""

from __future__ import annotations

from textual.widgets import Static

from console.app import ZtuiApp
from console.screens.edit_network import EditNetworkModal
from console.screens.help import HelpScreen
from console.screens.modals import ConfirmModal, PromptModal
from console.screens.peer_detail import PeerScreen
from console.screens.too_small import TooSmallScreen
from console.testing.fake import FakeNode
from console.testing.fake_data import HOME_NWID, LAPTOP, NODE, OFFICE_NWID, PHONE
from console.widgets.keyed_table import KeyedTable

from .conftest import (
    loaded,
    make_app,
    open_peer,
    second_poll,
    select_member,
    tab_table,
    wait_for,
)

NEW_NWID = "a1b2c3d4e5000007"


def text_of(app: ZtuiApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


def notifications(app: ZtuiApp) -> str:
    return "\n".join(str(n.message) for n in app._notifications)


async def test_join_with_a_bad_id_is_refused_with_the_reason(node: FakeNode) -> None:
    """A mistyped id never reaches the daemon: the dialog stays, saying what is wrong."""
    async with make_app(node).run_test(size=(120, 40)) as pilot:
        app = await loaded(pilot)
        await pilot.press("2", "j")
        await pilot.press(*"8056c2e21c00000z", "enter")
        assert isinstance(app.screen, PromptModal)
        assert "'z' is not a hex digit" in text_of(app, "#prompt-reason")
        await pilot.press("backspace", "enter")
        assert "16 hex digits; this is 15" in text_of(app, "#prompt-reason")
        assert not any(r.startswith("POST /networks") for r in node.requests)


async def test_join_with_a_good_id_adds_the_network(node: FakeNode) -> None:
    async with make_app(node).run_test(size=(120, 40)) as pilot:
        app = await loaded(pilot)
        await pilot.press("2", "j")
        await pilot.press(*f" {NEW_NWID.upper()}\n"[:-1], "enter")  # pasted with a space
        await wait_for(pilot, lambda: NEW_NWID in app.store.networks)
        table = app.screen.query_one("#networks-table", KeyedTable)
        await wait_for(pilot, lambda: NEW_NWID in table.keys)
        assert f"joined {NEW_NWID}" in notifications(app)


async def test_approve_flips_a_pending_member(node: FakeNode) -> None:
    """Pending members come first, so `3` then `a` approves the phone."""
    async with make_app(node).run_test(size=(120, 40)) as pilot:
        app = await loaded(pilot)
        await pilot.press("3")
        table = app.screen.query_one("#members-table", KeyedTable)
        assert table.selected_key == f"{HOME_NWID}/{PHONE}"
        assert "1 pending" in str(app.screen.query_one("#tabs").get_tab("members").label)
        await pilot.press("a")
        key = f"{HOME_NWID}/{PHONE}"
        await wait_for(pilot, lambda: app.store.members[key]["state"] == "authorized")
        assert node.state.members[HOME_NWID][PHONE]["authorized"]
        assert f"approved {PHONE}" in notifications(app)


async def test_leave_asks_first_and_cancel_keeps_the_network(node: FakeNode) -> None:
    async with make_app(node).run_test(size=(120, 40)) as pilot:
        app = await loaded(pilot)
        await pilot.press("2", "l")
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("enter")  # focus starts on Cancel: a reflexive Enter keeps it
        await pilot.pause()
        assert HOME_NWID in node.state.networks
        await pilot.press("l", "n")
        assert not isinstance(app.screen, ConfirmModal)
        assert HOME_NWID in node.state.networks
        await pilot.press("l", "y")
        await wait_for(pilot, lambda: HOME_NWID not in app.store.networks)
        assert HOME_NWID not in node.state.networks


async def test_mtu_outside_the_range_is_refused_with_the_rule(node: FakeNode) -> None:
    async with make_app(node).run_test(size=(120, 40)) as pilot:
        app = await loaded(pilot)
        await pilot.press("2", "e")
        assert isinstance(app.screen, EditNetworkModal)
        await pilot.press(*"9500", "enter")
        assert isinstance(app.screen, EditNetworkModal)
        assert "mtu: must be 1280-9000" in text_of(app, "#edit-reason")
        assert not any(r.startswith("PATCH") for r in node.requests)
        for _ in range(4):
            await pilot.press("backspace")
        await pilot.press(*"1400", "enter")
        await wait_for(pilot, lambda: app.store.networks[HOME_NWID]["mtu"] == 1400)


async def test_the_calculator_shows_its_working(node: FakeNode) -> None:
    """Root A's 1432-byte path is the tightest preferred one in the story."""
    async with make_app(node).run_test(size=(120, 40)) as pilot:
        app = await loaded(pilot)
        await pilot.press("2", "e", *"2800")
        calc = text_of(app, "#calc")
        assert "path MTU 1432" in calc and "AEAD tag 16" in calc and "= 1387" in calc
        assert "MSS 1333" in calc and "MSS 1313" in calc
        assert (
            "2800: frames up to 2800 bytes; each crosses this 1432-byte path as 3 datagrams" in calc
        )


async def test_daemon_down_shows_the_reason_and_recovers_by_itself(node: FakeNode) -> None:
    async with make_app(node).run_test(size=(120, 40)) as pilot:
        app = await loaded(pilot)
        node.go_down()
        app.poke("node")
        await wait_for(pilot, lambda: app.offline_reason is not None)
        await wait_for(pilot, lambda: "retrying in" in text_of(app, "#offline"))
        banner = text_of(app, "#offline")
        assert "overlayd is not running" in banner and "Cannot reach overlayd" in banner
        assert app.screen.has_class("-offline")
        node.come_back()
        await wait_for(pilot, lambda: app.offline_reason is None and app.store.status)
        assert not app.screen.has_class("-offline")
        assert "Connected to overlayd again" in notifications(app)


async def test_daemon_down_at_launch(node: FakeNode) -> None:
    node.go_down()
    async with make_app(node).run_test(size=(80, 24)) as pilot:
        app = pilot.app
        assert isinstance(app, ZtuiApp)
        await wait_for(pilot, lambda: app.offline_reason is not None)
        assert "cannot reach overlayd" in str(app.screen.query_one("NodeHeader").render())
        node.come_back()
        await wait_for(pilot, lambda: app.store.status is not None)


async def test_filter_narrows_the_peers(node: FakeNode) -> None:
    async with make_app(node).run_test(size=(120, 40)) as pilot:
        app = await loaded(pilot)
        table = app.screen.query_one("#peers-table", KeyedTable)
        assert table.row_count == len(node.state.peers)
        await pilot.press("slash", *"relay")
        relayed = {a for a, p in node.state.peers.items() if p["link"] == "RELAY"}
        assert set(table.keys) == relayed
        await pilot.press("enter")
        assert app.focused is table
        await pilot.press("slash", "escape")
        assert table.row_count == len(node.state.peers)


async def test_enter_opens_the_peer_detail_with_the_relay_reason(node: FakeNode) -> None:
    async with make_app(node).run_test(size=(120, 40)) as pilot:
        app = await loaded(pilot)
        await open_peer(pilot, PHONE)
        reason = text_of(app, "#peer-reason")
        assert "RELAY because:" in reason and "got 0 answers" in reason
        assert "symmetric" in reason
        paths = app.screen.query_one("#peer-paths", KeyedTable)
        assert paths.row_count == 2
        await pilot.press("escape")
        assert not isinstance(app.screen, PeerScreen)


async def test_ping_shows_each_reply(node: FakeNode) -> None:
    async with make_app(node).run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        screen = await open_peer(pilot, LAPTOP, "p")
        await wait_for(pilot, lambda: "ping statistics" in _log(screen))
        # the story's laptop is named in home: the pongs say so, as ping(8) says a host name
        assert _log(screen).count("pong from laptop (10.147.17.2): ") == 4


def _log(screen: PeerScreen) -> str:
    return "\n".join(line.text for line in screen.query_one("#ping-log").lines)


async def test_retry_direct_and_mtu_probe_ask_the_node(node: FakeNode) -> None:
    async with make_app(node).run_test(size=(120, 40)) as pilot:
        app = await loaded(pilot)
        await open_peer(pilot, PHONE, "r", "m")
        await wait_for(pilot, lambda: "searching the path MTU" in notifications(app))
        assert f"POST /peers/{PHONE}/retry-direct" in node.requests
        assert f"POST /peers/{PHONE}/probe-mtu" in node.requests
        assert f"{PHONE}: punching again" in notifications(app)


async def test_member_request_shows_in_the_bar_anywhere(node: FakeNode) -> None:
    """A request is listed in the bar above the footer (tests/console/test_approvals.py
    has the rest), and counted on the Members tab, without a toast."""
    from console.widgets.requests_bar import RequestsBar

    async with make_app(node).run_test(size=(120, 40)) as pilot:
        app = await loaded(pilot)
        app.clear_notifications()
        await pilot.press("4")
        node.add_pending_member(HOME_NWID, "c0ffee0001")
        bar = app.screen.query_one(RequestsBar)
        await wait_for(pilot, lambda: "c0ffee0001 asks to join home" in str(bar.render()))
        assert "2 pending" in str(app.screen.query_one("#tabs").get_tab("members").label)
        assert "c0ffee0001" not in notifications(app)


async def test_help_lists_the_bindings(node: FakeNode) -> None:
    async with make_app(node).run_test(size=(120, 40)) as pilot:
        app = await loaded(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = "\n".join(f"{key} {what}" for _, key, what in app.screen.rows)
        for words in (
            "Approve",
            "Join",
            "Leave",
            "MTU/MSS",
            "Retry direct",
            "Probe MTU",
            "Filter",
            "Sort",
            "Quit",
        ):
            assert words in text
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_too_small_says_so_and_recovers() -> None:
    node = FakeNode.sample()
    async with make_app(node).run_test(size=(79, 23)) as pilot:
        app = pilot.app
        await pilot.pause()
        assert isinstance(app.screen, TooSmallScreen)
        assert "needs at least 80x24; this terminal is 79x23" in text_of(app, "#too-small")
        await pilot.press("2")  # keys other than q do nothing behind the notice
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert not isinstance(app.screen, TooSmallScreen)


async def test_network_awaiting_approval_says_what_to_do(node: FakeNode) -> None:
    async with make_app(node).run_test(size=(120, 40)) as pilot:
        app = await loaded(pilot)
        await pilot.press("2")
        app.screen.query_one("#networks-table", KeyedTable).select_key(OFFICE_NWID)
        await pilot.pause()
        detail = text_of(app, "#network-detail")
        assert "waiting for approval" in detail and f"ztui approve {OFFICE_NWID} {NODE}" in detail


async def test_palette_offers_the_actions(node: FakeNode) -> None:
    from console.palette import commands

    async with make_app(node).run_test(size=(120, 40)) as pilot:
        app = await loaded(pilot)
        names = [command.name for command in commands(app)]
        assert f"Approve {PHONE} on home" in names
        assert f"Leave home ({HOME_NWID})" in names
        assert f"MTU/MSS home ({HOME_NWID})" in names
        assert "Join" in names


async def test_events_are_live_and_filterable(node: FakeNode) -> None:
    async with make_app(node).run_test(size=(120, 40)) as pilot:
        app = await loaded(pilot)
        table = await tab_table(pilot, "5", "#events-table", len(node.state.events))
        node.set_link(LAPTOP, "RELAY")
        await wait_for(pilot, lambda: table.row_count == len(node.state.events))
        assert table.cursor_row == table.row_count - 1  # it follows the newest
        await pilot.press("slash", *"link")
        assert table.row_count == sum(1 for e in node.state.events if e["kind"] == "link")
        await wait_for(pilot, lambda: app.store.peers[LAPTOP]["link"] == "RELAY")  # poked


async def test_deauthorize_asks_first(node: FakeNode) -> None:
    async with make_app(node).run_test(size=(120, 40)) as pilot:
        app = await loaded(pilot)
        await select_member(pilot, HOME_NWID, LAPTOP)
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("escape")
        assert node.state.members[HOME_NWID][LAPTOP]["authorized"]
        await pilot.press("d", "y")
        key = f"{HOME_NWID}/{LAPTOP}"
        await wait_for(pilot, lambda: app.store.members[key]["state"] == "deauthorized")


async def test_name_and_ips_of_a_member(node: FakeNode) -> None:
    """A malformed IP is refused as you type; one outside the pools is refused by the
    controller, and its reason is what the notification says."""
    async with make_app(node).run_test(size=(120, 40)) as pilot:
        app = await loaded(pilot)
        key = f"{HOME_NWID}/{LAPTOP}"
        await select_member(pilot, HOME_NWID, LAPTOP)
        await pilot.press("n", "ctrl+a", "ctrl+k", *"work laptop", "enter")
        await wait_for(pilot, lambda: app.store.members[key]["name"] == "work laptop")
        await pilot.press("i", "ctrl+a", "ctrl+k", *"10.147.17.300", "enter")
        assert isinstance(app.screen, PromptModal)
        assert "'10.147.17.300' is not an IPv4 or IPv6 address" in text_of(app, "#prompt-reason")
        await pilot.press("ctrl+a", "ctrl+k", *"10.147.17.2, 10.147.17.9", "enter")
        await wait_for(pilot, lambda: "10.147.17.9" in app.store.members[key]["ips"])
        await pilot.press("i", "ctrl+a", "ctrl+k", *"fd00::9", "enter")
        await wait_for(pilot, lambda: "fd00::9 is outside every pool" in notifications(app))
        assert "fd00::9" not in app.store.members[key]["ips"]


async def test_create_a_network(node: FakeNode) -> None:
    async with make_app(node).run_test(size=(120, 40)) as pilot:
        app = await loaded(pilot)
        await pilot.press("3", "c")
        await pilot.press("enter")
        assert "give the network a name" in text_of(app, "#create-reason")
        await pilot.press(*"lab", "enter")
        await wait_for(pilot, lambda: any(n["name"] == "lab" for n in app.store.hosted.values()))
        created = next(n for n in node.state.hosted.values() if n["name"] == "lab")
        # home holds 10.147.17.0/24, so the first free pool is the next /24.
        assert created["pools"] == ["10.147.18.0/24"] and created["private"]
        assert f"members join with id {created['nwid']}" in notifications(app)


def test_ztui_alone_launches_the_console(monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`ztui` with no subcommand runs ZtuiApp on the node --home names (it may be down:
    the app says so and retries, rather than the command failing)."""
    from console import cli

    launched: list[ZtuiApp] = []
    monkeypatch.setattr(ZtuiApp, "run", lambda self: launched.append(self))
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    assert cli.main(["--home", str(tmp_path)]) == 0
    assert len(launched) == 1
    assert launched[0].client.endpoint.endswith(f"{tmp_path}/control.sock")


async def test_a_simulated_demo_says_so(node: FakeNode) -> None:
    """`ztui demo` without root passes its notice: it pops up and the header marks it."""
    app = make_app(node)
    app.demo_notice = "not root: loopback only, no TAP devices or NAT"
    async with app.run_test(size=(120, 40)) as pilot:
        app = pilot.app
        assert isinstance(app, ZtuiApp)
        await wait_for(pilot, lambda: app.store.status is not None)
        assert "loopback only" in notifications(app)
        await wait_for(
            pilot, lambda: "SIMULATED" in str(app.screen.query_one("NodeHeader").render())
        )


async def test_a_focus_landing_late_does_not_switch_tabs(node: FakeNode) -> None:
    """Widget.focus() lands later. At startup the app focuses the Peers table, and a `3`
    typed in a real terminal just then was undone when that focus landed: TabbedContent
    switched to the pane of the focused widget (TabPane.Focused). Only keys and clicks
    on the tab bar switch tabs now."""
    from textual.widgets import TabbedContent, TabPane

    async with make_app(node).run_test(size=(120, 40)) as pilot:
        app = await loaded(pilot)
        await pilot.press("3")
        peers = app.screen.query_one("#peers", TabPane)
        peers.post_message(TabPane.Focused(peers))  # what the late focus of its table sends
        await pilot.pause()
        assert app.screen.query_one(TabbedContent).active == "members"


async def test_a_poll_that_changes_nothing_draws_nothing(node: FakeNode) -> None:
    """Over SSH every redrawn line is bytes on the wire. Static.update and a tab's label
    repaint even when given what they already show, so the header, summaries and the
    Members label used to be resent on every poll of an idle node."""
    async with make_app(node).run_test(size=(120, 40)) as pilot:
        app = await loaded(pilot)
        await second_poll(pilot, node)
        app.clear_notifications()
        await pilot.pause()
        frames: list[object] = []
        display = app._display

        def counted(screen, update) -> None:  # type: ignore[no-untyped-def]
            if update is not None:
                frames.append(update)
            display(screen, update)

        app._display = counted  # type: ignore[method-assign]
        polls = node.requests.count("GET /peers"), node.requests.count("GET /controller/networks")
        for poller in ("node", "networks", "hosted"):
            app.poke(poller)
        await wait_for(
            pilot,
            lambda: (
                node.requests.count("GET /peers") > polls[0]
                and node.requests.count("GET /controller/networks") > polls[1]
            ),
        )
        await pilot.pause()
        await pilot.pause(0.1)
        assert frames == []
