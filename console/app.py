"""ZtuiApp: the keyboard-driven console. The data link lives in sync.SyncedApp, the actions
in actions.ActionsApp; this layer is screens, tabs, keys, the theme and the terminal size.

    ztui [--home DIR | --api URL [--token T]]      (console.cli launches this)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Unpack

from textual import events
from textual.app import App
from textual.binding import Binding, BindingType
from textual.screen import ModalScreen, Screen
from textual.widgets import TabbedContent

from .actions import ActionsApp
from .palette import ZtuiCommands
from .screens import keymap
from .screens.help import HelpScreen
from .screens.main import MainScreen
from .screens.netcheck import NetcheckScreen
from .screens.peer_detail import PeerScreen
from .screens.too_small import MIN_HEIGHT, MIN_WIDTH, TooSmallScreen
from .sync import SyncOptions
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

    # Absolute, so subclasses elsewhere (console/testing/fake_app.py) find it too.
    CSS_PATH = Path(__file__).with_name("ztui.tcss")
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
        # The join request in the bar above the footer, from any tab or a peer's view. Not
        # in the footer: the bar shows these keys beside the member they act on.
        Binding("a", "approve_request", "Approve request", show=False),
        Binding("x", "dismiss_request", "Dismiss request", show=False),
    ]
    # Actions that must not fire from under a dialog or the too-small notice.
    SCREEN_ACTIONS = frozenset(
        {"show_tab", "help", "netcheck", "command_palette", "approve_request", "dismiss_request"}
    )

    def __init__(
        self, client: AsyncApiClient, *, theme: str | None = None, **options: Unpack[SyncOptions]
    ) -> None:
        super().__init__(client, **options)
        self._theme_name = theme or pick_theme(os.environ)
        self._too_small = False

    def on_mount(self) -> None:
        self.theme = self._theme_name
        self.changed.subscribe(self, self._changed)
        self._check_size(self.size.width, self.size.height)
        self.start_sync()
        self.call_after_refresh(self.focus_tab)
        if self.demo_notice:
            self.notify(self.demo_notice, title="Simulated demo", severity="warning", timeout=20)

    demo_notice: str | None = None
    """Set by `ztui demo` when its world is simulated (not root: loopback only). Handed to
    the app, not read from the environment, so it cannot leak into another app."""

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
                self.call_after_refresh(self.focus_tab)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in self.SCREEN_ACTIONS and isinstance(self.screen, ModalScreen):
            return False
        if action in ("approve_request", "dismiss_request"):
            return self.join_requests.chosen is not None
        return True

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
        self.call_after_refresh(self.focus_tab)

    def run_view_action(self, tab: str, action: str) -> None:
        """Show `tab`, then run one of its view's actions (as its key would). Queued now,
        not after the refresh: the focus it may ask for (a filter bar's) then lands before
        focus_tab looks at where the focus is, so the tab switch does not take it back."""
        self.show_tab(tab)
        main = self.main
        if main is not None:
            self.call_later(self.run_action, action, main.query_one(f"#{tab}-view", LiveView))

    def focus_tab(self) -> None:
        """Give the tab in front's table the focus (after a tab switch or a dialog),
        unless something in that tab has it already: a filter the palette just opened
        there must keep it when the tab switch's own refocus lands after it."""
        main = self.main
        if main is None or main is not self.screen:
            return
        tabs = main.query_one(TabbedContent)
        pane = tabs.active_pane
        if pane is not None:
            view = pane.query_one(LiveView)
            view.catch_up()
            # Decided when it runs: Widget.focus is deferred, so a focus asked for before
            # (the palette opening that tab's filter) has landed by then.
            self.call_later(self._focus_view, view)

    def _focus_view(self, view: LiveView) -> None:
        focused = self.focused
        if focused is None or view not in focused.ancestors_with_self:
            view.focus_main()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self.call_after_refresh(self.focus_tab)

    def _changed(self, topic: str) -> None:
        main = self.main
        if main is None:
            return
        if topic == "connection":
            was_offline = main.has_class("-offline")
            main.set_class(self.offline_reason is not None, "-offline")
            if was_offline and self.offline_reason is None:
                self.call_after_refresh(self.focus_tab)  # the tabs were hidden: refocus

    # -- screens

    def open_peer(self, address: str, *, ping: bool = False) -> None:
        if isinstance(self.screen, PeerScreen):
            self.pop_screen()
        self.push_screen(PeerScreen(address, ping=ping))

    def action_help(self) -> None:
        self.push_screen(HelpScreen(help_sections()))

    def action_netcheck(self) -> None:
        self.push_screen(NetcheckScreen())

    # -- join requests (the bar above the footer; SyncedApp keeps it in step with the
    # controller's pending members on every hosted poll)

    def action_approve_request(self) -> None:
        """Approve the member the bar names (approve_member sends it only once)."""
        member = self.join_requests.chosen
        if member is not None:
            self.approve_member(member)

    def action_dismiss_request(self) -> None:
        member = self.join_requests.chosen
        if member is not None:
            self.join_requests.dismiss(member)
            self.changed.publish("requests")
            self.notify(
                f"{member['address']} still waits on tab 3 (Members), listed first", timeout=4
            )


def help_sections() -> list[tuple[str, list[BindingType]]]:
    """What `?` lists, from the classes' own BINDINGS (keymap.sections, which the command
    palette reads too)."""
    return [
        (title, [b for owner in owners for b in keymap.bindings_of(owner)])
        for title, owners in keymap.sections(ZtuiApp)
    ]
