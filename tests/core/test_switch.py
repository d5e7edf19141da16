"""Switching decisions of one virtual network (overlay_core.proto.switch)."""

from __future__ import annotations

import pytest

from overlay_core.proto.ethernet import mac_for
from overlay_core.proto.switch import SwitchTable, accept_from
from tests.core import frames

NWID = 0xABCDEF0123000007
ME, ALICE, BOB, CAROL, BRIDGE, BRIDGE2 = (
    0x1000000001,
    0x2000000002,
    0x3000000003,
    0x4000000004,
    0x5000000005,
    0x6000000006,
)
MEMBERS = frozenset({ME, ALICE, BOB, CAROL, BRIDGE, BRIDGE2})
BRIDGES = frozenset({BRIDGE, BRIDGE2})
LAN_HOST = bytes.fromhex("001122334455")  # a PC behind a bridging member


def mac(address: int) -> bytes:
    return mac_for(NWID, address)


def frame_to(dst: bytes, src: bytes | None = None) -> bytes:
    return frames.ethernet(dst, src or mac(ME), 0x0800, b"\x45" + b"\x00" * 40)


def route(
    table: SwitchTable,
    frame: bytes,
    now: float = 0.0,
    limit: int = 32,
    members: frozenset[int] = MEMBERS,
    bridges: frozenset[int] = BRIDGES,
) -> list[int]:
    return table.route(frame, now, members, bridges, ME, limit)


def test_unicast_to_a_members_derived_mac_goes_to_that_member_only() -> None:
    """No table entry is needed: the derived MAC names the member."""
    table = SwitchTable(NWID)
    assert route(table, frame_to(mac(ALICE))) == [ALICE]
    assert table.lookup(mac(ALICE), 0.0) == ALICE
    assert len(table) == 0


def test_unicast_to_ourselves_goes_nowhere() -> None:
    """A frame to our own MAC isn't sent to anyone."""
    assert route(SwitchTable(NWID), frame_to(mac(ME))) == []


def test_unknown_unicast_floods_to_active_bridges_only() -> None:
    """A vendor MAC nobody has learned, or a derived MAC of a non-member, goes to the
    active bridges (sorted, never ourselves) and to no ordinary member."""
    table = SwitchTable(NWID)
    assert route(table, frame_to(LAN_HOST)) == [BRIDGE, BRIDGE2]
    stranger = 0x7000000007
    assert route(table, frame_to(mac(stranger))) == [BRIDGE, BRIDGE2]
    assert route(table, frame_to(LAN_HOST), bridges=frozenset()) == []
    # A bridge that is no longer a member isn't flooded to.
    assert route(table, frame_to(LAN_HOST), members=MEMBERS - {BRIDGE}) == [BRIDGE2]


def test_broadcast_goes_to_all_members_but_me_bridges_first_and_bounded() -> None:
    """ARP broadcast reaches every other member; with a limit, active bridges come first,
    then members in ascending address order."""
    table = SwitchTable(NWID)
    arp = frames.arp_request(mac(ME), "10.0.0.1", "10.0.0.2")
    assert route(table, arp) == [BRIDGE, BRIDGE2, ALICE, BOB, CAROL]
    assert route(table, arp, limit=3) == [BRIDGE, BRIDGE2, ALICE]
    assert route(table, arp, limit=0) == []
    ra = frames.router_advertisement(mac(ME))  # IPv6 multicast 33:33:00:00:00:01
    assert route(table, ra, limit=1) == [BRIDGE]


def test_runt_frames_go_nowhere() -> None:
    """Anything shorter than an Ethernet header is not routed."""
    assert route(SwitchTable(NWID), b"\xff" * 13) == []


def test_member_frames_must_come_from_the_senders_own_mac() -> None:
    """A non-bridge member is accepted only with its derived source MAC; someone else's
    MAC, a vendor MAC or a multicast source is refused; non-members are refused outright."""
    assert accept_from(ALICE, frame_to(mac(ME), mac(ALICE)), MEMBERS, BRIDGES, NWID)
    assert not accept_from(ALICE, frame_to(mac(ME), mac(BOB)), MEMBERS, BRIDGES, NWID)
    assert not accept_from(ALICE, frame_to(mac(ME), LAN_HOST), MEMBERS, BRIDGES, NWID)
    assert not accept_from(ALICE, frame_to(mac(ME), frames.BROADCAST), MEMBERS, BRIDGES, NWID)
    outsider = 0x7000000007
    assert not accept_from(outsider, frame_to(mac(ME), mac(outsider)), MEMBERS, BRIDGES, NWID)
    assert not accept_from(ALICE, b"\x00" * 10, MEMBERS, BRIDGES, NWID)


