"""The main screen: header, the five tabs (switched with 1-5), footer. While overlayd is
unreachable the offline banner takes the tabs' place (class -offline)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, TabbedContent, TabPane

from ..widgets.header import NodeHeader
from ..widgets.offline import OfflineBanner
from .events import EventsView
from .members import MembersView
from .networks import NetworksView
from .peers import PeersView
from .traffic import TrafficView

TAB_LABELS = {
    "peers": "1 Peers",
    "networks": "2 Networks",
    "members": "3 Members",
    "traffic": "4 Traffic",
    "events": "5 Events",
}


class MainScreen(Screen[None]):
    def compose(self) -> ComposeResult:
        yield NodeHeader()
        yield OfflineBanner(id="offline")
        with TabbedContent(initial="peers", id="tabs"):
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
        yield Footer()
