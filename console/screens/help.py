"""`?`: every key, by where it works, read from the BINDINGS the widgets really use (so the
help cannot drift from the keys)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

EXTRA_KEYS = [
    ("↑ ↓ PgUp PgDn Home End", "move in a table"),
    ("Tab / Shift+Tab", "next / previous field or widget"),
    ("Ctrl+P", "command palette: every action here by its name (retry direct, approve…)"),
]


def _describe(bindings: Iterable[BindingType]) -> list[tuple[list[str], str]]:
    """(keys, what they do), one row per action name: two dialogs' Escape "Cancel" is one
    row, and `D` and Delete for "Remove" share theirs."""
    rows: dict[str, list[str]] = {}
    for binding in bindings:
        if isinstance(binding, Binding) and binding.description:
            keys = rows.setdefault(binding.description, [])
            keys += [key for key in binding.key.split(",") if key not in keys]
    return [(keys, description) for description, keys in rows.items()]


def _section(title: str, rows: Iterable[tuple[str, str]]) -> Group:
    # The title sits above the grid, not as its title: a table's title wraps to its width.
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True, min_width=8)
    table.add_column()
    for key, description in rows:
        table.add_row(key, description)
    table.add_row("", "")
    return Group(Text(title, style="bold underline"), table)


class HelpScreen(ModalScreen[None]):
    """Sections of (key, what it does); Escape, q or ? closes it."""

    BINDINGS = [
        Binding("escape,q,question_mark", "app.pop_screen", "Close", show=False),
    ]

    def __init__(self, sections: Sequence[tuple[str, Iterable[BindingType]]]) -> None:
        super().__init__(classes="dialog-screen")
        self.sections = sections
        # (section, key, what it does): what the screen lists, for tests and the palette.
        self.rows = [
            (title, " / ".join(keys), description)
            for title, bindings in sections
            for keys, description in _describe(bindings)
        ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog wide", id="help"):
            yield Static("ztui keys — Escape closes", classes="dialog-title")
            for title, bindings in self.sections:
                rows = [
                    (" / ".join(self.app.get_key_display(Binding(k, "")) for k in keys), what)
                    for keys, what in _describe(bindings)
                ]
                if rows:
                    yield Static(_section(title, rows))
            yield Static(_section("Everywhere", EXTRA_KEYS))
