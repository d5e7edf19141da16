"""Members from the controller's side, end to end on loopback with MemoryTaps: who may be
approved, removal (addresses freed, the member cut off, a new request if it asks again),
the controller joining its own network, and pools shared between hosted networks."""

from __future__ import annotations

from typing import Any

import httpx

from overlay_core.io.tap import tap_name
from overlay_core.lab.loopback import LoopbackOverlay
from tests.core.frames import icmp_echo_v4

from .netstory import Story, network_state, story, unix_client, until, wait_state


async def member_of(s: Story, address: str) -> httpx.Response:
    return await s.api["ctl"].get(f"/controller/networks/{s.nwid}/members/{address}")


async def test_approving_a_node_that_never_asked_is_409_unless_forced(
    tap_overlay: LoopbackOverlay,
) -> None:
    """PATCH authorized=true for an address that never asked (the README's a1b2c3d4e5) is
    409 with the one line to act on and leaves nothing behind, not even the name sent with
    it; `force` pre-authorizes it without a pool address; force alone is a 400."""
    async with story(tap_overlay) as s:
        path = f"/controller/networks/{s.nwid}/members/a1b2c3d4e5"
        refused = await s.api["ctl"].patch(path, json={"authorized": True, "name": "typo"})
        assert refused.status_code == 409, refused.text
        assert refused.json() == {
            "error": "not_asked",
            "reason": (
                f"a1b2c3d4e5 has not asked to join {s.nwid} yet: run `ztui join {s.nwid}` "
                'on it first, or pre-authorize it with `ztui approve --force` (API: "force": '
                "true)"
            ),
            "field": "authorized",
        }
        assert (await member_of(s, "a1b2c3d4e5")).status_code == 404
        alone = await s.api["ctl"].patch(path, json={"force": True})
        assert alone.status_code == 400 and alone.json()["field"] == "force"
        forced = await s.api["ctl"].patch(path, json={"authorized": True, "force": True})
        assert forced.status_code == 200, forced.text
        member = forced.json()
        assert (member["state"], member["ips"], member["last_seen"]) == ("authorized", [], None)
        events = [e["message"] for e in s.ctl.recent_events() if e["kind"] == "member"]
        assert events[-1] == (
            f"a1b2c3d4e5 in home ({s.nwid}): pre-authorized: it gets an address when it first asks"
        )


async def test_removing_a_member_frees_its_address_and_cuts_it_off(
    tap_overlay: LoopbackOverlay,
) -> None:
    """With a two-address pool held by A and B, a third member cannot be approved; after
    DELETE of A, A is told within 5 s (ACCESS_DENIED, B's members list shrinks, B refuses
    A's frames), the third member takes A's address, and A, still asking, is a new
    pending member with a new join request."""
    async with story(tap_overlay) as s:
        ctl = s.api["ctl"]
        pool = "10.147.17.9-10.147.17.10"
        patched = await ctl.patch(f"/controller/networks/{s.nwid}", json={"pools": [pool]})
        assert patched.status_code == 200, patched.text
        await s.approve_both()
        mac_a, mac_b = await s.mac("a"), await s.mac("b")
        await s.deliver("a", "b", icmp_echo_v4(mac_a, mac_b), 2)
        a_text = s.a.identity.address_text
        a_ips = (await member_of(s, a_text)).json()["ips"]
        c = await tap_overlay.add_leaf("c")
        await tap_overlay.wait_online()
        async with unix_client(c) as c_api:
            assert (await c_api.post(f"/networks/{s.nwid}")).status_code == 201
            await wait_state(c_api, s.nwid, "ACCESS_DENIED", 5)
            c_path = f"/controller/networks/{s.nwid}/members/{c.identity.address_text}"
            full = await ctl.patch(c_path, json={"authorized": True})
            assert full.status_code == 400 and "all pools are full" in full.json()["reason"]

            asked_before = len(_requests_for(s, a_text))
            deleted = await ctl.delete(f"/controller/networks/{s.nwid}/members/{a_text}")
            assert deleted.json() == {"deleted": f"{s.nwid}/{a_text}"}
            await s.cut_off("a", "b", icmp_echo_v4(mac_a, mac_b))

            taken = await ctl.patch(c_path, json={"authorized": True})
            assert taken.status_code == 200 and taken.json()["ips"] == a_ips

            async def pending_again() -> bool:
                response = await member_of(s, a_text)
                return response.status_code == 200 and response.json()["state"] == "pending"

            await until(pending_again, 15, "A asking again, pending")
            again = (await member_of(s, a_text)).json()
            assert again["ips"] == [] and again["last_authorized"] is None
            assert len(_requests_for(s, a_text)) == asked_before + 1  # announced, once


def _requests_for(s: Story, address: str) -> list[dict[str, Any]]:
    return [
        dict(e)
        for e in s.ctl.recent_events()
        if e["kind"] == "member_request" and e["address"] == address
    ]


