"""Tab 3, Members: who belongs to the networks this node's controller hosts.

Pending members (asked to join, waiting for an admin) come first and stand out; the tab's
label counts them. Rows are keyed "nwid/address". `a` approves the highlighted member if
it is not in (the user picked it); on one that is in, `a` approves the member the request
bar names, as it does on every other tab. `w` jumps to the first pending (waiting), `d`
deauthorizes and `D` removes (after asking), `n` names, `i` sets IPs, `c` creates a network,
`p` shows how the highlighted member's network's members reach each other (paths.py).
"""

from __future__ import annotations

from collections.abc import Callable

from rich.markup import escape
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from overlay_core.api.schema import ControllerNetworkJson, MemberJson

from .. import fmt
from ..live import member_key
from ..render import ago
from ..widgets.base import show
from ..widgets.keyed_table import Cell, Column, KeyedTable
from ..widgets.table_view import TableView
from .paths import open_paths

# The ids first and never cut (two networks differ only in their last digits); at 80
# columns the least important columns are dropped, and the detail under the table shows
# the highlighted member in full.
COLUMNS = [
    Column("mark", " "),
    Column("address", "ADDRESS"),
    Column("nwid", "NETWORK"),
    Column("state", "STATE", priority=1),
    Column("ips", "IPS", priority=2, max_width=32),
    Column("name", "NAME", priority=3, max_width=16),
    Column("seen", "SEEN", priority=4),
    Column("bridge", "BRIDGE", priority=5),
    Column("version", "VER", priority=6),
]
KEY_COLUMNS = ("nwid", "address")
ADDRESS_COLUMN, NWID_COLUMN = 1, 2
STATE_ORDER = {"pending": 0, "authorized": 1, "deauthorized": 2}
PENDING_STYLE = "bold yellow"
PENDING_MARK = "●"


def member_cells(member: MemberJson, now: float) -> tuple[Cell, ...]:
    seen = member["last_seen"]
    cells: list[Cell] = [
        PENDING_MARK if member["state"] == "pending" else "",
        member["address"],
        member["nwid"],
        fmt.state(member["state"], member["state"].upper()),
        ", ".join(member["ips"]) or fmt.DASH,
        member["name"] or fmt.DASH,
        "never" if seen is None else ago(max(0.0, now - seen)),
        "yes" if member["active_bridge"] else "no",
        member["version"] or fmt.DASH,
    ]
    if member["state"] == "pending":
        # Highlight the whole row, but keep the ids plain strings: they are the row's key.
        cells = [
            c if i in (ADDRESS_COLUMN, NWID_COLUMN) else Text(str(c), style=PENDING_STYLE)
            for i, c in enumerate(cells)
        ]
    return tuple(cells)


def hosted_line(network: ControllerNetworkJson) -> str:
    """One line at 80 columns: the detail under the table has room for few."""
    counts = network["members"]
    pools = ", ".join(network["pools"]) or "no pools"
    kind = "private" if network["private"] else "public"
    members = f"{counts['authorized']} member{'' if counts['authorized'] == 1 else 's'}"
    return (
        f"{network['name'] or '-'} {network['nwid']}: {kind}, {members}, "
        f"{counts['pending']} pending, {pools}"
    )


def member_line(member: MemberJson, where: str, now: float) -> str:
    """The highlighted member in full: what the narrow table may have dropped."""
    seen = member["last_seen"]
    name = f" {escape(member['name'])}" if member["name"] else ""
    parts = [
        f"[b]{member['address']}[/b]{name} on {where} {member['nwid']}: {member['state']}",
        ", ".join(member["ips"]) or "no IPs",
        "never seen" if seen is None else f"seen {ago(max(0.0, now - seen))} ago",
    ]
    if member["physical_address"]:
        parts.append(f"from {member['physical_address']}")
    parts.append(f"v{member['version'] or '-'}")
    if member["active_bridge"]:
        parts.append("bridge")
    return " · ".join(parts)


