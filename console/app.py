"""ZtuiApp: the keyboard-driven console. The data link lives in sync.SyncedApp, the actions
in actions.ActionsApp; this layer is screens, tabs, keys, the theme and the terminal size.

    ztui [--home DIR | --api URL [--token T]]      (console.cli launches this)
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from textual import events
from textual.app import App
from textual.binding import Binding, BindingType
from textual.screen import ModalScreen, Screen
from textual.widgets import TabbedContent

from overlay_core.api.schema import MemberJson

from .actions import ActionsApp
from .palette import ZtuiCommands
from .screens.edit_network import EditNetworkModal
from .screens.events import EventsView
from .screens.help import HelpScreen
from .screens.main import MainScreen
from .screens.members import MembersView
from .screens.modals import ConfirmModal, PromptModal
from .screens.netcheck import NetcheckScreen
from .screens.networks import NetworksView
from .screens.peer_detail import PeerScreen
from .screens.peers import PeersTable, PeersView
from .screens.too_small import MIN_HEIGHT, MIN_WIDTH, TooSmallScreen
from .screens.traffic import TrafficView
from .sync import Intervals
from .widgets.base import LiveView

if TYPE_CHECKING:
    from .api import AsyncApiClient

TRUECOLOR_THEME = "textual-dark"
ANSI_THEME = "ansi-dark"  # 16 colours: the terminal's own palette draws everything


def pick_theme(environ: Mapping[str, str]) -> str:
    """The ANSI theme unless the terminal says it does 256 colours or more: on TERM=linux
    or plain `screen`, truecolour themes get squashed to muddy, sometimes unreadable pairs."""
    if environ.get("COLORTERM", "").lower() in ("truecolor", "24bit"):
        return TRUECOLOR_THEME
    if "256color" in environ.get("TERM", ""):
        return TRUECOLOR_THEME
    return ANSI_THEME


class ZtuiApp(ActionsApp):
    """Peers, networks, members, traffic and events of one overlayd, live."""

    CSS_PATH = "ztui.tcss"
    TITLE = "ztui"
    COMMANDS = App.COMMANDS | {ZtuiCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
        Binding("1", "show_tab('peers')", "Peers", show=False),
        Binding("2", "show_tab('networks')", "Networks", show=False),
        Binding("3", "show_tab('members')", "Members", show=False),
        Binding("4", "show_tab('traffic')", "Traffic", show=False),
        Binding("5", "show_tab('events')", "Events", show=False),
        Binding("N", "netcheck", "Network check: UDP, NAT type, roots", show=False),
    ]
    # Actions that must not fire from under a dialog or the too-small notice.
    SCREEN_ACTIONS = frozenset({"show_tab", "help", "netcheck", "command_palette"})

    def __init__(
        self,
        client: AsyncApiClient,
        *,
        intervals: Intervals | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        theme: str | None = None,
    ) -> None:
        super().__init__(client, intervals=intervals, clock=clock, wall_clock=wall_clock)
        self._theme_name = theme or pick_theme(os.environ)
        self._too_small = False

    def on_mount(self) -> None:
        self.theme = self._theme_name
        self.changed.subscribe(self, self._changed)
        self._check_size(self.size.width, self.size.height)
        self.start_sync()
        self.call_after_refresh(self._focus_tab)
        if self.demo_notice:
            self.notify(self.demo_notice, title="Simulated demo", severity="warning", timeout=20)

    @property
    def demo_notice(self) -> str | None:
        """Set by `ztui demo` when its world is simulated (not root: loopback only)."""
        return os.environ.get("ZTUI_DEMO_NOTICE") or None

    def get_default_screen(self) -> Screen[Any]:
        return MainScreen()

    # -- size

    def on_resize(self, event: events.Resize) -> None:
        self._check_size(event.size.width, event.size.height)

    def _check_size(self, width: int, height: int) -> None:
        small = width < MIN_WIDTH or height < MIN_HEIGHT
        if small and not self._too_small:
            self._too_small = True
            self.push_screen(TooSmallScreen())
        elif small and isinstance(self.screen, TooSmallScreen):
            self.screen.show_size(width, height)
        elif not small and self._too_small:
            self._too_small = False
            if isinstance(self.screen, TooSmallScreen):
                self.pop_screen()
                self.call_after_refresh(self._focus_tab)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (action in self.SCREEN_ACTIONS and isinstance(self.screen, ModalScreen))

    # -- tabs

    @property
    def main(self) -> MainScreen | None:
        for screen in self.screen_stack:
            if isinstance(screen, MainScreen):
                return screen
        return None

    def action_show_tab(self, tab: str) -> None:
        self.show_tab(tab)

    def show_tab(self, tab: str) -> None:
        main = self.main
        if main is None:
            return
        while self.screen is not main and len(self.screen_stack) > 1:
            self.pop_screen()  # 1-5 from a peer's detail goes back to the tabs
        main.query_one(TabbedContent).active = tab
        self.call_after_refresh(self._focus_tab)

    def _focus_tab(self) -> None:
        main = self.main
        if main is None or main is not self.screen:
            return
        tabs = main.query_one(TabbedContent)
        pane = tabs.active_pane
        if pane is not None:
            view = pane.query_one(LiveView)
            view.catch_up()
            view.focus_main()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self.call_after_refresh(self._focus_tab)

    def _changed(self, topic: str) -> None:
        main = self.main
        if main is None:
            return
        if topic == "connection":
            was_offline = main.has_class("-offline")
            main.set_class(self.offline_reason is not None, "-offline")
            if was_offline and self.offline_reason is None:
                self.call_after_refresh(self._focus_tab)  # the tabs were hidden: refocus

    # -- screens

    def open_peer(self, address: str, *, ping: bool = False) -> None:
        if isinstance(self.screen, PeerScreen):
            self.pop_screen()
        self.push_screen(PeerScreen(address, ping=ping))

    def action_help(self) -> None:
        self.push_screen(HelpScreen(help_sections()))

    def action_netcheck(self) -> None:
        self.push_screen(NetcheckScreen())

    def member_requested(self, member: MemberJson) -> None:
        hosted = self.store.hosted.get(member["nwid"])
        where = hosted["name"] if hosted and hosted["name"] else member["nwid"]
        self.notify(
            f"{member['address']} asks to join {where}: press 3, highlight it, then a to approve",
            title="Member waiting for approval",
            severity="warning",
            timeout=15,
        )


def help_sections() -> list[tuple[str, list[BindingType]]]:
    """What `?` lists, from the classes' own BINDINGS."""
    return [
        ("Anywhere (1-5 switch tabs)", ZtuiApp.BINDINGS),
        ("1 Peers", [*PeersTable.BINDINGS, *PeersView.BINDINGS]),
        ("Peer detail (Enter on a peer)", PeerScreen.BINDINGS),
        ("2 Networks", NetworksView.BINDINGS),
        ("Network settings dialog (e)", EditNetworkModal.BINDINGS),
        ("3 Members", MembersView.BINDINGS),
        ("4 Traffic", TrafficView.BINDINGS),
        ("5 Events", EventsView.BINDINGS),
        ("Dialogs", [*ConfirmModal.BINDINGS, *PromptModal.BINDINGS]),
    ]
