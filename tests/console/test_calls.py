"""The API calls are written once (console/calls.py) and sent by two transports: the sync
ApiClient and the async AsyncApiClient must put the same request on the wire for every
call, read the same answer back, and turn the same failures into the same ApiError."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from console.api import AsyncApiClient
from console.calls import ApiCalls, api_call
from console.client import ApiClient
from console.connection import ApiError
from overlay_core.api.schema import ROUTE_NAMES, ROUTES

NWID = "8056c2e21c000001"
PEER = "c0ffee0001"

# Every call with arguments that reach each part of its request: (name, args, kwargs).
CALLS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("status", (), {}),
    ("peers", (), {}),
    ("peer", (PEER,), {}),
    ("echo", (PEER,), {"timeout_s": 3.0}),
    ("retry_direct", (PEER,), {}),
    ("probe_mtu", (PEER,), {}),
    ("netcheck", (), {}),
    ("roots", (), {}),
    ("set_roots", ("roots text",), {}),
    ("metrics", (), {}),
    ("networks", (), {}),
    ("network", (NWID,), {}),
    ("join", (NWID, {"allow_managed": False}), {}),
    ("leave", (NWID,), {}),
    ("set_network", (NWID, {"mtu": 1400}), {}),
    ("controller_networks", (), {}),
    ("controller_pools", (), {}),
    ("controller_network", (NWID,), {}),
    ("create_network", ({"name": "home"},), {}),
    ("update_network", (NWID, {"mtu": 1500}), {}),
    ("delete_network", (NWID,), {}),
    ("members", (NWID,), {}),
    ("paths", (NWID,), {"limit": 7}),
    ("member", (NWID, PEER), {}),
    ("update_member", (NWID, PEER, {"authorized": True}), {}),
    ("delete_member", (NWID, PEER), {}),
]

Seen = tuple[str, str, Any, float | None]  # method, path with query, JSON body, read timeout


Answer = tuple[int, dict[str, Any]]  # a status and httpx.Response's keywords


def recorder(seen: list[Seen], respond: Answer | None = None) -> httpx.MockTransport:
    """A transport that notes each request and answers `respond`, or echoes the path."""

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        read = request.extensions["timeout"]["read"]
        seen.append((request.method, str(request.url.raw_path, "ascii"), body, read))
        if respond is not None:
            return httpx.Response(respond[0], **respond[1])
        if request.url.path == "/metrics":
            return httpx.Response(200, text="ztui_node_info 1\n")
        return httpx.Response(200, json={"path": request.url.path})

    return httpx.MockTransport(handle)


def test_every_call_is_described_once() -> None:
    """Each public call of both clients is an api_call of ApiCalls (nothing written
    twice), and CALLS lists them all, so the next test covers every one."""
    described = {name for name, value in vars(ApiCalls).items() if isinstance(value, api_call)}
    assert described == {name for name, _, _ in CALLS}
    for client_type in (ApiClient, AsyncApiClient):
        own = {name for name in vars(client_type) if not name.startswith("_")}
        assert own <= {"events"}, f"{client_type.__name__} defines {own} itself"


async def test_both_clients_send_the_same_requests_and_read_the_same_answers() -> None:
    """Method, path, query, body and timeout per call, and the answer handed back, are
    the same sync and async; echo waits its timeout plus slack, metrics is text."""
    sync_seen: list[Seen] = []
    async_seen: list[Seen] = []
    sync_answers, async_answers = [], []
    with ApiClient(home="/nonexistent", transport=recorder(sync_seen)) as client:
        for name, args, kwargs in CALLS:
            sync_answers.append(getattr(client, name)(*args, **kwargs))
    async with AsyncApiClient(home="/nonexistent", transport=recorder(async_seen)) as aclient:
        for name, args, kwargs in CALLS:
            async_answers.append(await getattr(aclient, name)(*args, **kwargs))
    assert sync_seen == async_seen and sync_answers == async_answers
    by_name = dict(zip((name for name, _, _ in CALLS), sync_seen, strict=True))
    assert by_name["echo"] == ("POST", f"/peers/{PEER}/echo", {"timeout_s": 3.0}, 5.0)
    assert by_name["paths"][1] == f"/controller/networks/{NWID}/paths?limit=7"
    assert by_name["status"][3] == 5.0  # the client's default timeout
    assert sync_answers[[n for n, _, _ in CALLS].index("metrics")] == "ztui_node_info 1\n"
    assert sync_answers[0] == {"path": "/status"}


def test_the_calls_cover_the_route_table() -> None:
    """Every route of schema's table but the event stream (AsyncApiClient.events) is one
    call's method and path, so the console cannot ask for a route the daemon lacks."""
    seen: list[Seen] = []
    with ApiClient(home="/nonexistent", transport=recorder(seen)) as client:
        for name, args, kwargs in CALLS:
            getattr(client, name)(*args, **kwargs)
    reached = set()
    for method, path, _, _ in seen:
        bare = path.partition("?")[0]
        [route] = [r for r in ROUTES if r.method == method and r.match(bare) is not None]
        reached.add(route.name)
    assert reached == ROUTE_NAMES - {"events"}


ERRORS: list[tuple[Answer, tuple[Any, ...]]] = [
    (
        (400, {"json": {"error": "validation", "reason": "mtu: bad", "field": "mtu"}}),
        (400, "validation", "mtu", "mtu: bad"),
    ),
    ((404, {"json": {"error": "not_joined", "reason": "no"}}), (404, "not_joined", None, "no")),
    ((502, {"text": "gateway"}), (502, None, None, "overlayd answered HTTP 502")),
    ((200, {"text": "<html>"}), (None, "bad_reply", None, None)),
]


@pytest.mark.parametrize(("response", "expected"), ERRORS)
async def test_both_clients_fail_with_the_same_error(
    response: Answer, expected: tuple[Any, ...]
) -> None:
    """An error answer is ApiError with the daemon's status, code, field and reason; a
    2xx that is not JSON is bad_reply; the message is the same line sync and async."""
    with ApiClient(home="/nonexistent", transport=recorder([], response)) as client:
        with pytest.raises(ApiError) as sync_caught:
            client.network(NWID)
    async with AsyncApiClient(home="/nonexistent", transport=recorder([], response)) as aclient:
        with pytest.raises(ApiError) as async_caught:
            await aclient.network(NWID)
    for caught in (sync_caught.value, async_caught.value):
        status, error, field, reason = expected
        assert (caught.status, caught.error, caught.field) == (status, error, field)
        assert reason is None or caught.reason == reason
    assert str(sync_caught.value) == str(async_caught.value)
    if response[0] == 200:
        assert "sent a reply that is not JSON" in str(sync_caught.value)
