"""Tab 5, Events: the daemon's live event stream (GET /events), newest at the bottom.

Rows are keyed by arrival number and appended as events land (the log may hold thousands,
so only a filter change rebuilds it). While the cursor sits on the last row the view
follows new events, like `tail -f`; move up and it stays put. `/` filters on any text.
"""

from __future__ import annotations

import time

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from overlay_core.api.schema import EventJson

from ..widgets.base import LiveView, show
from ..widgets.filter_bar import FilterBar
from ..widgets.keyed_table import Cell, KeyedTable

# The message says most, so it comes before ABOUT: at 80 columns the last one is cut.
COLUMNS = [("time", "TIME"), ("kind", "KIND"), ("message", "MESSAGE"), ("subject", "ABOUT")]
KIND_STYLES = {
    "member_request": "bold yellow",
    "link": "cyan",
    "handshake": "red",
    "overflow": "red",
    "whois": "red",
}


def subject(event: EventJson) -> str:
    if event.get("nwid") and event.get("address"):
        return f"{event['nwid']}/{event['address']}"
    return event.get("peer") or event.get("nwid") or ""


def event_cells(event: EventJson) -> tuple[Cell, ...]:
    stamp = time.strftime("%H:%M:%S", time.localtime(event["time"]))
    kind = Text(event["kind"], style=KIND_STYLES.get(event["kind"], ""))
    return (stamp, kind, event["message"], subject(event))


def event_matches(event: EventJson, text: str) -> bool:
    haystack = f"{event['kind']} {subject(event)} {event['message']}".lower()
    return all(word in haystack for word in text.split())


class EventsView(LiveView):
    TOPICS = frozenset({"events"})
    BINDINGS = [
        Binding("slash", "filter", "Filter"),
        Binding("G", "follow", "Follow", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.filter_text = ""
        self._last_seq = 0

    def compose(self) -> ComposeResult:
        yield KeyedTable(COLUMNS, id="events-table")
        yield FilterBar("filter events: kind, peer, network, words", id="events-filter")
        yield Static(id="events-summary", classes="summary")

    @property
    def table(self) -> KeyedTable:
        return self.query_one("#events-table", KeyedTable)

    def focus_main(self) -> None:
        self.table.focus()

    def refresh_view(self) -> None:
        table = self.table
        following = table.row_count == 0 or table.cursor_row >= table.row_count - 1
        events = self.store.events
        oldest = events[0][0] if events else self._last_seq + 1
        for key in [k for k in table.keys if int(k) < oldest]:
            table.discard(key)  # fell out of the store's ring
        for seq, event in events:
            if seq <= self._last_seq:
                continue
            self._last_seq = seq
            if event_matches(event, self.filter_text):
                table.append(str(seq), event_cells(event))
        if following and table.row_count:
            table.move_cursor(row=table.row_count - 1, animate=False)
        self._summarise()

    def _rebuild(self) -> None:
        """A new filter: rebuild the rows (a keystroke of the user's, never a poll, so
        clearing is fine here) and follow the newest."""
        table = self.table
        table.clear_rows()
        for seq, event in self.store.events:
            if event_matches(event, self.filter_text):
                table.append(str(seq), event_cells(event))
        if table.row_count:
            table.move_cursor(row=table.row_count - 1, animate=False)
        self._summarise()

    def _summarise(self) -> None:
        shown, total = self.table.row_count, len(self.store.events)
        text = f"{total} events"
        if self.filter_text:
            text += f" · filter '{self.filter_text}': {shown} shown"
        if not total:
            text = "no events yet: links changing, members asking to join and the like land here"
        show(self.query_one("#events-summary", Static), text)

    def action_filter(self) -> None:
        self.query_one(FilterBar).open()

    def action_follow(self) -> None:
        if self.table.row_count:
            self.table.move_cursor(row=self.table.row_count - 1)

    @on(FilterBar.FilterChanged)
    def _filter(self, event: FilterBar.FilterChanged) -> None:
        self.filter_text = event.text
        self._rebuild()

    @on(FilterBar.Closed)
    def _filter_closed(self) -> None:
        self.table.focus()
