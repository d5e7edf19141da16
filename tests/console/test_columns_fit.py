"""KeyedTable fits its columns to its width: whole columns are dropped, least important
first, identifiers never; a capped column ends in "…"; a flex column takes what is left;
a wider terminal brings the dropped columns back, the cursor staying on its row."""

from __future__ import annotations

from textual.app import App, ComposeResult

from console.widgets.keyed_table import Column, KeyedTable

COLUMNS = [
    Column("id", "ID"),
    Column("name", "NAME", priority=2, max_width=8),
    Column("state", "STATE", priority=1),
    Column("note", "NOTE", priority=5),
    Column("message", "MESSAGE", priority=3, flex=True),
]
ROWS = [
    ("8056c2e21c000001", ("8056c2e21c000001", "a-long-name", "OK", "n" * 20, "m" * 60)),
    ("8056c2e21c000002", ("8056c2e21c000002", "lab", "AWAITING", "-", "short")),
]


class TableApp(App[None]):
    def compose(self) -> ComposeResult:
        yield KeyedTable(COLUMNS)


def text(table: KeyedTable) -> str:
    return "\n".join(table.render_line(y).text for y in range(table.size.height))


async def test_columns_fit_and_come_back() -> None:
    async with TableApp().run_test(size=(66, 6)) as pilot:
        table = pilot.app.query_one(KeyedTable)
        table.sync(ROWS)
        table.select_key("8056c2e21c000002")
        await pilot.pause()
        # 64 usable (Textual's default scrollbar is 2 wide), 2 of padding per column: id 18,
        # state 10, name 10 (capped at 8), message at least 26: note's 22 is left out.
        assert table.shown_columns == ["id", "name", "state", "message"]
        shown = text(table)
        assert "8056c2e21c000001" in shown and "8056c2e21c000002" in shown
        assert "a-long-…" in shown and "NOTE" not in shown
        assert "m" * 23 + "…" in shown and "m" * 24 not in shown  # the 24 that are left
        width = sum(c.get_render_width(table) for c in table.columns.values())
        assert width <= table.size.width
        await pilot.resize_terminal(140, 6)
        await pilot.pause()
        assert table.shown_columns == [c.key for c in COLUMNS]
        assert "m" * 60 in text(table) and "NOTE" in text(table)
        assert table.selected_key == "8056c2e21c000002"


async def test_identifiers_stay_when_nothing_else_fits() -> None:
    async with TableApp().run_test(size=(20, 6)) as pilot:
        table = pilot.app.query_one(KeyedTable)
        table.sync(ROWS)
        await pilot.pause()
        assert table.shown_columns[0] == "id"
        assert "8056c2e21c000001" in text(table)


async def test_a_cell_growing_past_the_room_drops_a_column() -> None:
    """A poll brings a wider value: the fit is worked out again, once."""
    async with TableApp().run_test(size=(60, 6)) as pilot:
        table = pilot.app.query_one(KeyedTable)
        table.sync([(key, (*cells[:2], "OK", "-", "x")) for key, cells in ROWS])
        await pilot.pause()
        assert "note" in table.shown_columns
        table.sync([(key, (*cells[:2], "OK", "n" * 30, "x")) for key, cells in ROWS])
        await pilot.pause()
        assert "note" not in table.shown_columns
        assert table.cells_of("8056c2e21c000001") == ("8056c2e21c000001", "a-long-name", "OK",
                                                      "n" * 30, "x")  # fmt: skip


async def test_markup_in_a_cell_is_shown_as_typed() -> None:
    async with TableApp().run_test(size=(100, 6)) as pilot:
        table = pilot.app.query_one(KeyedTable)
        table.sync([("k", ("k", "[b]x[/b]", "OK", "-", "peer at [fd00::1]:9993"))])
        await pilot.pause()
        assert "[fd00::1]:9993" in text(table) and "[b]x[/b]" in text(table)
