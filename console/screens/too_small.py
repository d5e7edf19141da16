"""Shown instead of everything while the terminal is smaller than the console needs."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import ModalScreen
from textual.widgets import Static

MIN_WIDTH, MIN_HEIGHT = 80, 24


class TooSmallScreen(ModalScreen[None]):
    def compose(self) -> ComposeResult:
        yield Static(id="too-small")

    def on_mount(self) -> None:
        self.show_size(self.app.size.width, self.app.size.height)

    def show_size(self, width: int, height: int) -> None:
        self.query_one("#too-small", Static).update(
            f"ztui needs at least {MIN_WIDTH}x{MIN_HEIGHT}; this terminal is {width}x{height}.\n"
            "Make the window bigger (or the font smaller). q quits."
        )
