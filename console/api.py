"""The async client for the overlayd control API, used by the Textual console.

Its calls are console/calls.py's, the same as the `ztui` subcommands' `ApiClient`
(console/client.py), awaited; only the transport differs (httpx.AsyncClient,
console/transport.py), and failures are the same one-line `ApiError`s
(console/connection.py). Plus `events()`, the daemon's server-sent event stream:

    async with AsyncApiClient(home="/var/lib/ztui") as client:
        status = await client.status()
        last = None
        while True:
            try:
                async for event in client.events(since=last):
                    last = event["id"]
                    ...
            except ApiError as exc:       # connection failed or the stream ended
                ...show str(exc), wait, and go round again: since=last replays what was missed

`transport=` replaces the socket or TCP transport, e.g. `FakeNode().transport()` from
console/testing/fake.py for tests, screenshots and benchmarks.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import cast

import httpx

from overlay_core.api.schema import EventJson

from .calls import ApiCalls
from .connection import ApiError
from .transport import AsyncTransport

__all__ = ["AsyncApiClient", "parse_sse"]

EVENT_FIELDS = ("id", "time", "kind", "message", "peer", "nwid", "address")


class AsyncApiClient(ApiCalls, AsyncTransport):
    """Talks to one overlayd. `async with`, or `await aclose()` when done.

    AsyncApiClient(home=None, api=None, token=None, timeout_s=DEFAULT_TIMEOUT_S,
    transport=None) raises ApiError for an `api` that is neither unix:PATH nor
    http(s)://. With a `transport`, the UNIX socket is not looked for on disk."""

    async def events(self, since: int | None = None) -> AsyncIterator[EventJson]:
        """GET /events: yields each event as it comes, for as long as the stream lasts.

        With `since`, the daemon first replays the events it still holds after that id.
        Never returns normally: raises ApiError when the connection fails or the stream
        ends (the daemon stopped, or this reader fell behind: the last event is then of
        kind "overflow"); reconnect with since= the last id seen. There is no read
        timeout: the daemon sends a keepalive comment every 15 s of silence.
        """
        params = {} if since is None else {"since": str(since)}
        timeout = httpx.Timeout(self.timeout_s, read=None)
        with self.reaching():
            async with self._http.stream("GET", "/events", params=params, timeout=timeout) as r:
                if r.status_code >= 400:
                    await r.aread()
                    raise self._conn.http_error(r)
                async for event in parse_sse(r.aiter_lines(), self.where):
                    yield event
        raise ApiError(
            f"overlayd at {self.where} closed the event stream (it stopped, or this "
            "console fell behind); reconnect with since= the last event id",
            error="stream_ended",
        )


async def parse_sse(lines: AsyncIterator[str], where: str = "overlayd") -> AsyncIterator[EventJson]:
    """Server-sent events from text lines: `data:` lines (joined by newlines) make the
    event's JSON, a blank line ends it, comment lines (": keepalive") are skipped. ApiError
    if the data is not an event."""
    data: list[str] = []
    async for line in lines:
        if line == "":
            if data:
                yield _event_json("\n".join(data), where)
                data = []
            continue
        name, _, value = line.partition(":")
        if name == "data":
            data.append(value.removeprefix(" "))
        # id and event are repeated inside the JSON; comments and retry: need nothing


def _event_json(text: str, where: str) -> EventJson:
    try:
        event = json.loads(text)
    except ValueError:
        event = None
    if not isinstance(event, dict) or any(key not in event for key in EVENT_FIELDS):
        message = f"overlayd at {where} sent an event that is not EventJson"
        raise ApiError(message, error="bad_reply")
    return cast(EventJson, event)
