"""AsyncApiClient against real overlayd daemons on loopback: the calls the console makes,
the event stream, and every way of failing as one line (down, 400 with field, 404, 401)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from console.api import AsyncApiClient
from console.connection import ApiError
from overlay_core.api import schema
from overlay_core.io.daemon import Daemon
from overlay_core.lab.loopback import LoopbackOverlay

from .shapes import assert_shape


@pytest.fixture
async def net(short_tmp: Path) -> AsyncIterator[LoopbackOverlay]:
    async with LoopbackOverlay(short_tmp, memory_taps=True) as overlay:
        await overlay.add_root()
        await overlay.add_leaf("nas", api_tcp_port=0)
        await overlay.add_leaf("laptop")
        await overlay.wait_online()
        yield overlay


def client_for(daemon: Daemon, api: str | None = None, token: str | None = None) -> AsyncApiClient:
    return AsyncApiClient(home=str(daemon.config.home), api=api, token=token)


async def test_node_calls_against_a_real_daemon(net: LoopbackOverlay) -> None:
    """status, peers, peer, echo and metrics answer in the schema's shapes over the socket,
    and endpoint names the socket."""
    nas, laptop = net.daemons["nas"], net.daemons["laptop"]
    async with client_for(nas) as client:
        assert client.endpoint == f"unix:{nas.control_socket_path}"
        status = await client.status()
        assert_shape(status, schema.StatusJson)
        assert status["address"] == nas.identity.address_text and status["state"] == "ONLINE"
        echo = await client.echo(laptop.identity.address_text, timeout_s=3)
        assert_shape(echo, schema.EchoJson)
        peers = await client.peers()
        for peer in peers:
            assert_shape(peer, schema.PeerJson)
        assert_shape(await client.peer(peers[0]["address"]), schema.PeerJson)
        root = next(p["address"] for p in peers if p["role"] == "ROOT")
        assert (await client.retry_direct(root))["address"] == root
        assert (await client.probe_mtu(root))["address"] == root
        assert "ztui_node_info" in await client.metrics()


async def test_network_calls_against_a_real_daemon(net: LoopbackOverlay) -> None:
    """The controller and member calls: create, update, join (pending member), approve,
    rename, set, leave, delete; every answer in the schema's shape."""
    nas = net.daemons["nas"]
    async with client_for(nas) as client:
        created = await client.create_network({"name": "home", "pools": ["10.147.17.0/24"]})
        assert_shape(created, schema.ControllerNetworkJson)
        nwid = created["nwid"]
        assert (await client.update_network(nwid, {"mtu": 1500}))["mtu"] == 1500
        assert [n["nwid"] for n in await client.controller_networks()] == [nwid]
        assert_shape(await client.controller_network(nwid), schema.ControllerNetworkJson)
        joined = await client.join(nwid)
        assert_shape(joined, schema.NetworkJson)
        me = nas.identity.address_text
        for _ in range(100):
            members = await client.members(nwid)
            if members:
                break
            await asyncio.sleep(0.05)
        assert [m["address"] for m in members] == [me]
        approved = await client.update_member(nwid, me, {"authorized": True, "name": "nas"})
        assert_shape(approved, schema.MemberJson)
        assert approved["state"] == "authorized" and approved["ips"]
        assert (await client.member(nwid, me))["name"] == "nas"
        changed = await client.set_network(nwid, {"mtu": 1400})
        assert changed["settings"]["mtu"] == 1400
        assert [n["nwid"] for n in await client.networks()] == [nwid]
        assert_shape(await client.network(nwid), schema.NetworkJson)
        assert await client.leave(nwid) == {"nwid": nwid, "left": True}
        assert await client.delete_member(nwid, me) == {"deleted": f"{nwid}/{me}"}
        assert await client.delete_network(nwid) == {"deleted": nwid}


async def test_events_from_a_real_daemon(net: LoopbackOverlay) -> None:
    """events(since) replays what the daemon buffered after since, then live events, as
    EventJson; when the daemon stops the stream ends with ApiError stream_ended."""
    nas = net.daemons["nas"]
    first = nas.events.publish("tcp", "one")
    second = nas.events.publish("tcp", "two")
    async with client_for(nas) as client:
        stream = client.events(since=first["id"])
        assert await anext(stream) == second
        created = await client.create_network({"name": "lab"})
        event = await anext(stream)
        while event["kind"] != "controller":
            event = await anext(stream)
        assert_shape(event, schema.EventJson)
        assert event["nwid"] == created["nwid"] and event["message"].startswith("created network")
        pending = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.05)
        await net.stop("nas")
        with pytest.raises(ApiError) as caught:
            while True:
                await pending
                pending = asyncio.ensure_future(anext(stream))
        assert caught.value.error == "stream_ended"
        with pytest.raises(ApiError, match="overlayd is not running"):
            await anext(client.events(since=second["id"]))


async def test_errors_from_a_real_daemon(net: LoopbackOverlay) -> None:
    """A rule broken is 400 "validation" with the field and the daemon's one line; a
    network not joined is 404; a bad since is 400; a stopped daemon is "not running" with
    no status, naming the socket and how to start it."""
    nas = net.daemons["nas"]
    async with client_for(nas) as client:
        with pytest.raises(ApiError) as caught:
            await client.create_network({"name": "x", "mtu": 100})
        error = caught.value
        assert (error.status, error.error, error.field) == (400, "validation", "mtu")
        assert str(error) == error.reason == "mtu: must be 1280-9000"
        with pytest.raises(ApiError) as caught:
            await client.network("0000000001000001")
        assert (caught.value.status, caught.value.error) == (404, "not_joined")
        with pytest.raises(ApiError) as caught:
            await anext(client.events(since=-1))
        assert caught.value.status == 400
        await net.stop("nas")
        with pytest.raises(ApiError) as caught:
            await client.status()
    message = str(caught.value)
    assert caught.value.status is None and "\n" not in message
    assert message == (
        f"overlayd is not running (no socket at {nas.control_socket_path}): start it with "
        f"`overlayd --home {nas.config.home}` or `systemctl start overlayd`"
    )


async def test_tcp_api_uses_the_token(net: LoopbackOverlay) -> None:
    """Over --api http://... the client sends the home's authtoken; a wrong token is a 401
    whose line says what to do."""
    nas = net.daemons["nas"]
    url = f"http://127.0.0.1:{nas.api_tcp_port}"
    async with client_for(nas, api=url) as client:
        assert client.endpoint == url
        assert (await client.status())["address"] == nas.identity.address_text
    async with client_for(nas, api=url, token="wrong") as client:
        with pytest.raises(ApiError, match="refused the API token: pass --token") as caught:
            await client.status()
    assert caught.value.status == 401


def test_bad_api_is_refused_at_once() -> None:
    """--api must be unix:PATH or http://; anything else fails before any request."""
    with pytest.raises(ApiError, match="expected unix:PATH or http://HOST:PORT"):
        AsyncApiClient(api="ftp://x")
