"""Path reports: members tell their controller how they reach each other (issue 12).

Pure parts first (the signed binary format, its bounds, the controller's store), then the
whole flow over the simulated internet: members behind port-restricted NATs go DIRECT, a
member behind a symmetric NAT stays relayed and the controller's view says it is the
cause, a UDP-blocked one reaches the roots over TCP and is blamed for that; reports come
only from authorized members, at a bounded rate, and vanish with the member.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from overlay_core.api import pathview
from overlay_core.api.paths import paths_view
from overlay_core.controller import Controller, MemberRecord, NetworkRecord
from overlay_core.controller.reports import StoredReport
from overlay_core.proto.effects import Endpoint, tcp, udp
from overlay_core.proto.identity import Identity, format_address
from overlay_core.proto.netcheck import MAPPING_DEPENDENT, MAPPING_INDEPENDENT
from overlay_core.proto.report import (
    MAX_ENTRIES,
    MAX_REPORT_BYTES,
    REPORT_EVERY_S,
    PathReport,
    ReportEntry,
    endpoint_kind,
)
from overlay_core.proto.reporting import REPORT_BURST
from overlay_core.proto.vnet import NetworkSettings
from overlay_core.proto.wire import MalformedError, Reader
from overlay_core.testing.fakenet import FakeNet, Host, NatKind

MEMBER = Identity.generate()
OTHER = Identity.generate()
NWID = (MEMBER.address << 24) | 1  # any 64-bit id; the codec does not care whose


def report(
    entries: int | tuple[ReportEntry, ...] = 3,
    sequence: int = 1,
    identity: Identity = MEMBER,
    **changes: object,
) -> PathReport:
    base = PathReport(
        nwid=NWID,
        member=identity.address,
        sequence=sequence,
        uptime_s=1234,
        nat=MAPPING_INDEPENDENT,
        tcp_fallback=False,
        truncated=False,
        version="1.2.3",
        entries=(
            entries
            if isinstance(entries, tuple)
            else tuple(
                ReportEntry(0x1000000000 + i, "RELAY", "relay", "filtered", 12.3 + i)
                for i in range(entries)
            )
        ),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the format


def test_a_signed_report_reads_back_the_same() -> None:
    sent = report(
        tcp_fallback=True,
        nat=MAPPING_DEPENDENT,
        entries=(
            ReportEntry(0x1111111111, "DIRECT", "lan", "", 0.4),
            ReportEntry(0x2222222222, "TCP", "relay", "tcp_only", None),
        ),
    )
    got = PathReport.from_signed(sent.sign(MEMBER), MEMBER.public())
    assert got == sent
    assert got.to_json()["peers"][1] == {
        "address": "2222222222",
        "link": "TCP",
        "kind": "relay",
        "reason": "tcp_only",
        "latency_ms": None,
    }


def test_a_report_is_ten_bytes_a_peer_and_the_largest_fits_its_bound() -> None:
    small, big = report(entries=1).sign(MEMBER), report(entries=MAX_ENTRIES).sign(MEMBER)
    assert len(big) - len(small) == (MAX_ENTRIES - 1) * 10
    assert len(big) <= MAX_REPORT_BYTES
    with pytest.raises(ValueError, match="at most"):
        report(entries=MAX_ENTRIES + 1).sign(MEMBER)


@pytest.mark.parametrize("at", [0, 5, 30, -70, -1])
def test_a_changed_byte_fails_the_signature(at: int) -> None:
    data = bytearray(report().sign(MEMBER))
    data[at] ^= 0x01
    with pytest.raises(MalformedError):
        PathReport.from_signed(bytes(data), MEMBER.public())


def test_a_report_from_another_key_or_naming_another_member_is_refused() -> None:
    with pytest.raises(MalformedError, match="signature"):
        PathReport.from_signed(report().sign(MEMBER), OTHER.public())
    with pytest.raises(ValueError, match="signed by the member"):
        report(identity=MEMBER).sign(OTHER)


def test_oversized_input_is_refused_before_any_signature_work() -> None:
    class Counting:
        address = MEMBER.address
        checked = 0

        def verify(self, message: bytes, signature: bytes) -> bool:
            Counting.checked += 1
            return True

    with pytest.raises(MalformedError, match="at most"):
        PathReport.from_signed(bytes(MAX_REPORT_BYTES + 1), Counting())  # type: ignore[arg-type]
    assert Counting.checked == 0


def test_entries_that_disagree_with_the_count_or_repeat_are_refused() -> None:
    body = report(entries=2).body()
    lying = body[:-22] + (3).to_bytes(2, "big") + body[-20:]  # says 3, holds 2
    with pytest.raises(MalformedError, match="count"):
        PathReport.from_signed(lying + MEMBER.sign(b"ztui path report v1\x00" + lying), MEMBER)
    twice = dataclasses.replace(report(entries=1), entries=report(entries=1).entries * 2)
    with pytest.raises(MalformedError, match="twice"):
        PathReport.from_signed(twice.sign(MEMBER), MEMBER.public())


def test_codes_from_a_newer_node_read_as_the_first_word_not_a_refusal() -> None:
    body = bytearray(report(entries=1).body())
    body[-5:-2] = bytes([200, 200, 200])  # link, kind, reason
    signed = bytes(body) + MEMBER.sign(b"ztui path report v1\x00" + bytes(body))
    entry = PathReport.from_signed(signed, MEMBER.public()).entries[0]
    assert (entry.link, entry.kind, entry.reason) == ("NONE", "unknown", "")


@pytest.mark.parametrize(
    ("endpoint", "kind"),
    [
        (udp("192.168.1.20", 9993), "lan"),
        (udp("100.64.3.4", 9993), "lan"),
        (udp("198.18.1.13", 9993), "v4"),
        (udp("2001:db8::5", 9993), "v6"),
        (udp("fe80::1%eth0", 9993), "lan"),
        (udp("fd00::5", 9993), "lan"),
        (udp("::ffff:10.0.0.1", 9993), "lan"),
        (tcp("198.18.1.10", 443), "relay"),
        (None, "relay"),
    ],
)
def test_endpoint_kinds(endpoint: Endpoint | None, kind: str) -> None:
    """The report's words for path.path_kind, which knows what is a LAN address."""
    assert endpoint_kind(endpoint) == kind


