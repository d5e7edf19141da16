"""TableView: a tab built around one KeyedTable, the shape of most of the console's tabs
(peers, networks, members, events).

What each such tab does alike lives here once: the table takes the focus when the tab is
shown, and the lines under it about the highlighted row follow the cursor
(`show_detail`). FilteredTableView adds the `/` filter (a FilterBar the subclass
composes): typing sets `filter_text` and redraws, Enter or Escape hands the focus back to
the table.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.widgets import DataTable

from .base import LiveView
from .filter_bar import FilterBar
from .keyed_table import KeyedTable


class TableView(LiveView):
    """Subclasses set TABLE_ID (their KeyedTable's id) and may override `show_detail`."""

    TABLE_ID: ClassVar[str]

    @property
    def table(self) -> KeyedTable:
        return self.query_one(f"#{self.TABLE_ID}", KeyedTable)

    def focus_main(self) -> None:
        self.table.focus()

    def show_detail(self) -> None:
        """Redraw what the tab says about the highlighted row; by default there is none."""

    @on(DataTable.RowHighlighted)
    def _row_highlighted(self) -> None:
        self.show_detail()


class FilteredTableView(TableView):
    """A TableView with a FilterBar: `action_filter` opens it; the rows shown are those
    matching `filter_text` (lower case, as the bar sends it)."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.filter_text = ""

    def action_filter(self) -> None:
        self.query_one(FilterBar).open()

    def filter_changed(self) -> None:
        """`filter_text` changed: show what matches. By default, redraw the view."""
        self.refresh_view()

    @on(FilterBar.FilterChanged)
    def _filter(self, event: FilterBar.FilterChanged) -> None:
        self.filter_text = event.text
        self.filter_changed()

    @on(FilterBar.Closed)
    def _filter_closed(self) -> None:
        self.table.focus()
