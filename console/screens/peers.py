"""Tab 1, Peers: every peer with its name, link, latency and traffic, live; Enter opens one.

Rows are keyed by address. The NAME column shows what the networks' configs call a member
peer, with its first overlay IP (`nas (10.147.17.22)`), so nobody has to remember which
10 hex digits are the NAS; a root or a stranger has none. `s` cycles the sort column, `/`
filters on any visible text (and every name and IP, and the relay reason, so `/symmetric`
finds the peers a symmetric NAT keeps relayed).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from overlay_core.api.schema import Link, PeerJson

from .. import fmt, render
from ..live import LiveStore, peer_latency_ms
from ..widgets.base import show
from ..widgets.filter_bar import FilterBar
from ..widgets.keyed_table import Cell, Column, KeyedTable
from ..widgets.table_view import FilteredTableView

# The address is the peer's identity: never cut. Its name is how people know it: every
# other column is dropped before it is cut (`fit`). At 80 columns the least important
# columns are dropped whole; Enter shows the peer in full, with its name in each network.
COLUMNS = [
    Column("address", "ADDRESS"),
    Column("name", "NAME", fit=True),
    Column("link", "LINK", priority=1),
    Column("latency", "LATENCY", priority=2),
    Column("tx", "TX/s", priority=3),
    Column("rx", "RX/s", priority=3),
    Column("last_tx", "LAST TX", priority=6),
    Column("last_rx", "LAST RX", priority=4),
    Column("role", "ROLE", priority=5),
    Column("version", "VER", priority=7),
    Column("path", "PREFERRED PATH", priority=4),
]
LINK_ORDER: dict[str, int] = {link: rank for rank, link in enumerate(Link)}  # best first
FAR = float("inf")  # unknown values sort last

SortKey = Callable[[PeerJson, LiveStore], Any]
SORTS: list[tuple[str, SortKey]] = [
    ("address", lambda p, s: p["address"]),
    ("link", lambda p, s: (LINK_ORDER.get(p["link"], 9), p["address"])),
    ("latency", lambda p, s: (_or_far(peer_latency_ms(p)), p["address"])),
    ("traffic", lambda p, s: (-(s.peer_rates.rate(p["address"]).total_bps or 0), p["address"])),
    ("last rx", lambda p, s: (_or_far(p["last_receive_ago_s"]), p["address"])),
    ("role", lambda p, s: (p["role"], p["address"])),
    # Named peers first, A to Z; roots and strangers after them, by address.
    (
        "name",
        lambda p, s: (not render.peer_label(p), render.peer_label(p).casefold(), p["address"]),
    ),
]


def _or_far(value: float | None) -> float:
    return FAR if value is None else value


def peer_cells(peer: PeerJson, store: LiveStore) -> tuple[Cell, ...]:
    rate = store.peer_rates.rate(peer["address"])
    return (
        peer["address"],
        render.peer_label(peer),
        fmt.link(peer["link"]),
        fmt.ms(peer_latency_ms(peer)),
        fmt.rate(rate.tx_bps),
        fmt.rate(rate.rx_bps),
        fmt.ago(peer["last_send_ago_s"]),
        fmt.ago(peer["last_receive_ago_s"]),
        peer["role"],
        peer["version"] or fmt.DASH,
        peer["preferred_path"] or fmt.DASH,
    )


def peer_matches(peer: PeerJson, text: str) -> bool:
    reason = peer["relay_reason"]
    haystack = " ".join(
        [
            peer["address"],
            # every name and every IP, not just the first IP the NAME column shows
            *(f"{e['name']} {' '.join(e['ips'])}" for e in peer.get("names", [])),
            peer["link"],
            peer["role"],
            peer["version"] or "",
            peer["preferred_path"] or "",
            reason["summary"] if reason else "",
            " ".join(reason["details"]) if reason else "",
        ]
    ).lower()
    return all(word in haystack for word in text.split())


class PeersTable(KeyedTable):
    """Shows Enter in the footer: DataTable's own Enter binding is hidden, and the focused
    widget's binding for a key is the one the footer lists."""

    BINDINGS = [Binding("enter", "select_cursor", "Details")]


class PeersView(FilteredTableView):
    """The peer table, its filter bar and a one-line summary under it."""

    TOPICS = frozenset({"peers"})
    TABLE_ID = "peers-table"
    BINDINGS = [
        Binding("s", "cycle_sort", "Sort"),
        Binding("slash", "filter", "Filter"),
        Binding("p", "ping", "Ping"),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.sort_index = 0

    def compose(self) -> ComposeResult:
        yield PeersTable(COLUMNS, id="peers-table")
        yield FilterBar(
            "filter peers: address, name, IP, link, role, path, relay reason", id="peers-filter"
        )
        yield Static(id="peers-summary", classes="summary")

    def refresh_view(self) -> None:
        store = self.store
        name, key = SORTS[self.sort_index]
        shown = [p for p in store.peers.values() if peer_matches(p, self.filter_text)]
        shown.sort(key=lambda p: key(p, store))
        self.table.sync([(p["address"], peer_cells(p, store)) for p in shown])
        total = len(store.peers)
        relayed = sum(1 for p in store.peers.values() if render.is_relayed(p))
        parts = [f"{total} peers", f"{relayed} relayed", f"sorted by {name}"]
        if self.filter_text:
            parts.append(f"filter '{self.filter_text}': {len(shown)} shown")
        if not total:
            parts = ["no peers yet: the node has not heard from any root or peer"]
        show(self.query_one("#peers-summary", Static), " · ".join(parts))

    def action_cycle_sort(self) -> None:
        self.sort_index = (self.sort_index + 1) % len(SORTS)
        self.refresh_view()

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open_peer()

    def action_open_peer(self) -> None:
        address = self.table.selected_key
        if address is not None:
            self.ztui.open_peer(address)

    def action_ping(self) -> None:
        address = self.table.selected_key
        if address is not None:
            self.ztui.open_peer(address, ping=True)
