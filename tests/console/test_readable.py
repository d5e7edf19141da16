"""Every screen readable at 80x24 without a mouse (issue 11, defects 9 and 10): no table
runs off the right edge, identifiers are shown whole, a ping's result is in view, events
repeat as one row and show in full, toggles say their state in glyphs, and `?` lists each
key once."""

from __future__ import annotations

import ast
from pathlib import Path

from rich.cells import cell_len

from console.screens.help import HelpScreen
from console.testing.fake import FakeNode
from console.testing.fake_data import HOME_NWID, NODE, PHONE, configure, hosted, member, network
from console.widgets.keyed_table import KeyedTable

from .conftest import loaded, make_app, open_peer, tab_table, wait_for
from .test_app import text_of

LAB_NWID = HOME_NWID[:-1] + "2"  # differs from home's id in the last digit only
CONSOLE = Path(__file__).parents[2] / "console"


def table_lines(table: KeyedTable) -> list[str]:
    return [table.render_line(y).text for y in range(table.size.height)]


def add_homelab(node: FakeNode) -> None:
    """A second hosted network, joined here too, as on a controller that hosts two: a
    long member name and a TAP whose name differs from home's in its last letter."""
    state = node.state
    record = hosted(LAB_NWID, "homelab", state.now, pools=["10.147.18.0/24"])
    state.hosted[LAB_NWID] = record
    state.members[LAB_NWID] = {
        NODE: member(
            LAB_NWID,
            NODE,
            state.now,
            state="authorized",
            name="nas-controller-box",
            ips=["10.147.18.196"],
        )
    }
    lab = network(LAB_NWID, NODE)
    configure(lab, record, ["10.147.18.196"], members=1)
    lab["device"] = "zto3fhch5haaaae"
    state.networks[LAB_NWID] = lab
    state.networks[HOME_NWID]["device"] = "zto3fhch5haaaac"
    state.networks[HOME_NWID]["addresses"] = ["10.147.17.196/24"]


async def test_no_table_runs_off_the_right_edge_at_80_columns(node: FakeNode) -> None:
    """Columns that do not fit are dropped whole, least important first, so nothing is
    cut at the screen's edge; identifiers stay."""
    add_homelab(node)
    async with make_app(node, theme="ansi-dark").run_test(size=(80, 24)) as pilot:
        app = await loaded(pilot)
        for tab in "12345":
            await pilot.press(tab)
            await pilot.pause()
            for table in app.screen.query(KeyedTable):
                if not table.display or not table.region.width:
                    continue
                width = sum(c.get_render_width(table) for c in table.columns.values())
                assert width <= table.size.width, f"tab {tab}: {table.id} is {width} wide"
                assert table.column_keys[0] in table.shown_columns


async def test_members_show_whole_network_ids(node: FakeNode) -> None:
    """Two networks whose ids differ in the last digit must not look the same."""
    add_homelab(node)
    async with make_app(node).run_test(size=(80, 24)) as pilot:
        app = await loaded(pilot)
        table = await tab_table(pilot, "3", "#members-table", 4)
        lines = "\n".join(table_lines(table))
        assert HOME_NWID in lines and LAB_NWID in lines
        row = next(line for line in lines.splitlines() if LAB_NWID in line)
        assert "nas-controller-…" in row  # the long name is shortened, marked, not the id
        table.select_key(f"{LAB_NWID}/{NODE}")
        await pilot.pause()
        detail = text_of(app, "#members-detail")
        assert f"{NODE} nas-controller-box on homelab {LAB_NWID}" in detail


async def test_networks_show_whole_device_names(node: FakeNode) -> None:
    add_homelab(node)
    async with make_app(node).run_test(size=(80, 24)) as pilot:
        app = await loaded(pilot)
        table = await tab_table(pilot, "2", "#networks-table", 3)
        lines = "\n".join(table_lines(table))
        assert "zto3fhch5haaaac" in lines and "zto3fhch5haaaae" in lines
        assert "device zto3fhch5haaaac · MAC" in text_of(app, "#network-detail")


async def test_a_ping_shows_its_result_without_scrolling(node: FakeNode) -> None:
    """The phone's relay reason is long; at 80x24 the ping log sat below the fold."""
    async with make_app(node).run_test(size=(80, 24)) as pilot:
        app = await loaded(pilot)
        screen = await open_peer(pilot, PHONE, "p")
        log = screen.query_one("#ping-log")
        await wait_for(pilot, lambda: "0% loss" in "\n".join(x.text for x in log.lines))
        await pilot.pause()
        assert log.region.y > 0 and log.region.bottom <= app.size.height - 1  # above the footer
        shown = [log.render_line(y).text for y in range(log.size.height)]
        assert any("4 sent, 4 received, 0% loss" in line for line in shown)


