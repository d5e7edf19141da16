"""Every call of the overlayd control API, written once for both clients.

Each method of `ApiCalls` only describes its call as a `Request` (console/transport.py):
its route in the API's table (schema ROUTES, which the daemon and the fake node serve
from, so the method and path are theirs), the body, the timeout and the JSON shape of the
answer. `@api_call` turns it into a method that sends that Request with whichever
transport the client is made of, so

    ApiClient(home=...).status()               # console/client.py: -> StatusJson
    await AsyncApiClient(home=...).status()    # console/api.py:    -> StatusJson, awaited

are one definition, the same path and the same failures, and mypy knows which one
returns a coroutine.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from overlay_core.api.schema import (
    ECHO_TIMEOUT_DEFAULT_S,
    ROUTE_BY_NAME,
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

from .transport import AsyncTransport, Request, SyncTransport

__all__ = ["ApiCalls", "api_call", "to"]

P = ParamSpec("P")
T = TypeVar("T")

ECHO_HTTP_SLACK_S = 2.0  # the daemon waits timeout_s for the reply; HTTP waits this longer


def to(
    route: str,
    body: Any = None,
    *,
    params: dict[str, str] | None = None,
    wait_s: float | None = None,
    text: bool = False,
    **where: str,
) -> Request[Any]:
    """The Request for the route of that name, its {address} and {nwid} filled in."""
    found = ROUTE_BY_NAME[route]
    path = found.path.format(**where)
    return Request(found.method, path, body, params=params, wait_s=wait_s, text=text)


class api_call(Generic[P, T]):
    """A method that describes a call (returns Request[T]), made into one that sends it.

    Read on a SyncTransport, it returns T; on an AsyncTransport, a coroutine of T. The
    body is the same at run time (`client.send(request)`); the overloads only tell mypy
    what that send returns."""

    def __init__(self, describe: Callable[Concatenate[Any, P], Request[T]]) -> None:
        self.describe = describe
        self.__doc__ = describe.__doc__  # help(ApiClient.status) reads the call's

    @overload
    def __get__(self, client: None, owner: type) -> api_call[P, T]: ...
    @overload
    def __get__(self, client: SyncTransport, owner: type) -> Callable[P, T]: ...
    @overload
    def __get__(
        self, client: AsyncTransport, owner: type
    ) -> Callable[P, Coroutine[Any, Any, T]]: ...

    def __get__(self, client: SyncTransport | AsyncTransport | None, owner: type) -> Any:
        if client is None:
            return self
        send = client.send

        @functools.wraps(self.describe)
        def call(*args: Any, **kwargs: Any) -> Any:
            return send(self.describe(client, *args, **kwargs))

        return call


class ApiCalls:
    """The calls, as Requests. A client is ApiCalls plus a transport (client.py, api.py)."""

    # -- the node

    @api_call
    def status(self) -> Request[StatusJson]:
        return to("status")

    @api_call
    def peers(self) -> Request[list[PeerJson]]:
        return to("peers")

    @api_call
    def peer(self, address: str) -> Request[PeerJson]:
        return to("peer", address=address)

    @api_call
    def echo(self, address: str, timeout_s: float = ECHO_TIMEOUT_DEFAULT_S) -> Request[EchoJson]:
        body = {"timeout_s": timeout_s}
        wait_s = timeout_s + ECHO_HTTP_SLACK_S
        return to("echo", body, wait_s=wait_s, address=address)

    @api_call
    def retry_direct(self, address: str) -> Request[PeerJson]:
        """Punch through to the peer again now, instead of waiting out the back-off."""
        return to("retry_direct", address=address)

    @api_call
    def probe_mtu(self, address: str) -> Request[PeerJson]:
        """Search the MTU of the peer's live direct paths again."""
        return to("probe_mtu", address=address)

    @api_call
    def netcheck(self) -> Request[NetcheckJson]:
        """Reachability, NAT and roots as the node sees them (`ztui netcheck`)."""
        return to("netcheck")

    @api_call
    def roots(self) -> Request[RootsJson]:
        """The roots the node uses, and its link to each (`ztui roots`)."""
        return to("roots")

    @api_call
    def set_roots(self, text: str) -> Request[RootsJson]:
        """Give the running node new roots (a roots file's text); it saves them too."""
        return to("set_roots", {"roots": text})

    @api_call
    def metrics(self) -> Request[str]:
        """The Prometheus text."""
        return to("metrics", text=True)

    # -- networks this node has joined

    @api_call
    def networks(self) -> Request[list[NetworkJson]]:
        return to("networks")

    @api_call
    def network(self, nwid: str) -> Request[NetworkJson]:
        return to("network", nwid=nwid)

    @api_call
    def join(self, nwid: str, settings: dict[str, Any] | None = None) -> Request[NetworkJson]:
        return to("join", settings, nwid=nwid)

    @api_call
    def leave(self, nwid: str) -> Request[LeftJson]:
        return to("leave", nwid=nwid)

    @api_call
    def set_network(self, nwid: str, settings: dict[str, Any]) -> Request[NetworkJson]:
        return to("set_network", settings, nwid=nwid)

    # -- networks this node's controller hosts

    @api_call
    def controller_networks(self) -> Request[list[ControllerNetworkJson]]:
        return to("controller_networks")

    @api_call
    def controller_pools(self) -> Request[PoolsJson]:
        """A free pool to suggest for a new network, and the ranges hosted ones use."""
        return to("pools")

    @api_call
    def controller_network(self, nwid: str) -> Request[ControllerNetworkJson]:
        return to("controller_network", nwid=nwid)

    @api_call
    def create_network(self, body: dict[str, Any]) -> Request[ControllerNetworkJson]:
        return to("create_network", body)

    @api_call
    def update_network(self, nwid: str, body: dict[str, Any]) -> Request[ControllerNetworkJson]:
        return to("update_network", body, nwid=nwid)

    @api_call
    def delete_network(self, nwid: str) -> Request[DeletedJson]:
        return to("delete_network", nwid=nwid)

    @api_call
    def members(self, nwid: str) -> Request[list[MemberJson]]:
        return to("members", nwid=nwid)

    @api_call
    def paths(self, nwid: str, limit: int | None = None) -> Request[PathsJson]:
        """Who reaches whom in a hosted network; `limit` caps the pairs listed."""
        params = None if limit is None else {"limit": str(limit)}
        return to("paths", params=params, nwid=nwid)

    @api_call
    def member(self, nwid: str, address: str) -> Request[MemberJson]:
        return to("member", nwid=nwid, address=address)

    @api_call
    def update_member(self, nwid: str, address: str, body: dict[str, Any]) -> Request[MemberJson]:
        return to("update_member", body, nwid=nwid, address=address)

    @api_call
    def delete_member(self, nwid: str, address: str) -> Request[DeletedJson]:
        return to("delete_member", nwid=nwid, address=address)
