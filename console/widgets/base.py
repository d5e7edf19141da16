"""LiveView: the base of every tab. It redraws from the app's LiveStore when the app says
one of the topics it shows changed (a Signal, so views never poll and never fetch)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from textual.containers import Vertical

if TYPE_CHECKING:
    from ..app import ZtuiApp
    from ..live import LiveStore


class LiveView(Vertical):
    """Subclasses set TOPICS and implement `refresh_view`."""

    TOPICS: ClassVar[frozenset[str]] = frozenset()

    @property
    def ztui(self) -> ZtuiApp:
        return cast("ZtuiApp", self.app)

    @property
    def store(self) -> LiveStore:
        return self.ztui.store

    def on_mount(self) -> None:
        self.ztui.changed.subscribe(self, self._changed)
        self.refresh_view()

    def _changed(self, topic: str) -> None:
        if topic in self.TOPICS:
            self.refresh_view()

    def refresh_view(self) -> None:
        raise NotImplementedError

    def focus_main(self) -> None:
        """Give focus to the view's main widget (its table) when the tab is shown."""
