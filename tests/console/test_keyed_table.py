"""KeyedTable reconciles rows in place: the cursor follows its row by key through sorting,
removals above it and additions, and unchanged cells are not rewritten."""

from __future__ import annotations

from textual.app import App, ComposeResult

from console.widgets.keyed_table import KeyedTable

COLUMNS = [("name", "NAME"), ("value", "VALUE")]


class TableApp(App[None]):
    def compose(self) -> ComposeResult:
        yield KeyedTable(COLUMNS)


def rows(*pairs: tuple[str, str]) -> list[tuple[str, tuple[str, str]]]:
    return [(name, (name, value)) for name, value in pairs]


async def test_cursor_follows_its_row_by_key() -> None:
    async with TableApp().run_test() as pilot:
        table = pilot.app.query_one(KeyedTable)
        table.sync(rows(("a", "1"), ("b", "2"), ("c", "3")))
        table.select_key("b")
        await pilot.pause()
        table.sync(rows(("c", "3"), ("b", "2"), ("a", "1")))  # re-sorted
        assert table.selected_key == "b" and table.cursor_row == 1
        table.sync(rows(("b", "2"), ("a", "1")))  # the row above it went
        assert table.selected_key == "b" and table.cursor_row == 0
        table.sync(rows(("z", "0"), ("b", "2"), ("a", "1")))  # one arrived above it
        assert table.selected_key == "b" and table.cursor_row == 1
        assert [row.key.value for row in table.ordered_rows] == ["z", "b", "a"]


async def test_only_changed_cells_are_updated() -> None:
    async with TableApp().run_test() as pilot:
        table = pilot.app.query_one(KeyedTable)
        table.sync(rows(("a", "1"), ("b", "2")))
        updated: list[tuple[object, object]] = []
        original = table.update_cell

        def spy(row_key, column_key, value, *, update_width=False):  # type: ignore[no-untyped-def]
            updated.append((row_key, column_key))
            return original(row_key, column_key, value, update_width=update_width)

        table.update_cell = spy  # type: ignore[method-assign]
        table.sync(rows(("a", "1"), ("b", "5")))
        assert updated == [("b", "value")]
        assert table.get_cell("b", "value") == "5"


async def test_a_frame_drawn_before_the_table_idles_does_not_keep_old_widths() -> None:
    """DataTable widens a column when it next idles, without invalidating the lines it
    has cached; a frame drawn in between kept the cell cut to the old width ("192.1" for
    "192.168.191.30/24", seen in the tmux test) until another cell changed."""
    async with TableApp().run_test() as pilot:
        table = pilot.app.query_one(KeyedTable)
        table.sync(rows(("a", "-")))
        await pilot.pause()
        table.sync(rows(("a", "192.168.191.30/24")))
        table.render_line(1)  # a frame drawn before the table idles
        await pilot.pause()
        assert "192.168.191.30/24" in table.render_line(1).text
        table.sync(rows(("a", "192.168.191.30/24"), ("b", "a-new-row-wider-than-that")))
        table.render_line(2)
        await pilot.pause()
        assert "a-new-row-wider-than-that" in table.render_line(2).text
