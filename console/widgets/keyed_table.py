"""KeyedTable: a DataTable whose rows are reconciled with fresh data in place.

A poll hands `sync` the rows it wants shown, in order. Rows that vanished are removed,
new ones added, and only cells whose value changed are updated, so over SSH a poll costs
a few changed cells rather than a repaint, and the cursor stays on the row it was on
(followed by key, not by index) even when sorting moves that row or rows above it go.
`clear()` on every poll would make the cursor jump to the top each second.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowDoesNotExist

Cell = str | Text
Row = tuple[str, Sequence[Cell]]


def _plain(cell: Any) -> str:
    return cell.plain if isinstance(cell, Text) else str(cell)


class KeyedTable(DataTable[Cell]):
    """Rows keyed by a stable id (peer address, network id); see the module docstring.

    Args:
        columns: (column key, label) pairs.
        key_of: the row key from a row's cells; the default is the first cell. DataTable's
            sort hands its key function cells, not row keys, so the key must be derivable.
    """

    def __init__(
        self,
        columns: Sequence[tuple[str, str]],
        *,
        key_of: Callable[[Sequence[Any]], str] | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(cursor_type="row", id=id, classes=classes, zebra_stripes=False)
        self._column_spec = list(columns)
        self._key_of = key_of or (lambda cells: _plain(cells[0]))
        self._cells: dict[str, tuple[Cell, ...]] = {}
        # Widest cell seen per column. DataTable's own content_width lags (it is measured
        # when idle, and a hidden tab is never idle), so it can't answer _grows.
        self._widths: dict[str, int] = {}

    def on_mount(self) -> None:
        for key, label in self._column_spec:
            self.add_column(label, key=key)

    @property
    def column_keys(self) -> list[str]:
        return [key for key, _ in self._column_spec]

    @property
    def selected_key(self) -> str | None:
        """The key of the row under the cursor, or None when the table is empty."""
        if not self.row_count:
            return None
        try:
            row_key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:  # a stale coordinate while rows are being removed
            return None
        return row_key.value

    def select_key(self, key: str) -> None:
        with contextlib.suppress(RowDoesNotExist):
            self.move_cursor(row=self.get_row_index(key), animate=False)

    @property
    def keys(self) -> list[str]:
        """Row keys in the order they were added (not display order)."""
        return list(self._cells)

    def append(self, key: str, cells: Sequence[Cell]) -> None:
        """Add a row at the end without reconciling the rest (for append-only logs)."""
        for column, cell in zip(self.column_keys, cells, strict=True):
            self._grows(column, cell)
        self.add_row(*cells, key=key)
        self._cells[key] = tuple(cells)

    def clear_rows(self) -> None:
        """Drop every row: for a user's change of what is shown, never on a poll."""
        self.clear()
        self._cells.clear()

    def discard(self, key: str) -> None:
        if self._cells.pop(key, None) is not None:
            self.remove_row(key)

    def _grows(self, column: str, cell: Cell) -> bool:
        """Whether the column must widen for this cell. Only then is update_width asked
        for: DataTable answers it for a narrower cell by re-measuring the whole column,
        which for 500 peers each second costs seconds, not milliseconds. Columns never
        shrink while the console runs; that keeps them from jittering too.

        The column is widened here and now, before the row is added or the cell updated
        (both invalidate the cached lines). DataTable would only widen it when it next
        idles, without invalidating them, so a frame drawn in between kept the cell cut
        to the old width until something else in the table changed."""
        width = cell_len(_plain(cell))
        if width <= self._widths.get(column, 0):
            return False
        self._widths[column] = width
        if (spec := self.columns.get(ColumnKey(column))) is not None:
            spec.content_width = max(spec.content_width, width)
        return True

    def sync(self, rows: Sequence[Row]) -> None:
        """Show exactly `rows`, in this order, changing as little as possible."""
        keep = self.selected_key
        wanted = dict(rows)
        for key in [k for k in self._cells if k not in wanted]:
            self.remove_row(key)
            del self._cells[key]
        columns = self.column_keys
        for key, cells in rows:
            new = tuple(cells)
            old = self._cells.get(key)
            if old is None:
                for column, cell in zip(columns, new, strict=True):
                    self._grows(column, cell)
                self.add_row(*new, key=key)
            elif old != new:
                for column, before, after in zip(columns, old, new, strict=True):
                    if before != after:
                        self.update_cell(
                            key, column, after, update_width=self._grows(column, after)
                        )
            self._cells[key] = new
        order = [key for key, _ in rows]
        if [row.key.value for row in self.ordered_rows] != order:
            rank = {key: index for index, key in enumerate(order)}
            self.sort(key=lambda cells: rank.get(self._key_of(cells), len(rank)))
        if keep is not None and keep in wanted:
            index = self.get_row_index(keep)
            if index != self.cursor_row:
                self.move_cursor(row=index, animate=False)
