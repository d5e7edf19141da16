"""FakeNode through AsyncApiClient: every client method, the daemon's JSON shapes and error
answers, state changes the way overlayd makes them, events, and the driving methods."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from console.api import AsyncApiClient
from console.client import ApiClient
from console.connection import ApiError
from console.testing import fake_data as story
from console.testing.fake import FakeNode
from overlay_core.api import schema
from overlay_core.proto.effects import udp
from overlay_core.proto.path import Path

from .shapes import assert_shape


@pytest.fixture
def node() -> FakeNode:
    return FakeNode.sample()


@pytest.fixture
async def client(node: FakeNode) -> AsyncIterator[AsyncApiClient]:
    async with node.client() as client:
        yield client


async def test_sample_is_the_nas_story(client: AsyncApiClient) -> None:
    """The sample node is 8056c2e21c, ONLINE behind a cone NAT, with two DIRECT roots (one
    slower), a laptop DIRECT on two paths with the LAN one preferred, a phone RELAY behind a
    symmetric NAT, a peer over TCP and one that stopped answering; home OK with an address,
    office waiting for approval; home hosted here with three members, the phone pending."""
    status = await client.status()
    assert (status["address"], status["state"], status["peer_count"]) == (story.NODE, "ONLINE", 6)
    assert "cone" in status["nat"]
    peers = {p["address"]: p for p in await client.peers()}
    assert [peers[r]["link"] for r in (story.ROOT_A, story.ROOT_B)] == ["DIRECT", "DIRECT"]
    assert (
        peers[story.ROOT_B]["latency"]["smoothed_ms"]
        > peers[story.ROOT_A]["latency"]["smoothed_ms"]
    )
    laptop = peers[story.LAPTOP]
    assert laptop["link"] == "DIRECT" and len(laptop["paths"]) == 2
    assert [p["kind"] for p in laptop["paths"] if p["preferred"]] == ["lan"]
    phone = peers[story.PHONE]
    assert phone["link"] == "RELAY" and phone["relay_reason"] is not None
    assert any("NAT is symmetric" in d for d in phone["relay_reason"]["details"])
    assert len(phone["relay_reason"]["endpoints_learned"]) == 2
    assert peers[story.OFFSITE]["link"] == "TCP"
    desktop = peers[story.DESKTOP]
    assert desktop["link"] == "RELAY" and desktop["relay_reason"] is not None
    assert "stopped answering" in desktop["relay_reason"]["summary"]
    networks = {n["nwid"]: n for n in await client.networks()}
    assert networks[story.HOME_NWID]["state"] == "OK"
    assert networks[story.HOME_NWID]["addresses"] == ["10.147.17.1/24"]
    assert networks[story.OFFICE_NWID]["state"] == "ACCESS_DENIED"
    [home] = await client.controller_networks()
    assert home["members"] == {"authorized": 2, "pending": 1, "deauthorized": 0}
    members = await client.members(story.HOME_NWID)
    assert members[0]["address"] == story.PHONE and members[0]["state"] == "pending"


async def test_every_answer_has_the_schema_shape(client: AsyncApiClient) -> None:
    """Each read answers exactly the TypedDict of overlay_core.api.schema, nested shapes
    included, so the console cannot come to depend on a field the daemon lacks."""
    assert_shape(await client.status(), schema.StatusJson)
    for peer in await client.peers():
        assert_shape(peer, schema.PeerJson)
    assert_shape(await client.peer(story.LAPTOP), schema.PeerJson)
    assert_shape(await client.echo(story.LAPTOP), schema.EchoJson)
    for network in await client.networks():
        assert_shape(network, schema.NetworkJson)
    assert_shape(await client.network(story.HOME_NWID), schema.NetworkJson)
    assert_shape(await client.controller_network(story.HOME_NWID), schema.ControllerNetworkJson)
    for member in await client.members(story.HOME_NWID):
        assert_shape(member, schema.MemberJson)
    assert_shape(await client.member(story.HOME_NWID, story.LAPTOP), schema.MemberJson)
    assert_shape(await client.join("1111111111000001"), schema.NetworkJson)
    assert_shape(await client.leave("1111111111000001"), schema.LeftJson)
    assert_shape(await client.create_network({"name": "lab"}), schema.ControllerNetworkJson)


async def test_sample_is_deterministic() -> None:
    """Two samples, ticked alike, answer identically: snapshots are stable."""
    first, second = FakeNode.sample(), FakeNode.sample()
    for fake in (first, second):
        fake.tick(3)
        fake.set_link(story.LAPTOP, "RELAY")
    async with first.client() as a, second.client() as b:
        assert await a.peers() == await b.peers()
        assert await a.status() == await b.status()
    assert first.state.events == second.state.events


async def test_errors_have_the_daemon_shapes(client: AsyncApiClient) -> None:
    """Bad values are 400 "validation" naming the field, unknown things 404 with the
    daemon's codes, a malformed id 400 bad_network_id, a wrong method 405."""
    cases: list[tuple[Any, int, str, str | None]] = [
        (client.set_network(story.HOME_NWID, {"mtu": 100}), 400, "validation", "mtu"),
        (client.set_network(story.HOME_NWID, {"mss": 12}), 400, "validation", "mss"),
        (client.set_network(story.HOME_NWID, {"speed": 1}), 400, "validation", "speed"),
        (client.create_network({"pools": []}), 400, "validation", "name"),
        (client.update_network(story.HOME_NWID, {"mtu": "big"}), 400, "validation", "mtu"),
        (
            client.update_member(story.HOME_NWID, story.PHONE, {"ips": ["10.9.9.9"]}),
            400,
            "validation",
            "ips[0]",
        ),
        (client.network("0000000000000001"), 404, "not_joined", None),
        (client.network("nothex"), 400, "bad_network_id", "nwid"),
        (client.peer("0123456789"), 404, "unknown_peer", None),
        (client.peer("xyz"), 400, "bad_address", "address"),
        (client.controller_network("0000000001000001"), 404, "unknown_network", None),
        (client.member(story.HOME_NWID, "0123456789"), 404, "unknown_member", None),
        (client.echo("0123456789"), 404, "unknown_address", None),
        (client.leave("0000000000000001"), 404, "not_joined", None),
    ]
    for call, status, error, field in cases:
        with pytest.raises(ApiError) as caught:
            await call
        assert (caught.value.status, caught.value.error, caught.value.field) == (
            status,
            error,
            field,
        )
        assert str(caught.value) == caught.value.reason and "\n" not in str(caught.value)
    with pytest.raises(ApiError) as caught:
        await client.set_network(story.HOME_NWID, {"mtu": 100})
    assert str(caught.value) == "mtu: must be 1280-9000"
    transport = FakeNode.sample().transport()
    async with httpx.AsyncClient(transport=transport, base_url="http://overlayd") as raw:
        response = await raw.delete("/status")
    assert response.status_code == 405
    assert response.json()["reason"] == "DELETE is not allowed on /status; use GET, HEAD"


