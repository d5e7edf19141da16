"""The local control API: aiohttp on a UNIX socket, optionally on TCP loopback with a token.

Who may talk to the node:
- `<home>/control.sock` (mode 0660): anyone the filesystem lets open it. No token, because
  the permissions already are the access control (as with docker.sock).
- `127.0.0.1:<--api-tcp>`: every request needs `Authorization: Bearer <authtoken.secret>`,
  since any local user can open a loopback port.

Routes: every one is in the schema's table (schema/routes.py: method, path, what it
answers), and `build_app` binds a handler to each name there: the node's own here, the
rest from routes_networks.py (joined and hosted networks), routes_events.py (GET /events)
and routes_node.py (the roots). The console's fake node routes from the same table.

Every error, including unknown routes and wrong methods, is `{"error", "reason", "field"}`
JSON (field null unless one part of the request is at fault); a
middleware turns anything unexpected into a 500 of the same shape, never a traceback. A
value that breaks a rule is `400 {"error": "validation", "reason": "mtu: must be
1280-9000", "field": "mtu"}`. Bodies are JSON objects of at most MAX_BODY_BYTES (413
beyond), with no fields a route does not know; routes the table says take no body refuse
one. The checks are the schema's (schema/checks.py), shared with the fake node.
"""

from __future__ import annotations

import hmac
import logging
import os
import socket
from pathlib import Path
from typing import Protocol

from aiohttp import web

from overlay_core.controller import NotFoundError
from overlay_core.proto.netfields import ValidationError

from . import routes_events, routes_networks, routes_node, schema
from .http import (
    MAX_BODY_BYTES,
    SERVICE_KEY,
    TOKEN_KEY,
    ApiProblem,
    ControlService,
    Handler,
    handlers,
    handles,
    path_address,
    read_body,
    refuse_body,
)
from .metrics import render_metrics

log = logging.getLogger(__name__)

SOCKET_MODE = 0o660
# sun_path is 108 bytes on Linux including the terminating NUL.
UNIX_PATH_MAX_BYTES = 107


__all__ = [
    "SERVICE_KEY",
    "ApiError",
    "ApiProblem",
    "ApiServer",
    "ControlService",
    "NodeService",
    "build_app",
]