# --------------------------------------------------------------------------- the store


@pytest.fixture
def controller(tmp_path: Path) -> Controller:
    ctl = Controller(Identity.generate(), tmp_path / "controller.db")
    yield ctl  # type: ignore[misc]
    ctl.close()


def _hosted(ctl: Controller, member: Identity, now: float = 100.0) -> int:
    nwid = int(ctl.create_network("home", now=now).to_json()["nwid"], 16)
    ctl.answer_request(nwid, member.public(), version="1", physical=None, now=now)
    return nwid


def test_the_controller_keeps_only_authorized_members_reports(controller: Controller) -> None:
    nwid = _hosted(controller, MEMBER)
    sent = report(nwid=nwid)
    assert controller.store_report(sent, 101.0) == "not_member"  # pending
    stranger = report(nwid=nwid, identity=OTHER, member=OTHER.address)
    assert controller.store_report(stranger, 101.0) == "not_member"  # never asked
    other_network = report(nwid=nwid + 5)
    assert controller.store_report(other_network, 101.0) == "not_member"
    controller.authorize(nwid, MEMBER.address, 102.0)
    assert controller.store_report(sent, 103.0) is None
    _, _, kept = controller.path_reports(nwid)
    assert list(kept) == [MEMBER.address]
    assert kept[MEMBER.address].received == 103.0
    assert kept[MEMBER.address].report == sent.to_json()


def test_an_older_report_never_replaces_a_newer_one_but_a_restart_is_taken_at_once(
    controller: Controller,
) -> None:
    """A replayed or reordered report (lower sequence, uptime consistent with the kept
    one) is stale; a restarted member (sequence from 1, uptime back near 0) is taken at
    once, not after a minute of showing the dead process's links."""
    nwid = _hosted(controller, MEMBER)
    controller.authorize(nwid, MEMBER.address, 100.0)
    assert controller.store_report(report(nwid=nwid, sequence=5, uptime_s=1234), 100.0) is None
    replay = report(nwid=nwid, sequence=5, uptime_s=1234)
    assert controller.store_report(replay, 102.0) == "stale"
    reordered = report(nwid=nwid, sequence=4, uptime_s=1232)
    assert controller.store_report(reordered, 103.0) == "stale"
    restarted = report(nwid=nwid, sequence=1, uptime_s=3)
    assert controller.store_report(restarted, 104.0) is None
    assert controller.path_reports(nwid)[2][MEMBER.address].report["uptime_s"] == 3
    # A lower sequence with an uptime that fits is taken once the kept one is a minute old.
    later = 104.0 + 2 * REPORT_EVERY_S + 1
    assert controller.store_report(report(nwid=nwid, sequence=1, uptime_s=70), later) is None


