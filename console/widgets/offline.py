"""OfflineBanner: takes the tabs' place while overlayd cannot be reached, says why in the
client's own words (what to do included), and counts down to the next try."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual.widgets import Static

if TYPE_CHECKING:
    from ..app import ZtuiApp

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


class OfflineBanner(Static):
    """Redraws on the app's "connection" topic."""

    @property
    def ztui(self) -> ZtuiApp:
        return cast("ZtuiApp", self.app)

    def on_mount(self) -> None:
        self.ztui.changed.subscribe(self, self._changed)
        self._ticks = 0

    def _changed(self, topic: str) -> None:
        if topic != "connection":
            return
        app = self.ztui
        if app.offline_reason is None:
            return
        self._ticks += 1
        text = Text()
        text.append("Cannot reach overlayd\n\n", style="bold red")
        text.append(f"{app.offline_reason}\n\n")
        text.append(
            f"{SPINNER[self._ticks % len(SPINNER)]} retrying in {app.retry_left_s:.1f} s "
            # Not "when the node is back": a refused socket may be the user's groups, and
            # the reason above already says what to do about those.
            f"(attempt {app.attempt}); the console reconnects by itself once overlayd answers.\n",
            style="yellow",
        )
        text.append("q quits.", style="dim")
        self.update(text)
