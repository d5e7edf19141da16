"""What `ztui doctor` found out, as plain data: the input of the pure checks (checks.py).

gather.py fills these from the filesystem, /proc, the kernel (pyroute2) and the API; the
tests build them by hand. Nothing here does I/O. The API's replies are read through the
`from_json` constructors, which raise OddReply for anything that is not the shape the
schema promises, so a check never meets a half-read reply: an odd daemon reads as "the
daemon gave no usable answer", never as a crash.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

# linux/capability.h: CAP_NET_ADMIN is bit 12 of the CapEff mask in /proc/PID/status.
CAP_NET_ADMIN_BIT = 12


class OddReply(ValueError):
    """An API reply that is not the shape the schema promises; the message says where."""


def _field(obj: Any, key: str, kind: type | tuple[type, ...], what: str) -> Any:
    """obj[key] when obj is a dict and the value has the expected type, else OddReply.

    bool is an int in Python; a count that arrives as true is still odd, so it is refused
    wherever an int is expected and a bool is not."""
    if not isinstance(obj, dict):
        raise OddReply(f"{what} is not a JSON object")
    if key not in obj:
        raise OddReply(f"{what} has no {key!r}")
    value = obj[key]
    expects_bool = kind is bool or (isinstance(kind, tuple) and bool in kind)
    if not isinstance(value, kind) or (isinstance(value, bool) and not expects_bool):
        raise OddReply(f"{what}: {key!r} is {value!r}")
    return value


def _list(obj: Any, what: str) -> list[Any]:
    if not isinstance(obj, list):
        raise OddReply(f"{what} is not a JSON list")
    return obj


# --------------------------------------------------------------------------- local facts


@dataclass(frozen=True, slots=True)
class TunFacts:
    """Opening the TUN device read-write, as overlayd does for every TAP."""

    path: str
    errno: int | None  # None: it opened
    strerror: str = ""
    char_device: bool = True  # what the opened file is (a directory or plain file is not it)
    uid: int = 0  # the effective uid that tried


@dataclass(frozen=True, slots=True)
class CapFacts:
    """The effective capabilities of one process: overlayd's when its pid is known (from
    its control socket), else this process's, which is what a daemon started from this
    shell would get."""

    pid: int
    daemon: bool  # True: overlayd's process; False: this shell's own
    cap_eff: int | None  # the CapEff mask; None: it could not be read
    error: str = ""  # why it could not be read
    uid: int | None = None  # the process's uid, when known

    @property
    def net_admin(self) -> bool | None:
        return None if self.cap_eff is None else bool(self.cap_eff >> CAP_NET_ADMIN_BIT & 1)


@dataclass(frozen=True, slots=True)
class SocketFacts:
    """The control socket on disk and one connection attempt to it.

    `guard` is the path whose permissions decide access: the socket itself, or its
    directory when that cannot be searched (a 0750 home); owner, group and mode are that
    path's. path None: the API is TCP, there is no socket.
    """

    path: str | None
    exists: bool | None = None  # None: could not tell (its directory refused us)
    guard: str | None = None
    mode: int | None = None
    owner: str | None = None
    group: str | None = None
    connect_errno: int | None = None  # None: connected
    connect_error: str = ""
    peer_pid: int | None = None  # SO_PEERCRED: the process that listens
    peer_uid: int | None = None
    user: str = ""
    uid: int = 0
    in_group_session: bool | None = None  # this process carries the guard's group
    in_group_db: bool | None = None  # the user database lists the user in that group

    @property
    def connected(self) -> bool:
        return self.path is not None and self.connect_errno is None and self.exists is not False


@dataclass(frozen=True, slots=True)
class ClockFacts:
    now: float  # seconds since the epoch, this machine's clock
    synchronized: bool | None  # the kernel's word (adjtimex); None: it would not say


# --------------------------------------------------------------------------- the kernel


@dataclass(frozen=True, slots=True)
class KernelLink:
    index: int
    name: str
    mtu: int


@dataclass(frozen=True, slots=True)
class KernelAddress:
    device: str
    interface: str  # "10.147.17.5/24"

    @property
    def parsed(self) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
        return ipaddress.ip_interface(self.interface)


@dataclass(frozen=True, slots=True)
class KernelRoute:
    """A route of the main table."""

    device: str | None
    target: str  # CIDR; the default route is 0.0.0.0/0 or ::/0
    gateway: str | None
    mtu: int | None = None  # `ip route ... mtu N`: overrides the device's for this route
    priority: int = 0  # the metric; the lowest wins

    @property
    def is_default(self) -> bool:
        return self.target in ("0.0.0.0/0", "::/0")


@dataclass(frozen=True, slots=True)
class KernelFacts:
    links: tuple[KernelLink, ...] = ()
    addresses: tuple[KernelAddress, ...] = ()
    routes: tuple[KernelRoute, ...] = ()
    error: str | None = None  # why the kernel could not be read (pyroute2 failed)

    def link(self, name: str) -> KernelLink | None:
        return next((link for link in self.links if link.name == name), None)


# --------------------------------------------------------------------------- the daemon


@dataclass(frozen=True, slots=True)
class NodeFacts:
    """The parts of GET /status the checks read."""

    address: str
    version: str
    role: str  # "ROOT" or "LEAF"
    roots_total: int
    roots_reachable: int
    tunneled: bool
    uptime_s: float

    @classmethod
    def from_json(cls, obj: Any) -> NodeFacts:
        what = "GET /status"
        return cls(
            address=_field(obj, "address", str, what),
            version=_field(obj, "version", str, what),
            role=_field(obj, "role", str, what),
            roots_total=_field(obj, "roots_total", int, what),
            roots_reachable=_field(obj, "roots_reachable", int, what),
            tunneled=_field(obj, "tunneled", bool, what),
            uptime_s=float(_field(obj, "uptime_s", (int, float), what)),
        )


@dataclass(frozen=True, slots=True)
class NetcheckRoot:
    """A root as GET /netcheck reports it (NetcheckRootJson)."""

    address: str
    link: str  # a schema RootLink word: UDP, TCP or NONE (not reached); SELF is only in GET /roots
    endpoint: str | None
    latency_ms: float | None


@dataclass(frozen=True, slots=True)
class NetcheckFacts:
    """The parts of GET /netcheck the checks read."""

    udp: bool
    tunneled: bool
    roots: tuple[NetcheckRoot, ...]

    @classmethod
    def from_json(cls, obj: Any) -> NetcheckFacts:
        what = "GET /netcheck"
        roots = []
        for item in _list(_field(obj, "roots", list, what), what):
            root_what = f"{what} roots[]"
            latency = _field(item, "latency_ms", (int, float, type(None)), root_what)
            roots.append(
                NetcheckRoot(
                    address=_field(item, "address", str, root_what),
                    link=_field(item, "link", str, root_what),
                    endpoint=_field(item, "endpoint", (str, type(None)), root_what),
                    latency_ms=None if latency is None else float(latency),
                )
            )
        return cls(
            udp=_field(obj, "udp", bool, what),
            tunneled=_field(obj, "tunneled", bool, what),
            roots=tuple(roots),
        )


@dataclass(frozen=True, slots=True)
class JoinedNetwork:
    """One entry of GET /networks: what overlayd put on its TAP device."""

    nwid: str
    state: str
    device: str | None
    mtu: int
    mss: str
    addresses: tuple[str, ...]  # CIDRs, as on the device
    routes: tuple[tuple[str, str | None], ...]  # (target CIDR, gateway or None)

    @classmethod
    def from_json(cls, obj: Any) -> JoinedNetwork:
        what = "GET /networks entry"
        addresses = _list(_field(obj, "addresses", list, what), what)
        routes = _list(_field(obj, "routes", list, what), what)
        parsed_routes = tuple(
            (
                _field(route, "target", str, f"{what} route"),
                _field(route, "via", (str, type(None)), f"{what} route"),
            )
            for route in routes
        )
        for cidr in [*addresses, *(target for target, _ in parsed_routes)]:
            try:
                if not isinstance(cidr, str):
                    raise ValueError(cidr)
                ipaddress.ip_interface(cidr)
            except ValueError:
                raise OddReply(f"{what}: {cidr!r} is not an address with a prefix") from None
        for _, via in parsed_routes:
            try:
                if via is not None:
                    ipaddress.ip_address(via)
            except ValueError:
                raise OddReply(f"{what}: gateway {via!r} is not an address") from None
        return cls(
            nwid=_field(obj, "nwid", str, what),
            state=_field(obj, "state", str, what),
            device=_field(obj, "device", (str, type(None)), what),
            mtu=_field(obj, "mtu", int, what),
            mss=_field(obj, "mss", str, what),
            addresses=tuple(addresses),
            routes=parsed_routes,
        )


def networks_from_json(obj: Any) -> tuple[JoinedNetwork, ...]:
    return tuple(JoinedNetwork.from_json(item) for item in _list(obj, "GET /networks"))


@dataclass(frozen=True, slots=True)
class DaemonFacts:
    """Where the API is and what it answered. `status` None: GET /status failed with
    `error`; netcheck and networks are asked only when it answered."""

    endpoint: str  # "unix:/var/lib/ztui/control.sock" or the URL
    home: str  # the daemon's home: the socket's directory, else the client's --home
    # The system node's home, whose overlayd the unit starts: /var/lib/ztui unless
    # $ZTUI_SYSTEM_HOME moves it (console/discovery.py), as `ztui` itself looks for it.
    system_home: str
    status: NodeFacts | None = None
    error: str = ""
    netcheck: NetcheckFacts | None = None
    netcheck_error: str = ""
    networks: tuple[JoinedNetwork, ...] | None = None
    networks_error: str = ""

    @property
    def running(self) -> bool:
        return self.status is not None


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything the checks look at, gathered once."""

    tun: TunFacts
    cap: CapFacts
    socket: SocketFacts
    daemon: DaemonFacts
    clock: ClockFacts
    kernel: KernelFacts