async def test_join_leave_and_settings(node: FakeNode, client: AsyncApiClient) -> None:
    """join adds a network REQUESTING_CONFIGURATION until the next tick says
    ACCESS_DENIED; a second join is the same network; settings are checked and applied
    (mtu 1280-9000, mss off|auto|536-8960); leave removes it. Each step is an event."""
    nwid = "1111111111000001"
    joined = await client.join(nwid, {"allow_global": True})
    assert joined["state"] == "REQUESTING_CONFIGURATION" and joined["settings"]["allow_global"]
    assert (await client.join(nwid))["nwid"] == nwid
    node.tick(1)
    assert (await client.network(nwid))["state"] == "ACCESS_DENIED"
    changed = await client.set_network(nwid, {"mtu": 1400, "mss": 1300})
    assert (changed["mtu"], changed["settings"]["mss"]) == (1400, "fixed:1300")
    assert (await client.set_network(nwid, {"mss": "auto"}))["mss"] == "auto"
    assert await client.leave(nwid) == {"nwid": nwid, "left": True}
    assert nwid not in {n["nwid"] for n in await client.networks()}
    messages = [e["message"] for e in node.state.events if e["nwid"] == nwid]
    assert messages == [
        f"joining {nwid}",
        f"{nwid}: REQUESTING_CONFIGURATION -> ACCESS_DENIED",
        f"left {nwid}",
    ]


