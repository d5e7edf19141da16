"""`ztui doctor`: every check's decision on facts built by hand, and the report's layout
(the readers of replies and of this machine, and the command: test_doctor_gather.py).

The facts start from one healthy NAS (`healthy()`: a leaf with two roots over UDP, one
joined network on ztabc with an address and two routes, all in the kernel) and each test
breaks one thing, so a test shows what that one fact changes.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import stat
from typing import Any, TypeVar

from console.doctor import checks, kernel_checks, output
from console.doctor.checks import CheckResult, diagnose
from console.doctor.facts import (
    CAP_NET_ADMIN_BIT,
    CapFacts,
    ClockFacts,
    DaemonFacts,
    Facts,
    JoinedNetwork,
    KernelAddress,
    KernelFacts,
    KernelLink,
    KernelRoute,
    NetcheckFacts,
    NetcheckRoot,
    NodeFacts,
    SocketFacts,
    TunFacts,
)
from console.mtu import datagrams_for

NWID = "8056c2e21c000001"
SOCK = "/var/lib/ztui/control.sock"
JUNE_2025 = 1_750_000_000.0


def healthy() -> Facts:
    network = JoinedNetwork(
        nwid=NWID,
        state="OK",
        device="ztabc",
        mtu=2800,
        mss="auto",
        addresses=("10.147.17.5/24",),
        routes=(("10.147.17.0/24", None), ("192.168.50.0/24", "10.147.17.1")),
    )
    return Facts(
        tun=TunFacts("/dev/net/tun", None),
        cap=CapFacts(pid=42, daemon=True, cap_eff=1 << CAP_NET_ADMIN_BIT, uid=0),
        socket=SocketFacts(
            SOCK,
            exists=True,
            guard=SOCK,
            mode=stat.S_IFSOCK | 0o660,
            owner="root",
            group="ztui",
            peer_pid=42,
            peer_uid=0,
            user="alice",
            uid=1000,
            in_group_session=True,
            in_group_db=True,
        ),
        daemon=DaemonFacts(
            endpoint=f"unix:{SOCK}",
            home="/var/lib/ztui",
            system_home="/var/lib/ztui",
            status=NodeFacts("8056c2e21c", "0.1.0", "LEAF", 2, 2, False, 3600.0),
            netcheck=NetcheckFacts(
                udp=True,
                tunneled=False,
                roots=(
                    NetcheckRoot("aaaaaaaaaa", "UDP", "198.18.1.10:9993", 30.0),
                    NetcheckRoot("bbbbbbbbbb", "UDP", "198.18.1.11:9993", 12.0),
                ),
            ),
            networks=(network,),
        ),
        clock=ClockFacts(JUNE_2025, True),
        kernel=KernelFacts(
            links=(
                KernelLink(1, "lo", 65536),
                KernelLink(2, "eth0", 1500),
                KernelLink(3, "ztabc", 2800),
            ),
            addresses=(
                KernelAddress("lo", "127.0.0.1/8"),
                KernelAddress("eth0", "192.168.1.20/24"),
                KernelAddress("eth0", "fe80::1/64"),
                KernelAddress("ztabc", "10.147.17.5/24"),
                KernelAddress("ztabc", "fe80::2/64"),
            ),
            routes=(
                KernelRoute("eth0", "0.0.0.0/0", "192.168.1.1"),
                KernelRoute("eth0", "192.168.1.0/24", None),
                KernelRoute("ztabc", "10.147.17.0/24", None),
                KernelRoute("ztabc", "192.168.50.0/24", "10.147.17.1"),
            ),
        ),
    )


T = TypeVar("T")


def replace(obj: T, **changes: Any) -> T:
    return dataclasses.replace(obj, **changes)  # type: ignore[type-var]


def only(facts: Facts, name: str) -> CheckResult:
    return next(r for r in diagnose(facts) if r.check == name)


def with_daemon(facts: Facts, **changes: Any) -> Facts:
    return replace(facts, daemon=replace(facts.daemon, **changes))


def with_socket(facts: Facts, **changes: Any) -> Facts:
    return replace(facts, socket=replace(facts.socket, **changes))


def with_kernel(facts: Facts, **changes: Any) -> Facts:
    return replace(facts, kernel=replace(facts.kernel, **changes))


DOWN = {"status": None, "netcheck": None, "networks": None, "error": "overlayd is not running"}


# --------------------------------------------------------------------------- all at once


def test_a_healthy_machine_passes_every_check_in_order() -> None:
    """Ten checks, in the order a NAS owner fixes things, all ok, exit 0."""
    results = diagnose(healthy())
    assert [r.check for r in results] == list(checks.NAMES)
    assert [(r.check, r.status) for r in results if r.status != "ok"] == []
    assert all(r.fix is None for r in results)
    assert output.exit_status(results) == 0


def test_daemon_down_fails_once_and_skips_what_needs_it() -> None:
    """No socket: the daemon line fails with how to start it; roots, root links, routes
    and addresses are skipped saying why; the host's own checks still run."""
    facts = with_daemon(healthy(), **DOWN)
    facts = with_socket(facts, exists=False, peer_pid=None, peer_uid=None)
    facts = replace(facts, cap=replace(facts.cap, daemon=False))
    results = {r.check: r for r in diagnose(facts)}
    assert results["daemon"].status == "fail"
    assert results["daemon"].fix == "start it: `sudo systemctl start overlayd`"
    for name in ("socket", "roots", "root links", "routes", "addresses"):
        assert results[name].status == "skipped", name
        assert "daemon" in results[name].detail, name
    assert results["MTU"].status == "ok" and results["clock"].status == "ok"
    assert output.exit_status(list(results.values())) == 1


