"""The Paths screen (p on Members): how every pair of a hosted network's members reaches
each other, as the members themselves report it to this node's controller.

     home 8056c2e21c000001  5 members, 4 online, 1 not reporting, 2 flagged · 10
     pairs: 3 DIRECT 3 RELAY 4 TCP
              desktop  laptop  nas  offsite  phone     a small network: a matrix,
     desktop     ·       D      D      T       R       one glyph per pair
     ...
     D direct · R relayed · T over TCP · - no contact · ? not reported
        MEMBER   ADDRESS     REPORTED   NAT          DIRECT  VER    FLAG
     !  phone    5c07de91ab  21s ago    symmetric    0/4     0.1.0  symmetric NAT
     ...                                               flagged members first
     TCP  phone (5c07de91ab) <-> offsite (b2e4f6a810)  the selected pair: each
       phone -> offsite: RELAY 64.0ms (firewalled)     side's word, and why
       offsite -> phone: TCP 73.0ms (TCP only)
       why: offsite reaches the roots only over TCP (UDP is blocked on its ...

A network whose matrix would not fit the width (or has more pairs than the poll brings:
sync.PATHS_LIMIT, so 200 members' 19,900 pairs do not travel every poll) shows its pairs
as a list instead, worst first as the API orders them, and says how many of how many.

The data comes with the app's hosted poll (sync.watch_paths: while this screen is open
that poll reads this network's paths too), so this screen fetches nothing itself; it
redraws when the poll lands ("paths"). `m` moves between the pairs and the members;
Escape goes back, 1-5 to a tab.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from rich.cells import cell_len
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.coordinate import Coordinate
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from overlay_core.api.schema import PairLink, PathMemberJson, PathPairJson, PathsJson

from ..widgets.base import show
from ..widgets.header import NodeHeader
from ..widgets.keyed_table import Column, KeyedTable
from ..widgets.offline import OfflineBanner
from ..widgets.requests_bar import RequestsBar
from .paths_cells import (
    GLYPHS,
    SELF,
    glyph,
    labels,
    legend,
    member_cells,
    member_detail,
    member_order,
    pair_cells,
    pair_detail,
    pair_key,
    printable,
    title,
)

if TYPE_CHECKING:
    from ..app import ZtuiApp

MATRIX_MAX_MEMBERS = 20  # 190 pairs: within what the poll brings (sync.PATHS_LIMIT)
# The members are the pairs' identities: never cut (labels are at most 12 cells).
PAIR_COLUMNS = [
    Column("link", "LINK"),
    Column("a", "A"),
    Column("b", "B"),
    Column("why", "WHY", priority=1),
    Column("a_sees", "A SEES B", priority=2),
    Column("b_sees", "B SEES A", priority=3),
]
MEMBER_COLUMNS = [
    Column("flag", " "),
    Column("member", "MEMBER"),
    Column("address", "ADDRESS", priority=3),
    Column("reported", "REPORTED", priority=1),
    Column("nat", "NAT", priority=2),
    Column("direct", "DIRECT", priority=4),
    Column("version", "VER", priority=5),
    Column("why", "FLAG", priority=1),
]
NO_REPORTS = (
    "No path reports yet: members report within 30 s of joining; members on older "
    "versions or with `ztui set {nwid} report=no` do not."
)


def matrix_width(names: list[str]) -> int:
    """Cells the matrix needs: a row-label column and one column per member, each its
    label wide plus DataTable's padding, and a scrollbar's room."""
    widest = max((cell_len(n) for n in names), default=0)
    return widest + 2 + sum(cell_len(n) + 2 for n in names) + 1


def open_paths(app: ZtuiApp, nwid: str | None) -> None:
    """Show `nwid`'s paths (None: the first network hosted here, if any)."""
    if isinstance(app.screen, PathsScreen):
        app.pop_screen()
    app.push_screen(PathsScreen(nwid))


class PairMatrix(DataTable[Text]):
    """Members down and across, each cell their pair's link as one glyph. Rebuilt only
    when the members (or their labels) change; a poll updates just the cells that did."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(cursor_type="cell", id=id, zebra_stripes=False, show_row_labels=True)
        self.order: list[str] = []
        self._names: list[str] = []
        self._links: dict[tuple[str, str], str] = {}

    def show_links(self, order: list[str], label: dict[str, str], links: dict[str, str]) -> None:
        """`links` maps "a/b" (addresses, a < b) to the pair's link."""

        def link(row: str, column: str) -> str:
            a, b = sorted((row, column))
            return links.get(f"{a}/{b}", PairLink.UNKNOWN)

        names = [label[a] for a in order]
        if order != self.order or names != self._names:
            keep = self.selected
            self.clear(columns=True)
            for address in order:
                self.add_column(Text(label[address], justify="center"), key=address)
            for row in order:
                cells = [Text(SELF, justify="center") if row == c else glyph(link(row, c))
                         for c in order]  # fmt: skip
                self.add_row(*cells, key=row, label=Text(label[row]))
            self.order, self._names = list(order), names
            self._links = {(r, c): link(r, c) for r in order for c in order if r != c}
            if keep is not None and keep[0] in order and keep[1] in order:
                self.move_cursor(
                    row=order.index(keep[0]), column=order.index(keep[1]), animate=False
                )
            return
        for (row, column), before in self._links.items():
            now = link(row, column)
            if now != before:
                self.update_cell(row, column, glyph(now))
                self._links[(row, column)] = now

    @property
    def selected(self) -> tuple[str, str] | None:
        """(row member, column member) under the cursor."""
        row, column = self.cursor_coordinate
        if not self.order or row >= len(self.order) or column >= len(self.order):
            return None
        return self.order[row], self.order[column]

    def select(self, a: str, b: str) -> None:
        if a in self.order and b in self.order:
            self.cursor_coordinate = Coordinate(self.order.index(a), self.order.index(b))