def test_deauthorizing_or_removing_a_member_drops_its_report(controller: Controller) -> None:
    nwid = _hosted(controller, MEMBER)
    controller.authorize(nwid, MEMBER.address, 100.0)
    controller.store_report(report(nwid=nwid), 101.0)
    controller.deauthorize(nwid, MEMBER.address, 102.0)
    assert controller.path_reports(nwid)[2] == {}
    controller.authorize(nwid, MEMBER.address, 103.0)
    controller.store_report(report(nwid=nwid, sequence=2), 104.0)
    controller.delete_member(nwid, MEMBER.address)
    assert controller.path_reports(nwid)[2] == {}


def test_reports_survive_a_restart_of_the_controller(tmp_path: Path) -> None:
    identity = Identity.generate()
    ctl = Controller(identity, tmp_path / "c.db")
    nwid = _hosted(ctl, MEMBER)
    ctl.authorize(nwid, MEMBER.address, 100.0)
    ctl.store_report(report(nwid=nwid), 101.0)
    ctl.close()
    again = Controller(identity, tmp_path / "c.db")
    try:
        assert again.path_reports(nwid)[2][MEMBER.address].report == report(nwid=nwid).to_json()
    finally:
        again.close()


# --------------------------------------------------------------------------- the whole flow


class World:
    """A controller and members behind different NATs on the simulated internet."""

    def __init__(self, tmp: Path) -> None:
        self.net = FakeNet()
        self.net.add_host("root1", root=True)
        self.net.add_host("root2", root=True)
        self.ctl = self.net.add_host("ctl")
        self.ctl.controller = Controller(self.ctl.node.identity, tmp / "controller.db")
        pr = NatKind.PORT_RESTRICTED
        self.cone1 = self.net.add_host("cone1", nat=self.net.add_nat("n1", pr))
        self.cone2 = self.net.add_host("cone2", nat=self.net.add_nat("n2", pr))
        self.sym = self.net.add_host("sym", nat=self.net.add_nat("n3", NatKind.SYMMETRIC))
        self.net.run(2)
        record = self.controller.create_network("home", pools=["10.147.17.0/24"], now=self.net.now)
        self.nwid = int(record.to_json()["nwid"], 16)

    @property
    def controller(self) -> Controller:
        assert self.ctl.controller is not None
        return self.ctl.controller

    @property
    def members(self) -> tuple[Host, ...]:
        return (self.cone1, self.cone2, self.sym)

    def join_all(self, **settings: object) -> None:
        for host in self.members:
            chosen = NetworkSettings(**settings)  # type: ignore[arg-type]
            self.net.call(host, host.node.join(self.nwid, self.net.now, chosen))
        self.net.run(2)
        for host in self.members:
            self.controller.authorize(self.nwid, host.address, self.net.now)
            self.controller.set_member(
                self.nwid, host.address, name=self.name(host), now=self.net.now
            )
        self.net.run(1)

    def name(self, host: Host) -> str:
        return next(n for n, h in self.net.hosts.items() if h is host)

    def view(self) -> dict[str, object]:
        network, members, reports = self.controller.path_reports(self.nwid)
        return dict(paths_view(network, members, reports, self.net.now))


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def _pair(view: dict[str, object], a: Host, b: Host) -> dict[str, object]:
    wanted = sorted((format_address(a.address), format_address(b.address)))
    pairs = view["pairs"]
    assert isinstance(pairs, list)
    return next(p for p in pairs if [p["a"], p["b"]] == wanted)


def test_the_controller_sees_every_pair_and_blames_the_symmetric_nat(world: World) -> None:
    world.join_all()
    # Get every pair talking: each member pings the others (the console's ping does this).
    for a in world.members:
        for b in world.members:
            if a is not b:
                world.net.call(a, a.node.echo(b.address, world.net.now)[1])
    world.net.run(40)
    view = world.view()
    assert view["pairs_total"] == 3
    direct = _pair(view, world.cone1, world.cone2)
    assert direct["link"] == "DIRECT" and direct["reason"] is None
    assert direct["a_sees"]["link"] == direct["b_sees"]["link"] == "DIRECT"  # type: ignore[index]
    for cone in (world.cone1, world.cone2):
        relayed = _pair(view, cone, world.sym)
        assert relayed["link"] == "RELAY"
        assert relayed["reason"] == "symmetric_nat"
        assert relayed["because_of"] == format_address(world.sym.address)
        assert str(relayed["why"]).startswith("sym is behind a symmetric NAT")
    members = {m["name"]: m for m in view["members"]}  # type: ignore[attr-defined]
    assert all(m["online"] for m in members.values())
    assert members["sym"]["nat"] == MAPPING_DEPENDENT
    assert members["sym"]["flag"] == "symmetric_nat"
    assert members["cone1"]["flag"] is None
    assert world.ctl.reports["kept"] >= 3


