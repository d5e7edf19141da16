"""Hostile requests against a real daemon's control API: every bad request is a 4xx JSON
error with a reason, never a 500 with a traceback in the log, and the daemon keeps serving.

The probe that found these: deeply nested JSON (RecursionError in json.loads), an MSS of
"fixed:²" (str.isdigit accepts superscripts, int() then refuses them) and, on the TCP API,
a bearer token with non-ASCII characters (hmac.compare_digest raises on non-ASCII str),
each answered 500 with a logged traceback, the last one before authentication.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from overlay_core.api.http import MAX_BODY_BYTES
from overlay_core.api.server import build_app
from overlay_core.io.daemon import Daemon
from overlay_core.lab.loopback import LoopbackOverlay

from .test_daemon_api import unix_client

MUTATING = ("POST", "PUT", "PATCH", "DELETE")


@dataclass
class Target:
    """A leaf whose controller hosts a network the leaf has joined, with the root as both a
    known peer and a member of that network: every path parameter has a real value, so a
    malformed body reaches the handler's own checks instead of stopping at a 404."""

    daemon: Daemon
    api: httpx.AsyncClient
    nwid: str
    address: str


@pytest.fixture
async def target(
    tap_overlay: LoopbackOverlay, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[Target]:
    root = await tap_overlay.add_root()
    leaf = await tap_overlay.add_leaf("leaf", api_tcp_port=0)
    await tap_overlay.wait_online()
    address = root.identity.address_text
    async with unix_client(leaf) as api:
        created = await api.post("/controller/networks", json={"name": "lab"})
        assert created.status_code == 201, created.text
        nwid = created.json()["nwid"]
        joined = await api.post(f"/networks/{nwid}")
        assert joined.status_code == 201, joined.text
        member = await api.patch(
            f"/controller/networks/{nwid}/members/{address}", json={"name": "r"}
        )
        assert member.status_code == 200, member.text
        caplog.clear()
        caplog.set_level(logging.DEBUG)
        yield Target(leaf, api, nwid, address)


def assert_4xx_with_reason(response: httpx.Response, what: str) -> None:
    assert 400 <= response.status_code < 500, f"{what}: {response.status_code} {response.text}"
    assert response.headers["content-type"].startswith("application/json"), what
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error", "reason", "field"}, what
    assert body["field"] is None or isinstance(body["field"], str), what
    assert isinstance(body["error"], str) and body["error"], what
    assert isinstance(body["reason"], str) and body["reason"], what
    assert "Traceback" not in response.text, what


def assert_no_traceback_logged(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [f"{r.name}: {r.getMessage()}" for r in bad]


async def assert_still_serving(api: httpx.AsyncClient) -> None:
    response = await api.get("/status")
    assert response.status_code == 200 and response.json()["state"] == "ONLINE"


NESTED_ARRAYS = b"[" * 20_000 + b"]" * 20_000  # 40 kB, far past the recursion limit
NESTED_OBJECTS = b'{"a":' * 5_000 + b"1" + b"}" * 5_000


async def test_deeply_nested_json_is_400_not_a_recursion_error(
    target: Target, caplog: pytest.LogCaptureFixture
) -> None:
    """JSON nested past Python's recursion limit (well inside the body size limit) is a
    400 "nested too deeply", on a settings route and on echo alike."""
    for path in (f"/networks/{target.nwid}", f"/peers/{target.address}/echo"):
        for body in (NESTED_ARRAYS, NESTED_OBJECTS):
            response = await target.api.post(path, content=body)
            assert_4xx_with_reason(response, path)
            assert response.status_code == 400
            assert "nested too deeply" in response.json()["reason"]
    assert_no_traceback_logged(caplog)
    await assert_still_serving(target.api)


async def test_unicode_digit_mss_is_a_validation_error(
    target: Target, caplog: pytest.LogCaptureFixture
) -> None:
    """An MSS of "fixed:²", "fixed:١٣٦٠" or 5,000 digits is not a number to us: 400
    validation naming mss, on join (POST) and settings (PATCH) of a joined network and on
    the controller's network."""
    routes = [
        ("POST", f"/networks/{target.nwid}"),
        ("PATCH", f"/networks/{target.nwid}"),
        ("PATCH", f"/controller/networks/{target.nwid}"),
    ]
    for method, path in routes:
        for mss in ("fixed:²", "fixed:١٣٦٠", "²", "fixed:" + "9" * 5000):
            response = await target.api.request(method, path, json={"mss": mss})
            assert_4xx_with_reason(response, f"{method} {path} {mss[:12]}")
            assert response.status_code == 400
            assert response.json()["field"] == "mss"
    assert_no_traceback_logged(caplog)
    await assert_still_serving(target.api)


async def raw_http(port: int, request: bytes) -> tuple[int, bytes]:
    """One request written as raw bytes (httpx would refuse a non-ASCII header); the
    status code and body of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", head)
    assert match is not None, answer[:200]
    return int(match.group(1)), body


async def test_non_ascii_bearer_token_is_401(
    target: Target, caplog: pytest.LogCaptureFixture
) -> None:
    """On the TCP API a token with non-ASCII bytes (UTF-8 or not) is simply wrong: 401
    with the usual reason, before any handler runs; the right token still works."""
    port = target.daemon.api_tcp_port
    assert port is not None
    for token in ("é".encode(), b"\xff\xfe", "²".encode() + target.daemon.authtoken.encode()):
        request = (
            b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            b"Authorization: Bearer " + token + b"\r\n\r\n"
        )
        status, body = await raw_http(port, request)
        assert status == 401, (token, body)
        assert json.loads(body)["error"] == "unauthorized"
    assert_no_traceback_logged(caplog)
    good = {"Authorization": f"Bearer {target.daemon.authtoken}"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        assert (await client.get("/status", headers=good)).status_code == 200


# --------------------------------------------------------------------------- the sweep

BAD_BODIES: list[bytes] = [
    b"{",
    b"not json",
    b"\xff\xfe{}",
    NESTED_ARRAYS,
    NESTED_OBJECTS,
    b"[]",
    b"[1, 2]",
    b'"text"',
    b"42",
    b"null",
    b"true",
    b'{"bogus": 1}',
    b'{"mtu": 1' + b"0" * 5000 + b"}",  # past int()'s 4300-digit limit
    b'{"mtu": 1e999}',
    b'{"mtu": NaN}',
    b'{"timeout_s": 1e999}',
    b'{"timeout_s": NaN}',
    b'{"timeout_s": "soon"}',
    b'{"mtu": "1400"}',
    b'{"mtu": "\xd9\xa1\xd9\xa4\xd9\xa0\xd9\xa0"}',  # Arabic-Indic digits, as text
    b'{"mss": "fixed:\xc2\xb2"}',
    b'{"mss": "fixed:' + b"9" * 5000 + b'"}',
    b'{"mss": [1360]}',
    b'{"authorized": "yes"}',
    b'{"allow_managed": 1}',
    b'{"name": 5, "ips": "10.0.0.1"}',
    b'{"name": "n", "number": 99999999999999999999999999}',
    b'{"name": "n", "number": "\xc2\xb2"}',
    b'{"name": "n", "pools": "10.0.0.0/24"}',
    b'{"name": "n", "pools": [[[["10.0.0.0/24"]]]]}',
    b'{"name": "n", "routes": [1, 2, 3]}',
    b'{"name": "n", "rules": [{"x": 1}]}',
    b'{"name": "n", "rules": ' + b"[" * 900 + b"]" * 900 + b"}",
    b'{"name": "n", "presets": [5]}',
    b'{"name": "n", "multicast_limit": 1e999}',
    b'{"name": "' + b"x" * (MAX_BODY_BYTES + 10) + b'"}',  # past the body limit: 413
]

BAD_PARAMS: dict[str, list[str]] = {
    "nwid": [
        "zz",
        "0" * 17,
        "\uff10" * 16,  # fullwidth zeros
        "\u00b2" * 16,
        "%C2%B2" * 16,
        "x" * 3000,
    ],
    "address": [
        "zz",
        "0000000000",  # reserved
        "ff00000000",  # reserved: a fragment marker on the wire
        "\uff11" * 10,  # fullwidth ones
        "\u00b2" * 10,
        "x" * 3000,
    ],
}


def mutating_routes(daemon: Daemon) -> list[tuple[str, str]]:
    """(method, path template) of every mutating route, from the server's own table."""
    routes = build_app(daemon, "unused").router.routes()
    found = sorted({(r.method, r.resource.canonical) for r in routes if r.resource is not None})
    return [(method, path) for method, path in found if method in MUTATING]


async def test_every_mutating_route_answers_malformed_requests_with_a_4xx_reason(
    target: Target, caplog: pytest.LogCaptureFixture
) -> None:
    """Every mutating route in the route table, with real path parameters and each body in
    BAD_BODIES (bad JSON, non-objects, unknown fields, wrong types, huge numbers, unicode
    digits, nesting, oversize), then with each malformed path parameter, answers a 4xx JSON
    error with a reason; nothing is logged as an error and nothing was changed."""
    routes = mutating_routes(target.daemon)
    assert len(routes) >= 10, routes  # the table was read, not an empty list
    values = {"nwid": target.nwid, "address": target.address}
    for method, template in routes:
        path = template.format(**values)
        for body in BAD_BODIES:
            headers = {"Content-Type": "application/json"}
            response = await target.api.request(method, path, content=body, headers=headers)
            assert_4xx_with_reason(response, f"{method} {path} {body[:40]!r}")
        for name, bad_values in BAD_PARAMS.items():
            if "{" + name + "}" not in template:
                continue
            for bad in bad_values:
                path = template.format(**{**values, name: bad})
                response = await target.api.request(method, path)
                assert_4xx_with_reason(response, f"{method} {path[:80]}")
    assert_no_traceback_logged(caplog)
    await assert_still_serving(target.api)
    # Nothing slipped through: the network, the membership and the member are all there.
    assert (await target.api.get(f"/networks/{target.nwid}")).status_code == 200
    hosted = await target.api.get(f"/controller/networks/{target.nwid}")
    assert hosted.status_code == 200 and hosted.json()["name"] == "lab"
    member = f"/controller/networks/{target.nwid}/members/{target.address}"
    assert (await target.api.get(member)).json()["name"] == "r"


async def test_paths_view_refuses_a_bad_limit_and_an_unknown_network(
    target: Target, caplog: pytest.LogCaptureFixture
) -> None:
    """GET /controller/networks/{nwid}/paths: ?limit= is 0-1,000,000 plain digits (400
    naming limit otherwise); a network this controller does not host is 404."""
    path = f"/controller/networks/{target.nwid}/paths"
    for bad in ("-1", "x", "²", "9" * 20, "1000001", ""):
        response = await target.api.get(path, params={"limit": bad})
        assert_4xx_with_reason(response, f"limit={bad!r}")
        assert response.status_code == 400 and response.json()["field"] == "limit"
    other = target.nwid[:10] + "00abcd"
    missing = await target.api.get(f"/controller/networks/{other}/paths")
    assert missing.status_code == 404 and missing.json()["error"] == "unknown_network"
    view = (await target.api.get(path, params={"limit": "0"})).json()
    assert view["pairs"] == [] and view["nwid"] == target.nwid
    assert_no_traceback_logged(caplog)


async def test_a_member_of_its_own_controllers_network_reports_and_can_stop(
    target: Target,
) -> None:
    """The controller's own node reports like any member (handed over in-process), and
    `report: false` in its settings stops that; the setting is refused if not a flag."""
    path = f"/controller/networks/{target.nwid}/paths"
    me = target.daemon.identity.address_text

    async def my_row() -> dict[str, object]:
        view = (await target.api.get(path)).json()
        return next(m for m in view["members"] if m["address"] == me)

    for _ in range(50):
        if (await my_row())["report_age_s"] is not None:
            break
        await asyncio.sleep(0.1)
    row = await my_row()
    assert row["report_age_s"] is not None and row["online"] is True, row
    metrics = (await target.api.get("/metrics")).text
    assert re.search(r'ztui_io_counter_total\{name="reports_kept"\} [1-9]', metrics), metrics
    bad = await target.api.patch(f"/networks/{target.nwid}", json={"report": "no"})
    assert bad.status_code == 400 and bad.json()["field"] == "report"
    off = await target.api.patch(f"/networks/{target.nwid}", json={"report": False})
    assert off.status_code == 200 and off.json()["settings"]["report"] is False