# --------------------------------------------------------------------------- /dev/net/tun


def tun(**changes: Any) -> CheckResult:
    facts = healthy()
    daemon_uid = changes.pop("daemon_uid", 0)
    return checks.check_tun(replace(facts.tun, **changes), daemon_uid)


def test_tun_missing_or_driverless_fails_with_the_module_to_load() -> None:
    """ENOENT (no node) and ENODEV (a node, no driver: Synology before insmod) both fail,
    and the fix names modprobe, insmod of tun.ko and the boot-time task."""
    for code in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        result = tun(errno=code, strerror=os.strerror(code))
        assert result.status == "fail", code
        assert result.fix is not None and "insmod /lib/modules/tun.ko" in result.fix
        assert "Task Scheduler" in result.fix and "modprobe tun" in result.fix
    assert "missing" in tun(errno=errno.ENOENT).detail
    assert "no driver" in tun(errno=errno.ENODEV, strerror="No such device").detail


def test_tun_refused_depends_on_who_asked_and_who_runs_the_daemon() -> None:
    """A user refused a 0600 device is fine when overlayd runs as root (ok), and when
    overlayd could not be seen (ok, saying it was not confirmed: advising to start an
    overlayd that may well be running misleads); a warning when overlayd runs as another
    user; root itself refused is a container's rule (fail)."""
    denied = {"errno": errno.EACCES, "strerror": "Permission denied", "uid": 1000}
    assert tun(**denied, daemon_uid=0).status == "ok"
    unseen = tun(**denied, daemon_uid=None)
    assert unseen.status == "ok" and "not confirmed" in unseen.detail and unseen.fix is None
    warned = tun(**denied, daemon_uid=1000)
    assert warned.status == "warn" and "uid 1000" in warned.detail
    as_root = tun(**{**denied, "uid": 0})
    assert as_root.status == "fail" and as_root.fix is not None and "--device" in as_root.fix


def test_tun_that_is_not_a_device_and_another_path() -> None:
    """Something that opens but is not a character device fails; a path other than the
    usual one is named in the detail."""
    result = tun(path="/tmp/x/tun", char_device=False)
    assert result.status == "fail" and result.detail.startswith("/tmp/x/tun: ")
    odd = tun(errno=errno.EISDIR, strerror="Is a directory")
    assert odd.status == "fail" and "Is a directory" in odd.detail


