"""The console's fake node answers the control API as a real daemon does.

One list of requests, good and bad, covering every route of the schema's table (and a
wrong method on every path), is replayed in order against a FakeNode and against a real
Daemon on loopback; each answer's status, error code and field must be what the list says,
on both sides. Bodies are not compared (the fake's data differs), but the refusals are:
if either side starts to accept what the other refuses, or words a refusal differently
(another code, another field), a case here fails naming it.

The two sides are set up alike: a node that knows a peer, hosts a network it has also
joined, and has that peer named as a member of it. Placeholders in a path ({peer}, {nwid},
...) are each side's own values for the same role.
"""

from __future__ import annotations

import types
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from console.testing.fake import FakeNode
from console.testing.fake_data import HOME_NWID, LAPTOP, NODE
from console.testing.fakenode import http as fake_http
from overlay_core.api import schema
from overlay_core.api.server import build_app
from overlay_core.controller.settings import NETWORK_SETTINGS
from overlay_core.proto import netfields

from . import test_api_hostile
from .test_api_hostile import Target

# The fixture of a leaf that hosts a network it has joined, its root a peer and a member.
target = test_api_hostile.target

STRANGER = "c0ffee0042"  # an address neither side has met
NOBODY = object()  # a case that sends no body
Expect = tuple[int, str | None, str | None]  # status, error code, field
OK: Expect = (200, None, None)


@dataclass(frozen=True)
class Case:
    method: str
    path: str  # with placeholders: {peer}, {nwid}, {member}, {stranger}, {other_nwid}, ...
    expect: Expect
    body: object = NOBODY  # a JSON value (strings "{name}" are placeholders too), or bytes
    params: dict[str, str] = field(default_factory=dict)
    stream: bool = False  # GET /events: only the status is read, then it is closed
    save_nwid_as: str | None = None  # the answer's "nwid" becomes this placeholder


def bad(field_name: str | None, error: str = "validation", status: int = 400) -> Expect:
    return (status, error, field_name)


NET = "/networks/{nwid}"
HOSTED = "/controller/networks/{nwid}"
MEMBER = HOSTED + "/members/{member}"
NEWCOMER = HOSTED + "/members/{stranger}"

