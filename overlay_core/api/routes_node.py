"""API routes for the node's own configuration: its roots.

    GET /roots     RootsJson: the roots in use, each with the link to it now
    PUT /roots     body {"roots": "<roots file text>"}: the node's new roots, saved for the
                   next start (HOME/roots.txt) and applied at once; RootsJson, with the
                   addresses added and removed

The body carries the file's text, not a path: the daemon may not be able to read the
caller's files (a systemd unit with ProtectHome=/PrivateTmp=, or another user's home),
and the text is checked here with the same parser a start uses. A bad file is 400
`validation` with field "roots" and a reason naming the line ("roots file line 3:
endpoint 'x': expected HOST:PORT"); a file with no roots at all is refused too (an empty
file is far more often a failed copy than a wish to run alone: `overlayd options --reset
roots` and a restart do that). Nothing changes unless the whole file is good and saved.

Parsing checks each root's identity (an argon2id, ~3 ms), so a body of at most
proto.roots.MAX_ROOTS roots (and MAX_BODY_BYTES) bounds what one request costs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from overlay_core.proto.roots import RootEntry, parse_roots

from . import schema
from .http import ApiProblem, handles, read_body
from .schema import ROOTS_FIELD, check_known_keys, check_object


@dataclass(frozen=True, slots=True)
class RootState:
    """One root of GET /roots: its entry, and how the node reaches it now."""

    entry: RootEntry
    link: str  # a RootLink word; SELF: the file lists this node itself
    endpoint: str | None  # the live path, else the first listed endpoint
    latency_ms: float | None


@dataclass(frozen=True, slots=True)
class RootsChange:
    """What a PUT /roots did: addresses (10 hex digits) of roots added and removed."""

    added: list[str]
    removed: list[str]


class RootsNotSaved(Exception):
    """The new roots could not be saved in the home, so they were not applied either."""


class RootsNotApplied(Exception):
    """The new roots were saved, but the running node did not take them (a bug: the
    daemon logged it); the next start uses them."""


class RootsControl(Protocol):
    """The daemon's side of /roots (overlay_core.io.roots_live.LiveRoots)."""

    def status(self) -> list[RootState]: ...

    def saved_in(self) -> str | None: ...

    def replace(self, entries: Sequence[RootEntry]) -> RootsChange:
        """Save, then apply; RootsNotSaved (and nothing changed) if saving failed."""
        ...


class NodeConfigService(Protocol):
    """What the daemon offers these routes (server.py's NodeService includes it)."""

    @property
    def live_roots(self) -> RootsControl: ...


ROOTS_KEY = web.AppKey("roots", RootsControl)


def setup(app: web.Application, service: NodeConfigService) -> None:
    app[ROOTS_KEY] = service.live_roots


@handles("roots")
async def get_roots(request: web.Request) -> web.Response:
    return web.json_response(_roots_json(request.app[ROOTS_KEY]))


@handles("set_roots")
async def put_roots(request: web.Request) -> web.Response:
    body = check_object(await read_body(request))
    check_known_keys(body, (ROOTS_FIELD,))
    text = body.get(ROOTS_FIELD)
    if not isinstance(text, str):
        raise _invalid('send the text of a roots file as a string, {"roots": "..."}')
    try:
        entries = parse_roots(text)
    except ValueError as exc:
        raise _invalid(str(exc)) from None
    if not entries:
        raise _invalid(
            "the roots file lists no roots (one line each: IDENTITY HOST:PORT ...); "
            "to run without roots: overlayd options --reset roots, then restart"
        )
    roots = request.app[ROOTS_KEY]
    try:
        change = roots.replace(entries)
    except RootsNotSaved as exc:
        raise ApiProblem(500, "not_saved", f"roots not changed: {exc}") from None
    except RootsNotApplied as exc:
        raise ApiProblem(500, "not_applied", f"{exc}; restart overlayd to use them") from None
    return web.json_response(_roots_json(roots, change))


def _invalid(reason: str) -> ApiProblem:
    return ApiProblem(400, "validation", reason, ROOTS_FIELD)


def _roots_json(roots: RootsControl, change: RootsChange | None = None) -> schema.RootsJson:
    return {
        "api_version": schema.API_VERSION,
        "roots": [
            {
                "address": state.entry.identity.address_text,
                "identity": state.entry.identity.to_public_text(),
                "endpoints": [str(e) for e in state.entry.endpoints],
                "link": schema.RootLink(state.link),
                "endpoint": state.endpoint,
                "latency_ms": state.latency_ms,
            }
            for state in roots.status()
        ],
        "saved_in": roots.saved_in(),
        "added": list(change.added) if change is not None else [],
        "removed": list(change.removed) if change is not None else [],
    }
