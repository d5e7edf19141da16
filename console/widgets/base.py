"""LiveView: the base of every tab. It redraws from the app's LiveStore when the app says
one of the topics it shows changed (a Signal, so views never poll and never fetch).

Only the tab in front redraws; the others note that they are behind and catch up when
shown. With 500 peers a redraw is tens of milliseconds per table, so redrawing hidden
tabs every second would be most of the console's work for nothing on screen."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from textual.containers import Vertical
from textual.visual import VisualType
from textual.widgets import Static, TabbedContent, TabPane

if TYPE_CHECKING:
    from ..app import ZtuiApp
    from ..live import LiveStore


def show(widget: Static, content: VisualType) -> None:
    """`widget.update(content)` unless it shows exactly that already. Textual repaints on
    every update, so an unchanged header or summary line redrawn on every poll would be
    resent to the terminal each second: bytes for nothing on a slow SSH link."""
    if widget.content != content:
        widget.update(content)


class LiveView(Vertical):
    """Subclasses set TOPICS and implement `refresh_view`."""

    TOPICS: ClassVar[frozenset[str]] = frozenset()

    @property
    def ztui(self) -> ZtuiApp:
        return cast("ZtuiApp", self.app)

    @property
    def store(self) -> LiveStore:
        return self.ztui.store

    _behind = False

    def on_mount(self) -> None:
        self.ztui.changed.subscribe(self, self._changed)
        self.refresh_view()

    def _changed(self, topic: str) -> None:
        if topic not in self.TOPICS:
            return
        if self.in_front:
            self.refresh_view()
        else:
            self._behind = True

    @property
    def in_front(self) -> bool:
        """Whether this tab is the one shown, on the screen the user is looking at."""
        if not self.screen.is_current:
            return False
        pane = next((a for a in self.ancestors if isinstance(a, TabPane)), None)
        tabs = next((a for a in self.ancestors if isinstance(a, TabbedContent)), None)
        return pane is None or tabs is None or tabs.active == pane.id

    def catch_up(self) -> None:
        """Shown again: redraw if anything changed meanwhile."""
        if self._behind:
            self._behind = False
            self.refresh_view()

    def refresh_view(self) -> None:
        raise NotImplementedError

    def focus_main(self) -> None:
        """Give focus to the view's main widget (its table) when the tab is shown."""
