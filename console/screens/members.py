"""Tab 3, Members: who belongs to the networks this node's controller hosts.

Pending members (asked to join, waiting for an admin) come first and stand out; the tab's
label counts them. Rows are keyed "nwid/address". `a` approves, `d` deauthorizes (after
asking), `n` names, `i` sets IPs, `c` creates a network.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from overlay_core.api.schema import ControllerNetworkJson, MemberJson

from .. import fmt
from ..live import member_key
from ..render import ago
from ..widgets.base import LiveView, show
from ..widgets.keyed_table import Cell, KeyedTable

COLUMNS = [
    ("mark", " "),
    ("address", "ADDRESS"),
    ("state", "STATE"),
    ("name", "NAME"),
    ("ips", "IPS"),
    ("seen", "SEEN"),
    ("version", "VER"),
    ("nwid", "NETWORK"),
    ("bridge", "BRIDGE"),
]
ADDRESS_COLUMN, NWID_COLUMN = 1, 7
STATE_ORDER = {"pending": 0, "authorized": 1, "deauthorized": 2}
PENDING_STYLE = "bold yellow"


def _key_of(cells: Sequence[Any]) -> str:
    return member_key(str(cells[NWID_COLUMN]), str(cells[ADDRESS_COLUMN]))


def member_cells(member: MemberJson, now: float) -> tuple[Cell, ...]:
    seen = member["last_seen"]
    cells: list[Cell] = [
        "●" if member["state"] == "pending" else "",
        member["address"],
        fmt.state(member["state"], member["state"].upper()),
        member["name"] or fmt.DASH,
        ", ".join(member["ips"]) or fmt.DASH,
        "never" if seen is None else ago(max(0.0, now - seen)),
        member["version"] or fmt.DASH,
        member["nwid"],
        "yes" if member["active_bridge"] else "no",
    ]
    if member["state"] == "pending":
        # Highlight the whole row, but keep the ids plain strings: they are the row's key.
        cells = [
            c if i in (ADDRESS_COLUMN, NWID_COLUMN) else Text(str(c), style=PENDING_STYLE)
            for i, c in enumerate(cells)
        ]
    return tuple(cells)


def hosted_line(network: ControllerNetworkJson) -> str:
    counts = network["members"]
    pools = ", ".join(network["pools"]) or "no pools"
    kind = "private" if network["private"] else "public"
    return (
        f"{network['name'] or '-'} {network['nwid']} ({kind}): {counts['authorized']} members, "
        f"{counts['pending']} pending · {pools} · MTU {network['mtu']} MSS {network['mss']}"
    )


class MembersView(LiveView):
    TOPICS = frozenset({"members"})
    BINDINGS = [
        Binding("a", "approve", "Approve"),
        Binding("d", "deauthorize", "Deauth"),
        Binding("n", "name", "Name"),
        Binding("i", "ips", "IPs"),
        Binding("c", "create", "New network"),
    ]

    def compose(self) -> ComposeResult:
        yield KeyedTable(COLUMNS, key_of=_key_of, id="members-table")
        yield Static(id="members-detail", classes="detail")

    @property
    def table(self) -> KeyedTable:
        return self.query_one("#members-table", KeyedTable)

    def focus_main(self) -> None:
        self.table.focus()

    def refresh_view(self) -> None:
        store = self.store
        now = self.ztui.wall_clock()
        members = sorted(
            store.members.values(),
            key=lambda m: (STATE_ORDER.get(m["state"], 3), m["nwid"], m["address"]),
        )
        self.table.sync(
            [(member_key(m["nwid"], m["address"]), member_cells(m, now)) for m in members]
        )
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
        lines = [hosted_line(n) for n in sorted(store.hosted.values(), key=lambda n: n["nwid"])]
        pending = len(store.pending_members)
        if pending:
            lines.append(
                f"[b yellow]{pending} waiting for approval[/]: highlight one and press [b]a[/b]"
            )
        elif not store.members:
            lines.append("No members yet: nobody has asked to join.")
        show(detail, "\n".join(lines))

    def _selected(self) -> MemberJson | None:
        key = self.table.selected_key
        member = self.store.members.get(key) if key else None
        if member is None:
            self.notify("No member selected", severity="warning")
        return member

    def action_approve(self) -> None:
        if (member := self._selected()) is not None:
            self.ztui.approve_member(member)

    def action_deauthorize(self) -> None:
        if (member := self._selected()) is not None:
            self.ztui.deauthorize_member(member)

    def action_name(self) -> None:
        if (member := self._selected()) is not None:
            self.ztui.name_member(member)

    def action_ips(self) -> None:
        if (member := self._selected()) is not None:
            self.ztui.assign_ips(member)

    def action_create(self) -> None:
        self.ztui.create_network()