async def test_controller_networks_and_members(node: FakeNode, client: AsyncApiClient) -> None:
    """create returns a new nwid under this node's address; approving the pending phone
    gives it the next pool address and is a member event; deauthorize, rename, delete;
    joining a network hosted here lets this node in at once, as its controller does."""
    created = await client.create_network({"name": "lab", "pools": ["10.5.0.0/24"], "mss": 1200})
    assert created["nwid"].startswith(story.NODE) and created["nwid"] != story.HOME_NWID
    assert created["mss"] == "fixed:1200" and created["revision"] == 1
    lab = created["nwid"]
    updated = await client.update_network(lab, {"mtu": 1500})
    assert updated["mtu"] == 1500 and updated["revision"] == 2

    approved = await client.update_member(story.HOME_NWID, story.PHONE, {"authorized": True})
    assert approved["state"] == "authorized" and approved["ips"] == ["10.147.17.3"]
    renamed = await client.update_member(story.HOME_NWID, story.PHONE, {"name": "phone"})
    assert renamed["name"] == "phone"
    deauthorized = await client.update_member(story.HOME_NWID, story.PHONE, {"authorized": False})
    assert deauthorized["state"] == "deauthorized" and deauthorized["ips"] == ["10.147.17.3"]
    assert await client.delete_member(story.HOME_NWID, story.PHONE) == {
        "deleted": f"{story.HOME_NWID}/{story.PHONE}"
    }
    member_events = [e["message"] for e in node.state.events if e["kind"] == "member"]
    assert member_events == [
        f"{story.PHONE} in home ({story.HOME_NWID}): approved: 10.147.17.3",
        f"{story.PHONE} in home ({story.HOME_NWID}): renamed to 'phone'",
        f"{story.PHONE} in home ({story.HOME_NWID}): deauthorized",
        f"{story.PHONE} in home ({story.HOME_NWID}): deleted",
    ]

    await client.join(lab)
    node.tick(1)
    mine = await client.network(lab)
    assert (mine["state"], mine["addresses"], mine["mtu"]) == ("OK", ["10.5.0.1/24"], 1500)
    assert (await client.member(lab, story.NODE))["state"] == "authorized"
    assert await client.delete_network(lab) == {"deleted": lab}
    assert (await client.network(lab))["state"] == "NOT_FOUND"
    kinds = [e["kind"] for e in node.state.events if e["nwid"] == lab]
    assert kinds[:2] == ["controller", "controller"] and "member_request" not in kinds
    assert "member" in kinds


async def test_echo_and_metrics(node: FakeNode, client: AsyncApiClient) -> None:
    """echo answers the peer's RTT and path, through a root for a relayed peer, 504 for
    one that is gone; metrics is Prometheus text about this node and its peers."""
    direct = await client.echo(story.LAPTOP)
    assert (direct["endpoint"], direct["link"], direct["relay"]) == (
        "192.168.1.23:9993",
        "DIRECT",
        None,
    )
    relayed = await client.echo(story.PHONE, timeout_s=1)
    assert relayed["relay"] == story.ROOT_A and relayed["rtt_ms"] > 0
    node.set_link(story.LAPTOP, "NONE")
    with pytest.raises(ApiError) as caught:
        await client.echo(story.LAPTOP, timeout_s=0.5)
    assert (
        caught.value.status == 504
        and str(caught.value) == f"no echo reply from {story.LAPTOP} within 0.5 s"
    )
    text = await client.metrics()
    assert f'ztui_node_info{{address="{story.NODE}"' in text
    assert f'ztui_peer_link{{peer="{story.PHONE}",link="RELAY"}} 1' in text


async def test_retry_direct_and_probe_mtu(node: FakeNode, client: AsyncApiClient) -> None:
    """Both answer the peer (202); probe_mtu marks live direct paths searching until the
    next tick; an unknown peer is 404 unknown_peer."""
    assert (await client.retry_direct(story.PHONE))["link"] == "RELAY"
    probed = await client.probe_mtu(story.LAPTOP)
    assert [p["mtu_searching"] for p in probed["paths"]] == [True, True]
    node.tick(1)
    assert not any(p["mtu_searching"] for p in (await client.peer(story.LAPTOP))["paths"])
    with pytest.raises(ApiError) as caught:
        await client.probe_mtu("0123456789")
    assert (caught.value.status, caught.value.error) == (404, "unknown_peer")


async def test_set_link_and_tick(node: FakeNode, client: AsyncApiClient) -> None:
    """set_link moves a peer (paths, preferred path, relay reason) and publishes the link
    event; tick advances the clock, counters and latency, and keeps both deterministic."""
    node.set_link(story.LAPTOP, "RELAY")
    laptop = await client.peer(story.LAPTOP)
    assert laptop["link"] == "RELAY" and laptop["preferred_path"] is None
    assert laptop["relay_reason"] is not None
    assert "192.168.1.23:9993 stopped answering" in laptop["relay_reason"]["summary"]
    assert node.state.events[-1]["message"] == f"{story.LAPTOP}: DIRECT -> RELAY"
    node.set_link(story.LAPTOP, "DIRECT")
    laptop = await client.peer(story.LAPTOP)
    assert laptop["link"] == "DIRECT" and laptop["relay_reason"] is None

    before = (await client.peer(story.LAPTOP))["counters"]["rx_bytes"]
    node.tick(2)
    after = await client.peer(story.LAPTOP)
    assert after["counters"]["rx_bytes"] == before + 240_000
    assert node.now == story.EPOCH + 2
    assert after["latency"]["smoothed_ms"] != 0.9  # it wobbles...
    assert 0.8 < after["latency"]["smoothed_ms"] < 1.0  # ...around where it was


