"""Gathering what `ztui doctor` checks: the filesystem, /proc, the kernel and the API.

Each function reads one kind of fact and turns every failure into data (an errno, an
error string), never an exception: doctor's whole point is to speak when things are
broken, so a missing daemon, a refused socket, a pyroute2 failure or an odd API reply
must each become a line of the report, not a traceback. The decisions are in checks.py.

How overlayd's process is found without looking for it by name: the kernel says which
process listens on a UNIX socket (SO_PEERCRED on a connected socket gives the listener's
pid, uid and gid), so connecting to the control socket both tests access and names the
daemon whose /proc/PID/status holds its capabilities. Over a TCP API there is no such
answer, and the check reads this process's own capabilities and says so.
"""

from __future__ import annotations

import ctypes
import errno
import grp
import os
import pwd
import socket as socketlib
import stat
import struct
import time
from pathlib import Path
from typing import Any

import httpx

from overlay_core.api.schema import CONTROL_SOCKET_NAME

from .. import discovery
from ..client import ApiClient, ApiError
from .checks import TUN_PATH
from .facts import (
    CapFacts,
    ClockFacts,
    DaemonFacts,
    Facts,
    KernelAddress,
    KernelFacts,
    KernelLink,
    KernelRoute,
    NetcheckFacts,
    NodeFacts,
    OddReply,
    SocketFacts,
    TunFacts,
    networks_from_json,
)

CONNECT_TIMEOUT_S = 2.0
PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
# adjtimex(2): a zeroed struct timex (modes 0) only reads; TIME_ERROR means the kernel's
# clock is not synchronised. 512 bytes covers the struct (208 on 64-bit Linux) with room.
TIMEX_BYTES = 512
TIME_ERROR = 5
MAIN_TABLE = 254
RTN_UNICAST = 1


def gather_facts(
    client: ApiClient, *, tun_path: str = TUN_PATH, proc: Path = Path("/proc")
) -> Facts:
    """Every fact, each read once. `tun_path` and `proc` are parameters so the tests can
    point them at a device that cannot be opened, or at a made-up /proc."""
    sock = probe_socket(client.socket_path)
    daemon_pid = sock.peer_pid if sock.peer_pid else None  # 0: in another pid namespace
    return Facts(
        tun=open_tun(tun_path),
        cap=read_caps(daemon_pid, proc),
        socket=sock,
        daemon=ask_daemon(client),
        clock=ClockFacts(time.time(), kernel_synchronized()),
        kernel=read_kernel(),
    )


# --------------------------------------------------------------------------- this host


def open_tun(path: str) -> TunFacts:
    """Open the device read-write, as overlayd does, and close it again at once."""
    uid = os.geteuid()
    try:
        # O_NONBLOCK: whatever sits at `path` (a FIFO, an odd device) must not hang us.
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        return TunFacts(path, exc.errno, exc.strerror or str(exc), uid=uid)
    try:
        char_device = stat.S_ISCHR(os.fstat(fd).st_mode)
    finally:
        os.close(fd)
    return TunFacts(path, None, char_device=char_device, uid=uid)


def read_caps(pid: int | None, proc: Path = Path("/proc")) -> CapFacts:
    """CapEff and the effective uid from /proc/PID/status: overlayd's when `pid` is its,
    else (None) this process's own."""
    daemon = pid is not None
    pid = pid if pid is not None else os.getpid()
    try:
        text = (proc / str(pid) / "status").read_text()
    except OSError as exc:
        return CapFacts(pid, daemon, None, error=exc.strerror or str(exc))
    cap_eff: int | None = None
    uid: int | None = None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields = value.split()
        try:
            if key == "CapEff" and fields:
                cap_eff = int(fields[0], 16)
            elif key == "Uid" and len(fields) >= 2:
                uid = int(fields[1])  # real, effective, saved, fs: the effective one acts
        except ValueError:
            continue
    error = "" if cap_eff is not None else f"no CapEff line in {proc / str(pid) / 'status'}"
    return CapFacts(pid, daemon, cap_eff, error=error, uid=uid)


def kernel_synchronized() -> bool | None:
    """The kernel's word on whether its clock is synchronised (NTP), None if it would not
    say (no adjtimex in this C library, or a sandbox refusing it)."""
    try:
        adjtimex = ctypes.CDLL(None, use_errno=True).adjtimex
    except (OSError, AttributeError):
        return None
    state = adjtimex(ctypes.create_string_buffer(TIMEX_BYTES))
    if not isinstance(state, int) or state < 0:
        return None
    return state != TIME_ERROR


# --------------------------------------------------------------------------- the socket


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def probe_socket(path: Path | None) -> SocketFacts:
    """The socket's (or its directory's) owner, group and mode, and one connection: the
    errno if it failed, the listener's pid and uid (SO_PEERCRED) if it worked."""
    uid = os.geteuid()
    who: dict[str, Any] = {"user": _user_name(uid), "uid": uid}
    if path is None:
        return SocketFacts(None, **who)
    guard = path
    exists: bool | None = True
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return SocketFacts(str(path), exists=False, **who)
    except OSError:
        # Its directory cannot be searched (a 0750 home of another group): that
        # directory's owner and group decide, so report those.
        exists, guard = None, path.parent
        try:
            info = os.stat(guard)
        except OSError:
            info = None
    if info is not None:
        in_db, in_session = discovery.group_standing(info.st_gid)  # as `ztui` words it
        owner: dict[str, Any] = {
            "mode": info.st_mode,
            "owner": _user_name(info.st_uid),
            "group": _group_name(info.st_gid),
            "in_group_session": in_session,
            "in_group_db": in_db,
        }
    else:
        owner = {}
    conn = _connect(path)
    return SocketFacts(str(path), exists=exists, guard=str(guard), **owner, **conn, **who)