def test_a_member_reports_at_once_on_a_change_and_every_30_s_otherwise(world: World) -> None:
    world.join_all()
    world.net.run(5)
    kept = world.ctl.reports["kept"]
    world.net.run(REPORT_EVERY_S - 6)
    assert world.ctl.reports["kept"] == kept  # nothing changed: quiet
    world.net.run(10)
    assert world.ctl.reports["kept"] == kept + 3  # the heartbeat, once per member
    before = world.ctl.reports["kept"]
    world.net.call(
        world.cone1, world.cone1.node.echo(world.cone2.address, world.net.now)[1]
    )  # cone1 learns a path to cone2: a change for both
    world.net.run(3)
    assert world.ctl.reports["kept"] > before


def test_a_member_with_reporting_off_says_so_once_and_nothing_more(world: World) -> None:
    """report=no: one last report marked stopped (without peers), then silence; the view
    says "reporting off" rather than showing a member gone silent as offline; switched
    on again, it reports at once."""
    world.join_all(report=False)
    world.net.run(100)
    assert world.ctl.reports["kept"] == 3  # one each, not one per heartbeat
    kept = world.controller.path_reports(world.nwid)[2]
    assert all(r.report["stopped"] and r.report["peers"] == [] for r in kept.values())
    view = world.view()
    rows = view["members"]
    assert isinstance(rows, list)
    assert [(m["reporting"], m["online"]) for m in rows] == [(False, False)] * 3
    assert {p["link"] for p in view["pairs"]} == {"UNKNOWN"}  # type: ignore[attr-defined]
    host = world.cone1
    world.net.call(host, host.node.set_network_settings(world.nwid, NetworkSettings()))
    world.net.run(2)
    assert world.ctl.reports["kept"] == 4


def test_a_flood_of_reports_is_cut_by_the_rate_limit(world: World) -> None:
    world.join_all()
    world.net.run(3)
    sender, ctl = world.cone1, world.ctl
    signed = report(nwid=world.nwid, identity=sender.node.identity, member=sender.address)
    signed_bytes = signed.sign(sender.node.identity)
    now = world.net.now
    accepted = 0
    for _ in range(50):
        effects = ctl.node.reporter.on_report(
            ctl.node.peers[sender.address], Reader(signed_bytes), now
        )
        accepted += len(effects)
    assert accepted <= REPORT_BURST
    assert ctl.node.drops["report_rate"] >= 50 - REPORT_BURST


def test_reports_for_another_controllers_network_are_dropped_unverified(world: World) -> None:
    world.join_all()
    ctl = world.ctl
    foreign = report(nwid=0x0123456789000001, identity=world.cone1.node.identity)
    foreign = dataclasses.replace(foreign, member=world.cone1.address)
    out = ctl.node.reporter.on_report(
        ctl.node.peers[world.cone1.address], Reader(foreign.sign(world.cone1.node.identity)), 0.0
    )
    assert out == [] and ctl.node.drops["report_not_ours"] == 1


def test_a_member_cut_off_stops_appearing_in_the_view(world: World) -> None:
    world.join_all()
    world.net.run(5)
    world.controller.deauthorize(world.nwid, world.sym.address, world.net.now)
    world.net.run(5)
    view = world.view()
    names = [m["name"] for m in view["members"]]  # type: ignore[attr-defined]
    assert sorted(names) == ["cone1", "cone2"]
    assert view["pairs_total"] == 1
    assert world.sym.address not in world.controller.path_reports(world.nwid)[2]


def test_members_know_each_others_names_and_ips(world: World) -> None:
    world.join_all()
    world.net.call(world.cone1, world.cone1.node.echo(world.cone2.address, world.net.now)[1])
    world.net.run(3)
    peers = {p.address: p for p in world.cone1.node.snapshot(world.net.now).peers}
    names = peers[format_address(world.cone2.address)].names
    assert [(n.name, n.network) for n in names] == [("cone2", "home")]
    assert names[0].ips and names[0].ips[0].startswith("10.147.17.")