# --------------------------------------------------------------------------- capability


def test_cap_names_whose_capability_was_checked() -> None:
    """The daemon's own (pid from its socket) when known, else 'this shell' with why."""
    facts = healthy()
    lacking = checks.check_cap(replace(facts.cap, cap_eff=0, uid=108), facts.socket)
    assert lacking.status == "fail" and lacking.detail.startswith("overlayd (pid 42, uid 108)")
    assert lacking.fix is not None and "AmbientCapabilities=CAP_NET_ADMIN" in lacking.fix
    shell = replace(facts.cap, daemon=False, pid=7, uid=1000)
    down = replace(facts.socket, exists=False)
    has = checks.check_cap(shell, down)
    assert has.status == "ok" and has.detail.startswith("this shell (pid 7, uid 1000)")
    assert "not checked: it is not running" in has.detail
    lacks = checks.check_cap(replace(shell, cap_eff=0), replace(facts.socket, path=None))
    assert lacks.status == "warn" and "a TCP API does not tell its pid" in lacks.detail
    refused = checks.check_cap(shell, replace(facts.socket, connect_errno=errno.EACCES))
    assert "its socket refuses this user" in refused.detail
    unread = checks.check_cap(replace(facts.cap, cap_eff=None, error="gone"), facts.socket)
    assert unread.status == "skipped" and "gone" in unread.detail


def test_cap_missing_from_a_root_daemon_is_not_fixed_by_running_it_as_root() -> None:
    """Root lacks it only when whatever started overlayd cut the capability away (a
    unit's CapabilityBoundingSet=, a container's --cap-drop): the fix says to allow it
    there, not to "run overlayd as root", which it already does."""
    facts = healthy()
    result = checks.check_cap(replace(facts.cap, cap_eff=0, uid=0), facts.socket)
    assert result.status == "fail" and result.detail.startswith("overlayd (pid 42, uid 0)")
    assert result.fix is not None and "run overlayd as root" not in result.fix
    assert "CapabilityBoundingSet=" in result.fix and "--cap-add NET_ADMIN" in result.fix


# --------------------------------------------------------------------------- daemon


def test_daemon_running_says_where_and_who() -> None:
    result = only(healthy(), "daemon")
    assert result.status == "ok"
    assert f"at unix:{SOCK}" in result.detail and "pid 42" in result.detail
    assert "address 8056c2e21c" in result.detail and "up 1h 00m" in result.detail


def test_daemon_down_says_why_and_how_to_start_it_for_that_home() -> None:
    """A missing socket and a stale one fail; the fix is systemctl for the system home
    and `overlayd --home DIR` for any other; a refused socket leaves it unknown."""
    facts = with_daemon(healthy(), **DOWN)
    missing = checks.check_daemon(facts.daemon, replace(facts.socket, exists=False))
    assert missing.status == "fail" and missing.detail == f"not running: no socket at {SOCK}"
    stale = checks.check_daemon(
        facts.daemon, replace(facts.socket, connect_errno=errno.ECONNREFUSED)
    )
    assert stale.status == "fail" and "nobody listens" in stale.detail
    mine = replace(facts.daemon, home="/tmp/h")
    other = checks.check_daemon(
        mine, replace(facts.socket, path="/tmp/h/control.sock", exists=False)
    )
    assert other.fix is not None and "`overlayd --home /tmp/h`" in other.fix
    refused = checks.check_daemon(facts.daemon, replace(facts.socket, connect_errno=errno.EACCES))
    assert refused.status == "skipped" and "(socket)" in refused.detail


def test_daemon_down_at_a_moved_system_home_is_started_with_systemctl() -> None:
    """$ZTUI_SYSTEM_HOME (a packager's /srv/ztui) moves the system node: its home gets the
    unit's fix, and /var/lib/ztui is then just another home, started by hand."""
    facts = with_daemon(healthy(), **DOWN, system_home="/srv/ztui")
    gone = replace(facts.socket, exists=False)
    moved = checks.check_daemon(replace(facts.daemon, home="/srv/ztui"), gone)
    assert moved.fix == "start it: `sudo systemctl start overlayd`"
    usual = checks.check_daemon(facts.daemon, gone)
    assert usual.fix is not None and "`overlayd --home /var/lib/ztui`" in usual.fix