def _connect(path: Path) -> dict[str, Any]:
    sock = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM)
    try:
        sock.settimeout(CONNECT_TIMEOUT_S)
        sock.connect(str(path))
        pid, peer_uid, _gid = PEERCRED.unpack(
            sock.getsockopt(socketlib.SOL_SOCKET, socketlib.SO_PEERCRED, PEERCRED.size)
        )
    except TimeoutError:
        return {"connect_errno": errno.ETIMEDOUT, "connect_error": "timed out"}
    except OSError as exc:
        code = exc.errno if exc.errno is not None else errno.EIO
        return {"connect_errno": code, "connect_error": exc.strerror or str(exc)}
    finally:
        sock.close()
    return {"peer_pid": pid, "peer_uid": peer_uid}


# --------------------------------------------------------------------------- the API


def _reason(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


def ask_daemon(client: ApiClient) -> DaemonFacts:
    """GET /status, and when it answered, /netcheck and /networks; every failure as
    words. httpx errors other than transport ones (a decoding error) are caught too.
    The system home is where `ztui` itself looks for the system node, so that advice
    for a home moved with $ZTUI_SYSTEM_HOME names the unit, not a second overlayd."""
    # `--api unix:PATH` leaves the client's home at the default; the socket's directory
    # is the home of the daemon that made it.
    sock = client.socket_path
    home = sock.parent if sock is not None and sock.name == CONTROL_SOCKET_NAME else client.home
    base: dict[str, Any] = {
        "endpoint": client.endpoint,
        "home": str(home),
        "system_home": str(discovery.system_home(os.environ)),
    }
    try:
        status = NodeFacts.from_json(client.status())
    except (ApiError, httpx.HTTPError, OddReply) as exc:
        return DaemonFacts(**base, error=_reason(exc))
    netcheck, netcheck_error = None, ""
    try:
        netcheck = NetcheckFacts.from_json(client.netcheck())
    except (ApiError, httpx.HTTPError, OddReply) as exc:
        netcheck_error = _reason(exc)
    networks, networks_error = None, ""
    try:
        networks = networks_from_json(client.networks())
    except (ApiError, httpx.HTTPError, OddReply) as exc:
        networks_error = _reason(exc)
    return DaemonFacts(
        **base,
        status=status,
        netcheck=netcheck,
        netcheck_error=netcheck_error,
        networks=networks,
        networks_error=networks_error,
    )


# --------------------------------------------------------------------------- the kernel


def read_kernel() -> KernelFacts:
    """Links, addresses and main-table routes of this network namespace (pyroute2)."""
    try:
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            links = tuple(
                KernelLink(link["index"], link.get_attr("IFLA_IFNAME"), link.get_attr("IFLA_MTU"))
                for link in ipr.get_links()
            )
            names = {link.index: link.name for link in links}
            addresses = tuple(_address(msg, names) for msg in ipr.get_addr())
            routes = tuple(
                _route(msg, names)
                for family in (socketlib.AF_INET, socketlib.AF_INET6)
                for msg in ipr.get_routes(family=family, table=MAIN_TABLE)
                if msg["type"] == RTN_UNICAST
            )
    # Anything at all: a missing netlink socket, a sandbox's EPERM, a pyroute2 change. The
    # kernel checks are then skipped with these words; the others still run.
    except Exception as exc:
        return KernelFacts(error=f"{type(exc).__name__}: {exc}")
    return KernelFacts(links, addresses, routes)


def _address(msg: Any, names: dict[int, str]) -> KernelAddress:
    # IFA_LOCAL is this host's own address; IFA_ADDRESS is the peer's on point-to-point
    # links and the same as IFA_LOCAL elsewhere (IPv6 sends only IFA_ADDRESS).
    local = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
    return KernelAddress(names.get(msg["index"], f"#{msg['index']}"), f"{local}/{msg['prefixlen']}")


def _route(msg: Any, names: dict[int, str]) -> KernelRoute:
    any_address = "0.0.0.0" if msg["family"] == socketlib.AF_INET else "::"
    dst = msg.get_attr("RTA_DST") or any_address
    oif = msg.get_attr("RTA_OIF")
    metrics = msg.get_attr("RTA_METRICS")
    mtu = metrics.get_attr("RTAX_MTU") if metrics is not None else None
    return KernelRoute(
        device=names.get(oif) if oif is not None else None,
        target=f"{dst}/{msg['dst_len']}",
        gateway=msg.get_attr("RTA_GATEWAY"),
        mtu=mtu or None,
        priority=msg.get_attr("RTA_PRIORITY") or 0,
    )