class MembersView(TableView):
    TOPICS = frozenset({"members"})
    TABLE_ID = "members-table"
    BINDINGS = [
        Binding("a", "approve", "Approve"),
        Binding("p", "paths", "Paths"),
        Binding("w", "jump_pending", "Jump to pending", show=False),
        # Not in the footer: with Paths it would push `? Help` off it at 80 columns; `?`
        # and Ctrl+P list it, and the detail line names the member it acts on.
        Binding("d", "deauthorize", "Deauth", show=False),
        Binding("D", "remove", "Remove"),
        Binding("delete", "remove", "Remove", show=False),
        Binding("n", "name", "Name", show=False),
        Binding("i", "ips", "IPs", show=False),
        Binding("c", "create", "New network"),
    ]

    def compose(self) -> ComposeResult:
        yield KeyedTable(COLUMNS, key_columns=KEY_COLUMNS, id="members-table")
        yield Static(id="members-detail", classes="detail")

    @property
    def highlighted(self) -> MemberJson | None:
        """The member under the table's cursor, if any."""
        key = self.table.selected_key
        return self.store.members.get(key) if key else None

    def ordered(self) -> list[MemberJson]:
        """Pending first (new requests are listed first), then by network and address."""
        return sorted(
            self.store.members.values(),
            key=lambda m: (STATE_ORDER.get(m["state"], 3), m["nwid"], m["address"]),
        )

    def _changed(self, topic: str) -> None:
        if topic == "requests":
            # The bar's choice moved (x, ↑/↓): the detail names whom `a` approves. Only
            # the detail: the table is the same, and redrawing it costs with many rows.
            if self.in_front:
                self.show_detail()
            else:
                self._behind = True
            return
        super()._changed(topic)

    def refresh_view(self) -> None:
        now = self.ztui.wall_clock()
        self.table.sync(
            [(member_key(m["nwid"], m["address"]), member_cells(m, now)) for m in self.ordered()]
        )
        self.show_detail()

    def show_detail(self) -> None:
        store = self.store
        detail = self.query_one("#members-detail", Static)
        if not store.members_loaded:
            show(detail, "asking the controller…")
            return
        if not store.hosted:
            show(
                detail,
                "This node's controller hosts no networks. Press [b]c[/b] to create one; "
                "members join it with its id.",
            )
            return
        lines: list[str] = []
        member = self.highlighted
        if member is not None:
            lines.append(member_line(member, self.ztui.where(member), self.ztui.wall_clock()))
        pending = len(store.pending_members)
        if pending:
            lines.append(
                f"[b yellow]{pending} waiting for approval[/] (listed first): [b]w[/b] goes "
                f"there, [b]a[/b] approves {self._approves(member)}"
            )
        elif not store.members:
            lines.append("No members yet: nobody has asked to join.")
        lines += [hosted_line(n) for n in sorted(store.hosted.values(), key=lambda n: n["nwid"])]
        show(detail, "\n".join(lines))

    def _approves(self, row: MemberJson | None) -> str:
        """Whom `a` approves with `row` highlighted, for the detail line."""
        if row is not None and row["state"] != "authorized":
            return "the row"
        chosen = self.ztui.join_requests.chosen
        return chosen["address"] if chosen is not None else "a pending row"

    def _on_selected(self, act: Callable[[MemberJson], object]) -> None:
        """`act` on the highlighted member, or say that none is."""
        member = self.highlighted
        if member is None:
            self.notify("No member selected", severity="warning")
        else:
            act(member)

    def action_approve(self) -> None:
        """Approve the highlighted row if it is not in: the user picked it. Otherwise
        approve the member the bar names (its `a approve`, which this key hides on this
        tab): the cursor stays where the user left it when a request arrives, and `a`
        there must neither say "already a member" under a bar offering to approve
        someone, nor approve whichever row happens to be listed first. With no request
        in the bar, say the row is in already and how to reach the pending ones."""
        member = self.highlighted
        if member is not None and member["state"] != "authorized":
            self.ztui.approve_member(member)
            return
        if self.ztui.join_requests.chosen is not None:
            self.ztui.action_approve_request()
            return
        if member is None:
            self.notify("No member selected", severity="warning")
            return
        pending = len(self.store.pending_members)
        waiting = (
            f"pending: {pending} — press w to jump to the first pending"
            if pending
            else "nobody is waiting for approval"
        )
        self.notify(
            f"{member['address']} is already a member of {self.ztui.where(member)}; {waiting}",
            timeout=6,
        )

    def action_jump_pending(self) -> None:
        first = next((m for m in self.ordered() if m["state"] == "pending"), None)
        if first is None:
            self.notify("Nobody is waiting for approval", timeout=4)
            return
        self.table.select_key(member_key(first["nwid"], first["address"]))

    def action_paths(self) -> None:
        """The highlighted member's network, or the first hosted one: with no member yet,
        the screen still says what it would show, and why it cannot."""
        member = self.highlighted
        nwid = member["nwid"] if member is not None else min(self.store.hosted, default=None)
        open_paths(self.ztui, nwid)

    def action_deauthorize(self) -> None:
        self._on_selected(self.ztui.deauthorize_member)

    def action_remove(self) -> None:
        self._on_selected(self.ztui.remove_member)

    def action_name(self) -> None:
        self._on_selected(self.ztui.name_member)

    def action_ips(self) -> None:
        self._on_selected(self.ztui.assign_ips)

    def action_create(self) -> None:
        self.ztui.create_network()