def test_daemon_with_odd_answers_fails_with_the_reason() -> None:
    """The socket connects but the API answers nothing usable (odd JSON, a TCP API that
    is not there): fail, quoting the reason, and point at the log."""
    facts = with_daemon(healthy(), **{**DOWN, "error": "GET /status has no 'roots_total'"})
    result = only(facts, "daemon")
    assert result.status == "fail"
    assert result.detail.endswith("GET /status has no 'roots_total'")
    # overlayd logs to stderr only: no HOME/overlayd.log exists to be looked at.
    assert result.fix is not None and "overlayd.log" not in result.fix
    assert "`journalctl -u overlayd` under systemd" in result.fix
    assert "wherever your boot task sends overlayd's stderr" in result.fix


# --------------------------------------------------------------------------- socket


def refused(**changes: Any) -> CheckResult:
    base = {"connect_errno": errno.EACCES, "peer_pid": None, "in_group_session": False}
    facts = with_socket(healthy(), **{**base, **changes})
    return checks.check_socket(facts.socket, facts.daemon)


def test_socket_access_ok_shows_mode_owner_and_group() -> None:
    result = only(healthy(), "socket")
    assert result == CheckResult("socket", "ok", f"{SOCK} srw-rw---- root:ztui: alice can connect")


def test_socket_refused_names_the_group_and_what_to_do() -> None:
    """Not in the group: usermod, then log in again. In it per /etc/group but not in
    this session: log out and back in (or newgrp). A root-only socket: sudo or
    --api-group. A home directory that refuses: its group counts."""
    plain = refused(in_group_db=False)
    assert plain.status == "fail" and "refuses alice" in plain.detail
    assert plain.fix == "`sudo usermod -aG ztui alice`, then log out and back in"
    stale_session = refused(in_group_db=True)
    assert (
        stale_session.fix is not None
        and "log out and back in (or `newgrp ztui`)" in stale_session.fix
    )
    root_only = refused(group="root", mode=stat.S_IFSOCK | 0o600)
    assert (
        root_only.fix is not None
        and "--api-group" in root_only.fix
        and "sudo ztui" in root_only.fix
    )
    home = refused(exists=None, guard="/var/lib/ztui", mode=stat.S_IFDIR | 0o750, in_group_db=False)
    assert home.detail.startswith("/var/lib/ztui drwxr-x--- root:ztui refuses alice")
    assert home.fix == "`sudo usermod -aG ztui alice`, then log out and back in"


def test_socket_skipped_when_there_is_none_to_check() -> None:
    facts = healthy()
    tcp = checks.check_socket(
        replace(facts.socket, path=None), replace(facts.daemon, endpoint="http://127.0.0.1:9")
    )
    assert tcp.status == "skipped" and "http://127.0.0.1:9" in tcp.detail
    assert (
        checks.check_socket(replace(facts.socket, exists=False), facts.daemon).status == "skipped"
    )


# --------------------------------------------------------------------------- roots


def test_roots_none_configured_fails_with_roots_set() -> None:
    facts = healthy()
    status = facts.daemon.status
    assert status is not None
    leaf = with_daemon(facts, status=replace(status, roots_total=0, roots_reachable=0))
    result = only(leaf, "roots")
    assert result.status == "fail"
    assert result.fix is not None and "`ztui roots set FILE`" in result.fix
    assert only(leaf, "root links").status == "skipped"
    root = with_daemon(facts, status=replace(status, roots_total=0, role="ROOT"))
    assert only(root, "roots").status == "ok"