# --------------------------------------------------------------------------- the view's flags


def _stored(address: int, peers: dict[int, str], **report: object) -> StoredReport:
    entries = [
        {
            "address": format_address(peer),
            "link": link,
            "kind": "relay" if link != "DIRECT" else "v4",
            "reason": None if link == "DIRECT" else "filtered",
            "latency_ms": 5.0,
        }
        for peer, link in peers.items()
    ]
    body = {"nat": MAPPING_INDEPENDENT, "tcp_fallback": False, "version": "1", "peers": entries}
    body.update(report)
    return StoredReport(address, 100.0, body)


def _members(*addresses: int) -> list[MemberRecord]:
    return [
        MemberRecord(
            nwid=NWID,
            address=a,
            authorized=True,
            name=f"m{i}",
            active_bridge=False,
            ips=(),
            created=0.0,
            last_seen=1.0,
            last_authorized=1.0,
            last_deauthorized=None,
            version="1",
            physical_address=None,
        )
        for i, a in enumerate(addresses)
    ]


def test_only_the_member_that_causes_relaying_is_flagged_not_its_victims(
    controller: Controller,
) -> None:
    """Four members: two cones, one behind a symmetric NAT, one with UDP blocked. Each cone
    is relayed with 2 of its 3 peers, but through no fault of its own: only the symmetric
    and the blocked member are flagged, each with its own reason."""
    cone1, cone2, sym, blocked = 0x1000000001, 0x1000000002, 0x1000000003, 0x1000000004
    everyone = (cone1, cone2, sym, blocked)

    def links(me: int, direct: set[int]) -> dict[int, str]:
        return {p: "DIRECT" if p in direct else "RELAY" for p in everyone if p != me}

    reports = {
        cone1: _stored(cone1, links(cone1, {cone2})),
        cone2: _stored(cone2, links(cone2, {cone1})),
        sym: _stored(sym, links(sym, set()), nat=MAPPING_DEPENDENT),
        blocked: _stored(blocked, links(blocked, set()), tcp_fallback=True),
    }
    network = controller.create_network("home", now=1.0)
    view = paths_view(network, _members(*everyone), reports, 110.0)
    flags = {int(m["address"], 16): m["flag"] for m in view["members"]}
    assert flags == {cone1: None, cone2: None, sym: "symmetric_nat", blocked: "tcp_only"}
    assert view["members"][2]["flag_why"] == (
        "m2: not DIRECT with 3 of 3: is behind a symmetric NAT (a new port per destination); "
        "forward a UDP port to it, or relay is the best there is"
    )
    # A pair blamed on nobody (silent drops) can be anyone's doing: flagged with it.
    quiet = {
        cone1: _stored(cone1, links(cone1, set())),
        cone2: _stored(cone2, links(cone2, set())),
    }
    view = paths_view(network, _members(cone1, cone2), quiet, 110.0)
    assert [m["flag"] for m in view["members"]] == ["filtered", "filtered"]
    assert view["pairs"][0]["why"] == "probes get no answer: a firewall drops them"


def test_offline_members_pairs_come_after_live_trouble_and_are_blamed_on_them(
    controller: Controller,
) -> None:
    """A member whose last report is stale is offline: its pairs go after every pair of
    two online members (a big network's --limit shows live trouble, not hundreds of dead
    pairs), and they are blamed on it, not on the member that cannot reach it."""
    up1, up2, gone = 0x1000000001, 0x1000000002, 0x1000000003
    reports = {
        up1: _stored(up1, {up2: "RELAY", gone: "NONE"}),
        up2: _stored(up2, {up1: "RELAY", gone: "NONE"}),
        gone: dataclasses.replace(_stored(gone, {up1: "RELAY", up2: "RELAY"}), received=0.0),
    }
    network = controller.create_network("home", now=1.0)
    view = paths_view(network, _members(up1, up2, gone), reports, 110.0)
    first, *rest = view["pairs"]
    assert (first["link"], first["reason"]) == ("RELAY", "filtered")
    assert {p["reason"] for p in rest} == {"offline"}
    assert {p["because_of"] for p in rest} == {format_address(gone)}
    assert rest[0]["why"] == "m2 is offline (no report for over 75 s)"
    rows = {m["address"]: m for m in view["members"]}
    assert rows[format_address(gone)]["online"] is False
    assert rows[format_address(gone)]["reporting"] is True
    assert rows[format_address(up1)]["flag"] == "filtered"  # its live pair, not the dead ones


