"""The checks of `ztui doctor`: pure decisions, Facts in, one CheckResult per check out.

The order is the order a NAS owner has to fix things in: the kernel's TUN device and the
capability to use it, then the daemon and the way to its socket, then the overlay itself
(roots, how they are reached, the clock), then what the daemon put into the kernel (the
underlay MTU it must fit in, its routes and addresses: kernel_checks.py). Each check says
ok, warn, fail or skipped, what it saw in one sentence, and the fix in one line; nothing
here reads a file, a clock or the network (gather.py does, once), so every decision is a
unit test.

A check that needs the daemon is `skipped` with the reason when the daemon gave no
usable answer, so one root cause ("overlayd is not running") is reported once, as a
failure, and not again by everything that depends on it.
"""

from __future__ import annotations

import errno
import stat
import time
from collections.abc import Callable, Sequence

from overlay_core.api.schema import RootLink

from ..render import duration, ms
from .facts import CapFacts, ClockFacts, DaemonFacts, Facts, SocketFacts, TunFacts
from .kernel_checks import check_addresses, check_mtu, check_routes
from .result import DAEMON_DOWN, NAMES, CheckResult, Status, fail, ok, skip, warn

__all__ = ["NAMES", "CheckResult", "Status", "diagnose"]

TUN_PATH = "/dev/net/tun"
# A root that has not answered within this long after start is news, not a start-up lag.
ROOTS_GRACE_S = 15.0
# The clock is checked on this machine only: the API carries no root's time to compare
# with. Before this the clock is certainly wrong (a NAS without a battery boots in 1970 or
# 2000); from the far bound on it is as wrong.
CLOCK_EARLIEST = 1704067200.0  # 2024-01-01 00:00 UTC
CLOCK_LATEST = 4102444800.0  # 2100-01-01 00:00 UTC

TUN_FIX = (
    "load the tun module: `sudo modprobe tun`; on Synology `sudo insmod /lib/modules/tun.ko`, "
    "and add that as a boot-up task (user root) in Task Scheduler so it survives a reboot"
)
NTP_FIX = (
    "turn on NTP: `sudo timedatectl set-ntp true` (Synology: Control Panel > Regional "
    "Options > Time)"
)


# --------------------------------------------------------------------------- the host


def check_tun(tun: TunFacts, daemon_uid: int | None) -> CheckResult:
    """Can a TAP be made at all? `daemon_uid`: overlayd's uid when known, because a user
    being refused a 0600 device is normal when the daemon runs as root."""
    name = NAMES[0]
    where = "" if tun.path == TUN_PATH else f"{tun.path}: "
    if tun.errno is None:
        if not tun.char_device:
            return fail(
                name,
                f"{where}opens, but is not a character device: not the kernel's TUN device",
                f"remove it, then {TUN_FIX}",
            )
        return ok(name, f"{where}present and openable")
    if tun.errno == errno.ENOENT:
        return fail(name, f"{where}missing: the tun module is not loaded", TUN_FIX)
    if tun.errno in (errno.ENODEV, errno.ENXIO):
        return fail(
            name, f"{where}present, but has no driver ({tun.strerror}): tun is not loaded", TUN_FIX
        )
    if tun.errno in (errno.EACCES, errno.EPERM):
        if tun.uid == 0:
            return fail(
                name,
                f"{where}root may not open it ({tun.strerror}): a container's device rules?",
                "give the container the device: docker run --device /dev/net/tun "
                "--cap-add NET_ADMIN",
            )
        if daemon_uid == 0:
            return ok(
                name,
                f"{where}present; uid {tun.uid} may not open it, which is as it should be: "
                "overlayd runs as root and can",
            )
        if daemon_uid is None:  # overlayd not seen (down, or its socket refuses us)
            return ok(
                name,
                f"{where}present; uid {tun.uid} may not open it, which is as it should be "
                "when overlayd runs as root (not confirmed: see daemon)",
            )
        return warn(
            name,
            f"{where}present, but uid {tun.uid} may not open it ({tun.strerror}), so only "
            "an overlayd running as root can make TAP devices",
            "run overlayd as root: `sudo systemctl start overlayd` (README, Install)",
        )
    return fail(name, f"{where}cannot open it: {tun.strerror}", TUN_FIX)