def links(*kinds: str, uptime_s: float = 3600.0) -> CheckResult:
    facts = healthy()
    roots = tuple(
        NetcheckRoot(
            f"{i:010x}", kind, f"{'tcp://' if kind == 'TCP' else ''}198.18.1.{i}:9993", None
        )
        for i, kind in enumerate(kinds, start=10)
    )
    status = facts.daemon.status
    assert status is not None
    daemon = replace(
        facts.daemon,
        status=replace(status, uptime_s=uptime_s, roots_total=len(kinds)),
        netcheck=NetcheckFacts("UDP" in kinds, "TCP" in kinds and "UDP" not in kinds, roots),
    )
    return checks.check_root_links(daemon)


def test_root_links_udp_tcp_or_nothing() -> None:
    """All over UDP: ok with the nearest. One silent: warn naming it. Only TCP: warn,
    every peer relayed, allow UDP to the roots' endpoints. Nothing: fail, unless the
    daemon only just started."""
    best = only(healthy(), "root links")
    assert best.status == "ok" and best.detail == "UDP reaches all 2 (nearest bbbbbbbbbb, 12.0ms)"
    partial = links("UDP", "NONE")
    assert partial.status == "warn" and "000000000b (198.18.1.11:9993)" in partial.detail
    tcp = links("TCP", "TCP")
    assert tcp.status == "warn" and "TCP fallback is in use" in tcp.detail
    assert tcp.fix is not None and "UDP out to 198.18.1.10:9993, 198.18.1.11:9993" in tcp.fix
    mixed = links("UDP", "TCP")
    assert mixed.status == "warn" and "the others (they answer over TCP only)" in mixed.detail
    assert links("NONE", "NONE").status == "fail"
    young = links("NONE", uptime_s=3.0)
    assert young.status == "warn" and "again in a few seconds" in (young.fix or "")


def test_root_links_fall_back_on_the_status_counts() -> None:
    """Without /netcheck (an older daemon) the status's counts decide."""
    facts = with_daemon(healthy(), netcheck=None, netcheck_error="not found")
    status = facts.daemon.status
    assert status is not None
    assert only(facts, "root links").status == "ok"
    tunneled = with_daemon(facts, status=replace(status, tunneled=True))
    assert only(tunneled, "root links").status == "warn"
    silent = with_daemon(facts, status=replace(status, roots_reachable=0))
    assert only(silent, "root links").status == "fail"
    half = with_daemon(facts, status=replace(status, roots_reachable=1))
    assert only(half, "root links").status == "warn"


# --------------------------------------------------------------------------- clock


def test_clock_sane_year_and_synchronisation_and_it_says_it_is_local() -> None:
    """Only here, on made-up times: a test cannot set this machine's clock (a time
    namespace moves CLOCK_MONOTONIC and CLOCK_BOOTTIME, never the wall clock)."""

    def clock(now: float, synced: bool | None = True) -> CheckResult:
        return checks.check_clock(ClockFacts(now, synced))

    boot_1970 = clock(86400.0)
    assert boot_1970.status == "fail" and "1970-01-02" in boot_1970.detail and boot_1970.fix
    assert clock(checks.CLOCK_EARLIEST - 1).status == "fail"
    assert clock(checks.CLOCK_LATEST).status == "fail"
    assert clock(1e30).status == "fail"  # beyond what gmtime can show: still no crash
    unsynced = clock(JUNE_2025, False)
    assert unsynced.status == "warn" and "not synchronised" in unsynced.detail
    assert "timedatectl set-ntp true" in (unsynced.fix or "")
    fine = clock(JUNE_2025)
    assert fine.status == "ok" and fine.detail.startswith("2025-06-15 ")
    assert "local check" in fine.detail
    assert "synchronised" not in clock(JUNE_2025, None).detail


# --------------------------------------------------------------------------- MTU


