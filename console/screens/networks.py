"""Tab 2, Networks: the networks this node has joined, keyed by network id.

Under the table, the highlighted network in words: what its state means and what to do
(a private network waiting for approval says who must approve and how), its settings,
routes and rule drops. `j` joins, `l` leaves (after asking), `e` edits MTU/MSS/allow*.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from overlay_core.api.schema import NetworkJson, NetworkState

from .. import fmt, render
from ..widgets.base import show
from ..widgets.keyed_table import Cell, Column, KeyedTable
from ..widgets.table_view import TableView

# The id and the TAP device name are identities (two TAPs may differ only in their last
# letter): never cut. At 80 columns the least important columns are dropped instead; the
# detail under the table has the highlighted network in full.
COLUMNS = [
    Column("nwid", "NWID"),
    Column("name", "NAME", priority=2, max_width=16),
    Column("state", "STATUS", priority=1),
    Column("addresses", "ADDRESSES", priority=3, max_width=34),
    Column("mtu", "MTU", priority=4),
    Column("mss", "MSS", priority=5),
    Column("device", "DEV", priority=1),
    Column("type", "TYPE", priority=6),
    Column("mac", "MAC", priority=7),
]
STATE_LABELS: dict[str, str] = {
    NetworkState.REQUESTING_CONFIGURATION: "REQUESTING",
    NetworkState.ACCESS_DENIED: "AWAITING APPROVAL",
}


def network_cells(network: NetworkJson) -> tuple[Cell, ...]:
    state = network["state"]
    private = network["private"]
    return (
        network["nwid"],
        network["name"] or fmt.DASH,
        fmt.state(state, STATE_LABELS.get(state, state)),
        ", ".join(network["addresses"]) or fmt.DASH,
        str(network["mtu"]),
        network["mss"],
        network["device"] or fmt.DASH,
        fmt.DASH if private is None else ("PRIVATE" if private else "PUBLIC"),
        network["mac"],
    )


def network_detail(network: NetworkJson, my_address: str | None) -> str:
    """The highlighted network in a few lines of plain words."""
    lines: list[str] = []
    hint = render.network_hint(network, my_address)
    if hint is not None:
        if network["state"] == NetworkState.ACCESS_DENIED and my_address == render.controller_of(
            network["nwid"]
        ):
            hint += " — this node hosts it: approve it on tab 3 with a"
        lines.append(f"[b]{hint}[/b]")
    kind = {None: "", True: " · private", False: " · public"}[network["private"]]
    lines.append(
        f"device {network['device'] or '-'} · MAC {network['mac']}{kind} · "
        f"{', '.join(network['addresses']) or 'no addresses'}"
    )
    lines.append(render.settings_line(network))
    routes = ", ".join(
        f"{r['target']} via {r['via']}" if r["via"] else r["target"] for r in network["routes"]
    )
    age = fmt.ago(network["config_age_s"])
    lines.append(
        f"routes: {routes or 'none'} · {network['members']} members · config rev "
        f"{network['revision'] if network['revision'] is not None else '-'}, {age} old"
    )
    drops = [f"{d['rule']} {d['drops']}" for d in network["rule_drops"] if d["drops"]]
    if drops:
        lines.append(f"rule drops: {', '.join(drops)}")
    return "\n".join(lines)


class NetworksTable(KeyedTable):
    BINDINGS = [Binding("enter", "select_cursor", "Edit")]


class NetworksView(TableView):
    TOPICS = frozenset({"networks", "status"})
    TABLE_ID = "networks-table"
    BINDINGS = [
        Binding("j", "join", "Join"),
        Binding("l", "leave", "Leave"),
        Binding("e", "edit", "MTU/MSS"),
    ]

    def compose(self) -> ComposeResult:
        yield NetworksTable(COLUMNS, id="networks-table")
        yield Static(id="network-detail", classes="detail")

    def refresh_view(self) -> None:
        networks = sorted(self.store.networks.values(), key=lambda n: n["nwid"])
        self.table.sync([(n["nwid"], network_cells(n)) for n in networks])
        self.show_detail()

    def show_detail(self) -> None:
        detail = self.query_one("#network-detail", Static)
        nwid = self.table.selected_key
        network = self.store.networks.get(nwid) if nwid else None
        if network is None:
            show(detail, "No networks joined. Press [b]j[/b] and paste a 16-digit network id.")
            return
        status = self.store.status
        show(detail, network_detail(network, status["address"] if status else None))

    @on(DataTable.RowSelected)
    def _selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_edit()

    def action_join(self) -> None:
        self.ztui.join_network()

    def action_leave(self) -> None:
        if (nwid := self.table.selected_key) is not None:
            self.ztui.leave_network(nwid)

    def action_edit(self) -> None:
        if (nwid := self.table.selected_key) is not None:
            self.ztui.edit_network(nwid)