async def test_repeated_events_are_one_row_and_shown_in_full(node: FakeNode) -> None:
    """A member asking again every 30 s was a new row each time; now the row moves down
    with a count. The highlighted event's whole message is under the table."""
    async with make_app(node).run_test(size=(80, 24)) as pilot:
        app = await loaded(pilot)
        table = await tab_table(pilot, "5", "#events-table", len(node.state.events))
        before = table.row_count
        message = (
            f"c0ffee0001 asks to join home ({HOME_NWID}) from 198.51.100.61:9993; approve it? "
            "(it asked 3 times)"
        )
        for _ in range(3):
            node.push_event("member_request", message, nwid=HOME_NWID, address="c0ffee0001")
            node.push_event("link", f"{PHONE}: RELAY -> DIRECT", peer=PHONE)
            node.push_event("link", f"{PHONE}: DIRECT -> RELAY", peer=PHONE)
        node.push_event("member_request", message, nwid=HOME_NWID, address="c0ffee0001")
        await wait_for(pilot, lambda: app.store.events_seen == len(node.state.events))
        await pilot.pause()
        # the link flapping keeps its order (6 rows); the request is one row, at the bottom
        assert table.row_count == before + 7
        assert table.cursor_row == table.row_count - 1  # following the newest
        assert "×4 c0ffee0001 asks to join" in "".join(table_lines(table))
        assert table.selected_key is not None
        cells = table.cells_of(table.selected_key)
        assert cells is not None and str(cells[2]).startswith("×4 ")
        detail = text_of(app, "#events-detail")
        assert "4 times since" in detail and message in " ".join(detail.split("\n"))


async def test_checkboxes_say_their_state_in_glyphs(node: FakeNode) -> None:
    """In 16 colours Textual's ▐X▌ looks the same on and off."""
    async with make_app(node, theme="ansi-dark").run_test(size=(80, 24)) as pilot:
        app = await loaded(pilot)
        await pilot.press("2", "e")
        managed = app.screen.query_one("#allow_managed")
        glob = app.screen.query_one("#allow_global")
        assert str(managed.render()).startswith("[x]")
        assert str(glob.render()).startswith("[ ]")
        glob.focus()
        await pilot.press("space")
        assert str(glob.render()).startswith("[x]")


def test_no_screen_uses_colour_only_toggles() -> None:
    """The console's dialogs take Checkbox/RadioButton from widgets/toggles.py."""
    for path in CONSOLE.rglob("*.py"):
        if path.name == "toggles.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "textual.widgets":
                names = {alias.name for alias in node.names}
                assert not names & {"Checkbox", "RadioButton"}, f"{path}: use widgets.toggles"


async def test_help_lists_each_key_once(node: FakeNode) -> None:
    """Two dialogs' Escape "Cancel" was listed twice; D and Delete share one line."""
    async with make_app(node).run_test(size=(80, 24)) as pilot:
        app = await loaded(pilot)
        await pilot.press("question_mark")
        screen = app.screen
        assert isinstance(screen, HelpScreen)
        rows = [(section, description) for section, _, description in screen.rows]
        assert len(rows) == len(set(rows)), sorted(r for r in rows if rows.count(r) > 1)
        dialogs = [(key, what) for section, key, what in screen.rows if section == "Dialogs"]
        assert dialogs.count(("escape", "Cancel")) == 1
        assert ("D / delete", "Remove") in [(k, w) for _, k, w in screen.rows]


def test_bar_line_keeps_the_address_and_keys_when_cut() -> None:
    from console.widgets.requests_bar import request_line

    record = member(HOME_NWID, "c0ffee0001", 0.0, physical="[2001:db8::1]:9993")
    where = "a-network-with-a-very-long-name-indeed"
    line = request_line(record, where, chosen=True, busy=False, position="1/2", width=60)
    assert cell_len(line.plain) == 60
    assert line.plain.startswith("▶ c0ffee0001 asks to join a-net")
    assert line.plain.endswith("a approve · x dismiss  1/2") and "…" in line.plain


async def test_a_repeat_does_not_move_a_cursor_parked_elsewhere(node: FakeNode) -> None:
    """Reading an older event while a request repeats: the cursor stays on that event."""
    async with make_app(node).run_test(size=(80, 24)) as pilot:
        app = await loaded(pilot)
        table = await tab_table(pilot, "5", "#events-table", len(node.state.events))
        await wait_for(pilot, lambda: app.focused is table)
        await pilot.press("home")
        parked = table.selected_key
        assert parked == "1"
        request = next(e for e in node.state.events if e["kind"] == "member_request")
        node.push_event(
            "member_request", request["message"], nwid=request["nwid"], address=request["address"]
        )
        await wait_for(pilot, lambda: app.store.events_seen == len(node.state.events))
        await pilot.pause()
        assert table.selected_key == parked and table.cursor_row == 0
        assert table.row_count == len(node.state.events) - 1  # the repeat joined its row
