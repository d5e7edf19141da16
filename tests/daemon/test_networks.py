"""Virtual networks end to end on loopback: a controller, members joining a private network,
approval, frames between MemoryTaps, deauthorization, restarts. No root: MemoryTap everywhere."""

from __future__ import annotations

import ipaddress
import json
import time

import pytest

from overlay_core.io.daemon import StartupError
from overlay_core.io.tap import TapError, tap_name
from overlay_core.lab.loopback import LoopbackOverlay
from tests.core.frames import arp_request, dhcp_discover, icmp_echo_v4

from .netstory import POOL, network_state, story, unix_client, until, wait_state


async def test_join_private_network_waits_for_approval_then_gets_an_address(
    tap_overlay: LoopbackOverlay,
) -> None:
    """A member of a private network sees ACCESS_DENIED until the admin approves it; the
    approval is pushed, so within 2 s it is OK with an address from the pool, and its TAP
    carries that address and the network's MTU 2800."""
    async with story(tap_overlay) as s:
        denied = await wait_state(s.api["a"], s.nwid, "ACCESS_DENIED", 5)
        assert denied["device"] == tap_name(int(s.nwid, 16))
        members = (await s.api["ctl"].get(f"/controller/networks/{s.nwid}/members")).json()
        assert {m["address"] for m in members} == {
            s.a.identity.address_text,
            s.b.identity.address_text,
        }
        assert all(m["state"] == "pending" for m in members)

        started = time.monotonic()
        await s.approve(s.a)
        ok = await wait_state(s.api["a"], s.nwid, "OK", 2)
        assert time.monotonic() - started < 2
        assert ok["name"] == "home" and ok["private"] is True and ok["mtu"] == 2800
        [address] = ok["addresses"]
        assert ipaddress.ip_interface(address) in ipaddress.ip_network(POOL)
        assert address.endswith("/24")

        async def configured() -> bool:
            settings = s.tap("a").settings
            return settings is not None and settings.addresses == (address,)

        await until(configured, 1, "MemoryTap configured")
        assert s.tap("a").mtu == 2800
        assert (await network_state(s.api["b"], s.nwid))["state"] == "ACCESS_DENIED"


async def test_frames_cross_between_approved_members(tap_overlay: LoopbackOverlay) -> None:
    """A broadcast ARP request injected into A's TAP comes out of B's, and so does a
    unicast frame to B's MAC; the TAP counters count them."""
    async with story(tap_overlay) as s:
        await s.approve_both()
        mac_a, mac_b = await s.mac("a"), await s.mac("b")
        await s.deliver("a", "b", arp_request(mac_a, "10.147.17.1", "10.147.17.2"), 2)
        await s.deliver("a", "b", icmp_echo_v4(mac_a, mac_b), 2)
        data = await network_state(s.api["b"], s.nwid)
        assert data["counters"]["rx_frames"] >= 2
        assert data["port_counters"]["frames_written"] >= 2


async def test_deauthorized_member_is_cut_off_and_readmitted(tap_overlay: LoopbackOverlay) -> None:
    """Deauthorizing B reaches everyone within 5 s: B is ACCESS_DENIED, A's config drops B,
    and B's frames no longer arrive at A. Approving B again restores it all."""
    async with story(tap_overlay) as s:
        await s.approve_both()
        mac_a, mac_b = await s.mac("a"), await s.mac("b")
        await s.deliver("b", "a", icmp_echo_v4(mac_b, mac_a), 2)

        await s.approve(s.b, authorized=False)
        frame = icmp_echo_v4(mac_b, mac_a)
        await s.cut_off("b", "a", frame)
        member = (
            await s.api["ctl"].get(
                f"/controller/networks/{s.nwid}/members/{s.b.identity.address_text}"
            )
        ).json()
        assert member["state"] == "deauthorized" and member["ips"]

        await s.approve(s.b)
        await wait_state(s.api["b"], s.nwid, "OK", 2)
        await s.deliver("b", "a", frame, 3)


