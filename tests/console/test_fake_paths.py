"""The fake daemon's GET /controller/networks/{nwid}/paths answers what the real one
would: both build it with overlay_core/api/pathview.py, so what is checked here is the
fake's records: the same members and reports, converted as the daemon converts its
SQLite rows (api/paths.py), must give the same JSON, for the five-member story, a big
network, a link that changes, time that passes and a limit. And the words the console
and the fake use are the real ones (schema's PATH_LINKS and PATH_REASONS against
proto/report.py and api/pathview.py)."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest

from console.client import ApiError
from console.screens.paths_cells import GLYPHS, REASON_WORDS
from console.testing.fake import FakeNode
from console.testing.fake_data import HOME_NWID, LAPTOP, NODE, OFFSITE, PHONE
from console.testing.fakenode import paths as fake_paths
from console.transport import Request
from overlay_core.api import paths as real_paths
from overlay_core.api import pathview
from overlay_core.api.schema import PATH_LINKS, PATH_REASONS, PathsJson
from overlay_core.controller.records import MemberRecord, NetworkRecord
from overlay_core.controller.reports import StoredReport
from overlay_core.proto import netcheck, report
from overlay_core.proto.netconf import MssPolicy

from .shapes import assert_shape


async def fetch(node: FakeNode, nwid: str, limit: int | None = None) -> PathsJson:
    async with node.client() as client:
        return await client.paths(nwid, limit)


def real_view(node: FakeNode, nwid: str, limit: int | None = None) -> Any:
    """overlay_core's own paths_view on the fake's members and reports."""
    record = node.state.hosted[nwid]
    network = NetworkRecord(
        nwid=int(nwid, 16),
        number=record["number"],
        name=record["name"],
        private=record["private"],
        mtu=record["mtu"],
        mss=MssPolicy("auto"),
        broadcast=True,
        multicast_limit=32,
        pools=tuple(record["pools"]),
        routes=(),
        rules=(),
        presets=(),
        revision=record["revision"],
        created=record["created"],
        updated=record["updated"],
    )
    listed = list(node.state.members[nwid].values())
    # A MemberJson has the columns of a members row, under the same names.
    members = [MemberRecord.from_row(cast(Any, m), tuple(m["ips"])) for m in listed]
    held = fake_paths.reports_of(node, nwid, [m for m in listed if m["authorized"]])
    reports = {
        int(a, 16): StoredReport(int(a, 16), stored.received, stored.report)
        for a, stored in held.items()
    }
    view = real_paths.paths_view(network, members, reports, node.now, limit)
    return json.loads(json.dumps(view))  # as it travels


async def test_the_story_is_what_the_real_controller_would_say() -> None:
    node = FakeNode.paths_sample()
    view = await fetch(node, HOME_NWID)
    assert_shape(view, PathsJson)
    assert view == real_view(node, HOME_NWID)
    by_address = {m["address"]: m for m in view["members"]}
    assert len(by_address) == 5 and view["pairs_total"] == 10
    assert by_address[PHONE]["flag"] == "symmetric_nat"
    assert by_address[OFFSITE]["flag"] == "tcp_only" and by_address[OFFSITE]["tcp_fallback"]
    assert [m for m in view["members"] if m["flag"]] == [by_address[PHONE], by_address[OFFSITE]]
    nas_laptop = next(p for p in view["pairs"] if {p["a"], p["b"]} == {NODE, LAPTOP})
    assert nas_laptop["link"] == "DIRECT"
    assert nas_laptop["a_sees"] is not None and nas_laptop["a_sees"]["kind"] == "lan"


async def test_a_big_network_and_a_limit_match_the_real_view() -> None:
    node = FakeNode.mesh(members=40, seed=3)
    nwid = fake_paths.MESH_NWID
    whole = await fetch(node, nwid)
    assert whole == real_view(node, nwid)
    assert whole["pairs_total"] == 40 * 39 // 2
    assert set(whole["links"]) >= {"DIRECT", "RELAY", "TCP"}  # a mix, not one word
    worst = await fetch(node, nwid, 25)
    assert worst == real_view(node, nwid, 25)
    assert worst["pairs"] == whole["pairs"][:25] and worst["pairs_total"] == whole["pairs_total"]


async def test_this_nodes_own_report_follows_its_peers() -> None:
    """The NAS's side comes from its peer list at each read: a link change shows at once."""
    node = FakeNode.paths_sample()
    node.set_link(LAPTOP, "RELAY")
    view = await fetch(node, HOME_NWID)
    assert view == real_view(node, HOME_NWID)
    pair = next(p for p in view["pairs"] if {p["a"], p["b"]} == {NODE, LAPTOP})
    nas_side = pair["a_sees"] if pair["a"] == NODE else pair["b_sees"]
    assert nas_side is not None and nas_side["link"] == "RELAY"
    assert pair["link"] == "RELAY"


