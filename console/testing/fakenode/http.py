"""Request parts and answers for the fake daemon. The checks and the errors are the daemon's
own (overlay_core.api.schema: ApiProblem, FieldError, decode_body, ...), so a bad body is
400 "validation" naming the field, here as there."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import httpx

from overlay_core.api.schema import (
    MAX_BODY_BYTES,
    MemberJson,
    RouteHandlers,
    address_param,
    body_too_large,
    check_object,
    decode_body,
    nwid_param,
)

if TYPE_CHECKING:
    from ..fake import FakeNode

# A route's handler: the node, the request, the path's parameters ({address}, {nwid}).
# Each is bound to its route's name in the daemon's table where it is written,
# `@handles("status")`, as the daemon's own handlers are; routes.py routes by them.
Handler = Callable[["FakeNode", httpx.Request, dict[str, str]], httpx.Response]
handlers = RouteHandlers[Handler]("FakeNode")
handles = handlers.handles


def reply(body: object, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=body)


def raw_body(request: httpx.Request) -> bytes:
    """The body as sent; past MAX_BODY_BYTES it is 413, as aiohttp answers the daemon's."""
    if len(request.content) > MAX_BODY_BYTES:
        raise body_too_large(len(request.content))
    return request.content


def body_of(request: httpx.Request) -> Mapping[str, Any]:
    """The body as a JSON object ({} when there is none)."""
    return check_object(decode_body(raw_body(request)))


def address_arg(args: dict[str, str]) -> str:
    return address_param(args["address"])


def nwid_arg(args: dict[str, str]) -> str:
    return nwid_param(args["nwid"])


def sorted_members(members: Mapping[str, MemberJson]) -> list[MemberJson]:
    """Pending first, then authorized, then deauthorized; oldest first within each."""
    order = {"pending": 0, "authorized": 1, "deauthorized": 2}
    return sorted(members.values(), key=lambda m: (order[m["state"]], m["created"], m["address"]))