async def test_controller_restart_keeps_networks_members_and_approvals(
    tap_overlay: LoopbackOverlay,
) -> None:
    """The controller's SQLite store survives a restart with the same home: the network,
    its members, their approvals and addresses; a member re-asking is let straight in."""
    async with story(tap_overlay) as s:
        await s.approve_both()
        before = (await s.api["ctl"].get(f"/controller/networks/{s.nwid}/members")).json()
        await s.api["ctl"].aclose()
        port = s.ctl.udp_port
        await tap_overlay.stop("ctl")
        ctl = await tap_overlay.add_leaf("ctl", port=port)  # as overlayd restarts: same port
        async with unix_client(ctl) as api:
            networks = (await api.get("/controller/networks")).json()
            assert [n["nwid"] for n in networks] == [s.nwid]
            assert networks[0]["members"] == {"authorized": 2, "pending": 0, "deauthorized": 0}
            after = (await api.get(f"/controller/networks/{s.nwid}/members")).json()
        assert [(m["address"], m["state"], m["ips"]) for m in after] == [
            (m["address"], m["state"], m["ips"]) for m in before
        ]
        # A leaves and joins again: the restarted controller answers from the database.
        assert (await s.api["a"].delete(f"/networks/{s.nwid}")).status_code == 200
        assert (await s.api["a"].post(f"/networks/{s.nwid}")).status_code == 201
        ok = await wait_state(s.api["a"], s.nwid, "OK", 10)
        assert ok["addresses"] == [
            f"{ip}/24"
            for m in before
            if m["address"] == s.a.identity.address_text
            for ip in m["ips"]
        ]


async def test_settings_patch_validation_names_field_and_rule(
    tap_overlay: LoopbackOverlay,
) -> None:
    """PATCH /networks/{nwid} checks every field: a bad value is a 400 naming the field and
    its rule, and changes nothing; a good one reaches the TAP (MTU) and networks.json."""
    async with story(tap_overlay) as s:
        api, path = s.api["a"], f"/networks/{s.nwid}"
        cases = [
            ({"mtu": 100}, "mtu", "mtu: must be 1280-9000"),
            ({"mtu": "1400"}, "mtu", "mtu: must be 1280-9000"),
            ({"mss": 100}, "mss", 'mss: must be "off", "auto" or a number 536-8960'),
            ({"mss": "sometimes"}, "mss", None),
            ({"allow_global": "yes"}, "allow_global", "allow_global: must be true or false"),
            ({"colour": "blue"}, "colour", None),
        ]
        for body, field, reason in cases:
            response = await api.patch(path, json=body)
            assert response.status_code == 400, (body, response.text)
            error = response.json()
            assert error["error"] == "validation" and error["field"] == field
            assert error["reason"].startswith(f"{field}: ")
            if reason is not None:
                assert error["reason"] == reason
        assert (await network_state(api, s.nwid))["settings"]["mtu"] is None

        response = await api.patch(path, json={"mtu": 1400, "mss": 1360, "allow_global": True})
        assert response.status_code == 200, response.text
        data = response.json()
        assert data["mtu"] == 1400 and data["mss"] == "fixed:1360"
        assert data["settings"]["allow_global"] is True

        async def mtu_applied() -> bool:
            return s.tap("a").mtu == 1400

        await until(mtu_applied, 1, "MTU 1400 on the TAP")
        saved = json.loads(s.a.home.networks_path.read_text())["networks"][s.nwid]
        assert saved["mtu"] == 1400 and saved["mss"] == "fixed:1360"
        assert (await api.patch(path, json={"mtu": None})).json()["mtu"] == 2800


