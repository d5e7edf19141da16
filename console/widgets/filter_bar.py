"""FilterBar: the `/` filter under a table, like less and k9s.

Hidden until `/`; filters as you type; Enter returns to the table keeping the filter;
Escape clears it and hides the bar. The owner listens for FilterBar.FilterChanged and
FilterBar.Closed (names of their own: Input posts `self.Changed` itself).
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import on
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Input


class FilterBar(Input):
    """A one-line filter; `value` is the current filter text."""

    DEFAULT_CSS = """
    FilterBar { display: none; height: 1; }
    FilterBar.-active { display: block; }
    """
    BINDINGS = [Binding("escape", "clear_filter", "Clear filter")]

    @dataclass
    class FilterChanged(Message):
        bar: FilterBar
        text: str

    @dataclass
    class Closed(Message):
        """Enter or Escape: focus goes back to the table."""

        bar: FilterBar

    def __init__(self, placeholder: str = "filter", *, id: str | None = None) -> None:
        super().__init__(placeholder=placeholder, id=id, compact=True)

    def open(self) -> None:
        self.add_class("-active")
        self.focus()

    def action_clear_filter(self) -> None:
        self.value = ""
        self.remove_class("-active")
        self.post_message(self.Closed(self))

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.FilterChanged(self, event.value.strip().lower()))

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if not self.value.strip():
            self.remove_class("-active")
        self.post_message(self.Closed(self))
