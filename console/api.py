"""The async client for the overlayd control API, used by the Textual console.

The twin of console/client.py's `ApiClient`: the same methods with the same names and
return types, awaited; the same connection rules and one-line `ApiError`s
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
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import httpx

from overlay_core.api.schema import (
    ControllerNetworkJson,
    DeletedJson,
    EchoJson,
    EventJson,
    LeftJson,
    MemberJson,
    NetcheckJson,
    NetworkJson,
    PathsJson,
    PeerJson,
    PoolsJson,
    StatusJson,
)

from .connection import DEFAULT_TIMEOUT_S, ApiError, Connection

__all__ = ["AsyncApiClient", "parse_sse"]

EVENT_FIELDS = ("id", "time", "kind", "message", "peer", "nwid", "address")


class AsyncApiClient:
    """Talks to one overlayd. `async with`, or `await aclose()` when done."""

    def __init__(
        self,
        *,
        home: str | Path | None = None,
        api: str | None = None,
        token: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        """Raises ApiError for an `api` that is neither unix:PATH nor http(s)://. With a
        `transport`, the UNIX socket is not looked for on disk."""
        self._conn = Connection.resolve(home=home, api=api, token=token)
        self._check = transport is None
        if transport is None:
            sock = self._conn.socket_path
            transport = (
                httpx.AsyncHTTPTransport(uds=str(sock)) if sock else httpx.AsyncHTTPTransport()
            )
        self.timeout_s = timeout_s
        self._http = httpx.AsyncClient(
            transport=transport,
            base_url=self._conn.base_url,
            headers=self._conn.headers,
            timeout=timeout_s,
        )

    @property
    def endpoint(self) -> str:
        """Where this client talks to, for people: "unix:/var/lib/ztui/control.sock" or
        the URL."""
        return self._conn.endpoint

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncApiClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- the node

    async def status(self) -> StatusJson:
        return cast(StatusJson, await self._request("GET", "/status"))

    async def peers(self) -> list[PeerJson]:
        return cast(list[PeerJson], await self._request("GET", "/peers"))

    async def peer(self, address: str) -> PeerJson:
        return cast(PeerJson, await self._request("GET", f"/peers/{address}"))

    async def echo(self, address: str, timeout_s: float = 2.0) -> EchoJson:
        body = {"timeout_s": timeout_s}
        # The daemon waits up to timeout_s for the reply; give HTTP a little longer than that.
        path = f"/peers/{address}/echo"
        return cast(EchoJson, await self._request("POST", path, json=body, wait_s=timeout_s + 2))

    async def retry_direct(self, address: str) -> PeerJson:
        """Punch through to the peer again now, instead of waiting out the back-off."""
        path = f"/peers/{address}/retry-direct"
        return cast(PeerJson, await self._request("POST", path))

    async def probe_mtu(self, address: str) -> PeerJson:
        """Search the MTU of the peer's live direct paths again."""
        path = f"/peers/{address}/probe-mtu"
        return cast(PeerJson, await self._request("POST", path))

    async def netcheck(self) -> NetcheckJson:
        """Reachability, NAT and roots as the node sees them (`ztui netcheck`)."""
        return cast(NetcheckJson, await self._request("GET", "/netcheck"))

    async def metrics(self) -> str:
        return cast(str, await self._request("GET", "/metrics", text=True))

    # -- networks this node has joined

    async def networks(self) -> list[NetworkJson]:
        return cast(list[NetworkJson], await self._request("GET", "/networks"))

    async def network(self, nwid: str) -> NetworkJson:
        return cast(NetworkJson, await self._request("GET", f"/networks/{nwid}"))

    async def join(self, nwid: str, settings: dict[str, Any] | None = None) -> NetworkJson:
        return cast(NetworkJson, await self._request("POST", f"/networks/{nwid}", json=settings))

    async def leave(self, nwid: str) -> LeftJson:
        return cast(LeftJson, await self._request("DELETE", f"/networks/{nwid}"))

    async def set_network(self, nwid: str, settings: dict[str, Any]) -> NetworkJson:
        return cast(NetworkJson, await self._request("PATCH", f"/networks/{nwid}", json=settings))

    # -- networks this node's controller hosts

    async def controller_networks(self) -> list[ControllerNetworkJson]:
        return cast(list[ControllerNetworkJson], await self._request("GET", "/controller/networks"))

    async def controller_pools(self) -> PoolsJson:
        """A free pool to suggest for a new network, and the ranges hosted ones use."""
        return cast(PoolsJson, await self._request("GET", "/controller/pools"))

    async def controller_network(self, nwid: str) -> ControllerNetworkJson:
        path = f"/controller/networks/{nwid}"
        return cast(ControllerNetworkJson, await self._request("GET", path))

    async def create_network(self, body: dict[str, Any]) -> ControllerNetworkJson:
        path = "/controller/networks"
        return cast(ControllerNetworkJson, await self._request("POST", path, json=body))

    async def update_network(self, nwid: str, body: dict[str, Any]) -> ControllerNetworkJson:
        path = f"/controller/networks/{nwid}"
        return cast(ControllerNetworkJson, await self._request("PATCH", path, json=body))

    async def delete_network(self, nwid: str) -> DeletedJson:
        return cast(DeletedJson, await self._request("DELETE", f"/controller/networks/{nwid}"))

    async def members(self, nwid: str) -> list[MemberJson]:
        path = f"/controller/networks/{nwid}/members"
        return cast(list[MemberJson], await self._request("GET", path))

    async def paths(self, nwid: str, limit: int | None = None) -> PathsJson:
        path = f"/controller/networks/{nwid}/paths"
        query = "" if limit is None else f"?limit={limit}"
        return cast(PathsJson, await self._request("GET", path + query))

    async def member(self, nwid: str, address: str) -> MemberJson:
        path = f"/controller/networks/{nwid}/members/{address}"
        return cast(MemberJson, await self._request("GET", path))

    async def update_member(self, nwid: str, address: str, body: dict[str, Any]) -> MemberJson:
        path = f"/controller/networks/{nwid}/members/{address}"
        return cast(MemberJson, await self._request("PATCH", path, json=body))

    async def delete_member(self, nwid: str, address: str) -> DeletedJson:
        path = f"/controller/networks/{nwid}/members/{address}"
        return cast(DeletedJson, await self._request("DELETE", path))

    # -- the event stream

    async def events(self, since: int | None = None) -> AsyncIterator[EventJson]:
        """GET /events: yields each event as it comes, for as long as the stream lasts.

        With `since`, the daemon first replays the events it still holds after that id.
        Never returns normally: raises ApiError when the connection fails or the stream
        ends (the daemon stopped, or this reader fell behind: the last event is then of
        kind "overflow"); reconnect with since= the last id seen. There is no read
        timeout: the daemon sends a keepalive comment every 15 s of silence.
        """
        if self._check:
            self._conn.check_socket()
        params = {} if since is None else {"since": str(since)}
        timeout = httpx.Timeout(self.timeout_s, read=None)
        try:
            async with self._http.stream("GET", "/events", params=params, timeout=timeout) as r:
                if r.status_code >= 400:
                    await r.aread()
                    raise self._conn.http_error(r)
                async for event in parse_sse(r.aiter_lines(), self._conn.where):
                    yield event
        except httpx.TransportError as exc:
            raise self._conn.transport_error(exc) from None
        raise ApiError(
            f"overlayd at {self._conn.where} closed the event stream (it stopped, or this "
            "console fell behind); reconnect with since= the last event id",
            error="stream_ended",
        )

    # -- plumbing

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        wait_s: float | None = None,
        text: bool = False,
    ) -> Any:
        if self._check:
            self._conn.check_socket()
        timeout = httpx.USE_CLIENT_DEFAULT if wait_s is None else wait_s
        try:
            response = await self._http.request(method, path, json=json, timeout=timeout)
        except httpx.TransportError as exc:
            raise self._conn.transport_error(exc) from None
        if response.status_code >= 400:
            raise self._conn.http_error(response)
        if text:
            return response.text
        try:
            return response.json()
        except ValueError:
            raise self._conn.not_json_error() from None


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
