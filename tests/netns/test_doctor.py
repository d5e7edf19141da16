"""`ztui doctor` on real things: each failure it claims to detect, caused for real.

One world for the module (overlay_core/testing/world.py): a root and a controller on the
"internet", and a NAS at home that has joined a network with a pool address and a route
through the overlay. Each story breaks one thing, runs `ztui --api unix:SOCK doctor
--json` inside the NAS's namespace (where its kernel, routes and devices are) and puts
the thing back, so the stories do not depend on each other or on their order:

- healthy: every check is ok (or a warning about this machine's clock), exit 0;
- a route through the network deleted with `ip route del`: routes fails, naming it;
- the network's address added to eth0 as well: addresses fails, naming both;
- the uplink's MTU at 1280, then 1200: the arithmetic, then a failure;
- a daemon killed with SIGKILL (its socket left behind), and one never started: daemon
  fails, the checks that need it are skipped;
- a node started without roots: roots fails;
- a home whose router drops UDP: the node reaches its root over TCP, and root links warns
  that the TCP fallback is in use;
- /dev/net/tun without a driver: a character device with no driver behind it (what a
  Synology has before `insmod tun.ko`), made with mknod and given to the check.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from console.doctor import checks, gather
from overlay_core.testing.netns import unavailable_reason
from overlay_core.testing.world import OverlayNode, OverlayWorld, child_env, ztui_argv

pytestmark = [
    pytest.mark.netns,
    pytest.mark.slow,
    pytest.mark.skipif(unavailable_reason() is not None, reason=unavailable_reason() or ""),
]

POOL = "10.147.17.0/24"
ROUTE = {"target": "10.200.0.0/16", "via": "10.147.17.1"}
TUNNEL_TIMEOUT_S = 25.0  # the node opens TCP after ~8 s without a UDP answer
# A character device major that no driver registers (Documentation/admin-guide/devices.txt
# reserves 42 for "demo/sample use"): opening it fails with ENXIO or ENODEV, as the TUN
# node does on a NAS whose tun module is not loaded.
UNUSED_MAJOR = 42


class Story:
    """The module's world and the NAS with its network."""

    def __init__(self, world: OverlayWorld) -> None:
        self.world = world
        world.add_roots(1)
        world.add_controller("ctl")
        # Started first: it needs ~8 s without UDP before it opens TCP, time the other
        # nodes take to start anyway.
        self.blocked = world.add_home("blocked", "pcblock", block_udp=True)
        self.nas = world.add_home("home", "nas")
        self.nwid = world.create_network("lab", pools=[POOL], routes=[ROUTE])
        world.bring_up(self.nwid, [self.nas])
        self.device = world.device(self.nas, self.nwid)
        self.address = world.overlay_ip(self.nas, self.nwid)


@pytest.fixture(scope="module")
def story() -> Iterator[Story]:
    with OverlayWorld(log_level="debug") as world:
        yield Story(world)


def doctor(node: OverlayNode) -> tuple[int, dict[str, dict[str, Any]]]:
    """`ztui --api unix:SOCK doctor --json` inside the node's namespace; exit code and the
    checks by name."""
    proc = node.host.run(
        ztui_argv("--api", f"unix:{node.socket_path}", "doctor", "--json"), env=child_env()
    )
    assert proc.stderr == "", proc.stderr
    return proc.returncode, {r["check"]: r for r in json.loads(proc.stdout)}


