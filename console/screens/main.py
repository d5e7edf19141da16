"""The main screen: header, the five tabs (switched with 1-5), the join requests bar (only
while a member waits), footer. While overlayd is unreachable the offline banner takes the
tabs' place (class -offline)."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, cast

from textual.app import ComposeResult
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Footer, TabbedContent, TabPane

from ..widgets.base import LiveView
from ..widgets.header import NodeHeader
from ..widgets.offline import OfflineBanner
from ..widgets.requests_bar import RequestsBar
from .events import EventsView
from .members import MembersView
from .networks import NetworksView
from .peers import PeersView
from .traffic import TrafficView

if TYPE_CHECKING:
    from ..app import ZtuiApp

TAB_LABELS = {
    "peers": "1 Peers",
    "networks": "2 Networks",
    "members": "3 Members",
    "traffic": "4 Traffic",
    "events": "5 Events",
}


class MainTabs(TabbedContent):
    """The five tabs; only keys and clicks on the tab bar switch them.

    TabbedContent also switches to a pane when a widget inside it gets focus. Focusing is
    deferred (Widget.focus runs later), so the focus the app gives the first tab's table
    at startup could land after a quick `3` had switched tabs, and switch back: the key
    was lost. The app only ever focuses inside the tab in front, so that rule buys
    nothing here."""

    def on_tab_pane_focused(self, event: TabPane.Focused) -> None:
        event.stop()
        event.prevent_default()


class MainScreen(Screen[None]):
    """Also keeps the Members tab's label counting pending members."""

    def compose(self) -> ComposeResult:
        yield NodeHeader()
        yield OfflineBanner(id="offline")
        with MainTabs(initial="peers", id="tabs"):
            with TabPane(TAB_LABELS["peers"], id="peers"):
                yield PeersView(id="peers-view")
            with TabPane(TAB_LABELS["networks"], id="networks"):
                yield NetworksView(id="networks-view")
            with TabPane(TAB_LABELS["members"], id="members"):
                yield MembersView(id="members-view")
            with TabPane(TAB_LABELS["traffic"], id="traffic"):
                yield TrafficView(id="traffic-view")
            with TabPane(TAB_LABELS["events"], id="events"):
                yield EventsView(id="events-view")
        yield RequestsBar()
        yield Footer()

    def on_mount(self) -> None:
        app = cast("ZtuiApp", self.app)
        app.changed.subscribe(self, self._changed)
        self._label_members()

    def on_screen_resume(self) -> None:
        # Back from a peer's detail or a dialog: the tab in front catches up at once.
        pane = self.query_one(TabbedContent).active_pane
        if pane is not None:
            pane.query_one(LiveView).catch_up()

    def _changed(self, topic: str) -> None:
        if topic == "members":
            self._label_members()

    def _label_members(self) -> None:
        pending = len(cast("ZtuiApp", self.app).store.pending_members)
        label = TAB_LABELS["members"] + (f" ({pending} pending)" if pending else "")
        with contextlib.suppress(NoMatches):  # the tabs may not be composed yet
            tab = self.query_one(TabbedContent).get_tab("members")
            if tab.label.plain != label:  # setting it repaints, even when it is the same
                tab.label = label
