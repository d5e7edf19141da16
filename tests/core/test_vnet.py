"""Virtual networks over the simulated internet: join, approval, frames, deauthorization.

The story: a controller node hosts a private network. Two homes behind NATs join it and
are refused until the admin approves them; approved, they get pool addresses and their
frames (ARP broadcasts, unicast) cross the overlay. Deauthorizing one cuts it off within
seconds; approving it again restores it. Rules drop what they should, and count it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from overlay_core.controller import Controller
from overlay_core.proto.effects import ConfigurePort
from overlay_core.proto.ethernet import mac_for
from overlay_core.proto.netconf import format_nwid
from overlay_core.proto.vnet import NetworkSettings
from overlay_core.testing.fakenet import FakeNet, Host, NatKind
from tests.core import frames

PR = NatKind.PORT_RESTRICTED


class World:
    def __init__(self, tmp: Path, **network: object) -> None:
        self.net = FakeNet()
        self.root = self.net.add_host("root0", root=True)
        self.ctl = self.net.add_host("ctl")
        self.ctl.controller = Controller(self.ctl.node.identity, tmp / "controller.db")
        self.a = self.net.add_host("a", nat=self.net.add_nat("nat-a", PR))
        self.b = self.net.add_host("b", nat=self.net.add_nat("nat-b", PR))
        self.net.run(2)
        record = self.ctl.controller.create_network(
            "home",
            pools=["10.147.17.0/24"],
            now=self.net.now,
            **network,  # type: ignore[arg-type]
        )
        self.nwid = int(record.to_json()["nwid"], 16)

    @property
    def controller(self) -> Controller:
        assert self.ctl.controller is not None
        return self.ctl.controller

    def state(self, host: Host) -> str:
        status = host.node.snapshot(self.net.now)
        return next(n.state for n in status.networks if n.nwid == format_nwid(self.nwid))

    def join(self, *hosts: Host) -> None:
        for host in hosts:
            self.net.call(host, host.node.join(self.nwid, self.net.now))
        self.net.run(2)

    def approve(self, *hosts: Host) -> None:
        for host in hosts:
            self.controller.authorize(self.nwid, host.address, self.net.now)
        self.net.run(1)

    def frame(self, host: Host, frame: bytes) -> None:
        self.net.call(host, host.node.receive_frame(self.nwid, frame, self.net.now))
        self.net.run(0.5)

    def mac(self, host: Host) -> bytes:
        return mac_for(self.nwid, host.address)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_join_is_denied_until_approved_then_gets_a_pool_address(world: World) -> None:
    world.join(world.a)
    assert world.state(world.a) == "ACCESS_DENIED"
    pending = world.controller.list_members(world.nwid)
    assert [m.address for m in pending] == [world.a.address] and not pending[0].authorized
    world.approve(world.a)  # pushed at once: no polling interval to wait out
    assert world.state(world.a) == "OK"
    port = world.a.ports[world.nwid]
    assert isinstance(port, ConfigurePort)
    assert port.mtu == 2800
    assert len(port.addresses) == 1 and port.addresses[0].startswith("10.147.17.")
    assert port.addresses[0].endswith("/24")


def test_frames_cross_between_approved_members(world: World) -> None:
    world.join(world.a, world.b)
    world.approve(world.a, world.b)
    arp = frames.arp_request(world.mac(world.a), "10.147.17.1", "10.147.17.2")
    world.frame(world.a, arp)
    assert [f.frame for f in world.b.frames] == [arp]
    unicast = frames.icmp_echo_v4(world.mac(world.a), world.mac(world.b))
    world.frame(world.a, unicast)
    assert world.b.frames[-1].frame == unicast
    reply = frames.icmp_echo_v4(world.mac(world.b), world.mac(world.a))
    world.frame(world.b, reply)
    assert world.a.frames[-1].frame == reply
    status = world.b.node.snapshot(world.net.now).networks[0]
    assert status.counters["rx_frames"] == 2 and status.members == 2


def test_a_deauthorized_member_is_cut_off_within_seconds_and_can_return(world: World) -> None:
    world.join(world.a, world.b)
    world.approve(world.a, world.b)
    ping = frames.icmp_echo_v4(world.mac(world.b), world.mac(world.a))
    world.frame(world.b, ping)
    assert len(world.a.frames) == 1
    world.controller.deauthorize(world.nwid, world.b.address, world.net.now)
    cut = world.net.now
    world.net.run(1)
    assert world.state(world.b) == "ACCESS_DENIED"
    world.frame(world.b, ping)  # b is denied: nothing leaves it, nothing reaches a
    assert len(world.a.frames) == 1
    assert world.net.now - cut < 5
    world.approve(world.b)
    world.frame(world.b, ping)
    assert len(world.a.frames) == 2


def test_a_member_that_keeps_sending_after_deauthorization_is_refused(world: World) -> None:
    """Peers enforce the member list themselves: a deauthorized member that kept its old
    config (here: we stop the controller's push from reaching it) is still refused."""
    world.join(world.a, world.b)
    world.approve(world.a, world.b)
    world.net.block(world.ctl, world.b)  # b never hears that it was deauthorized
    world.controller.deauthorize(world.nwid, world.b.address, world.net.now)
    world.net.run(1)
    before = len(world.a.frames)
    world.frame(world.b, frames.icmp_echo_v4(world.mac(world.b), world.mac(world.a)))
    assert len(world.a.frames) == before
    counters = world.a.node.snapshot(world.net.now).networks[0].counters
    assert counters["drop_not_member"] >= 1


def test_block_dhcp_preset_drops_dhcp_and_counts_it(tmp_path: Path) -> None:
    world = World(tmp_path, presets=["block-dhcp"])
    world.join(world.a, world.b)
    world.approve(world.a, world.b)
    world.frame(world.a, frames.dhcp_discover(world.mac(world.a)))
    assert world.b.frames == []
    drops = world.a.node.snapshot(world.net.now).networks[0].rule_drops
    assert sum(count for _name, count in drops) == 1
    arp = frames.arp_request(world.mac(world.a), "10.147.17.1", "10.147.17.2")
    world.frame(world.a, arp)
    assert [f.frame for f in world.b.frames] == [arp]


def test_frames_larger_than_the_path_are_fragmented_and_arrive_whole(tmp_path: Path) -> None:
    world = World(tmp_path)
    assert world.a.nat is not None
    world.net.link_mtu[world.a.nat.public_ip] = 1252  # a 1280-byte underlay at home a
    world.join(world.a, world.b)
    world.approve(world.a, world.b)
    big = frames.ethernet(world.mac(world.b), world.mac(world.a), 0x0800, bytes(2786))
    world.frame(world.a, big)
    world.net.run(3)
    assert world.b.frames and world.b.frames[-1].frame == big


def test_allow_settings_filter_managed_addresses_and_routes(tmp_path: Path) -> None:
    world = World(
        tmp_path, routes=[["0.0.0.0/0", "10.147.17.1"], ["192.168.50.0/24", "10.147.17.1"]]
    )
    world.join(world.a)
    world.approve(world.a)
    port = world.a.ports[world.nwid]
    assert port is not None
    assert [r[0] for r in port.routes] == ["192.168.50.0/24"], "no default route unless allowed"
    world.net.call(
        world.a,
        world.a.node.set_network_settings(world.nwid, NetworkSettings(allow_default=True)),
    )
    port = world.a.ports[world.nwid]
    assert port is not None and "0.0.0.0/0" in [r[0] for r in port.routes]
    world.net.call(
        world.a,
        world.a.node.set_network_settings(world.nwid, NetworkSettings(allow_managed=False)),
    )
    port = world.a.ports[world.nwid]
    assert port is not None and port.addresses == () and port.routes == ()


def test_an_unknown_network_is_not_found(world: World) -> None:
    bogus = world.nwid + 5
    world.net.call(world.a, world.a.node.join(bogus, world.net.now))
    world.net.run(2)
    status = world.a.node.snapshot(world.net.now).networks
    assert [n.state for n in status if n.nwid == format_nwid(bogus)] == ["NOT_FOUND"]


def test_leave_closes_the_port(world: World) -> None:
    world.join(world.a)
    assert world.nwid in world.a.ports
    world.net.call(world.a, world.a.node.leave(world.nwid, world.net.now))
    assert world.nwid not in world.a.ports
    assert world.a.node.snapshot(world.net.now).networks == []


def test_a_port_error_stays_visible_when_the_config_arrives(world: World) -> None:
    """The TAP could not be created: a config (or a denial) arriving later must not paper
    over it with OK; the reason stays on screen until the user leaves and joins again."""
    world.join(world.a)
    world.net.call(world.a, world.a.node.port_failed(world.nwid, "interface ztx exists"))
    world.approve(world.a)
    status = world.a.node.snapshot(world.net.now).networks[0]
    assert status.state == "PORT_ERROR" and status.port_error == "interface ztx exists"
    assert status.name == "home", "the config itself is kept for display"
    world.frame(world.a, frames.arp_request(world.mac(world.a), "10.147.17.1", "10.147.17.2"))
    assert world.a.node.snapshot(world.net.now).networks[0].counters["drop_not_ready"] == 1
