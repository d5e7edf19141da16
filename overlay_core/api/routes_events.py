"""GET /events: the daemon's events as server-sent events (text/event-stream).

    GET /events            live events from now on
    GET /events?since=N    first the buffered events after id N, then live ones; the
                           standard Last-Event-ID header does the same (since= wins)

Each event is `id: N`, `event: KIND`, `data: <EventJson>` and a blank line; a comment line
`: keepalive` comes every `bus.keepalive_s` (15 s) of silence. The stream ends when the
daemon stops (the API's shutdown closes every open stream first, so stopping never waits
for a console to hang up) or, for a reader too slow to keep up, after a final `overflow`
event; either way the console reconnects with since= the last id it saw.
"""

from __future__ import annotations

from aiohttp import web

from . import schema
from .events import StreamClosed, Subscription
from .http import handles, service


class OpenStreams:
    """The subscriptions of the streams being served, to end them at shutdown."""

    def __init__(self) -> None:
        self.subscriptions: set[Subscription] = set()


STREAMS_KEY = web.AppKey("event_streams", OpenStreams)


def setup(app: web.Application) -> None:
    app[STREAMS_KEY] = OpenStreams()
    app.on_shutdown.append(_end_streams)


async def _end_streams(app: web.Application) -> None:
    for subscription in list(app[STREAMS_KEY].subscriptions):
        subscription.close()


@handles("events")
async def get_events(request: web.Request) -> web.StreamResponse:
    bus = service(request).events
    since = schema.event_since(request.query.get("since", request.headers.get("Last-Event-ID")))
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # a reverse proxy must not hold events back
        }
    )
    subscription = bus.subscribe(since)
    streams = request.app[STREAMS_KEY].subscriptions
    streams.add(subscription)
    try:
        await response.prepare(request)
        # Sends the headers now, so a client knows it is subscribed before any event.
        await response.write(f": overlayd events after id {subscription.last_id}\n\n".encode())
        while True:
            try:
                event = await subscription.next(bus.keepalive_s)
            except StreamClosed:
                break
            await response.write(
                schema.KEEPALIVE_LINE if event is None else schema.encode_sse(event)
            )
    except ConnectionError:
        pass  # the console went away; nothing to tell anyone
    finally:
        streams.discard(subscription)
        subscription.close()
    return response