def mtu_of(
    mtu: int, *, route_mtu: int | None = None, mss: str = "auto", v6: bool = False
) -> CheckResult:
    facts = healthy()
    target, gateway = ("::/0", "fe80::1") if v6 else ("0.0.0.0/0", "192.168.1.1")
    routes = (KernelRoute("eth0", target, gateway, mtu=route_mtu),)
    kernel = replace(facts.kernel, links=(KernelLink(2, "eth0", mtu),), routes=routes)
    networks = tuple(replace(n, mss=mss) for n in facts.daemon.networks or ())
    return kernel_checks.check_mtu(kernel, replace(facts.daemon, networks=networks))


def test_mtu_arithmetic_for_ethernet_and_pppoe() -> None:
    """1500: 1472 bytes a datagram, frames of 1427; PPPoE 1492: 1464, 1419, an IP packet
    of 1405; each network's biggest frame is counted in datagrams (README, MTU and MSS)."""
    ethernet = mtu_of(1500)
    assert ethernet.status == "ok"
    assert "1500 - 28 = 1472 bytes, a frame of 1472 - 45 = 1427" in ethernet.detail
    assert f"{NWID} (MTU 2800): {datagrams_for(2814, 1472)} datagrams" in ethernet.detail
    pppoe = mtu_of(1492)
    assert pppoe.status == "ok"
    assert (
        "1492 - 28 = 1464 bytes, a frame of 1464 - 45 = 1419 (an IP packet of 1405)" in pppoe.detail
    )


def test_mtu_too_small_fails_and_route_mtu_wins() -> None:
    """Below 1228 an IPv4 underlay cannot carry the 1200-byte datagrams every path must;
    a route's own `mtu` counts before its device's; IPv6 costs 48 bytes, not 28."""
    small = mtu_of(1200)
    assert small.status == "fail" and small.fix == "raise the MTU of eth0 to at least 1228"
    assert mtu_of(1228).status == "ok"
    pinned = mtu_of(1500, route_mtu=1280)
    assert "route MTU 1280" in pinned.detail and "1280 - 28 = 1252" in pinned.detail
    assert "1280 - 48 = 1232" in mtu_of(1280, v6=True).detail


def test_mtu_warns_when_a_network_splits_tcp_for_want_of_mss() -> None:
    result = mtu_of(1500, mss="off")
    assert result.status == "warn"
    assert result.fix == f"`ztui set {NWID} mss=auto`: TCP segments then fit one datagram"


def test_mtu_without_a_default_route_or_the_kernel() -> None:
    facts = healthy()
    no_default = with_kernel(facts, routes=facts.kernel.routes[1:])
    assert only(no_default, "MTU").status == "warn"
    broken = with_kernel(facts, error="NetlinkError: (1, 'Operation not permitted')")
    result = only(broken, "MTU")
    assert result.status == "skipped" and "Operation not permitted" in result.detail


# --------------------------------------------------------------------------- routes


def test_a_deleted_route_or_address_or_device_is_named() -> None:
    """What overlayd set and the kernel lost fails, naming it, the device and the network;
    the fix is leave+join or a restart, and the NAS daemon that deletes routes."""
    facts = healthy()
    no_route = with_kernel(facts, routes=facts.kernel.routes[:-1])
    result = only(no_route, "routes")
    assert result.status == "fail"
    assert result.detail == f"route 192.168.50.0/24 via 10.147.17.1 missing on ztabc ({NWID})"
    assert result.fix is not None and f"`ztui leave {NWID}` and `ztui join {NWID}`" in result.fix
    assert "route management" in result.fix
    no_address = with_kernel(
        facts, addresses=[a for a in facts.kernel.addresses if a.device != "ztabc"]
    )
    assert "10.147.17.5/24 missing on ztabc" in only(no_address, "routes").detail
    hijacked = (*facts.kernel.routes[:-1], KernelRoute("eth0", "192.168.50.0/24", "192.168.1.1"))
    taken = only(with_kernel(facts, routes=hijacked), "routes")
    assert taken.detail.startswith("route 192.168.50.0/24 via 10.147.17.1 (goes via eth0) missing")
    gone = with_kernel(facts, links=facts.kernel.links[:2])
    assert only(gone, "routes").detail == f"ztabc of {NWID} is gone"