async def test_online_members_report_again_as_time_passes() -> None:
    node = FakeNode.mesh(members=30, seed=1)
    nwid = fake_paths.MESH_NWID
    before = await fetch(node, nwid)
    node.tick(fake_paths.REPORT_EVERY_S + 1)
    after = await fetch(node, nwid)
    assert after == real_view(node, nwid)
    for old, new in zip(before["members"], after["members"], strict=True):
        if old["online"]:
            assert new["online"] and new["report_age_s"] is not None
            assert new["report_age_s"] <= fake_paths.REPORT_EVERY_S
        elif old["report_age_s"] is not None:  # gone: its last report only ages
            assert new["report_age_s"] == pytest.approx(old["report_age_s"] + 31, abs=0.1)


async def test_a_deauthorized_member_leaves_the_view_and_its_report_is_forgotten() -> None:
    node = FakeNode.paths_sample()
    async with node.client() as client:
        await client.update_member(HOME_NWID, PHONE, {"authorized": False})
        view = await client.paths(HOME_NWID)
        assert PHONE not in {m["address"] for m in view["members"]}
        assert all(PHONE not in (p["a"], p["b"]) for p in view["pairs"])
        await client.update_member(HOME_NWID, PHONE, {"authorized": True})
        back = await client.paths(HOME_NWID)
    phone = next(m for m in back["members"] if m["address"] == PHONE)
    assert phone["report_age_s"] is None  # a new report is due; the old one is gone


@pytest.mark.parametrize("limit", ["abc", "-1", "1000001", "1" * 10])
async def test_a_bad_limit_is_refused_as_the_daemon_does(limit: str) -> None:
    node = FakeNode.paths_sample()
    async with node.client() as client:
        with pytest.raises(ApiError) as caught:
            path = f"/controller/networks/{HOME_NWID}/paths"
            await client.send(Request("GET", path, params={"limit": limit}))
    assert caught.value.status == 400 and caught.value.error == "validation"
    assert "limit: must be 0-1000000" in str(caught.value)


async def test_a_network_not_hosted_here_is_404() -> None:
    node = FakeNode.paths_sample()
    with pytest.raises(ApiError) as caught:
        await fetch(node, "9f3e1b5c7a000042")
    assert caught.value.status == 404 and caught.value.error == "unknown_network"


def test_the_words_are_the_real_ones() -> None:
    """schema's PATH_LINKS and PATH_REASONS, which console/ may import, are the words
    proto/report.py and api/pathview.py use, and every reason a pair can carry has a
    sentence; pathview's copies of the report interval and netcheck's symmetric word (it
    imports only the schema) are the real ones; the console has a glyph for every link
    and a few words for every reason."""
    assert set(PATH_REASONS) == {*report.REASONS[1:], "symmetric_nat", "no_contact", "offline"}
    side_only = {"symmetric_local", "symmetric_peer"}  # a pair says symmetric_nat instead
    assert set(pathview.REASON_TEXT) == set(PATH_REASONS) - side_only
    assert pathview.MAPPING_DEPENDENT == netcheck.MAPPING_DEPENDENT
    assert pathview.REPORT_EVERY_S == report.REPORT_EVERY_S
    assert fake_paths.SYMMETRIC == netcheck.MAPPING_DEPENDENT
    assert fake_paths.CONE == netcheck.MAPPING_INDEPENDENT
    assert fake_paths.UNKNOWN_NAT == netcheck.MAPPING_UNKNOWN
    assert set(GLYPHS) == set(PATH_LINKS)
    assert set(PATH_REASONS) <= set(REASON_WORDS)
