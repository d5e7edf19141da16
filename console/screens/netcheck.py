"""The network check (`N`, or "Network check" in Ctrl+P): can this node connect directly,
and if not, the one thing to do. The same report as `ztui netcheck`, with the verdict in
the colour of its level, refreshed while the dialog is open.

The daemon works the report out from state it keeps current anyway (it sends nothing for
it), so polling it every node interval costs one small request.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Static

from overlay_core.api.schema import NetcheckJson

from .. import render
from ..client import ApiError
from ..widgets.base import show

if TYPE_CHECKING:
    from ..app import ZtuiApp

# ANSI names, so the 16-colour theme draws them with the terminal's own palette.
LEVEL_STYLES = {"ok": "bold green", "warn": "bold yellow", "bad": "bold red"}


def verdict_text(report: NetcheckJson) -> Text:
    """The verdict in its level's colour, and the next step under it."""
    text = Text()
    text.append(report["verdict"], style=LEVEL_STYLES.get(report["level"], "bold"))
    text.append("\nnext step: ", style="bold")
    text.append(report["advice"])
    return text


def facts(report: NetcheckJson) -> Text:
    """The rows behind the verdict, then the roots, as `ztui netcheck` prints them."""
    text = Text()
    for label, value in render.netcheck_facts(report):
        text.append(f"{label:<9} ", style="bold")
        text.append(f"{value}\n")
    text.append("roots\n", style="bold")
    text.append("\n".join(render.netcheck_root_lines(report)))
    return text


class NetcheckScreen(ModalScreen[None]):
    """A dialog over the tabs; Escape, q or N closes it."""

    BINDINGS = [Binding("escape,q,N", "app.pop_screen", "Close", show=False)]

    @dataclass
    class Polled(Message):
        """One answer to GET /netcheck, or the one line saying why there was none."""

        report: NetcheckJson | None
        error: str | None = None

    def __init__(self) -> None:
        super().__init__(classes="dialog-screen")
        self.report: NetcheckJson | None = None

    @property
    def ztui(self) -> ZtuiApp:
        return cast("ZtuiApp", self.app)

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog", id="netcheck"):
            yield Static("Network check — Escape closes", classes="dialog-title")
            yield Static("checking…", id="netcheck-verdict", classes="dialog-body")
            yield Static("", id="netcheck-facts")

    def on_mount(self) -> None:
        self.poll()

    @work(exclusive=True, group="netcheck")
    async def poll(self) -> None:
        """Ends with the screen: its workers are cancelled when it is dismissed."""
        while True:
            try:
                report = await self.ztui.client.netcheck()
            except ApiError as exc:
                self.post_message(self.Polled(None, str(exc)))
            else:
                self.post_message(self.Polled(report))
            await asyncio.sleep(self.ztui.intervals.node_s)

    @on(Polled)
    def _polled(self, message: Polled) -> None:
        verdict = self.query_one("#netcheck-verdict", Static)
        if message.report is None:
            # Keep the last report below, but say it is not current.
            show(verdict, Text(f"cannot check: {message.error}", style="bold red"))
            return
        self.report = message.report
        show(verdict, verdict_text(message.report))
        show(self.query_one("#netcheck-facts", Static), facts(message.report))