def test_routes_compare_prefixes_not_spellings() -> None:
    """A route given with host bits (10.147.17.9/24) is the kernel's 10.147.17.0/24."""
    facts = healthy()
    networks = tuple(
        replace(n, routes=(("10.147.17.9/24", None),)) for n in facts.daemon.networks or ()
    )
    assert only(with_daemon(facts, networks=networks), "routes").status == "ok"


def test_routes_and_addresses_skipped_without_what_they_compare() -> None:
    facts = healthy()
    cases = {
        "no usable answer": with_daemon(facts, networks=None, networks_error="no usable answer"),
        "no joined network has a device": with_daemon(facts, networks=()),
        "EPERM": with_kernel(facts, error="EPERM"),
    }
    for why, case in cases.items():
        for name in ("routes", "addresses"):
            result = only(case, name)
            assert result.status == "skipped" and why in result.detail, (name, result)


# --------------------------------------------------------------------------- addresses


def test_duplicate_and_overlapping_addresses_fail() -> None:
    """The network's address also on eth0, or its subnet inside the LAN's: fail, with
    the other interface named; link-local fe80:: on every link is not a clash."""
    facts = healthy()
    extra = KernelAddress("eth1", "10.147.17.5/32")
    dup = only(with_kernel(facts, addresses=(*facts.kernel.addresses, extra)), "addresses")
    assert dup.status == "fail" and dup.detail == "10.147.17.5 is on both ztabc and eth1"
    assert dup.fix is not None and "`sudo ip addr del 10.147.17.5/32 dev eth1`" in dup.fix
    lan = KernelAddress("eth1", "10.147.0.1/16")
    overlap = only(with_kernel(facts, addresses=(*facts.kernel.addresses, lan)), "addresses")
    assert overlap.detail == "10.147.17.0/24 on ztabc overlaps 10.147.0.0/16 on eth1"


def test_two_networks_with_the_same_pool_fail_once() -> None:
    facts = healthy()
    first = (facts.daemon.networks or ())[0]
    second = replace(
        first, nwid="8056c2e21c000002", device="ztdef", addresses=("10.147.17.9/24",), routes=()
    )
    kernel = with_kernel(
        with_daemon(facts, networks=(first, second)),
        links=(*facts.kernel.links, KernelLink(4, "ztdef", 2800)),
        addresses=(*facts.kernel.addresses, KernelAddress("ztdef", "10.147.17.9/24")),
    )
    result = only(kernel, "addresses")
    assert result.detail == "10.147.17.0/24 on ztabc overlaps 10.147.17.0/24 on ztdef"
    assert result.fix is not None and "another pool" in result.fix and "ztui leave" in result.fix


# --------------------------------------------------------------------------- the report


def test_report_lines_fit_80_columns_with_the_fix_indented() -> None:
    facts = with_daemon(healthy(), **DOWN)
    facts = with_socket(facts, exists=False)
    lines = output.report_lines(diagnose(facts))
    assert lines[0] == "ok    /dev/net/tun   present and openable"
    daemon = next(i for i, line in enumerate(lines) if line.startswith("FAIL  daemon"))
    assert lines[daemon + 1] == " " * 21 + "-> start it: `sudo systemctl start overlayd`"
    assert any(line.startswith("skip  roots ") for line in lines)
    assert lines[-1] == "something failed: 1 failed, 5 skipped, 4 ok"
    assert all(len(line) <= 80 for line in lines)


def test_json_is_a_list_of_check_status_detail_fix_and_warnings_exit_0() -> None:
    results = [
        CheckResult("clock", "warn", "unsynchronised", "ntp"),
        CheckResult("MTU", "ok", "fine"),
    ]
    assert output.report_json(results) == [
        {"check": "clock", "status": "warn", "detail": "unsynchronised", "fix": "ntp"},
        {"check": "MTU", "status": "ok", "detail": "fine", "fix": None},
    ]
    assert output.exit_status(results) == 0
    assert output.summary_line(results) == "nothing failed: 1 warn, 1 ok"
