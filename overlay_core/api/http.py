"""What every route module shares: the service the handlers call, and path and body
parsing. The server (server.py) and the route modules (routes_networks.py) both import it,
so neither has to import the other's handlers. The errors (ApiProblem) and limits
(MAX_BODY_BYTES) are the schema's, which the console's fake node answers with too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from aiohttp import web

from overlay_core.controller import Controller
from overlay_core.proto.effects import EchoReply, NetworkStatus, NodeStatus, PeerStatus
from overlay_core.proto.netcheck import NetcheckReport
from overlay_core.proto.vnet import NetworkSettings

from . import schema
from .events import EventBus
from .schema import MAX_BODY_BYTES, ApiProblem

__all__ = [
    "MAX_BODY_BYTES",
    "SERVICE_KEY",
    "TOKEN_KEY",
    "ApiProblem",
    "ControlService",
    "Handler",
    "handlers",
    "handles",
]


class TapCountersLike(Protocol):
    @property
    def frames_read(self) -> int: ...
    @property
    def bytes_read(self) -> int: ...
    @property
    def frames_written(self) -> int: ...
    @property
    def bytes_written(self) -> int: ...
    @property
    def write_drops(self) -> int: ...


class ControlService(Protocol):
    """What the API needs from the daemon; `overlay_core.io.daemon.Daemon` provides it."""

    def status(self) -> NodeStatus: ...

    def peers(self) -> list[PeerStatus]: ...

    def peer(self, address: int) -> PeerStatus | None: ...

    async def echo(self, address: int, timeout_s: float) -> EchoReply | None: ...

    def retry_direct(self, address: int) -> None: ...

    def probe_mtu(self, address: int) -> None: ...

    def io_counters(self) -> dict[str, int]: ...

    def netcheck(self) -> NetcheckReport: ...

    @property
    def events(self) -> EventBus: ...

    # -- virtual networks this node is a member of

    def now(self) -> float: ...

    def networks(self) -> list[NetworkStatus]: ...

    def network(self, nwid: int) -> NetworkStatus | None: ...

    def network_settings(self, nwid: int) -> NetworkSettings | None: ...

    def join(self, nwid: int, settings: NetworkSettings | None = None) -> bool: ...

    def leave(self, nwid: int) -> bool: ...

    def set_network_settings(self, nwid: int, settings: NetworkSettings) -> None: ...

    def port_device(self, nwid: int) -> str | None: ...

    def port_counters(self, nwid: int) -> TapCountersLike | None: ...

    # -- the networks this node's controller hosts

    @property
    def controller(self) -> Controller: ...


SERVICE_KEY = web.AppKey("service", ControlService)
# A route's handler. Each is bound to its route's name in schema.ROUTES where it is
# written, `@handles("status")`; server.py routes the app from the table and these.
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
handlers = schema.RouteHandlers[Handler]("overlayd's API")
handles = handlers.handles
TOKEN_KEY = web.AppKey("token", str)


def service(request: web.Request) -> ControlService:
    return request.app[SERVICE_KEY]


def path_address(request: web.Request) -> int:
    return int(schema.address_param(request.match_info["address"]), 16)


def path_nwid(request: web.Request) -> int:
    return int(schema.nwid_param(request.match_info["nwid"]), 16)


async def read_body(request: web.Request) -> object:
    """The request's JSON body, {} when there is none (schema.decode_body). It is at most
    MAX_BODY_BYTES: server.py gives aiohttp that limit, which answers 413 beyond it."""
    if not request.can_read_body:
        return {}
    return schema.decode_body(await request.read())


async def refuse_body(request: web.Request) -> None:
    """For the routes the table says take no body (schema.refuse_body)."""
    if request.can_read_body:
        schema.refuse_body(request.method, request.path, await request.read())