async def test_leave_closes_the_tap_and_forgets_the_network(
    tap_overlay: LoopbackOverlay,
) -> None:
    """DELETE /networks/{nwid} closes the TAP, drops the network from GET /networks and
    from networks.json; a second leave is a 404."""
    async with story(tap_overlay) as s:
        await wait_state(s.api["a"], s.nwid, "ACCESS_DENIED", 5)
        tap = s.tap("a")
        response = await s.api["a"].delete(f"/networks/{s.nwid}")
        assert response.status_code == 200 and response.json() == {"nwid": s.nwid, "left": True}

        async def closed() -> bool:
            return tap.closed

        await until(closed, 1, "TAP closed")
        assert (await s.api["a"].get("/networks")).json() == []
        assert (await s.api["a"].get(f"/networks/{s.nwid}")).status_code == 404
        assert json.loads(s.a.home.networks_path.read_text()) == {"networks": {}}
        again = await s.api["a"].delete(f"/networks/{s.nwid}")
        assert again.status_code == 404 and again.json()["error"] == "not_joined"


async def test_joined_networks_persist_across_a_restart(tap_overlay: LoopbackOverlay) -> None:
    """networks.json keeps joined networks and their settings; a restarted daemon joins
    them again at start, opening a fresh TAP, before anyone asks."""
    await tap_overlay.add_root()
    leaf = await tap_overlay.add_leaf("leaf")
    nwid = "0123456789000001"
    async with unix_client(leaf) as api:
        response = await api.post(f"/networks/{nwid}", json={"allow_default": True, "mtu": 1500})
        assert response.status_code == 201, response.text
    saved = json.loads(leaf.home.networks_path.read_text())
    assert saved["networks"][nwid]["allow_default"] is True
    await tap_overlay.stop("leaf")
    assert tap_overlay.taps["leaf"].get(tap_name(int(nwid, 16))) is None  # closed at stop

    leaf = await tap_overlay.add_leaf("leaf")
    async with unix_client(leaf) as api:
        data = await network_state(api, nwid)
    assert data["settings"]["allow_default"] is True and data["mtu"] == 1500

    async def reopened() -> bool:
        return tap_name(int(nwid, 16)) in tap_overlay.taps["leaf"]

    await until(reopened, 1, "TAP reopened")


async def test_tap_failure_is_port_error_with_the_reason(tap_overlay: LoopbackOverlay) -> None:
    """When the TAP cannot be created (no root, say) the network is PORT_ERROR and says why
    in one line, instead of pretending to wait for a config."""
    await tap_overlay.add_root()
    leaf = await tap_overlay.add_leaf("leaf")
    tap_overlay.taps["leaf"].open_error = TapError(
        "creating a TAP device needs root or CAP_NET_ADMIN"
    )
    nwid = "0123456789000002"
    async with unix_client(leaf) as api:
        await api.post(f"/networks/{nwid}")
        data = await wait_state(api, nwid, "PORT_ERROR", 2)
    assert data["port_error"] == "creating a TAP device needs root or CAP_NET_ADMIN"
    assert data["device"] is None