CASES: list[Case] = [
    # the node
    Case("GET", "/status", OK),
    Case("HEAD", "/status", OK),
    Case("GET", "/peers", OK),
    Case("GET", "/peers/{peer}", OK),
    Case("GET", "/peers/nothex", bad("address", "bad_address")),
    Case("GET", "/peers/0000000000", bad("address", "bad_address")),
    Case("GET", "/peers/ff00000000", bad("address", "bad_address")),
    Case("GET", "/peers/{stranger}", bad(None, "unknown_peer", 404)),
    Case("POST", "/peers/{peer}/echo", bad("timeout_s", "bad_request"), {"timeout_s": "soon"}),
    Case("POST", "/peers/{peer}/echo", bad("timeout_s", "bad_request"), {"timeout_s": 0}),
    Case("POST", "/peers/{peer}/echo", bad("bogus"), {"bogus": 1}),
    Case("POST", "/peers/{peer}/echo", bad(None, "bad_request"), []),
    Case("POST", "/peers/{peer}/echo", bad(None, "bad_request"), b"{"),
    Case("POST", "/peers/{peer}/echo", OK, {"timeout_s": 5}),
    Case("POST", "/peers/{peer}/retry-direct", (202, None, None)),
    Case("POST", "/peers/{peer}/retry-direct", bad(None, "bad_request"), {"x": 1}),
    Case("POST", "/peers/{stranger}/probe-mtu", bad(None, "unknown_peer", 404)),
    Case("POST", "/peers/{peer}/probe-mtu", (202, None, None)),
    Case("GET", "/netcheck", OK),
    Case("GET", "/metrics", OK),
    Case("GET", "/events", bad("since", "bad_request"), params={"since": "x"}),
    Case("GET", "/events", OK, params={"since": "9" * 5000}, stream=True),
    Case("GET", "/events", OK, params={"since": "1"}, stream=True),
    # the roots
    Case("GET", "/roots", OK),
    Case("PUT", "/roots", bad("roots"), {"roots": 5}),
    Case("PUT", "/roots", bad("roots"), {"roots": ""}),
    Case("PUT", "/roots", bad("roots"), {"roots": "not a roots line"}),
    Case("PUT", "/roots", bad("x"), {"roots": "{root_line}", "x": 1}),
    Case("PUT", "/roots", bad(None, "bad_request"), b"roots"),
    Case("PUT", "/roots", OK, {"roots": "{root_line}"}),
    # networks this node has joined
    Case("GET", "/networks", OK),
    Case("GET", NET, OK),
    Case("GET", "/networks/nothex", bad("nwid", "bad_network_id")),
    Case("GET", "/networks/{other_nwid}", bad(None, "not_joined", 404)),
    Case("POST", NET, OK),
    Case("PATCH", NET, bad("mtu"), {"mtu": 100}),
    Case("PATCH", NET, bad("mtu"), {"mtu": True}),
    Case("PATCH", NET, bad("mss"), {"mss": 12}),
    Case("PATCH", NET, bad("mss"), {"mss": "fixed:\u00b2"}),
    Case("PATCH", NET, bad("speed"), {"speed": 1}),
    Case("PATCH", NET, bad("report"), {"report": "no"}),
    Case("PATCH", NET, bad("body"), []),
    Case("PATCH", NET, bad(None, "bad_request"), b"{"),
    Case("PATCH", NET, bad(None, "bad_request"), b"[" * 20_000 + b"]" * 20_000),
    Case("PATCH", NET, OK, {"mtu": 1400, "mss": 1300, "report": True}),
    Case("PATCH", NET, OK, {"mtu": None, "mss": None}),
    Case("PATCH", "/networks/{other_nwid}", bad(None, "not_joined", 404), {"mtu": 1400}),
    Case("POST", "/networks/{other_nwid}", bad("mtu"), {"mtu": 100}),
    Case("POST", "/networks/{other_nwid}", (201, None, None), {"allow_global": True}),
    Case("DELETE", "/networks/{other_nwid}", OK),
    Case("DELETE", "/networks/{other_nwid}", bad(None, "not_joined", 404)),
    Case("DELETE", NET, bad(None, "bad_request"), {"x": 1}),
    # a request wrong twice over is told about its path's id first
    Case("DELETE", "/networks/zz", bad("nwid", "bad_network_id"), {"x": 1}),
    Case("POST", "/peers/zz/retry-direct", bad("address", "bad_address"), {"x": 1}),
    Case("POST", NET, bad(None, "request_entity_too_large", 413), {"x": "y" * 70_000}),
    # networks this node's controller hosts
    Case("GET", "/controller/networks", OK),
    Case("POST", "/controller/networks", bad("name"), {"pools": []}),
    Case("POST", "/controller/networks", bad("name"), {"name": 5}),
    Case("POST", "/controller/networks", bad("mtu"), {"name": "t", "mtu": 100}),
    Case("POST", "/controller/networks", bad("mss"), {"name": "t", "mss": 12}),
    Case("POST", "/controller/networks", bad("pools"), {"name": "t", "pools": "10.0.0.0/24"}),
    Case("POST", "/controller/networks", bad("pools[0]"), {"name": "t", "pools": ["10.0.0.1/24"]}),
    Case("POST", "/controller/networks", bad("bogus"), {"name": "t", "bogus": 1}),
    Case("POST", "/controller/networks", bad("number"), {"name": "t", "number": "x"}),
    Case("POST", "/controller/networks", bad("number"), {"name": "t", "number": 99_999_999}),
    Case(
        "POST",
        "/controller/networks",
        bad("multicast_limit"),
        {"name": "t", "multicast_limit": 9e9},
    ),
    Case("POST", "/controller/networks", bad("presets[0]"), {"name": "t", "presets": ["nope"]}),
    Case(
        "POST",
        "/controller/networks",
        (201, None, None),
        {"name": "parity", "pools": ["10.99.0.0/24"]},
        save_nwid_as="created",
    ),
    Case("GET", "/controller/pools", OK),
    Case("GET", "/controller/networks/{created}", OK),
    Case("PATCH", "/controller/networks/{created}", OK, {"mtu": 1500}),
    Case("PATCH", "/controller/networks/{created}", bad("mtu"), {"mtu": "big"}),
    Case("PATCH", "/controller/networks/{created}", bad("number"), {"number": 5}),
    Case("DELETE", "/controller/networks/{created}", bad(None, "bad_request"), {"a": 1}),
    Case("DELETE", "/controller/networks/{created}", OK),
    Case("GET", "/controller/networks/{created}", bad(None, "unknown_network", 404)),
    Case("DELETE", "/controller/networks/{created}", bad(None, "unknown_network", 404)),
    Case("GET", "/controller/networks/nothex", bad("nwid", "bad_network_id")),
    Case("GET", HOSTED + "/members", OK),
    Case("GET", HOSTED + "/paths", OK),
    Case("GET", HOSTED + "/paths", OK, params={"limit": "0"}),
    Case("GET", HOSTED + "/paths", bad("limit"), params={"limit": "x"}),
    Case("GET", HOSTED + "/paths", bad("limit"), params={"limit": "1000001"}),
    Case("GET", "/controller/networks/{other_nwid}/paths", bad(None, "unknown_network", 404)),
    Case("GET", MEMBER, OK),
    Case("GET", NEWCOMER, bad(None, "unknown_member", 404)),
    Case("GET", HOSTED + "/members/zz", bad("address", "bad_address")),
    Case("PATCH", MEMBER, OK, {"name": "r2"}),
    Case("PATCH", MEMBER, bad("authorized"), {"authorized": "yes"}),
    Case("PATCH", MEMBER, bad("force"), {"force": True}),
    Case("PATCH", MEMBER, bad("ips"), {"ips": "10.0.0.1"}),
    Case("PATCH", MEMBER, bad("name"), {"name": 5}),
    Case("PATCH", MEMBER, bad("bogus"), {"bogus": 5}),
    Case("PATCH", NEWCOMER, bad("authorized", "not_asked", 409), {"authorized": True}),
    Case("PATCH", NEWCOMER, bad("ips[0]"), {"ips": ["10.9.9.9"]}),
    Case("PATCH", NEWCOMER, OK, {"name": "pre"}),
    Case("DELETE", NEWCOMER, bad(None, "bad_request"), {"x": 1}),
    Case("DELETE", HOSTED + "/members/zz", bad("address", "bad_address"), {"x": 1}),
    Case("DELETE", NEWCOMER, OK),
    Case("DELETE", NEWCOMER, bad(None, "unknown_member", 404)),
    Case(
        "PATCH",
        "/controller/networks/{other_nwid}/members/{member}",
        bad(None, "unknown_network", 404),
        {"name": "x"},
    ),
    # what the table does not list
    Case("GET", "/no/such/thing", bad(None, "not_found", 404)),
    Case("GET", "/peers/{peer}/nothing", bad(None, "not_found", 404)),
]