def _why_not_daemon(socket: SocketFacts) -> str:
    """Why overlayd's own process could not be looked at (its pid comes from its socket)."""
    if socket.path is None:
        return "a TCP API does not tell its pid"
    if socket.exists is False or socket.connect_errno in (errno.ENOENT, errno.ECONNREFUSED):
        return "it is not running"
    if socket.connect_errno in (errno.EACCES, errno.EPERM) or socket.exists is None:
        return "its socket refuses this user"
    return "its socket did not answer"


def check_cap(cap: CapFacts, socket: SocketFacts) -> CheckResult:
    """CAP_NET_ADMIN, and always whose: the daemon's when its pid is known, else this
    shell's, which only tells what an overlayd started from here would have."""
    name = NAMES[1]
    uid = f", uid {cap.uid}" if cap.uid is not None else ""
    whose = f"{'overlayd' if cap.daemon else 'this shell'} (pid {cap.pid}{uid})"
    if cap.net_admin is None:
        return skip(name, f"could not read the capabilities of {whose}: {cap.error}")
    if cap.daemon and cap.net_admin:
        return ok(name, f"{whose} has it: it can create and configure TAP devices")
    if cap.daemon:
        return fail(
            name,
            f"{whose} runs without it: it cannot create or configure TAP devices",
            _cap_fix(cap.uid),
        )
    unchecked = f"overlayd's own not checked: {_why_not_daemon(socket)}"
    if cap.net_admin:
        return ok(name, f"{whose} has it, so an overlayd started here would; {unchecked}")
    return warn(
        name,
        f"{whose} lacks it, so an overlayd started here could not make TAPs; {unchecked}",
        "start overlayd as root: `sudo systemctl start overlayd` (README, Install)",
    )


def _cap_fix(uid: int | None) -> str:
    """How a running overlayd gets CAP_NET_ADMIN. Root has every capability unless
    whatever starts it took some away (a unit's CapabilityBoundingSet=, a container's
    --cap-drop), so "run it as root" would be no help to a daemon that already does."""
    if uid == 0:
        return (
            "root lacks it only when whatever starts overlayd took it away: allow "
            "CAP_NET_ADMIN there (systemd: in CapabilityBoundingSet=; a container: "
            "--cap-add NET_ADMIN)"
        )
    return (
        "run overlayd as root, or give it the capability "
        "(systemd: AmbientCapabilities=CAP_NET_ADMIN)"
    )


def _start_fix(daemon: DaemonFacts) -> str:
    # The system node (wherever $ZTUI_SYSTEM_HOME put it) is the unit's; any other home
    # is one the user runs by hand.
    if daemon.home == daemon.system_home:
        return "start it: `sudo systemctl start overlayd`"
    return f"start it: `overlayd --home {daemon.home}` (or `sudo systemctl start overlayd`)"


def check_daemon(daemon: DaemonFacts, socket: SocketFacts) -> CheckResult:
    """Is overlayd answering, and where did we look (the API endpoint and the home)?"""
    name = NAMES[2]
    node = daemon.status
    if node is not None:
        pid = f"pid {socket.peer_pid}, " if socket.peer_pid else ""
        return ok(
            name,
            f"running ({pid}address {node.address}, {node.version}, up "
            f"{duration(node.uptime_s)}) at {daemon.endpoint}",
        )
    start = _start_fix(daemon)
    if socket.path is not None:
        if socket.exists is False or socket.connect_errno == errno.ENOENT:
            return fail(name, f"not running: no socket at {socket.path}", start)
        if socket.connect_errno == errno.ECONNREFUSED:
            return fail(
                name,
                f"not running: nobody listens on {socket.path} (left by an overlayd that died)",
                start,
            )
        if socket.connect_errno in (errno.EACCES, errno.EPERM) or socket.exists is None:
            return skip(name, f"cannot tell: {socket.path} does not let this user in (socket)")
    return fail(
        name,
        f"no usable answer at {daemon.endpoint}: {daemon.error}",
        "see overlayd's log: `journalctl -u overlayd` under systemd, or wherever your "
        "boot task sends overlayd's stderr; then restart it (`sudo systemctl restart "
        "overlayd` under systemd)",
    )


