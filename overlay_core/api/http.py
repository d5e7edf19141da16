"""What every route module shares: the service the handlers call, errors, and path and body
parsing. The server (server.py) and the route modules (routes_networks.py) both import it,
so neither has to import the other's handlers.
"""

from __future__ import annotations

import json
from typing import Protocol

from aiohttp import web

from overlay_core.controller import Controller
from overlay_core.proto.effects import EchoReply, NetworkStatus, NodeStatus, PeerStatus
from overlay_core.proto.identity import parse_address
from overlay_core.proto.netcheck import NetcheckReport
from overlay_core.proto.vnet import NetworkSettings

from . import schema
from .events import EventBus


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


# The largest useful body is a controller network's settings, and everything those become
# fits in one signed config of at most proto.netconf.MAX_CONFIG_BYTES (16 KiB): 64 KiB is
# ample, and keeps what one request can make the daemon hold (and json.loads chew) small.
MAX_BODY_BYTES = 64 * 1024

SERVICE_KEY = web.AppKey("service", ControlService)
TOKEN_KEY = web.AppKey("token", str)


class ApiProblem(Exception):
    """Raised by handlers; rendered as a JSON error by the middleware, always with all
    three keys: `{"error", "reason", "field"}`, field None when no single part of the
    request is at fault (a body that is not JSON, an unknown route, a state conflict)."""

    def __init__(self, status: int, error: str, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.error = error
        self.reason = reason
        self.field = field


def service(request: web.Request) -> ControlService:
    return request.app[SERVICE_KEY]


def path_address(request: web.Request) -> int:
    text = request.match_info["address"]
    try:
        return parse_address(text)
    except ValueError as exc:
        raise ApiProblem(400, "bad_address", str(exc), "address") from None


def path_nwid(request: web.Request) -> int:
    try:
        return int(schema.check_nwid_text(request.match_info["nwid"]), 16)
    except ValueError as exc:
        raise ApiProblem(400, "bad_network_id", str(exc), "nwid") from None


async def read_body(request: web.Request) -> object:
    """The request's JSON body; {} when there is none. 400 if it is not JSON.

    The body is at most MAX_BODY_BYTES (server.py gives aiohttp that limit: 413 beyond it).
    RecursionError is the json module's answer to deep nesting ("[" * 100_000 fits in far
    fewer bytes than that), so it is a bad body like any other, not an internal error;
    ValueError covers bad syntax, bad UTF-8 and integers past Python's 4300-digit limit.
    """
    if not request.can_read_body:
        return {}
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except RecursionError:
        raise ApiProblem(400, "bad_request", "the body is JSON nested too deeply") from None
    except ValueError:
        raise ApiProblem(400, "bad_request", "the body must be JSON") from None


async def refuse_body(request: web.Request) -> None:
    """Routes that take no body refuse one (an empty body or `{}` is no body): a body there
    is the caller's mistake, most likely the wrong method, and a DELETE sent where a PATCH
    was meant must not delete anything."""
    if request.can_read_body and (await request.read()).strip() not in (b"", b"{}"):
        reason = f"{request.method} {request.path} takes no body"
        raise ApiProblem(400, "bad_request", reason)