def test_no_contact_blames_nobody() -> None:
    """One side has never heard from the other: either could be the one not trying."""
    view = pathview.paths_view(
        "8056c2e21c000001",
        "home",
        [pathview.Member("aaaaaaaaaa", "a"), pathview.Member("bbbbbbbbbb", "b")],
        {
            "aaaaaaaaaa": pathview.Report(
                100.0, {"peers": [{"address": "bbbbbbbbbb", "link": "NONE"}]}
            ),
            "bbbbbbbbbb": pathview.Report(100.0, {"peers": []}),
        },
        110.0,
    )
    pair = view["pairs"][0]
    assert (pair["link"], pair["reason"], pair["because_of"]) == ("NONE", "no_contact", None)
    assert pair["why"] == "one side has not reached the other yet"


def test_a_member_of_many_networks_of_one_controller_is_heard_in_all(world: World) -> None:
    """Ten networks of one controller: the member's heartbeats fall due in the same tick,
    and the rate limit (per sender and network) cuts none of them."""
    nwids = [world.nwid]
    for i in range(9):
        record = world.controller.create_network(f"n{i}", now=world.net.now)
        nwids.append(int(record.to_json()["nwid"], 16))
    host = world.cone1
    for nwid in nwids[1:]:
        world.net.call(host, host.node.join(nwid, world.net.now))
    world.join_all()  # joins nwids[0] and approves there
    for nwid in nwids[1:]:
        world.controller.authorize(nwid, host.address, world.net.now)
    world.net.run(2 * REPORT_EVERY_S + 5)
    assert world.ctl.node.drops["report_rate"] == 0
    for nwid in nwids:
        kept = world.controller.path_reports(nwid)[2]
        assert host.address in kept and world.net.now - kept[host.address].received < 35


def test_with_reporting_off_a_member_says_so_again_after_leaving_and_joining(
    world: World,
) -> None:
    """report=no: the stopped report goes out once per membership: after a leave and a
    join (the controller forgot it with the member's deauthorization) it goes out again."""
    world.join_all(report=False)
    world.net.run(5)
    host = world.cone1
    before = world.ctl.reports["kept"]
    world.controller.deauthorize(world.nwid, host.address, world.net.now)
    world.net.run(5)
    world.controller.authorize(world.nwid, host.address, world.net.now)
    world.net.run(15)
    assert world.ctl.reports["kept"] == before + 1
    kept = world.controller.path_reports(world.nwid)[2][host.address]
    assert kept.report["stopped"] is True


def test_a_limited_view_is_the_head_of_the_full_one_and_counts_all(
    controller: Controller,
) -> None:
    """?limit=N builds only the N worst pairs (heapq), which must be the full view's first
    N; counts, links and members cover every pair either way."""
    everyone = [0x1000000000 + i for i in range(12)]
    reports = {
        a: _stored(a, {b: ("RELAY" if (a + b) % 3 == 0 else "DIRECT") for b in everyone if b != a})
        for a in everyone
    }
    network = controller.create_network("home", now=1.0)
    full = paths_view(network, _members(*everyone), reports, 110.0)
    head = paths_view(network, _members(*everyone), reports, 110.0, limit=7)
    assert head["pairs"] == full["pairs"][:7]
    assert (head["pairs_total"], head["links"], head["members"]) == (
        full["pairs_total"],
        full["links"],
        full["members"],
    )
    assert full["pairs_total"] == 66 and full["pairs"][0]["link"] == "RELAY"


async def test_the_paths_cache_builds_once_per_window_and_one_at_a_time(
    controller: Controller,
) -> None:
    """Several consoles polling one network cost one build per CACHE_S."""
    import asyncio

    from overlay_core.api.paths import CACHE_S, PathsCache

    now = [100.0]
    cache = PathsCache(clock=lambda: now[0])
    network = controller.create_network("home", now=1.0)
    nwid = int(network.to_json()["nwid"], 16)
    reads = []

    def read() -> tuple[NetworkRecord, list[MemberRecord], dict[int, StoredReport]]:
        reads.append(now[0])
        return controller.path_reports(nwid)

    views = await asyncio.gather(*(cache.view(nwid, None, read, 110.0) for _ in range(5)))
    assert len(reads) == 1 and all(v is views[0] for v in views)
    now[0] += CACHE_S + 0.1
    await cache.view(nwid, None, read, 112.0)
    await cache.view(nwid, 10, read, 112.0)  # another limit is another view
    assert len(reads) == 3