def _mode(socket: SocketFacts) -> str:
    mode = stat.filemode(socket.mode) if socket.mode is not None else "?"
    return f"{mode} {socket.owner or '?'}:{socket.group or '?'}"


def _group_fix(socket: SocketFacts) -> str:
    group, user = socket.group, socket.user or "$USER"
    if group is None:
        return "run ztui as root, or as a member of the group that owns it"
    bits = socket.mode or 0
    # A socket needs group read+write, a directory group execute (search), for members.
    shared = (bits & 0o060) == 0o060 if stat.S_ISSOCK(bits) else bool(bits & 0o010)
    if group == "root" or not shared:
        return (
            "only root may connect: use `sudo ztui`, or run overlayd with `--api-group ztui` "
            "and join that group (README, Install)"
        )
    if socket.in_group_db and not socket.in_group_session:
        return (
            f"{user} is in group {group}, but this login session is not yet: "
            f"log out and back in (or `newgrp {group}`)"
        )
    return f"`sudo usermod -aG {group} {user}`, then log out and back in"


def check_socket(socket: SocketFacts, daemon: DaemonFacts) -> CheckResult:
    """The control socket's owner, group and mode, and whether this user gets in."""
    name = NAMES[3]
    if socket.path is None:
        return skip(name, f"the API is TCP ({daemon.endpoint}): a token admits, not a socket")
    if socket.exists is False:
        return skip(name, f"no socket at {socket.path} (see daemon)")
    user = socket.user or f"uid {socket.uid}"
    if socket.connected:
        return ok(name, f"{socket.path} {_mode(socket)}: {user} can connect")
    if socket.connect_errno in (errno.EACCES, errno.EPERM) or socket.exists is None:
        return fail(
            name,
            f"{socket.guard or socket.path} {_mode(socket)} refuses {user}",
            _group_fix(socket),
        )
    if socket.connect_errno == errno.ECONNREFUSED:
        return skip(name, f"{socket.path} {_mode(socket)}: nobody listens (see daemon)")
    return fail(
        name,
        f"cannot connect to {socket.path}: {socket.connect_error}",
        "restart overlayd: `sudo systemctl restart overlayd`",
    )


# --------------------------------------------------------------------------- the overlay


def check_roots(daemon: DaemonFacts) -> CheckResult:
    """A node without roots finds nobody beyond its LAN."""
    name = NAMES[4]
    node = daemon.status
    if node is None:
        return skip(name, DAEMON_DOWN)
    if node.roots_total:
        return ok(name, f"{node.roots_total} configured")
    if node.role == "ROOT":
        return ok(name, "none configured; this node is a root itself")
    return fail(
        name,
        "none configured: this node can find no peer beyond its LAN",
        "give the running node a roots file: `ztui roots set FILE` (README, Install)",
    )


def _udp_endpoints(endpoints: Sequence[str | None]) -> str:
    shown = sorted({e.removeprefix("tcp://") for e in endpoints if e})
    return ", ".join(shown) or "the roots' endpoints"