async def test_the_controller_joins_its_own_network_at_once(tap_overlay: LoopbackOverlay) -> None:
    """The controller's node joining a private network it hosts is OK with a pool address
    within 2 s, nobody approving anything: no join request, a `member` event instead."""
    async with story(tap_overlay) as s:
        assert (await s.api["ctl"].post(f"/networks/{s.nwid}")).status_code == 201
        ok = await wait_state(s.api["ctl"], s.nwid, "OK", 2)
        [address] = ok["addresses"]
        assert address.startswith("10.147.17.") and address.endswith("/24")
        me = s.ctl.identity.address_text
        member = (await member_of(s, me)).json()
        assert member["state"] == "authorized" and f"{member['ips'][0]}/24" == address
        kinds = [(e["kind"], e["address"]) for e in s.ctl.recent_events()]
        assert ("member_request", me) not in kinds and ("member", me) in kinds


async def test_pools_default_to_a_free_one_and_overlaps_are_warned(
    tap_overlay: LoopbackOverlay,
) -> None:
    """POST without pools takes GET /controller/pools' suggestion (the story's network has
    10.147.17.0/24, so 10.147.18.0/24); one given an overlapping pool is created with a
    warning naming the other, which then warns back."""
    async with story(tap_overlay) as s:
        ctl = s.api["ctl"]
        pools = (await ctl.get("/controller/pools")).json()
        assert pools == {
            "suggested": "10.147.18.0/24",
            "used": [{"nwid": s.nwid, "name": "home", "kind": "pool", "range": "10.147.17.0/24"}],
        }
        lab = await ctl.post("/controller/networks", json={"name": "lab"})
        assert lab.status_code == 201 and lab.json()["pools"] == ["10.147.18.0/24"]
        assert lab.json()["warnings"] == []
        again = await ctl.post(
            "/controller/networks", json={"name": "again", "pools": ["10.147.17.0/24"]}
        )
        assert again.status_code == 201, again.text
        assert again.json()["warnings"] == [
            f"pool 10.147.17.0/24 overlaps pool 10.147.17.0/24 of network home ({s.nwid}): "
            "a member of both would get clashing addresses"
        ]
        home = (await ctl.get(f"/controller/networks/{s.nwid}")).json()
        assert home["warnings"] == [
            f"pool 10.147.17.0/24 overlaps pool 10.147.17.0/24 of network again "
            f"({again.json()['nwid']}): a member of both would get clashing addresses"
        ]
        # An on-link route over all of 10.147/16 leaves no suggestion free: a network
        # created without pools then says it has none, and one created with `pools: []`
        # (asked for none) does not.
        wide = await ctl.post(
            "/controller/networks", json={"name": "wide", "pools": [], "routes": ["10.147.0.0/16"]}
        )
        assert wide.status_code == 201, wide.text
        full = (await ctl.post("/controller/networks", json={"name": "full"})).json()
        assert full["pools"] == [] and any("no free pool" in w for w in full["warnings"])
        bare = (await ctl.post("/controller/networks", json={"name": "bare", "pools": []})).json()
        assert bare["pools"] == [] and not any("no free pool" in w for w in bare["warnings"])


async def test_a_second_network_on_the_same_subnet_is_refused_on_the_member(
    tap_overlay: LoopbackOverlay,
) -> None:
    """The defect's member: in two networks with the same pool it got the same address on
    two TAPs. Now the second network's port is left without addresses and is PORT_ERROR,
    naming the first network and its device; the first keeps working, and a third
    network on a free pool comes up OK beside it."""
    async with story(tap_overlay) as s:
        ctl = s.api["ctl"]
        twin = (
            await ctl.post(
                "/controller/networks", json={"name": "twin", "pools": ["10.147.17.0/24"]}
            )
        ).json()["nwid"]
        apart = (await ctl.post("/controller/networks", json={"name": "apart"})).json()["nwid"]
        first = await _join_ok(ctl, s.nwid)
        assert (await ctl.post(f"/networks/{twin}")).status_code == 201
        clash = await wait_state(ctl, twin, "PORT_ERROR", 2)
        device = tap_name(int(s.nwid, 16))
        assert first["device"] == device
        assert clash["port_error"] == (
            f"{first['addresses'][0]} clashes with {first['addresses'][0]} on {device} "
            f"(network {s.nwid}), so no address is set here: change one network's pool or "
            "leave one of them"
        )
        taps = tap_overlay.taps["ctl"]
        twin_tap = taps[tap_name(int(twin, 16))]
        assert twin_tap.settings is None or twin_tap.settings.addresses == ()
        assert taps[device].settings is not None
        assert taps[device].settings.addresses == tuple(first["addresses"])
        third = await _join_ok(ctl, apart)
        assert third["addresses"][0].startswith("10.147.18.")
        assert (await network_state(ctl, s.nwid))["state"] == "OK"


async def _join_ok(api: httpx.AsyncClient, nwid: str) -> dict[str, Any]:
    assert (await api.post(f"/networks/{nwid}")).status_code == 201
    return await wait_state(api, nwid, "OK", 2)