def _error(status: int, error: str, reason: str, field: str | None = None) -> web.Response:
    return web.json_response(schema.error_json(error, reason, field), status=status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiProblem as problem:
        return _error(problem.status, problem.error, problem.reason, problem.field)
    except (ValidationError, schema.FieldError) as exc:
        return _error(400, "validation", str(exc), exc.field)
    except NotFoundError as exc:
        return _error(404, "not_found", str(exc))
    except web.HTTPMethodNotAllowed as exc:
        reason = schema.not_allowed_reason(request.method, request.path, set(exc.allowed_methods))
        return _error(405, "method_not_allowed", reason)
    except web.HTTPNotFound:
        return _error(404, "not_found", schema.not_found_reason(request.method, request.path))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error(exc.status, exc.reason.lower().replace(" ", "_"), exc.text or exc.reason)
    except Exception:
        log.exception("API handler failed for %s %s", request.method, request.path)
        return _error(500, "internal", "the daemon hit an internal error; see its log")


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if _is_unix(request):
        return await handler(request)
    header = request.headers.get("Authorization", "")
    scheme, _, supplied = header.partition(" ")
    if scheme.lower() != "bearer" or not _token_matches(supplied.strip(), request.app[TOKEN_KEY]):
        raise ApiProblem(
            401, "unauthorized", "send 'Authorization: Bearer <token>' from authtoken.secret"
        )
    return await handler(request)


def _token_matches(supplied: str, token: str) -> bool:
    """Constant-time, on bytes: compare_digest raises TypeError for a str with non-ASCII
    characters, which a client can put in the header. aiohttp decodes header bytes as UTF-8
    with surrogateescape, so encoding the same way gives back what was sent."""
    try:
        given = supplied.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate no decoding produced: not the token
        return False
    return hmac.compare_digest(given, token.encode())


def _is_unix(request: web.Request) -> bool:
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    return sock is not None and sock.family == socket.AF_UNIX


_address = path_address


# --------------------------------------------------------------------------- handlers


@handles("status")
async def get_status(request: web.Request) -> web.Response:
    return web.json_response(schema.status_to_json(request.app[SERVICE_KEY].status()))


@handles("peers")
async def get_peers(request: web.Request) -> web.Response:
    peers = request.app[SERVICE_KEY].peers()
    return web.json_response([schema.peer_to_json(p) for p in peers])


@handles("peer")
async def get_peer(request: web.Request) -> web.Response:
    address = _address(request)
    peer = request.app[SERVICE_KEY].peer(address)
    if peer is None:
        raise schema.unknown_peer(schema.format_address(address))
    return web.json_response(schema.peer_to_json(peer))


@handles("netcheck")
async def get_netcheck(request: web.Request) -> web.Response:
    """Read from the node's state (proto/netcheck.py): it sends nothing, so it is cheap."""
    report = request.app[SERVICE_KEY].netcheck()
    return web.json_response(schema.netcheck_to_json(report))


@handles("echo")
async def post_echo(request: web.Request) -> web.Response:
    address = _address(request)
    timeout_s = schema.echo_timeout(await read_body(request))
    try:
        reply = await request.app[SERVICE_KEY].echo(address, timeout_s)
    except ValueError as exc:  # e.g. echoing ourselves
        raise ApiProblem(400, "bad_request", str(exc)) from None
    except LookupError as exc:  # the roots know no node at that address
        raise ApiProblem(404, "unknown_address", str(exc)) from None
    if reply is None:
        text = schema.format_address(address)
        raise ApiProblem(504, "timeout", f"no echo reply from {text} within {timeout_s:g} s")
    return web.json_response(schema.echo_to_json(reply))


@handles("retry_direct")
async def post_retry_direct(request: web.Request) -> web.Response:
    """Punch again now instead of waiting out the back-off (the console's `r`)."""
    return _peer_action(request, "retry_direct")


@handles("probe_mtu")
async def post_probe_mtu(request: web.Request) -> web.Response:
    """Search the MTU of the peer's live direct paths again (the console's `m`)."""
    return _peer_action(request, "probe_mtu")


def _peer_action(request: web.Request, action: str) -> web.Response:
    address = _address(request)
    service = request.app[SERVICE_KEY]
    try:
        getattr(service, action)(address)
    except KeyError:
        raise schema.unknown_peer(schema.format_address(address)) from None
    peer = service.peer(address)
    assert peer is not None
    return web.json_response(schema.peer_to_json(peer), status=202)


@handles("metrics")
async def get_metrics(request: web.Request) -> web.Response:
    service = request.app[SERVICE_KEY]
    status = service.status()
    ports = {}
    for network in status.networks:
        counters = service.port_counters(int(network.nwid, 16))
        if counters is not None:
            ports[network.nwid] = routes_networks.port_counters_json(counters)
    text = render_metrics(status, service.io_counters(), ports)
    return web.Response(text=text, content_type="text/plain", charset="utf-8")


class NodeService(ControlService, routes_node.NodeConfigService, Protocol):
    """Everything the routes need from the daemon (`overlay_core.io.daemon.Daemon`)."""


def _without_body(handler: Handler) -> Handler:
    """The handler of a route that takes no body: its path's ids checked, then a body
    refused, before the handler runs (schema/routes.py)."""

    async def refusing(request: web.Request) -> web.StreamResponse:
        schema.check_path_params(request.match_info)
        await refuse_body(request)
        return await handler(request)

    return refusing


def build_app(service: NodeService, token: str) -> web.Application:
    """The API on `service`: every route of schema.ROUTES, bound by name to its handler."""
    app = web.Application(
        middlewares=[error_middleware, auth_middleware], client_max_size=MAX_BODY_BYTES
    )
    app[SERVICE_KEY] = service
    app[TOKEN_KEY] = token
    routes_networks.setup(app)
    routes_events.setup(app)
    routes_node.setup(app, service)
    handlers.check()  # every route has its handler: this module's and the routes_*.py ones
    for route in schema.ROUTES:
        handler = handlers.by_name[route.name]
        if route.method == "GET":
            app.router.add_get(route.path, handler)  # and HEAD
        elif route.body:
            app.router.add_route(route.method, route.path, handler)
        else:
            app.router.add_route(route.method, route.path, _without_body(handler))
    return app


# --------------------------------------------------------------------------- serving


class ApiError(Exception):
    """The API could not be started; one line for the operator."""


class ApiServer:
    """Serves `build_app` on the control socket and, optionally, on TCP loopback."""

    def __init__(self, service: NodeService, token: str) -> None:
        self._runner = web.AppRunner(build_app(service, token), access_log=None)
        self.unix_path: Path | None = None
        self.tcp_port: int | None = None

    async def start(self, unix_path: Path | None, tcp_port: int | None = None) -> None:
        await self._runner.setup()
        try:
            if unix_path is not None:
                sock = _bind_unix(unix_path)
                self.unix_path = unix_path
                await web.SockSite(self._runner, sock).start()
            if tcp_port is not None:
                sock = _bind_tcp_loopback(tcp_port)
                self.tcp_port = sock.getsockname()[1]
                await web.SockSite(self._runner, sock).start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        await self._runner.cleanup()
        if self.unix_path is not None:
            self.unix_path.unlink(missing_ok=True)
            self.unix_path = None


def _bind_unix(path: Path) -> socket.socket:
    """Bind the control socket at 0660 before anyone can connect (chmod precedes listen)."""
    if len(os.fsencode(path)) > UNIX_PATH_MAX_BYTES:
        raise ApiError(
            f"control socket path {path} is longer than {UNIX_PATH_MAX_BYTES} bytes; "
            "use a shorter --home"
        )
    _remove_stale_socket(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(os.fspath(path))
        os.chmod(path, SOCKET_MODE)
    except OSError as exc:
        sock.close()
        raise ApiError(f"cannot create control socket {path}: {exc.strerror}") from None
    return sock


def _remove_stale_socket(path: Path) -> None:
    """A socket left by a crashed daemon is removed; a live one means we're a second daemon."""
    if not path.exists() and not path.is_symlink():
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(os.fspath(path))
    except OSError:
        path.unlink(missing_ok=True)
        return
    finally:
        probe.close()
    raise ApiError(f"another overlayd is already serving {path}")


def _bind_tcp_loopback(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        raise ApiError(f"cannot listen for the API on 127.0.0.1:{port}: {exc.strerror}") from None
    return sock