async def test_network_api_errors_are_json_with_reasons(tap_overlay: LoopbackOverlay) -> None:
    """Malformed ids are 400 with the exact rule; unknown networks and members are 404;
    controller settings are validated naming the field."""
    await tap_overlay.add_root()
    leaf = await tap_overlay.add_leaf("leaf")
    async with unix_client(leaf) as api:
        for method, path in (
            ("GET", "/networks/nothex"),
            ("POST", "/networks/123"),
            ("PATCH", "/networks/zz23456789abcdef"),
            ("GET", "/controller/networks/nothex/members"),
        ):
            response = await api.request(method, path)
            assert response.status_code == 400, (method, path)
            assert response.json() == {
                "error": "bad_network_id",
                "reason": "a network id is 16 hex digits",
                "field": "nwid",
            }
        assert (await api.get("/networks/0123456789abcdef")).json()["error"] == "not_joined"
        unknown = await api.get("/controller/networks/0123456789abcdef")
        assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_network"

        created = await api.post("/controller/networks", json={"name": "lab", "mss": 1300})
        assert created.status_code == 201, created.text
        assert created.json()["mss"] == "fixed:1300" and created.json()["private"] is True
        nwid = created.json()["nwid"]
        assert nwid.startswith(leaf.identity.address_text)
        member = await api.get(f"/controller/networks/{nwid}/members/0123456789")
        assert member.status_code == 404 and member.json()["error"] == "unknown_member"
        bad_address = await api.get(f"/controller/networks/{nwid}/members/xyz")
        assert bad_address.status_code == 400 and bad_address.json()["error"] == "bad_address"

        for body, field in (
            ({"name": "x", "mtu": 100}, "mtu"),
            ({"name": "x", "pools": ["not-a-pool"]}, "pools[0]"),
            ({"name": "x", "pools": "10.0.0.0/24"}, "pools"),
            ({"name": "x", "presets": ["block-everything"]}, None),
            ({"mtu": 1500}, "name"),
            ({"name": "x", "flavour": 1}, "flavour"),
        ):
            response = await api.post("/controller/networks", json=body)
            assert response.status_code == 400, (body, response.text)
            error = response.json()
            assert error["error"] == "validation"
            if field is not None:
                assert error["field"] == field, error
        patch = await api.patch(f"/controller/networks/{nwid}", json={"mtu": 99999})
        assert patch.status_code == 400 and patch.json()["field"] == "mtu"
        not_json = await api.post("/controller/networks", content=b"{nope")
        assert not_json.status_code == 400 and not_json.json()["error"] == "bad_request"


async def test_metrics_count_network_frames_and_rule_drops(tap_overlay: LoopbackOverlay) -> None:
    """/metrics has per-network counters and per-rule drop counters: a DHCP discover into
    a network with the block-dhcp preset is counted against that rule."""
    async with story(tap_overlay) as s:
        response = await s.api["ctl"].patch(
            f"/controller/networks/{s.nwid}", json={"presets": ["block-dhcp"]}
        )
        assert response.status_code == 200, response.text
        await s.approve_both()

        async def has_rules() -> bool:
            data = await network_state(s.api["a"], s.nwid)
            return bool(data["rule_drops"])

        await until(has_rules, 2, "A has the preset's rules")
        s.tap("a").inject(dhcp_discover(await s.mac("a")))
        data = await network_state(s.api["a"], s.nwid)
        assert sum(r["drops"] for r in data["rule_drops"] if r["rule"] == "block-dhcp") == 1
        text = (await s.api["a"].get("/metrics")).text
        assert f'ztui_network_state{{nwid="{s.nwid}",name="home",state="OK"}} 1' in text
        assert f'ztui_network_rule_drops_total{{nwid="{s.nwid}",rule="block-dhcp"' in text
        assert f'ztui_network_counter_total{{nwid="{s.nwid}",name="drop_rule"}} 1' in text
        assert f'ztui_tap_frames_total{{nwid="{s.nwid}",direction="from_host"}} 1' in text


async def test_a_bad_networks_json_stops_startup_with_one_line(
    tap_overlay: LoopbackOverlay,
) -> None:
    """A hand-edited networks.json that breaks a rule stops overlayd at start with one line
    naming the file, the network and the field, rather than joining with a guess."""
    home = tap_overlay.base_dir / "leaf"
    home.mkdir()
    (home / "networks.json").write_text(json.dumps({"networks": {"0123456789000001": {"mtu": 5}}}))
    with pytest.raises(StartupError) as caught:
        await tap_overlay.add_leaf("leaf")
    assert str(caught.value) == (
        f"{home / 'networks.json'}: 0123456789000001: mtu: must be 1280-9000"
    )
    (home / "networks.json").write_text(json.dumps({"networks": {"nothex": {}}}))
    with pytest.raises(StartupError, match="a network id is 16 hex digits"):
        await tap_overlay.add_leaf("leaf")
