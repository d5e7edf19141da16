"""Tab 5, Events: the daemon's live event stream (GET /events), newest at the bottom.

Rows are appended as events land (the log may hold thousands, so only a filter change
rebuilds it). While the cursor sits on the last row the view follows new events, like
`tail -f`; move up and it stays put. `/` filters on any text.

An event that repeats the last one of its kind about the same thing word for word (a
member asking again every 30 s) does not add a row: that row moves to the bottom with
the new time and a count ("×3"). The message column takes the width that is left and
ends in "…" when cut; the highlighted event is shown in full under the table.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.markup import escape
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from overlay_core.api.schema import EventJson

from ..widgets.base import show
from ..widgets.filter_bar import FilterBar
from ..widgets.keyed_table import Cell, Column, KeyedTable
from ..widgets.table_view import FilteredTableView

COLUMNS = [
    Column("time", "TIME"),
    Column("kind", "KIND"),
    Column("message", "MESSAGE", flex=True),
    Column("subject", "ABOUT", priority=5),
]
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


def clock(event: EventJson) -> str:
    return time.strftime("%H:%M:%S", time.localtime(event["time"]))


@dataclass(slots=True)
class Repeats:
    """One row: an event and how many times it came, identical, in a row of its kind."""

    first: EventJson
    last: EventJson
    count: int = 1


def event_cells(repeats: Repeats) -> tuple[Cell, ...]:
    event = repeats.last
    kind = Text(event["kind"], style=KIND_STYLES.get(event["kind"], ""))
    message = event["message"]
    if repeats.count > 1:
        message = f"×{repeats.count} {message}"
    return (clock(event), kind, message, subject(event))


def event_detail(repeats: Repeats) -> str:
    """The highlighted event in full (markup: the message itself is escaped)."""
    event = repeats.last
    about = subject(event)
    line = f"[b]{clock(event)} {event['kind']}[/b]" + (f" · {about}" if about else "")
    if repeats.count > 1:
        line += f" · {repeats.count} times since {clock(repeats.first)}"
    return f"{line}\n{escape(event['message'])}"


def event_matches(event: EventJson, text: str) -> bool:
    haystack = f"{event['kind']} {subject(event)} {event['message']}".lower()
    return all(word in haystack for word in text.split())


class EventsView(FilteredTableView):
    TOPICS = frozenset({"events"})
    TABLE_ID = "events-table"
    BINDINGS = [
        Binding("slash", "filter", "Filter"),
        Binding("G", "follow", "Follow", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._last_seq = 0
        self._rows: dict[str, Repeats] = {}  # row key (the latest event's arrival number)
        self._latest: dict[tuple[str, str], str] = {}  # (kind, subject) -> its last row

    def compose(self) -> ComposeResult:
        yield KeyedTable(COLUMNS, id="events-table")
        yield FilterBar("filter events: kind, peer, network, words", id="events-filter")
        yield Static(id="events-detail", classes="detail")
        yield Static(id="events-summary", classes="summary")

    def _add(self, seq: int, event: EventJson) -> None:
        """A row for the event, or the row it repeats moved to the bottom with its count."""
        table = self.table
        topic = (event["kind"], subject(event))
        previous = self._latest.get(topic)
        repeats = self._rows.get(previous) if previous is not None else None
        cursor_on_it = False
        if (
            previous is not None
            and repeats is not None
            and repeats.last["message"] == event["message"]
        ):
            cursor_on_it = table.selected_key == previous
            table.discard(previous)
            del self._rows[previous]
            repeats.last, repeats.count = event, repeats.count + 1
        else:
            repeats = Repeats(event, event)
        key = str(seq)
        self._rows[key] = repeats
        self._latest[topic] = key
        table.append(key, event_cells(repeats))
        if cursor_on_it:
            table.select_key(key)  # the cursor goes with the row it was on

    def _drop(self, key: str) -> None:
        self.table.discard(key)
        repeats = self._rows.pop(key)
        topic = (repeats.last["kind"], subject(repeats.last))
        if self._latest.get(topic) == key:
            del self._latest[topic]

    def refresh_view(self) -> None:
        table = self.table
        following = table.row_count == 0 or table.cursor_row >= table.row_count - 1
        events = self.store.events
        oldest = events[0][0] if events else self._last_seq + 1
        for key in [k for k in self._rows if int(k) < oldest]:
            self._drop(key)  # fell out of the store's ring
        for seq, event in events:
            if seq <= self._last_seq:
                continue
            self._last_seq = seq
            if event_matches(event, self.filter_text):
                self._add(seq, event)
        if following and table.row_count:
            table.move_cursor(row=table.row_count - 1, animate=False)
        self._summarise()

    def filter_changed(self) -> None:
        """A new filter: rebuild the rows (a keystroke of the user's, never a poll, so
        clearing is fine here) and follow the newest."""
        table = self.table
        table.clear_rows()
        self._rows.clear()
        self._latest.clear()
        for seq, event in self.store.events:
            if event_matches(event, self.filter_text):
                self._add(seq, event)
        if table.row_count:
            table.move_cursor(row=table.row_count - 1, animate=False)
        self._summarise()

    def _summarise(self) -> None:
        shown, total = self.table.row_count, len(self.store.events)
        text = f"{total} events"
        if self.filter_text:
            text += f" · filter '{self.filter_text}': {shown} rows"
        if not total:
            text = "no events yet: links changing, members asking to join and the like land here"
        show(self.query_one("#events-summary", Static), text)
        self.show_detail()

    def show_detail(self) -> None:
        detail = self.query_one("#events-detail", Static)
        key = self.table.selected_key
        repeats = self._rows.get(key) if key is not None else None
        detail.display = repeats is not None
        if repeats is not None:
            show(detail, event_detail(repeats))

    def action_follow(self) -> None:
        if self.table.row_count:
            self.table.move_cursor(row=self.table.row_count - 1)