async def test_events_replay_then_live(node: FakeNode, client: AsyncApiClient) -> None:
    """events(since) replays the buffered events after since, then waits for pushed ones;
    ids continue from the story's history."""
    got: list[schema.EventJson] = []

    async def read() -> None:
        async for event in client.events(since=10):
            got.append(event)

    reader = asyncio.create_task(read())
    await asyncio.sleep(0.01)
    pushed = node.push_event("tcp", "UDP to the roots works again: closing TCP")
    node.add_pending_member(story.HOME_NWID, "c0ffee0001")
    while len(got) < 4:
        await asyncio.sleep(0.01)
    reader.cancel()
    assert [e["id"] for e in got] == [11, 12, 13, 14]
    assert got[2] == pushed
    for event in got:
        assert_shape(event, schema.EventJson)
    assert got[3]["kind"] == "member_request" and got[3]["address"] == "c0ffee0001"
    assert (await client.member(story.HOME_NWID, "c0ffee0001"))["state"] == "pending"


async def test_down_daemon_is_not_running_until_it_comes_back(node: FakeNode) -> None:
    """go_down breaks open streams and makes every call the "not running" ApiError with no
    status; come_back restores it, and since= picks up the events pushed meanwhile."""
    async with node.client() as client:
        stream = client.events()
        first = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.01)
        node.go_down()
        with pytest.raises(ApiError) as broken:
            await first
        assert broken.value.status is None
        with pytest.raises(ApiError) as caught:
            await client.status()
        message = str(caught.value)
        assert message.startswith(
            "overlayd is not running (no socket at /var/lib/ztui/control.sock)"
        )
        assert caught.value.status is None and node.down
        missed = node.push_event("tcp", "while nobody listened")
        node.come_back()
        assert (await client.status())["state"] == "ONLINE"
        replay = client.events(since=missed["id"] - 1)
        assert await anext(replay) == missed
        await replay.aclose()


async def test_fail_with_answers_errors_or_raises(node: FakeNode, client: AsyncApiClient) -> None:
    """fail_with(int) answers that status with the daemon's error shape, for `times`
    requests and `path`s given; fail_with(exception) raises it in the transport."""
    node.fail_with(500, path="/peers", times=1)
    with pytest.raises(ApiError) as caught:
        await client.peers()
    assert caught.value.status == 500 and caught.value.error == "internal"
    assert len(await client.peers()) == 6
    node.fail_with(httpx.ReadTimeout("slow"))
    with pytest.raises(ApiError, match="did not answer in time"):
        await client.status()
    node.come_back()
    node.end_streams()


async def test_large_node_for_benchmarks() -> None:
    """large() has the requested peers and members, all in schema shape, and is seeded."""
    node = FakeNode.large(peers=300, members=120, seed=1)
    async with node.client() as client:
        peers = await client.peers()
        lab = next(n for n in await client.controller_networks() if n["name"] == "lab")
        members = await client.members(lab["nwid"])
    assert len(peers) == 300 and len(members) == 120
    assert {p["link"] for p in peers} == {"DIRECT", "RELAY", "TCP", "NONE"}
    for peer in peers[:50]:
        assert_shape(peer, schema.PeerJson)
    assert (
        FakeNode.large(peers=300, members=120, seed=1).state.peers.keys() == node.state.peers.keys()
    )


def test_sync_client_works_on_the_fake_too() -> None:
    """The ztui subcommands' ApiClient takes the same transport, for CLI tests."""
    node = FakeNode.sample()
    with ApiClient(home="/var/lib/ztui", transport=node.transport()) as client:
        assert client.status()["address"] == story.NODE
        assert client.endpoint == "unix:/var/lib/ztui/control.sock"
        node.go_down()
        with pytest.raises(ApiError, match="overlayd is not running"):
            client.peers()


@pytest.mark.parametrize("ago_s", [0, 29, 30, 120])
def test_the_fake_says_the_daemons_probe_interval(ago_s: int) -> None:
    """fake_data.direct_lost may not import proto, so it spells the intervals out: held
    here to path.probe_interval_s, what the daemon's own sentence says."""
    path = Path(udp("203.0.113.50", 9993), created=0.0)
    path.last_receive = 1000.0
    every = path.probe_interval_s(1000.0 + ago_s)
    assert story.direct_lost("203.0.113.50:9993", ago_s).endswith(f"every {every:.0f} s")
