"""A small synchronous client for the overlayd control API, used by the `ztui` subcommands.

Where it connects and how failures read is console/connection.py, shared with the async
client the Textual app uses (console/api.py): `home=DIR` (or nothing) is the UNIX socket
`DIR/control.sock`, `api="unix:PATH"` another socket, `api="http://127.0.0.1:PORT"` TCP
with a bearer token. Every failure surfaces as `ApiError` whose message is one line a
person can act on, so the CLI prints `str(error)` and never a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import httpx

from overlay_core.api.schema import (
    ControllerNetworkJson,
    DeletedJson,
    EchoJson,
    LeftJson,
    MemberJson,
    NetcheckJson,
    NetworkJson,
    PathsJson,
    PeerJson,
    PoolsJson,
    RootsJson,
    StatusJson,
)

from .connection import DEFAULT_TIMEOUT_S, ApiError, Connection

__all__ = ["DEFAULT_TIMEOUT_S", "ApiClient", "ApiError"]


class ApiClient:
    """Talks to one overlayd. Use as a context manager, or call `close()`."""

    def __init__(
        self,
        *,
        home: Path | str | None = None,
        api: str | None = None,
        token: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """`transport` replaces the socket or TCP transport (tests: a MockTransport); the
        UNIX socket is then not checked on disk."""
        self._conn = Connection.resolve(home=home, api=api, token=token)
        self._check = transport is None
        if transport is None:
            sock = self._conn.socket_path
            transport = httpx.HTTPTransport(uds=str(sock)) if sock else httpx.HTTPTransport()
        self._http = httpx.Client(
            transport=transport,
            base_url=self._conn.base_url,
            headers=self._conn.headers,
            timeout=timeout_s,
        )

    @property
    def home(self) -> Path:
        return self._conn.home

    @property
    def socket_path(self) -> Path | None:
        return self._conn.socket_path

    @property
    def where(self) -> str:
        return self._conn.where

    @property
    def endpoint(self) -> str:
        """ "unix:/var/lib/ztui/control.sock" or the URL."""
        return self._conn.endpoint

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- calls

    def status(self) -> StatusJson:
        return cast(StatusJson, self._request("GET", "/status"))

    def peers(self) -> list[PeerJson]:
        return cast(list[PeerJson], self._request("GET", "/peers"))

    def peer(self, address: str) -> PeerJson:
        return cast(PeerJson, self._request("GET", f"/peers/{address}"))

    def echo(self, address: str, timeout_s: float = 2.0) -> EchoJson:
        body = {"timeout_s": timeout_s}
        # The daemon waits up to timeout_s for the reply; give HTTP a little longer than that.
        return cast(
            EchoJson,
            self._request("POST", f"/peers/{address}/echo", json=body, wait_s=timeout_s + 2),
        )

    def retry_direct(self, address: str) -> PeerJson:
        """Punch through to the peer again now, instead of waiting out the back-off."""
        return cast(PeerJson, self._request("POST", f"/peers/{address}/retry-direct"))

    def probe_mtu(self, address: str) -> PeerJson:
        """Search the MTU of the peer's live direct paths again."""
        return cast(PeerJson, self._request("POST", f"/peers/{address}/probe-mtu"))

    def netcheck(self) -> NetcheckJson:
        """Reachability, NAT and roots as the node sees them (`ztui netcheck`)."""
        return cast(NetcheckJson, self._request("GET", "/netcheck"))

    def roots(self) -> RootsJson:
        """The roots the node uses, and its link to each (`ztui roots`)."""
        return cast(RootsJson, self._request("GET", "/roots"))

    def set_roots(self, text: str) -> RootsJson:
        """Give the running node new roots (a roots file's text); it saves them too."""
        return cast(RootsJson, self._request("PUT", "/roots", json={"roots": text}))

    def metrics(self) -> str:
        return cast(str, self._request("GET", "/metrics", text=True))

    # -- networks this node has joined

    def networks(self) -> list[NetworkJson]:
        return cast(list[NetworkJson], self._request("GET", "/networks"))

    def network(self, nwid: str) -> NetworkJson:
        return cast(NetworkJson, self._request("GET", f"/networks/{nwid}"))

    def join(self, nwid: str, settings: dict[str, Any] | None = None) -> NetworkJson:
        return cast(NetworkJson, self._request("POST", f"/networks/{nwid}", json=settings))

    def leave(self, nwid: str) -> LeftJson:
        return cast(LeftJson, self._request("DELETE", f"/networks/{nwid}"))

    def set_network(self, nwid: str, settings: dict[str, Any]) -> NetworkJson:
        return cast(NetworkJson, self._request("PATCH", f"/networks/{nwid}", json=settings))

    # -- networks this node's controller hosts

    def controller_networks(self) -> list[ControllerNetworkJson]:
        return cast(list[ControllerNetworkJson], self._request("GET", "/controller/networks"))

    def controller_pools(self) -> PoolsJson:
        """A free pool to suggest for a new network, and the ranges hosted ones use."""
        return cast(PoolsJson, self._request("GET", "/controller/pools"))

    def controller_network(self, nwid: str) -> ControllerNetworkJson:
        path = f"/controller/networks/{nwid}"
        return cast(ControllerNetworkJson, self._request("GET", path))

    def create_network(self, body: dict[str, Any]) -> ControllerNetworkJson:
        path = "/controller/networks"
        return cast(ControllerNetworkJson, self._request("POST", path, json=body))

    def update_network(self, nwid: str, body: dict[str, Any]) -> ControllerNetworkJson:
        path = f"/controller/networks/{nwid}"
        return cast(ControllerNetworkJson, self._request("PATCH", path, json=body))

    def delete_network(self, nwid: str) -> DeletedJson:
        return cast(DeletedJson, self._request("DELETE", f"/controller/networks/{nwid}"))

    def members(self, nwid: str) -> list[MemberJson]:
        path = f"/controller/networks/{nwid}/members"
        return cast(list[MemberJson], self._request("GET", path))

    def paths(self, nwid: str, limit: int | None = None) -> PathsJson:
        path = f"/controller/networks/{nwid}/paths"
        query = "" if limit is None else f"?limit={limit}"
        return cast(PathsJson, self._request("GET", path + query))

    def member(self, nwid: str, address: str) -> MemberJson:
        path = f"/controller/networks/{nwid}/members/{address}"
        return cast(MemberJson, self._request("GET", path))

    def update_member(self, nwid: str, address: str, body: dict[str, Any]) -> MemberJson:
        path = f"/controller/networks/{nwid}/members/{address}"
        return cast(MemberJson, self._request("PATCH", path, json=body))

    def delete_member(self, nwid: str, address: str) -> DeletedJson:
        path = f"/controller/networks/{nwid}/members/{address}"
        return cast(DeletedJson, self._request("DELETE", path))

    def _request(
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
            response = self._http.request(method, path, json=json, timeout=timeout)
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