def test_bridges_may_send_from_any_mac_but_another_members() -> None:
    """An active bridge's frames from LAN hosts are accepted; from another member's
    derived MAC (impersonation or a bridging loop) they are not."""
    assert accept_from(BRIDGE, frame_to(mac(ME), LAN_HOST), MEMBERS, BRIDGES, NWID)
    assert accept_from(BRIDGE, frame_to(mac(ME), mac(BRIDGE)), MEMBERS, BRIDGES, NWID)
    assert not accept_from(BRIDGE, frame_to(mac(ME), mac(ALICE)), MEMBERS, BRIDGES, NWID)
    assert not accept_from(BRIDGE, frame_to(mac(ME), frames.BROADCAST), MEMBERS, BRIDGES, NWID)


def test_accept_learns_macs_behind_bridges_and_unicast_follows() -> None:
    """After a bridge's frame from a LAN host is accepted, unicast to that host goes to
    that bridge alone; a bridge's own MAC and refused frames are not learned."""
    table = SwitchTable(NWID)
    assert table.accept(BRIDGE2, frame_to(mac(ME), LAN_HOST), MEMBERS, BRIDGES, now=10.0)
    assert table.accept(BRIDGE2, frame_to(mac(ME), mac(BRIDGE2)), MEMBERS, BRIDGES, now=10.0)
    assert not table.accept(ALICE, frame_to(mac(ME), frames.HOST_B), MEMBERS, BRIDGES, now=10.0)
    assert table.learned(10.0) == {LAN_HOST: BRIDGE2}
    assert table.lookup(LAN_HOST, 11.0) == BRIDGE2
    assert route(table, frame_to(LAN_HOST), now=11.0) == [BRIDGE2]
    # The host moves behind the other bridge: the newest sighting wins.
    table.accept(BRIDGE, frame_to(mac(ME), LAN_HOST), MEMBERS, BRIDGES, now=12.0)
    assert route(table, frame_to(LAN_HOST), now=12.0) == [BRIDGE]


def test_learned_entries_stop_counting_when_their_bridge_stops_bridging() -> None:
    """A MAC learned behind a member that is no longer an active bridge (or no longer a
    member) is unknown again: flooded to the remaining bridges."""
    table = SwitchTable(NWID)
    table.learn(LAN_HOST, BRIDGE2, 0.0)
    assert route(table, frame_to(LAN_HOST), bridges=frozenset({BRIDGE})) == [BRIDGE]
    assert route(table, frame_to(LAN_HOST), members=MEMBERS - {BRIDGE2}) == [BRIDGE]


def test_learned_entries_expire_after_ttl() -> None:
    """An entry lives ttl_s after it was last learned; relearning refreshes it; expired
    lookups return None and expire() sweeps the rest."""
    table = SwitchTable(NWID, ttl_s=300)
    table.learn(LAN_HOST, BRIDGE, 0.0)
    table.learn(frames.HOST_B, BRIDGE, 0.0)
    assert table.lookup(LAN_HOST, 300.0) == BRIDGE
    table.learn(LAN_HOST, BRIDGE, 200.0)
    assert table.lookup(LAN_HOST, 450.0) == BRIDGE
    assert table.lookup(LAN_HOST, 500.1) is None
    assert len(table) == 1
    assert table.expire(500.1) == 1 and len(table) == 0


def test_table_is_bounded_and_evicts_least_recently_learned() -> None:
    """Past the limit the oldest learned MAC goes; refreshing a MAC protects it."""
    table = SwitchTable(NWID, limit=3)
    macs = [bytes([0, 0, 0, 0, 0, i]) for i in range(5)]
    for i, m in enumerate(macs[:3]):
        table.learn(m, BRIDGE, float(i))
    table.learn(macs[0], BRIDGE, 3.0)  # refresh: macs[1] is now the oldest
    table.learn(macs[3], BRIDGE, 4.0)
    assert set(table.learned(4.0)) == {macs[0], macs[2], macs[3]}
    for i in range(100, 1100):  # a bridge spraying source MACs costs bounded memory
        table.learn(i.to_bytes(6, "big"), BRIDGE, 5.0)
    assert len(table) == 3


def test_multicast_macs_are_never_learned() -> None:
    """learn() ignores group addresses, which no station uses as a source."""
    table = SwitchTable(NWID)
    table.learn(frames.BROADCAST, BRIDGE, 0.0)
    table.learn(bytes.fromhex("01005e000001"), BRIDGE, 0.0)
    assert len(table) == 0
    with pytest.raises(ValueError):
        SwitchTable(NWID, limit=0)