def failed(report: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {name: r["detail"] for name, r in report.items() if r["status"] == "fail"}


def test_a_healthy_nas_passes(story: Story) -> None:
    """Everything in place: no failure, exit 0; the daemon is named by its pid."""
    code, report = doctor(story.nas)
    assert failed(report) == {} and code == 0, story.world.fail(json.dumps(report, indent=1))
    assert {r["status"] for r in report.values()} <= {"ok", "warn"}
    warned = {name for name, r in report.items() if r["status"] == "warn"}
    assert warned <= {"clock"}, report  # a sandbox's clock may well be unsynchronised
    assert story.nas.proc is not None
    assert f"pid {story.nas.proc.pid}," in report["daemon"]["detail"]
    assert report["root links"]["detail"].startswith("UDP reaches all 1")
    assert story.device in report["routes"]["detail"]


def test_a_deleted_route_is_found(story: Story) -> None:
    """`ip route del` of the network's route (as a NAS's network daemon does): routes
    fails, naming the route, the device and the network; exit 1."""
    nas, target, via = story.nas, ROUTE["target"], ROUTE["via"]
    nas.host.ip("route", "del", target, "via", via, "dev", story.device)
    try:
        code, report = doctor(nas)
    finally:
        nas.host.ip("route", "add", target, "via", via, "dev", story.device)
    assert code == 1
    assert failed(report) == {
        "routes": f"route {target} via {via} missing on {story.device} ({story.nwid})"
    }
    assert f"ztui leave {story.nwid}" in report["routes"]["fix"]


def test_a_duplicate_address_on_another_interface_is_found(story: Story) -> None:
    nas = story.nas
    nas.host.ip("addr", "add", f"{story.address}/32", "dev", "eth0")
    try:
        code, report = doctor(nas)
    finally:
        nas.host.ip("addr", "del", f"{story.address}/32", "dev", "eth0")
    assert code == 1
    assert failed(report) == {"addresses": f"{story.address} is on both {story.device} and eth0"}


def test_the_uplink_mtu_is_read_and_a_too_small_one_fails(story: Story) -> None:
    """At 1280 the arithmetic of the README's worked example; at 1200 the 1200-byte
    datagrams every path needs no longer fit."""
    nas, rig = story.nas, story.world.rig
    try:
        rig.set_link_mtu(nas.host, 1280)
        _, report = doctor(nas)
        detail = report["MTU"]["detail"]
        assert report["MTU"]["status"] == "ok", report["MTU"]
        assert detail.startswith("default route via eth0 (device MTU 1280): ")
        assert "1280 - 28 = 1252 bytes, a frame of 1252 - 45 = 1207" in detail
        rig.set_link_mtu(nas.host, 1200)
        code, report = doctor(nas)
        assert code == 1 and set(failed(report)) == {"MTU"}
        assert report["MTU"]["fix"] == "raise the MTU of eth0 to at least 1228"
    finally:
        rig.set_link_mtu(nas.host, 1500)
        nas.host.run(["ip", "route", "flush", "cache"])


def test_a_dead_or_never_started_daemon(story: Story) -> None:
    """SIGKILL leaves the socket behind: 'nobody listens'. No daemon ever: 'no socket'.
    Both fail the daemon check once and skip what needs the daemon."""
    world = story.world
    dead = world.add_public_member("dead")
    assert dead.proc is not None
    dead.proc.kill()  # our own child, by its PID
    dead.stop()
    code, report = doctor(dead)
    assert code == 1 and set(failed(report)) == {"daemon"}, report
    assert "nobody listens" in report["daemon"]["detail"]
    for name in ("roots", "root links", "routes", "addresses"):
        assert report[name]["status"] == "skipped", (name, report[name])
    never = world.add_public_member("never", start=False)
    never.home.mkdir(parents=True, exist_ok=True)
    code, report = doctor(never)
    assert code == 1 and set(failed(report)) == {"daemon"}, report
    assert report["daemon"]["detail"] == f"not running: no socket at {never.socket_path}"
    assert f"`overlayd --home {never.home}`" in report["daemon"]["fix"]


def test_a_node_without_roots(story: Story) -> None:
    """The world gives every node its roots file; this one is started without (the same
    OverlayNode, its arguments cut before --roots), as a NAS owner who skipped that step."""
    world = story.world
    host = world.rig.add_public_host("noroots")
    args = ["--port", "9993", "--bind", "0.0.0.0", "--advertise", f"{host.addr}/32"]
    node = OverlayNode("noroots", host, world.base / "noroots", "member", args)
    world.members.append(node)  # the world stops it with the others
    node.start()
    code, report = doctor(node)
    assert code == 1 and set(failed(report)) == {"roots"}, report
    assert "ztui roots set FILE" in report["roots"]["fix"]
    assert report["root links"]["status"] == "skipped"


def test_udp_blocked_shows_the_tcp_fallback(story: Story) -> None:
    """The home router drops UDP: the node reaches its root over TCP only, and root links
    warns that every peer is relayed, naming the root's endpoint to open."""
    node, world = story.blocked, story.world

    def tunneled() -> dict[str, Any] | None:
        status = node.try_get("/status")
        return status if status and status["tunneled"] and status["roots_reachable"] else None

    world.wait("pcblock to reach its root over TCP", tunneled, TUNNEL_TIMEOUT_S)
    code, report = doctor(node)
    links = report["root links"]
    assert links["status"] == "warn", links
    assert "TCP fallback is in use" in links["detail"]
    assert f"UDP out to {world.roots[0].host.addr}:9993" in links["fix"]
    assert code == 0 and failed(report) == {}, report


def test_a_tun_device_without_a_driver(tmp_path: Path) -> None:
    """A character device whose driver is not loaded opens with ENXIO/ENODEV: fail, and
    the fix is the Synology one; a missing node is named missing."""
    path = tmp_path / "tun"
    os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(UNUSED_MAJOR, 0))
    result = checks.check_tun(gather.open_tun(str(path)), daemon_uid=0)
    assert result.status == "fail", result
    assert "no driver" in result.detail and "insmod /lib/modules/tun.ko" in (result.fix or "")
    missing = checks.check_tun(gather.open_tun(str(tmp_path / "none")), daemon_uid=0)
    assert missing.status == "fail" and "missing" in missing.detail