class PathsScreen(Screen[None]):
    """One hosted network's paths, live; see the module docstring."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("m", "switch_table", "Members/pairs"),
    ]

    def __init__(self, nwid: str | None) -> None:
        super().__init__()
        self.nwid = nwid
        self.mode = "none"  # "matrix", "list", or "none" while a state is shown instead
        self._label: dict[str, str] = {}
        self._members: dict[str, PathMemberJson] = {}
        self._pairs: dict[str, PathPairJson] = {}  # by "a/b", addresses
        self._by_key: dict[str, PathPairJson] = {}  # by the pairs list's row key: labels

    @property
    def ztui(self) -> ZtuiApp:
        return cast("ZtuiApp", self.app)

    def compose(self) -> ComposeResult:
        yield NodeHeader()
        yield OfflineBanner(id="offline")
        with Vertical(id="paths-body"):
            yield Static(id="paths-title")
            yield Static(id="paths-state")
            yield PairMatrix(id="paths-matrix")
            yield KeyedTable(PAIR_COLUMNS, key_columns=("a", "b"), id="paths-pairs")
            yield Static(id="paths-legend", classes="label")
            yield KeyedTable(MEMBER_COLUMNS, key_columns=("member",), id="paths-members")
            yield Static(id="paths-detail", classes="detail")
        yield RequestsBar()
        yield Footer()

    @property
    def matrix(self) -> PairMatrix:
        return self.query_one(PairMatrix)

    @property
    def pairs_table(self) -> KeyedTable:
        return self.query_one("#paths-pairs", KeyedTable)

    @property
    def members_table(self) -> KeyedTable:
        return self.query_one("#paths-members", KeyedTable)

    def on_mount(self) -> None:
        app = self.ztui
        if self.nwid is None and app.store.hosted:
            self.nwid = min(app.store.hosted)
        app.watch_paths(self.nwid)
        app.changed.subscribe(self, self._changed)
        self._redraw()

    def on_unmount(self) -> None:
        app = self.ztui
        others = [s for s in app.screen_stack if isinstance(s, PathsScreen) and s is not self]
        if not others:
            app.watch_paths(None)

    def on_screen_resume(self) -> None:
        self._redraw()

    def on_resize(self) -> None:
        # Wider or narrower: the matrix may fit now, or no longer.
        self.call_after_refresh(self._redraw)

    def _changed(self, topic: str) -> None:
        if topic in ("paths", "connection") and self.is_current:
            self._redraw()

    # -- drawing

    def _redraw(self) -> None:
        app = self.ztui
        self.set_class(app.offline_reason is not None, "-offline")
        if app.offline_reason is not None:
            return  # the banner says why and counts down to the next try
        if self.nwid is None and app.store.hosted:
            self.nwid = min(app.store.hosted)
            app.watch_paths(self.nwid)
        state, view = self._state()
        # Text, not markup: a name or an error ("[Errno 2] ...") is shown as it is.
        show(self.query_one("#paths-state", Static), Text(state or ""))
        self.query_one("#paths-state").display = state is not None
        if view is None:
            show(self.query_one("#paths-title", Static), Text(self._plain_title()))
            self._set_mode("none", members=False)
            show(self.query_one("#paths-detail", Static), "")
            return
        show(self.query_one("#paths-title", Static), title(view))
        self._label = labels(view["members"])
        self._members = {m["address"]: m for m in view["members"]}
        self._pairs = {f"{p['a']}/{p['b']}": p for p in view["pairs"]}
        self._by_key = {pair_key(p, self._label): p for p in view["pairs"]}
        reporting = any(m["report_age_s"] is not None for m in view["members"])
        order = sorted(self._members, key=lambda a: self._label[a].lower())
        if not reporting:
            mode = "none"
        elif self._fits(view, order):
            mode = "matrix"
            links = {key: pair["link"] for key, pair in self._pairs.items()}
            first = not self.matrix.order
            self.matrix.show_links(order, self._label, links)
            if first and view["pairs"]:  # start on the worst pair: what the user came for
                self.matrix.select(view["pairs"][0]["a"], view["pairs"][0]["b"])
        else:
            mode = "list"
            self.pairs_table.sync(
                [(key, pair_cells(p, self._label)) for key, p in self._by_key.items()]
            )
        self._set_mode(mode, members=True)
        self.members_table.sync(
            [(self._label[m["address"]], member_cells(m, self._label))
             for m in member_order(view["members"], self._label)]
        )  # fmt: skip
        self._show_legend(view, mode)
        self._show_detail()

    def _state(self) -> tuple[str | None, PathsJson | None]:
        """(what to say instead of the view, or None; the view when there is one)."""
        store = self.ztui.store
        nwid = self.nwid
        if not store.members_loaded:
            return "asking this node's controller…", None
        if nwid is None:
            return (
                "This node's controller hosts no networks, so no member reports paths to "
                "it: the paths of a network are seen on its controller. Run ztui there, or "
                "press Escape, then c on Members to create a network here.",
                None,
            )
        if nwid not in store.hosted:
            return (
                f"This node's controller does not host network {nwid} (any more): its "
                f"controller is {nwid[:10]} (the id's first 10 digits). Run ztui there to "
                "see its paths; Escape goes back.",
                None,
            )
        if store.paths_error is not None:
            return f"The controller did not give the paths of {nwid}: {store.paths_error}", None
        view = store.paths
        if view is None or view["nwid"] != nwid:
            return f"asking the controller for the path reports of {nwid}…", None
        if not view["members"]:
            return (
                f"{printable(view['name']) or nwid} has no authorized members yet: approve "
                "some on Members (Escape goes back).",
                None,
            )
        if all(m["report_age_s"] is None for m in view["members"]):
            return NO_REPORTS.format(nwid=nwid), view
        return None, view

    def _plain_title(self) -> str:
        network = self.ztui.store.hosted.get(self.nwid or "")
        if network is None:
            return f"Paths of {self.nwid}" if self.nwid else "Paths"
        return f"Paths of {printable(network['name']) or '-'} {network['nwid']}"

    def _fits(self, view: PathsJson, order: list[str]) -> bool:
        if len(view["pairs"]) < view["pairs_total"] or len(order) > MATRIX_MAX_MEMBERS:
            return False
        room = self.query_one("#paths-body").size.width or self.app.size.width
        return matrix_width([self._label[a] for a in order]) <= room

    def _set_mode(self, mode: str, *, members: bool) -> None:
        self.mode = mode
        self.set_class(mode == "list", "-list")
        self.matrix.display = mode == "matrix"
        self.pairs_table.display = mode == "list"
        self.query_one("#paths-legend").display = mode != "none"
        self.members_table.display = members
        focused = self.focused
        if focused is None or not focused.display:
            self.call_after_refresh(self.focus_main)

    def focus_main(self) -> None:
        if self.mode == "matrix":
            self.matrix.focus()
        elif self.mode == "list":
            self.pairs_table.focus()
        elif self.members_table.display:
            self.members_table.focus()

    def _show_legend(self, view: PathsJson, mode: str) -> None:
        """The matrix's glyphs; for the list, how much of it there is."""
        if mode == "matrix":
            text = legend()
        else:
            text = Text(f"{len(view['pairs'])} of {view['pairs_total']} pairs", style="bold")
            text.append(", worst first · m: the members, flagged first")
        show(self.query_one("#paths-legend", Static), text)

    def _show_detail(self) -> None:
        detail = self.query_one("#paths-detail", Static)
        focused = self.focused
        member = self._selected_member() if focused is self.members_table else None
        pair: PathPairJson | None = None
        if member is None and self.mode == "matrix":
            chosen = self.matrix.selected
            if chosen is not None and chosen[0] == chosen[1]:
                member = self._members.get(chosen[0])
            elif chosen is not None:
                a, b = sorted(chosen)
                pair = self._pairs.get(f"{a}/{b}")
        elif member is None and self.mode == "list":
            key = self.pairs_table.selected_key
            pair = self._by_key.get(key) if key is not None else None
        elif member is None:
            member = self._selected_member()
        view = self.ztui.store.paths
        if pair is not None:
            show(detail, pair_detail(pair, self._members))
        elif member is not None and view is not None:
            show(detail, member_detail(member, view))
        else:
            show(detail, "")

    def _selected_member(self) -> PathMemberJson | None:
        key = self.members_table.selected_key
        if key is None:
            return None
        return next((m for a, m in self._members.items() if self._label.get(a) == key), None)

    # -- following the cursor

    @on(DataTable.CellHighlighted)
    @on(DataTable.RowHighlighted)
    def _highlighted(self) -> None:
        self._show_detail()

    def on_descendant_focus(self) -> None:
        self._show_detail()

    def action_switch_table(self) -> None:
        if self.focused is self.members_table:
            self.focus_main()
        elif self.members_table.display:
            self.members_table.focus()


__all__ = ["GLYPHS", "PairMatrix", "PathsScreen", "open_paths"]
