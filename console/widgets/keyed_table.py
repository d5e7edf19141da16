"""KeyedTable: a DataTable whose rows are reconciled with fresh data in place, and whose
columns fit the width it has.

A poll hands `sync` the rows it wants shown, in order. Rows that vanished are removed,
new ones added, and only cells whose value changed are updated, so over SSH a poll costs
a few changed cells rather than a repaint, and the cursor stays on the row it was on
(followed by key, not by index) even when sorting moves that row or rows above it go.
`clear()` on every poll would make the cursor jump to the top each second.

Fitting: at 80 columns a plain DataTable runs off the right edge, and whatever column is
last gets cut mid-word, so two 16-digit network ids or two TAP names that differ only at
the end look the same. Each Column has a priority instead: the table shows whole columns,
most important first, and drops the ones that do not fit (priority 0, the identifiers,
always stays). A column may cap its width (`max_width`), and one may be `flex`: it takes
what is left, down to FLEX_MIN_WIDTH. A `fit` column (a peer's name) is never dropped and
is shown whole while dropping other columns can make room; only when the never-dropped
columns alone are wider than the table is it cut, to what they leave it. Cut cells end in
"…", so a cut is never silent.
The fit is worked out again only when the table is resized or a column's widest cell
grows; that rebuilds the table once, never on a poll that changes nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.cells import cell_len
from rich.markup import escape
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowDoesNotExist

Cell = str | Text
Row = tuple[str, Sequence[Cell]]
FLEX_MIN_WIDTH = 24
ELLIPSIS = "…"


@dataclass(frozen=True, slots=True)
class Column:
    """One column. `priority` 0 is never dropped (identifiers: keep them whole); higher
    numbers are dropped first when the table is too narrow. `fit` (priority 0 only): cut
    to the room the other never-dropped columns leave, rather than run off the edge."""

    key: str
    label: str
    priority: int = 0
    max_width: int | None = None
    flex: bool = False
    fit: bool = False


def _plain(cell: Any) -> str:
    return cell.plain if isinstance(cell, Text) else str(cell)


def cut(cell: Cell, width: int | None) -> Cell:
    """`cell` as the table shows it: in at most `width` cells, ending in "…" when it had
    to be shortened. DataTable reads a str as markup, so a message holding "[fd00::1]"
    would lose its brackets: strings are escaped (a string without "[" is unchanged)."""
    if width is not None and cell_len(_plain(cell)) > width:
        text = cell.copy() if isinstance(cell, Text) else Text(cell)
        text.truncate(max(1, width), overflow="ellipsis")
        cell = text if isinstance(cell, Text) else text.plain
    return cell if isinstance(cell, Text) else escape(cell)


class KeyedTable(DataTable[Cell]):
    """Rows keyed by a stable id (peer address, network id); see the module docstring.

    Args:
        columns: Column specs, or (key, label) pairs for columns that are never dropped.
        key_columns: the columns whose cells, joined with "/", make the row key (the first
            column by default). DataTable's sort hands its key function cells, not row
            keys, so the key must be derivable from cells that are always shown.
    """

    # DataTable's Home/End go to the first/last column, which a row cursor never uses; `?`
    # says Home and End move in a table, so they go to the first and last row here.
    BINDINGS = [
        Binding("home", "scroll_top", show=False),
        Binding("end", "scroll_bottom", show=False),
    ]

    def __init__(
        self,
        columns: Sequence[Column | tuple[str, str]],
        *,
        key_columns: Sequence[str] | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(cursor_type="row", id=id, classes=classes, zebra_stripes=False)
        self._specs = [c if isinstance(c, Column) else Column(*c) for c in columns]
        self._key_columns = tuple(key_columns or [self._specs[0].key])
        for spec in self._specs:
            cuttable = spec.max_width or spec.flex or spec.fit
            if spec.key in self._key_columns and (spec.priority or cuttable):
                raise ValueError(f"key column {spec.key!r} must be shown whole (priority 0)")
            if spec.fit and (spec.priority or spec.flex):
                raise ValueError(f"fit column {spec.key!r} is never dropped (priority 0)")
        self._cells: dict[str, tuple[Cell, ...]] = {}
        # Widest cell seen per column, uncut. DataTable's own content_width lags (it is
        # measured when idle, and a hidden tab is never idle), so it cannot tell _measure.
        self._widths: dict[str, int] = {s.key: cell_len(s.label) for s in self._specs}
        self._fit_width = 0  # the width the columns were fitted to; 0: not laid out yet
        self._caps: dict[str, int | None] = {s.key: s.max_width for s in self._specs}
        self._shown = [s.key for s in self._specs]

    def on_mount(self) -> None:
        self._add_columns()

    @property
    def column_keys(self) -> list[str]:
        """Every column's key, shown or not, in spec order (the order of a row's cells)."""
        return [spec.key for spec in self._specs]

    @property
    def shown_columns(self) -> list[str]:
        """The keys of the columns that fit, in the order they are shown."""
        return list(self._shown)

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

    def cells_of(self, key: str) -> tuple[Cell, ...] | None:
        """A row's cells as given, uncut and including the columns not shown."""
        return self._cells.get(key)

    # -- rows

    def append(self, key: str, cells: Sequence[Cell]) -> None:
        """Add a row at the end without reconciling the rest (for append-only logs)."""
        row = tuple(cells)
        grew = self._measure(row)
        self._cells[key] = row
        self.add_row(*self._shown_cells(row), key=key)
        if grew:
            self._refit()

    def clear_rows(self) -> None:
        """Drop every row: for a user's change of what is shown, never on a poll."""
        self.clear()
        self._cells.clear()

    def discard(self, key: str) -> None:
        if self._cells.pop(key, None) is not None:
            self.remove_row(key)

    def sync(self, rows: Sequence[Row]) -> None:
        """Show exactly `rows`, in this order, changing as little as possible."""
        keep = self.selected_key
        wanted = dict(rows)
        for key in [k for k in self._cells if k not in wanted]:
            self.remove_row(key)
            del self._cells[key]
        grew = False
        for _, cells in rows:
            grew = self._measure(cells) or grew
        if grew and self._refit(rows):
            self._restore(keep)
            return
        columns = self.column_keys
        for key, cells in rows:
            new = tuple(cells)
            old = self._cells.get(key)
            if old is None:
                self.add_row(*self._shown_cells(new), key=key)
            elif old != new:
                for column, before, after in zip(columns, old, new, strict=True):
                    if before != after and column in self._shown:
                        shown = cut(after, self._caps[column])
                        self.update_cell(key, column, shown, update_width=self._widen(column))
            self._cells[key] = new
        order = [key for key, _ in rows]
        if [row.key.value for row in self.ordered_rows] != order:
            rank = {key: index for index, key in enumerate(order)}
            self.sort(*self._key_columns, key=lambda ids: rank.get(self._key_from(ids), len(rank)))
        self._restore(keep)

    def _restore(self, keep: str | None) -> None:
        if keep is not None and keep in self._cells:
            index = self.get_row_index(keep)
            if index != self.cursor_row:
                self.move_cursor(row=index, animate=False)

    def _key_from(self, ids: Any) -> str:
        values = ids if isinstance(ids, tuple) else (ids,)
        return "/".join(_plain(value) for value in values)

    # -- widths and fitting

    def _measure(self, row: Sequence[Cell]) -> bool:
        """Note each cell's width; whether any column's widest cell grew."""
        grew = False
        for column, cell in zip(self.column_keys, row, strict=True):
            width = cell_len(_plain(cell))
            if width > self._widths[column]:
                self._widths[column] = width
                grew = True
        return grew

    def _shown_width(self, column: str) -> int:
        cap = self._caps[column]
        return self._widths[column] if cap is None else min(self._widths[column], cap)

    def _widen(self, column: str) -> bool:
        """Whether the column must widen for its widest cell. Only then is update_width
        asked for: DataTable answers it for a narrower cell by re-measuring the whole
        column, which for 500 peers each second costs seconds, not milliseconds. Columns
        never shrink while the console runs; that keeps them from jittering too.

        The column is widened here and now, before the row is added or the cell updated
        (both invalidate the cached lines). DataTable would only widen it when it next
        idles, without invalidating them, so a frame drawn in between kept the cell cut
        to the old width until something else in the table changed."""
        spec = self.columns.get(ColumnKey(column))
        width = self._shown_width(column)
        if spec is None or width <= spec.content_width:
            return False
        spec.content_width = width
        return True

    def _shown_cells(self, row: Sequence[Cell]) -> list[Cell]:
        by_key = dict(zip(self.column_keys, row, strict=True))
        cells = []
        for column in self._shown:
            self._widen(column)
            cells.append(cut(by_key[column], self._caps[column]))
        return cells

    def _layout(self, width: int) -> tuple[list[str], dict[str, int | None]]:
        """Which columns fit in `width` cells, and the width each is cut to."""
        caps: dict[str, int | None] = {s.key: s.max_width for s in self._specs}
        if width <= 0:  # not laid out yet: everything, uncut
            return [s.key for s in self._specs], caps
        pad = 2 * self.cell_padding

        def need(spec: Column) -> int:
            natural = self._widths[spec.key]
            if spec.max_width is not None:
                natural = min(natural, spec.max_width)
            if spec.flex:
                natural = min(natural, max(FLEX_MIN_WIDTH, cell_len(spec.label)))
            return natural + pad

        chosen: set[str] = set()
        used = 0
        for spec in sorted(self._specs, key=lambda s: s.priority):
            if spec.priority == 0 or used + need(spec) <= width:
                chosen.add(spec.key)
                used += need(spec)
        for spec in self._specs:
            if spec.flex and spec.key in chosen:
                room = width - used + need(spec) - pad
                limit = room if spec.max_width is None else min(room, spec.max_width)
                caps[spec.key] = max(limit, need(spec) - pad)
            elif spec.fit and used > width:
                # Only the never-dropped columns are left (the loop above added nothing
                # once they overflowed): this one gets what the others leave it.
                room = width - (used - need(spec)) - pad
                cap = max(room, cell_len(spec.label), 1)
                caps[spec.key] = cap if spec.max_width is None else min(cap, spec.max_width)
        return [s.key for s in self._specs if s.key in chosen], caps

    def _refit(self, rows: Sequence[Row] | None = None) -> bool:
        """Fit the columns to the current width; rebuild the table if that changes what
        is shown (then with `rows`, when given, as the new content). Whether it rebuilt."""
        shown, caps = self._layout(self._fit_width)
        if shown == self._shown and caps == self._caps:
            return False
        self._shown, self._caps = shown, caps
        self._rebuild(rows)
        return True

    def _rebuild(self, rows: Sequence[Row] | None) -> None:
        keep = self.selected_key
        if rows is None:
            order = [row.key.value or "" for row in self.ordered_rows]
            rows = [(key, self._cells[key]) for key in order]
        self.clear(columns=True)
        self._cells.clear()
        self._add_columns()
        for key, cells in rows:
            self._cells[key] = tuple(cells)
            self.add_row(*self._shown_cells(cells), key=key)
        self._restore(keep)

    def _add_columns(self) -> None:
        labels = {s.key: s.label for s in self._specs}
        for column in self._shown:
            self.add_column(labels[column], key=column)
            self._widen(column)

    def on_resize(self, event: events.Resize) -> None:
        # Keep room for the vertical scrollbar whether or not it shows: otherwise a
        # column would come and go as rows arrive and leave.
        width = event.size.width - self.styles.scrollbar_size_vertical
        if width != self._fit_width:
            self._fit_width = width
            self._refit()
