"""The daemon's event feed: a ring buffer of recent events and a bounded queue per listener.

How it works:

1. Whoever notices something (the node's Event effects, the controller glue, the API
   handlers) calls `bus.publish(kind, message, ...)`. The event gets the next id (1, 2, ...
   for this daemon run) and the daemon's clock, goes into the ring of the last EVENTS_KEPT,
   and into the queue of every subscriber.
2. `bus.subscribe(since)` registers a subscriber and hands it, first, the buffered events
   after `since` (a console that reconnects misses nothing still buffered), then live ones.
   A `since` beyond the last id comes from an earlier daemon run: everything buffered is
   replayed, since ids started again at 1.
3. A subscriber whose queue holds `subscriber_bound` undelivered events is dropped at once
   (memory stays bounded whatever the reader does); its next read returns one final
   `overflow` event and then it is closed.
4. `bus.close()` ends every subscription, so the streams reading them finish promptly when
   the daemon stops.

Everything runs on the event loop thread; publish() never blocks and never awaits.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Unpack

from overlay_core.proto.effects import Event

from .schema import (
    EVENTS_KEPT,
    KEEPALIVE_LINE,
    EventAbout,
    EventJson,
    EventLog,
    encode_sse,
    event_json,
    format_address,
)

__all__ = ["KEEPALIVE_LINE", "EventBus", "StreamClosed", "Subscription", "encode_sse"]

SUBSCRIBER_BOUND = 256  # undelivered events a stream may hold before it is dropped
KEEPALIVE_S = 15.0  # a comment line this often keeps proxies and NATs from idling us out
# The node's network events name the network in their message ("joining <nwid>",
# "<nwid>: A -> B"); proto's Event has no nwid field yet, so it is read from there.


class StreamClosed(Exception):
    """The subscription ended: the bus closed, or the overflow event was delivered."""


class Subscription:
    """One listener: replayed events first, then live ones from a bounded queue."""

    def __init__(self, bus: EventBus, replay: list[EventJson], bound: int, last_id: int) -> None:
        self._bus = bus
        self._replay = deque(replay)
        # One slot more than the bound, so the final marker always fits.
        self._queue: asyncio.Queue[EventJson | None] = asyncio.Queue(bound + 1)
        self._bound = bound
        self._closed = False  # no more events will be queued
        self._finished = False  # the marker was read: next() raises StreamClosed
        self.overflowed = False
        self.last_id = last_id  # the id of the last event next() returned

    def _offer(self, event: EventJson) -> bool:
        """Queue a live event; False (and overflowed) when the reader is too far behind."""
        if self._closed:
            return False
        if self._queue.qsize() >= self._bound:
            self.overflowed = True
            self._end()
            return False
        self._queue.put_nowait(event)
        return True

    def _end(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(None)

    def close(self) -> None:
        """Stop receiving; idempotent. The reader's next() ends the stream."""
        self._bus._unsubscribe(self)
        self._end()

    async def next(self, timeout_s: float | None = None) -> EventJson | None:
        """The next event; None if none came within `timeout_s` (time for a keepalive).

        Raises StreamClosed once the subscription has ended; an overflowed one first
        returns a final event of kind "overflow"."""
        if self._replay:
            event = self._replay.popleft()
            self.last_id = event["id"]
            return event
        if self._finished:
            raise StreamClosed
        if not self._queue.empty():
            item = self._queue.get_nowait()
        else:
            try:
                item = await asyncio.wait_for(self._queue.get(), timeout_s)
            except TimeoutError:
                return None
        if item is not None:
            self.last_id = item["id"]
            return item
        self._finished = True
        if self.overflowed:
            return self._bus.overflow_event(self.last_id)
        raise StreamClosed


class EventBus:
    """Publish events to a ring buffer and to every subscriber; see the module docstring."""

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        *,
        kept: int = EVENTS_KEPT,
        subscriber_bound: int = SUBSCRIBER_BOUND,
        keepalive_s: float = KEEPALIVE_S,
    ) -> None:
        self._clock = clock
        self.log = EventLog(clock, kept)  # numbers, dates and keeps them (schema/stream.py)
        self._subscribers: set[Subscription] = set()
        self.subscriber_bound = subscriber_bound
        self.keepalive_s = keepalive_s  # how often the streams of this bus send keepalives
        self.dropped_subscribers = 0

    @property
    def last_id(self) -> int:
        return self.log.last_id

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def publish(self, kind: str, message: str, **about: Unpack[EventAbout]) -> EventJson:
        event = self.log.add(kind, message, **about)
        for subscription in list(self._subscribers):
            if not subscription._offer(event):
                self._subscribers.discard(subscription)
                self.dropped_subscribers += 1
        return event

    def publish_effect(self, effect: Event) -> EventJson:
        """Publish one of the node's Event effects."""
        peer = None if effect.peer is None else format_address(effect.peer)
        nwid = None if effect.nwid is None else f"{effect.nwid:016x}"
        return self.publish(effect.kind, effect.message, peer=peer, nwid=nwid)

    def recent(self, since: int | None = None) -> list[EventJson]:
        """Buffered events after `since` (EventLog.after says which)."""
        return self.log.after(since)

    def subscribe(self, since: int | None = None) -> Subscription:
        """Live events from now on, after the buffered ones past `since` (when given)."""
        replay = self.recent(since) if since is not None else []
        start = self.last_id if since is None or since > self.last_id else since
        subscription = Subscription(self, replay, self.subscriber_bound, start)
        self._subscribers.add(subscription)
        return subscription

    def close(self) -> None:
        """End every subscription (the daemon is stopping)."""
        for subscription in list(self._subscribers):
            subscription.close()

    def overflow_event(self, last_id: int) -> EventJson:
        message = (
            f"this stream fell {self.subscriber_bound} events behind and was closed; "
            f"reconnect with since={last_id}"
        )
        return event_json(last_id, self._clock(), "overflow", message)

    def _unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)