def wrong_method_cases() -> list[Case]:
    """For every path of the table, a method it does not list: 405 on both sides."""
    cases = []
    for path in sorted({route.path for route in schema.ROUTES}):
        listed = {r.method for r in schema.ROUTES if r.path == path}
        method = next(m for m in ("PUT", "DELETE", "PATCH", "POST", "GET") if m not in listed)
        template = path.replace("{address}", "{peer}")
        cases.append(Case(method, template, bad(None, "method_not_allowed", 405)))
    return cases


ALL_CASES = CASES + wrong_method_cases()


@dataclass
class Side:
    """One API to replay the cases against, and its values for the placeholders."""

    name: str
    client: httpx.AsyncClient
    values: dict[str, str]

    async def answer(self, case: Case) -> tuple[int, str | None, str | None]:
        url = case.path.format(**self.values)
        kwargs: dict[str, Any] = {"params": case.params}
        if isinstance(case.body, bytes):
            kwargs["content"] = case.body
        elif case.body is not NOBODY:
            kwargs["json"] = _fill(case.body, self.values)
        if case.stream:
            async with self.client.stream(case.method, url, **kwargs) as response:
                return response.status_code, None, None
        response = await self.client.request(case.method, url, **kwargs)
        if case.save_nwid_as is not None and response.is_success:
            self.values[case.save_nwid_as] = response.json()["nwid"]
        if case.path == "/roots" and case.method == "GET" and response.is_success:
            # {root_line}: the first root's line of a roots file, for PUT /roots
            root = response.json()["roots"][0]
            self.values["root_line"] = " ".join([root["identity"], *root["endpoints"]])
        if response.is_success:
            return response.status_code, None, None
        body = response.json() if case.method != "HEAD" else {}
        return response.status_code, body.get("error"), body.get("field")


def _fill(body: object, values: dict[str, str]) -> object:
    """A body with "{root_line}" and the like replaced by this side's value."""
    if isinstance(body, dict):
        return {key: _fill(value, values) for key, value in body.items()}
    if isinstance(body, str) and body.startswith("{") and body.endswith("}"):
        return values.get(body[1:-1], body)
    return body


