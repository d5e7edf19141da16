"""The control API of a real Daemon, over its UNIX socket and its TCP loopback port."""

from __future__ import annotations

import stat
from collections.abc import AsyncIterator

import httpx
import pytest

from overlay_core.io.daemon import Daemon
from overlay_core.lab.loopback import LoopbackOverlay


def unix_client(daemon: Daemon) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(uds=str(daemon.control_socket_path))
    return httpx.AsyncClient(transport=transport, base_url="http://overlayd", timeout=10)


@pytest.fixture
async def leaf(overlay: LoopbackOverlay) -> Daemon:
    await overlay.add_root()
    leaf = await overlay.add_leaf("leaf", api_tcp_port=0)
    await overlay.wait_online()
    return leaf


@pytest.fixture
async def api(leaf: Daemon) -> AsyncIterator[httpx.AsyncClient]:
    async with unix_client(leaf) as client:
        yield client


def assert_json_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "reason", "field"}, body  # field: None when no one field
    assert body["error"] == error
    assert isinstance(body["reason"], str) and body["reason"]
    assert "Traceback" not in response.text


async def test_control_socket_is_group_writable_only(leaf: Daemon) -> None:
    """control.sock is mode 0660: the owner and its group may talk to the daemon, others not."""
    mode = leaf.control_socket_path.stat().st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o660


async def test_status_answers_over_the_unix_socket(leaf: Daemon, api: httpx.AsyncClient) -> None:
    """GET /status needs no token on the socket and describes this node as an online leaf."""
    response = await api.get("/status")
    assert response.status_code == 200
    status = response.json()
    assert status["address"] == leaf.identity.address_text
    assert status["role"] == "LEAF"
    assert status["state"] == "ONLINE"
    assert status["roots_reachable"] == status["roots_total"] == 1


async def test_malformed_address_is_400_with_reason(api: httpx.AsyncClient) -> None:
    """A bad address in the path is the caller's mistake: 400 and why, as JSON."""
    response = await api.get("/peers/nothex")
    assert_json_error(response, 400, "bad_address")
    assert "10 hex digits" in response.json()["reason"]
    assert response.json()["field"] == "address"


async def test_unknown_peer_is_404(api: httpx.AsyncClient) -> None:
    """A well-formed address nobody has heard of is a 404, not an empty 200."""
    assert_json_error(await api.get("/peers/0123456789"), 404, "unknown_peer")


async def test_unknown_route_and_wrong_method_are_json(api: httpx.AsyncClient) -> None:
    """Even the router's own errors come back as {"error", "reason", "field"} JSON, with no
    field to blame."""
    for response, status, error in (
        (await api.get("/no/such/thing"), 404, "not_found"),
        (await api.delete("/status"), 405, "method_not_allowed"),
    ):
        assert_json_error(response, status, error)
        assert response.json()["field"] is None


async def test_tcp_api_requires_the_token(leaf: Daemon) -> None:
    """On TCP loopback any local user can connect, so the bearer token is required."""
    assert leaf.api_tcp_port is not None
    base = f"http://127.0.0.1:{leaf.api_tcp_port}"
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        assert_json_error(await client.get("/status"), 401, "unauthorized")
        bad = {"Authorization": "Bearer not-the-token"}
        assert_json_error(await client.get("/status", headers=bad), 401, "unauthorized")
        good = {"Authorization": f"Bearer {leaf.authtoken}"}
        response = await client.get("/status", headers=good)
        assert response.status_code == 200
        assert response.json()["address"] == leaf.identity.address_text


async def test_peers_lists_the_root(leaf: Daemon, api: httpx.AsyncClient) -> None:
    """GET /peers shows the root with a live direct path, and /peers/{address} finds it."""
    peers = (await api.get("/peers")).json()
    roots = [p for p in peers if p["role"] == "ROOT"]
    assert len(roots) == 1 and roots[0]["link"] == "DIRECT"
    single = await api.get(f"/peers/{roots[0]['address']}")
    assert single.status_code == 200 and single.json()["address"] == roots[0]["address"]


async def test_echo_via_api_returns_rtt(overlay: LoopbackOverlay, leaf: Daemon) -> None:
    """POST /peers/{address}/echo crosses the overlay to another leaf and reports the RTT
    and the physical path the reply came back on."""
    other = await overlay.add_leaf("other")
    await overlay.wait_online()
    async with unix_client(leaf) as api:
        response = await api.post(f"/peers/{other.identity.address_text}/echo")
    assert response.status_code == 200, response.text
    echo = response.json()
    assert echo["peer"] == other.identity.address_text
    assert echo["rtt_ms"] > 0
    assert echo["link"] in ("DIRECT", "RELAY")
    assert echo["endpoint"].startswith("127.0.0.1:")


async def test_echo_to_a_node_that_went_away_times_out_with_504(
    overlay: LoopbackOverlay, api: httpx.AsyncClient
) -> None:
    """An echo that gets no answer within timeout_s is a 504 JSON error, not a hang."""
    gone = await overlay.add_leaf("gone")
    await overlay.wait_online()
    await overlay.stop("gone")
    response = await api.post(f"/peers/{gone.identity.address_text}/echo", json={"timeout_s": 0.5})
    assert_json_error(response, 504, "timeout")


async def test_echo_to_an_address_nobody_has_is_a_404(api: httpx.AsyncClient) -> None:
    """The roots say no node has the address: 404 with their answer, at once."""
    response = await api.post("/peers/0123456789/echo", json={"timeout_s": 5})
    assert_json_error(response, 404, "unknown_address")
    assert "no node 0123456789 is known to root" in response.json()["reason"]


async def test_echo_rejects_a_bad_timeout(api: httpx.AsyncClient) -> None:
    """timeout_s is validated: a string or a negative number is a 400 with the rule."""
    for body in ({"timeout_s": "soon"}, {"timeout_s": -1}, [1]):
        response = await api.post("/peers/0123456789/echo", json=body)
        assert_json_error(response, 400, "bad_request")


async def test_metrics_are_prometheus_text(leaf: Daemon, api: httpx.AsyncClient) -> None:
    """GET /metrics serves node counters, per-peer latency and link, and per-path bytes."""
    response = await api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert f'ztui_node_info{{address="{leaf.identity.address_text}"' in text
    assert 'ztui_node_state{state="ONLINE"} 1' in text
    assert "# TYPE ztui_drops_total counter" in text
    assert "ztui_peer_latency_seconds{peer=" in text
    assert 'link="DIRECT"} 1' in text
    assert 'direction="rx"}' in text
    for line in text.splitlines():
        assert line.startswith("#") or line.startswith("ztui_"), line


async def test_retry_direct_and_probe_mtu_act_on_known_peers_only(
    overlay: LoopbackOverlay, api: httpx.AsyncClient
) -> None:
    """POST /peers/{a}/retry-direct and /probe-mtu answer 202 with the peer, 404 for a
    stranger, 400 for a malformed address."""
    other = await overlay.add_leaf("other")
    await overlay.wait_online()
    root = overlay.roots[0].identity.address_text
    for action in ("retry-direct", "probe-mtu"):
        response = await api.post(f"/peers/{root}/{action}")
        assert response.status_code == 202, response.text
        assert response.json()["address"] == root
        response = await api.post(f"/peers/{other.identity.address_text}/{action}")
        assert_json_error(response, 404, "unknown_peer")  # never talked to it
        response = await api.post(f"/peers/zz/{action}")
        assert_json_error(response, 400, "bad_address")
