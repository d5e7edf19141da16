"""GET /events on the wire: an event's JSON and its server-sent-events framing, shared by
the daemon's event bus (api/events.py) and the console's fake node.

Each event is `id: N`, `event: KIND`, `data: <EventJson>` and a blank line; a comment line
`: keepalive` comes in silences. The overflow marker carries no `id:` line, so a client's
Last-Event-ID stays at the last real event.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterable
from typing import TypedDict, Unpack

from .json_types import EventJson

KEEPALIVE_LINE = b": keepalive\n\n"
EVENTS_KEPT = 1000  # a console that reconnects with since= misses nothing still kept


class EventAbout(TypedDict, total=False):
    """What an event is about, where its kind names it (EVENT_KINDS): the keyword
    arguments of everything that publishes one."""

    peer: str | None
    nwid: str | None
    address: str | None


def event_json(
    event_id: int, time: float, kind: str, message: str, **about: Unpack[EventAbout]
) -> EventJson:
    return {
        "id": event_id,
        "time": time,
        "kind": kind,
        "message": message,
        "peer": about.get("peer"),
        "nwid": about.get("nwid"),
        "address": about.get("address"),
    }


def encode_sse(event: EventJson) -> bytes:
    """One server-sent event, as the stream carries it."""
    lines = [] if event["kind"] == "overflow" else [f"id: {event['id']}"]
    lines += [f"event: {event['kind']}", f"data: {json.dumps(event)}", "", ""]
    return "\n".join(lines).encode()


class EventLog:
    """The recent events of one daemon run: each numbered (1, 2, ... per run) and dated
    with the daemon's clock as it is added, the last `kept` of them replayable after an
    id. The daemon's EventBus (api/events.py) adds live subscribers on top; the console's
    fake node serves its stories' events from one too."""

    def __init__(
        self,
        clock: Callable[[], float],
        kept: int = EVENTS_KEPT,
        history: Iterable[EventJson] = (),
    ) -> None:
        self._clock = clock
        self.events: deque[EventJson] = deque(history, maxlen=kept)
        self.last_id = max((e["id"] for e in self.events), default=0)

    def add(self, kind: str, message: str, **about: Unpack[EventAbout]) -> EventJson:
        self.last_id += 1
        event = event_json(self.last_id, self._clock(), kind, message, **about)
        self.events.append(event)
        return event

    def after(self, since: int | None = None) -> list[EventJson]:
        """The events kept after id `since`: all of them for None, and for a `since` from
        an earlier daemon run (beyond the last id: ids started again at 1)."""
        if since is None or since > self.last_id:
            return list(self.events)
        return [e for e in self.events if e["id"] > since]