@pytest.fixture
def real(target: Target) -> Side:
    """test_api_hostile's leaf: its controller hosts a network the leaf has joined, with
    the root as its peer and as a (named, never asked) member of that network."""
    other = target.daemon.identity.address_text + "00abcd"
    values = {"peer": target.address, "member": target.address, "nwid": target.nwid}
    return Side("daemon", target.api, {**values, "other_nwid": other})


@pytest.fixture
async def fake() -> AsyncIterator[Side]:
    """The NAS story: it knows the laptop, hosts `home` (the laptop a member) and joined it."""
    node = FakeNode.sample()
    transport = node.transport()
    async with httpx.AsyncClient(transport=transport, base_url="http://overlayd") as client:
        values = {
            "peer": LAPTOP,
            "member": LAPTOP,
            "nwid": HOME_NWID,
            "other_nwid": NODE + "00abcd",
        }
        yield Side("fake", client, values)
    node.end_streams()


async def test_the_fake_refuses_what_the_daemon_refuses(real: Side, fake: Side) -> None:
    """Every case answers the expected status, error code and field on both sides."""
    for side in (real, fake):
        side.values["stranger"] = STRANGER
    wrong: list[str] = []
    for case in ALL_CASES:
        got = {side.name: await side.answer(case) for side in (real, fake)}
        if set(got.values()) != {case.expect}:
            wrong.append(
                f"{case.method} {case.path} {case.body!r:.60}: expected {case.expect}, {got}"
            )
    assert not wrong, "\n".join(wrong)


def test_every_route_is_served_by_both_and_replayed_here() -> None:
    """The daemon's app and the fake bind a handler to every route of the table and to
    nothing else, and the cases above reach every route with a success."""
    app = build_app(types.SimpleNamespace(live_roots=None), "unused")  # type: ignore[arg-type]
    served = {
        (r.method, r.resource.canonical)
        for r in app.router.routes()
        if r.resource is not None and r.method != "HEAD"
    }
    assert served == {(route.method, route.path) for route in schema.ROUTES}
    assert set(fake_http.handlers.by_name) == schema.ROUTE_NAMES
    succeeded = set()
    for case in CASES:
        method = "GET" if case.method == "HEAD" else case.method
        if case.expect[0] < 300:
            route = next(
                r for r in schema.ROUTES if r.method == method and r.match(case.path) is not None
            )
            succeeded.add(route.name)
    assert succeeded == schema.ROUTE_NAMES


def test_the_schema_reads_numbers_as_the_protocol_does() -> None:
    """schema/checks.py keeps its own is_int and ascii_int (the console may not import
    proto): they must answer as proto/netfields.py's do."""
    values: list[object] = [0, 1, -1, True, False, 1.0, "1", None, 2**70]
    assert [schema.is_int(v) for v in values] == [netfields.is_int(v) for v in values]
    texts = ["", "0", "007", "123456789", "1234567890", "²", "١٤٠٠", "-1", " 1", "1e3", "9" * 5000]
    for digits in (1, 9, 18):
        assert [schema.ascii_int(s, digits) for s in texts] == [
            netfields.ascii_int(s, digits) for s in texts
        ]


def test_the_schema_limits_are_the_protocols() -> None:
    """The schema states the limits the console may import; proto/netfields.py and the
    controller check configs and settings with their own copies, held equal here."""
    assert (schema.MIN_MTU, schema.MAX_MTU) == (netfields.MIN_MTU, netfields.MAX_MTU)
    assert (schema.MIN_MSS, schema.MAX_MSS) == (netfields.MIN_MSS, netfields.MAX_FIXED_MSS)
    assert schema.MAX_NAME_CHARS == netfields.MAX_NAME_CHARS
    assert schema.MAX_MULTICAST_LIMIT == netfields.MAX_MULTICAST_LIMIT
    assert schema.NETWORK_FIELDS == NETWORK_SETTINGS


def test_a_server_without_a_handler_for_every_route_does_not_start() -> None:
    """RouteHandlers binds only the table's names, each once, and check() names a route
    left without a handler, so a route added to the table fails both servers at once."""
    handlers = schema.RouteHandlers[object]("test")
    handlers.handles("status")(print)
    for name in ("status", "no_such_route"):
        with pytest.raises(ValueError, match=name):
            handlers.handles(name)
    with pytest.raises(RuntimeError, match="'peers'"):
        handlers.check()
    for name in schema.ROUTE_NAMES - {"status"}:
        handlers.handles(name)(print)
    handlers.check()
