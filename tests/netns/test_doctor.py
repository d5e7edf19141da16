"""`ztui doctor` on real things: each failure it claims to detect, caused for real.

One world for the module (overlay_core/lab/world.py): a root and a controller on the
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
  Synology has before `insmod tun.ko`), made with mknod and given to the check;
- overlayd running as root without CAP_NET_ADMIN (setpriv takes it out of the bounding
  set, as a unit's CapabilityBoundingSet= or a container's --cap-drop does): the
  capability fails with the fix for that; once it is stopped, doctor run from such a
  shell says the capability it read is its own;
- a socket shared with a group (`--api-group`, as the unit starts it), and doctor run
  through `su` by throwaway users: a member gets in, an outsider is told `usermod -aG`,
  and the member in a session from before joining (setpriv --clear-groups) is told to
  log out and back in. The users are made for the story and removed however it ends.

A wrong clock stays a pure test (test_doctor.py): no test can set this machine's wall
clock, and a time namespace moves only CLOCK_MONOTONIC and CLOCK_BOOTTIME.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from console.doctor import checks, gather
from overlay_core.lab.netns import Host, unavailable_reason
from overlay_core.lab.world import OverlayNode, OverlayWorld, child_env, ztui_argv
from tests import nonroot

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
# Root without CAP_NET_ADMIN: out of the bounding set, so exec does not grant it to root,
# and out of the inheritable set (and so the ambient one), which would carry it across.
NO_NET_ADMIN = ("setpriv", "--inh-caps=-net_admin", "--bounding-set=-net_admin", "--")


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


class NoNetAdminHost(Host):
    """A rig host whose commands run as root without CAP_NET_ADMIN: the namespace is
    entered with it (`ip netns exec` needs it), then setpriv drops it for the command."""

    @classmethod
    def of(cls, host: Host) -> NoNetAdminHost:
        return cls(host.rig, host.name, host.ns, host.outer, host.addr, host.addr6, host.site)

    def argv(self, cmd: Sequence[str]) -> list[str]:
        return super().argv([*NO_NET_ADMIN, *cmd])


Report = dict[str, dict[str, Any]]


def report_of(proc: subprocess.CompletedProcess[str]) -> tuple[int, Report]:
    """The exit code of `ztui doctor --json` and its checks by name; nothing on stderr."""
    assert proc.stderr == "", proc.stderr
    return proc.returncode, {r["check"]: r for r in json.loads(proc.stdout)}


def doctor(node: OverlayNode, host: Host | None = None) -> tuple[int, Report]:
    """`ztui --api unix:SOCK doctor --json` inside the node's namespace, run by `host`
    (the node's own unless given); exit code and the checks by name."""
    argv = ztui_argv("--api", f"unix:{node.socket_path}", "doctor", "--json")
    return report_of((host or node.host).run(argv, env=child_env()))


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


def test_a_daemon_without_cap_net_admin(story: Story) -> None:
    """overlayd as root without CAP_NET_ADMIN still serves its API, so doctor finds it by
    its socket and reads its own capabilities: that check fails, naming its pid and uid 0,
    and the fix is to allow the capability where it is started, not to run it as root;
    nothing else fails. Stopped, and doctor run from a shell without it: a warning that
    names this shell, not overlayd, and says why overlayd's own was not read."""
    world = story.world
    host = world.rig.add_public_host("nocap")
    args = ["--port", "9993", "--bind", "0.0.0.0", "--advertise", f"{host.addr}/32",
            "--roots", str(world.roots_file)]  # fmt: skip
    node = OverlayNode("nocap", NoNetAdminHost.of(host), world.base / "nocap", "member", args)
    world.members.append(node)  # the world stops it with the others
    node.start()
    assert node.proc is not None  # `ip netns exec` and setpriv exec overlayd: one pid
    code, report = doctor(node, host)  # from a shell with the capability
    assert code == 1 and set(failed(report)) == {"CAP_NET_ADMIN"}, report
    cap = report["CAP_NET_ADMIN"]
    assert cap["detail"] == (
        f"overlayd (pid {node.proc.pid}, uid 0) runs without it: it cannot create or "
        "configure TAP devices"
    )
    assert "CapabilityBoundingSet=" in cap["fix"] and "run overlayd as root" not in cap["fix"]
    node.stop()
    code, report = doctor(node)  # from a shell without it, as the daemon had
    cap = report["CAP_NET_ADMIN"]
    assert cap["status"] == "warn" and cap["detail"].startswith("this shell (pid "), cap
    assert "lacks it" in cap["detail"] and "not checked: it is not running" in cap["detail"]
    assert code == 1 and report["daemon"]["status"] == "fail"


def test_a_socket_shared_with_a_group(story: Story) -> None:
    """`overlayd --api-group GROUP` in a home others may reach, and `ztui doctor --json`
    through su in the node's namespace, as three users: a member of GROUP connects (the
    daemon is then named by its pid); an outsider is refused by the 0750 home, told to
    join with usermod, and the daemon cannot be told; the member in a session that
    predates joining is told to log out and back in."""
    reason = nonroot.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    world = story.world
    with nonroot.throwaway_accounts() as accounts:
        group, member, outsider = accounts.group, accounts.member, accounts.outsider
        parent = Path(tempfile.mkdtemp(prefix="ztd", dir="/tmp"))
        parent.chmod(0o755)  # the home's own mode and group are what is tested
        home = parent / "grp"
        host = world.rig.add_public_host("grp")
        args = ["--port", "9993", "--bind", "0.0.0.0", "--advertise", f"{host.addr}/32",
                "--roots", str(world.roots_file), "--api-group", group]  # fmt: skip
        node = OverlayNode("grp", host, home, "member", args)
        world.members.append(node)
        try:
            node.start()
            ztui = accounts.python.ztui("--api", f"unix:{node.socket_path}", "doctor", "--json")
            code, report = report_of(host.run(nonroot.as_user(member, ztui)))
            assert code == 0 and failed(report) == {}, report
            assert report["socket"] == {
                "check": "socket",
                "status": "ok",
                "detail": f"{node.socket_path} srw-rw---- root:{group}: {member} can connect",
                "fix": None,
            }
            assert node.proc is not None
            assert f"pid {node.proc.pid}," in report["daemon"]["detail"], report["daemon"]

            code, report = report_of(host.run(nonroot.as_user(outsider, ztui)))
            assert code == 1 and set(failed(report)) == {"socket"}, report
            assert (
                report["socket"]["detail"] == f"{home} drwxr-x--- root:{group} refuses {outsider}"
            )
            assert report["socket"]["fix"] == (
                f"`sudo usermod -aG {group} {outsider}`, then log out and back in"
            )
            assert report["daemon"]["status"] == "skipped", report["daemon"]

            code, report = report_of(host.run(nonroot.in_stale_session(member, ztui)))
            assert code == 1 and set(failed(report)) == {"socket"}, report
            assert report["socket"]["fix"] == (
                f"{member} is in group {group}, but this login session is not yet: "
                f"log out and back in (or `newgrp {group}`)"
            )
        finally:
            node.stop()
            shutil.rmtree(parent, ignore_errors=True)