def check_root_links(daemon: DaemonFacts) -> CheckResult:
    """UDP to the roots, or the TCP fallback (every peer relayed), or nothing."""
    name = NAMES[5]
    node = daemon.status
    if node is None:
        return skip(name, DAEMON_DOWN)
    if not node.roots_total:
        return skip(name, "no roots configured (see roots)")
    report = daemon.netcheck
    if report is not None and report.roots:
        total = len(report.roots)
        udp = sum(r.link == RootLink.UDP for r in report.roots)
        silent = [r for r in report.roots if r.link == RootLink.NONE]
        endpoints = _udp_endpoints([r.endpoint for r in report.roots])
        silent_names = ", ".join(f"{r.address} ({r.endpoint or '?'})" for r in silent)
        silent_names = silent_names or "the others (they answer over TCP only)"
        answering = total - len(silent)
    else:  # an older daemon, or /netcheck failed: the status counts say less, but enough
        total, answering = node.roots_total, node.roots_reachable
        udp = 0 if node.tunneled else answering
        endpoints, silent_names = "the roots' endpoints", f"{total - answering} of them"
    if udp == total:
        nearest = ""
        if report is not None and report.roots:
            best = min(report.roots, key=lambda r: r.latency_ms or float("inf"))
            nearest = f" (nearest {best.address}, {ms(best.latency_ms)})"
        return ok(name, f"UDP reaches all {total}{nearest}")
    if udp:
        return warn(
            name,
            f"UDP reaches {udp} of {total}; no answer from {silent_names}",
            "check that root is up and its endpoint in the roots file is right",
        )
    if answering:  # none over UDP, some over TCP: the fallback carries everything
        return warn(
            name,
            "UDP gets no answer from any root: the TCP fallback is in use, so every peer is "
            "relayed through the roots",
            f"allow UDP out to {endpoints} and its answers back in; the node returns to UDP "
            "by itself",
        )
    if node.uptime_s < ROOTS_GRACE_S:
        return warn(
            name,
            f"no root has answered yet; overlayd started {duration(node.uptime_s)} ago",
            "run `ztui doctor` again in a few seconds",
        )
    return fail(
        name,
        "no root answers, over UDP or TCP",
        f"check this machine's internet access, and that UDP and TCP to {endpoints} may go out",
    )


def _date(now: float) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(now))
    except (OverflowError, OSError, ValueError):  # beyond what the C library can show
        return f"{now:.0f} s after 1970"


def check_clock(clock: ClockFacts) -> CheckResult:
    """A sane year, and the kernel's word on synchronisation; local only, and it says so."""
    name = NAMES[6]
    when = _date(clock.now)
    if clock.now < CLOCK_EARLIEST:
        return fail(name, f"this machine's clock says {when}, before 2024: it is wrong", NTP_FIX)
    if clock.now >= CLOCK_LATEST:
        return fail(name, f"this machine's clock says {when}: far in the future", NTP_FIX)
    scope = "(a local check: no root reports its time)"
    if clock.synchronized is False:
        return warn(name, f"{when}, but the kernel says it is not synchronised {scope}", NTP_FIX)
    synced = ", synchronised" if clock.synchronized else ""
    return ok(name, f"{when}{synced} {scope}")


# --------------------------------------------------------------------------- all of them

Check = Callable[[Facts], CheckResult]

CHECKS: tuple[Check, ...] = (
    lambda f: check_tun(f.tun, f.socket.peer_uid),
    lambda f: check_cap(f.cap, f.socket),
    lambda f: check_daemon(f.daemon, f.socket),
    lambda f: check_socket(f.socket, f.daemon),
    lambda f: check_roots(f.daemon),
    lambda f: check_root_links(f.daemon),
    lambda f: check_clock(f.clock),
    lambda f: check_mtu(f.kernel, f.daemon),
    lambda f: check_routes(f.kernel, f.daemon),
    lambda f: check_addresses(f.kernel, f.daemon),
)


def diagnose(facts: Facts) -> list[CheckResult]:
    """Every check, in the order a NAS owner fixes things (module docstring)."""
    return [check(facts) for check in CHECKS]
