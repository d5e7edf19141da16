"""Where each key works: the classes whose BINDINGS the footer shows, grouped as `?` lists
them. The help screen and the command palette both read this, and the footer reads the
same Binding objects, so an action has one name everywhere ("Retry direct" in the footer,
in `?` and in Ctrl+P)."""

from __future__ import annotations

from textual.binding import Binding
from textual.dom import DOMNode

from ..widgets.filter_bar import FilterBar
from ..widgets.requests_bar import RequestsBar
from .create_network import CreateNetworkModal
from .edit_network import EditNetworkModal
from .events import EventsView
from .help import HelpScreen
from .members import MembersView
from .modals import ConfirmModal, PromptModal
from .netcheck import NetcheckScreen
from .networks import NetworksTable, NetworksView
from .paths import PathsScreen
from .peer_detail import PeerScreen
from .peers import PeersTable, PeersView
from .traffic import TrafficView

Owner = type[DOMNode]
Section = tuple[str, tuple[Owner, ...]]

# Keys that only mean something inside a dialog or while typing a filter, where the
# palette is no way to reach them: `?` lists them, the palette has nothing to offer.
LOCAL: tuple[Owner, ...] = (
    EditNetworkModal,
    CreateNetworkModal,
    ConfirmModal,
    PromptModal,
    FilterBar,
    HelpScreen,
    NetcheckScreen,
    PathsScreen,  # Escape and m mean something only there; p on Members opens it
)


def sections(app_class: Owner) -> list[Section]:
    """(title, classes) in the order `?` shows them; `app_class` is ZtuiApp (passed in:
    the app imports this module)."""
    return [
        ("Anywhere (1-5 switch tabs)", (app_class,)),
        ("Join requests (the bar above the footer; Tab reaches it)", (RequestsBar,)),
        ("1 Peers", (PeersTable, PeersView)),
        ("Peer detail (Enter on a peer)", (PeerScreen,)),
        ("2 Networks", (NetworksTable, NetworksView)),
        ("Network settings dialog (e)", (EditNetworkModal,)),
        ("3 Members", (MembersView,)),
        ("New network dialog (c on Members)", (CreateNetworkModal,)),
        ("Paths (p on Members): how each pair of members connects", (PathsScreen,)),
        ("4 Traffic", (TrafficView,)),
        ("5 Events", (EventsView,)),
        ("Filter bar (/ on Peers and Events)", (FilterBar,)),
        ("Dialogs", (ConfirmModal, PromptModal)),
        ("Help and network check", (HelpScreen, NetcheckScreen)),
    ]


def bindings_of(owner: Owner) -> list[Binding]:
    """The class's own bindings that have a name (those the footer or `?` can show)."""
    return [b for b in owner.BINDINGS if isinstance(b, Binding) and b.description]
