"""Every route of the control API, once: the daemon's aiohttp app (api/server.py) and the
console's fake node (console/testing/fakenode/routes.py) both build their routing from
ROUTES, each binding a handler to every name (RouteHandlers) and refusing to start if one
is missing, so neither can serve a route the other lacks; the console's client names its
calls by the same names (console/calls.py).

A route that takes no body refuses one (an empty body or `{}` is no body) unless it is a
GET: a body there is the caller's mistake, most likely the wrong method, and a DELETE sent
where a PATCH was meant must not delete anything. Unknown paths are 404 "not_found",
known paths with another method 405 "method_not_allowed" (GET routes answer HEAD too).
The JSON each answers is named in `answers` (shapes in json_types.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

H = TypeVar("H")  # a handler, as each side calls one


@dataclass(frozen=True, slots=True)
class Route:
    name: str  # the handler's name on both sides, and the console client's method
    method: str
    path: str  # aiohttp's pattern: {address} is 10 hex digits, {nwid} 16
    answers: str  # what a success returns (and its status when not 200)
    body: bool = False  # takes a JSON object body
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.path)
        object.__setattr__(self, "pattern", re.compile(regex))

    def match(self, path: str) -> dict[str, str] | None:
        """The path parameters if `path` is this route's, else None."""
        found = self.pattern.fullmatch(path)
        return None if found is None else found.groupdict()


_NET = "/networks/{nwid}"
_HOSTED = "/controller/networks/{nwid}"
_MEMBER = f"{_HOSTED}/members/{{address}}"

ROUTES: tuple[Route, ...] = (
    # the node (api/server.py)
    Route("status", "GET", "/status", "StatusJson"),
    Route("peers", "GET", "/peers", "[PeerJson]"),
    Route("peer", "GET", "/peers/{address}", "PeerJson"),
    Route("echo", "POST", "/peers/{address}/echo", "EchoJson; 504 no reply", body=True),
    Route("retry_direct", "POST", "/peers/{address}/retry-direct", "PeerJson, 202"),
    Route("probe_mtu", "POST", "/peers/{address}/probe-mtu", "PeerJson, 202"),
    Route("netcheck", "GET", "/netcheck", "NetcheckJson"),
    Route("metrics", "GET", "/metrics", "Prometheus text"),
    Route("events", "GET", "/events", "server-sent EventJson (api/routes_events.py)"),
    Route("roots", "GET", "/roots", "RootsJson (api/routes_node.py)"),
    Route("set_roots", "PUT", "/roots", "RootsJson", body=True),
    # joined networks (api/routes_networks.py)
    Route("networks", "GET", "/networks", "[NetworkJson]"),
    Route("network", "GET", _NET, "NetworkJson"),
    Route("join", "POST", _NET, "NetworkJson, 201 new", body=True),
    Route("set_network", "PATCH", _NET, "NetworkJson", body=True),
    Route("leave", "DELETE", _NET, "LeftJson"),
    # the networks this node's controller hosts (api/routes_networks.py)
    Route("controller_networks", "GET", "/controller/networks", "[ControllerNetworkJson]"),
    Route("create_network", "POST", "/controller/networks", "ControllerNetworkJson, 201", True),
    Route("pools", "GET", "/controller/pools", "PoolsJson"),
    Route("controller_network", "GET", _HOSTED, "ControllerNetworkJson"),
    Route("update_network", "PATCH", _HOSTED, "ControllerNetworkJson", body=True),
    Route("delete_network", "DELETE", _HOSTED, "DeletedJson"),
    Route("members", "GET", f"{_HOSTED}/members", "[MemberJson], pending first"),
    Route("paths", "GET", f"{_HOSTED}/paths", "PathsJson (api/pathview.py)"),
    Route("member", "GET", _MEMBER, "MemberJson"),
    Route("update_member", "PATCH", _MEMBER, "MemberJson", body=True),
    Route("delete_member", "DELETE", _MEMBER, "DeletedJson"),
)
ROUTE_BY_NAME: dict[str, Route] = {route.name: route for route in ROUTES}
ROUTE_NAMES = frozenset(ROUTE_BY_NAME)


class RouteHandlers(Generic[H]):
    """A server's handlers by route name, each bound where it is written:

        handlers = RouteHandlers[Handler]("overlayd's API")

        @handlers.handles("status")
        async def get_status(request): ...

    `check()` then says whether every route of the table has one (and nothing else)."""

    def __init__(self, who: str) -> None:
        self.who = who
        self.by_name: dict[str, H] = {}

    def handles(self, name: str) -> Callable[[H], H]:
        if name not in ROUTE_NAMES or name in self.by_name:
            raise ValueError(f"{self.who}: {name!r} is not a route, or has a handler already")

        def bind(handler: H) -> H:
            self.by_name[name] = handler
            return handler

        return bind

    def check(self) -> None:
        """Raise unless every route of the table has a handler (handles() takes no other)."""
        missing = sorted(ROUTE_NAMES - set(self.by_name))
        if missing:
            raise RuntimeError(f"{self.who}: no handler for the routes {missing}")


def allowed_methods(path: str) -> set[str]:
    """The methods the table lists for `path` (with HEAD beside GET); empty: no such path."""
    methods: set[str] = set()
    for route in ROUTES:
        if route.match(path) is not None:
            methods.update((route.method, "HEAD") if route.method == "GET" else (route.method,))
    return methods


def not_allowed_reason(method: str, path: str, allowed: set[str]) -> str:
    return f"{method} is not allowed on {path}; use {', '.join(sorted(allowed))}"


def not_found_reason(method: str, path: str) -> str:
    return f"no such resource: {method} {path}"
