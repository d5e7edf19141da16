"""The rig's network namespaces as objects (lab/netns.py's Rig makes them).

A `Node` is one namespace: `run`/`popen` execute commands inside it, `ip` and `sysctl`
change it. Hosts, NAT routers (`Site`) and ISP routers hang off a bridge through a veth
(`Attached`); the `Internet` is the bridge's own namespace. Processes started with
`popen` are handed to the rig, which kills them when it closes.

`sh` runs the setup commands (`ip`, `iptables`) with errors that name the command, the
same way everywhere in the rig.
"""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the rig makes the nodes and hands itself in
    from .netns import Rig

INET_BRIDGE = "br0"
INET_BRIDGE_V4 = "198.18.0.1"
INET_BRIDGE_V6 = "2001:db8::1"
CMD_TIMEOUT_S = 30.0


class RigError(RuntimeError):
    """A rig command failed, or the machine cannot run a rig at all."""


def sh(argv: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a setup command; on failure raise RigError naming the command and its stderr."""
    proc = subprocess.run(
        list(argv), capture_output=True, text=True, timeout=CMD_TIMEOUT_S, check=False
    )
    if check and proc.returncode != 0:
        raise RigError(f"`{' '.join(argv)}` exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


def v6_for(addr: ipaddress.IPv4Address) -> str:
    """2001:db8::a:b:c:d for a.b.c.d (decimal digits reused as hex groups, for readability)."""
    return "2001:db8::" + ":".join(str(octet) for octet in addr.packed)


class Node:
    """One network namespace of the rig. `run` and `popen` execute commands inside it."""

    def __init__(self, rig: Rig, name: str, ns: str) -> None:
        self.rig = rig
        self.name = name
        self.ns = ns

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} ns={self.ns}>"

    def argv(self, cmd: Sequence[str]) -> list[str]:
        """The command line that runs `cmd` inside this namespace."""
        return ["ip", "netns", "exec", self.ns, *cmd]

    def run(self, cmd: Sequence[str], **kw: Any) -> subprocess.CompletedProcess[Any]:
        """subprocess.run inside the namespace. Defaults (overridable): capture_output,
        text, timeout=60 s, check=False, so a failing ping is a result, not an exception."""
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("timeout", 60)
        kw.setdefault("check", False)
        return subprocess.run(self.argv(cmd), **kw)

    def popen(self, cmd: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
        """subprocess.Popen inside the namespace, in a new session (hence its own process
        group) so that the rig can kill it and everything it spawned. Default text=True."""
        kw.setdefault("text", True)
        kw["start_new_session"] = True
        proc: subprocess.Popen[Any] = subprocess.Popen(self.argv(cmd), **kw)
        self.rig._track(proc)
        return proc

    def ip(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`ip -n <ns> args...`, raising RigError on failure."""
        return sh(["ip", "-n", self.ns, *args])

    def sysctl(self, key: str, value: str | int) -> None:
        """Set a sysctl in this namespace. /proc/sys/net is per namespace, so the write must
        come from a process inside it; `sh` avoids depending on procps' sysctl."""
        path = "/proc/sys/" + key.replace(".", "/")
        sh(self.argv(["sh", "-c", f"echo {value} > {path}"]))


class Internet(Node):
    """The flat public network: a bridge in its own namespace."""

    bridge = INET_BRIDGE
    addr = INET_BRIDGE_V4
    addr6 = INET_BRIDGE_V6


class Attached(Node):
    """A node hanging off a bridge through a veth: `outer_if` in `outer`, `iface` inside."""

    iface: str

    def __init__(self, rig: Rig, name: str, ns: str, outer: Node, iface: str) -> None:
        super().__init__(rig, name, ns)
        self.outer = outer
        self.outer_if = f"v-{name}"
        self.iface = iface

    def set_mtu(self, mtu: int) -> None:
        """Set the MTU on both ends of this node's veth (its link to the bridge above)."""
        self.outer.ip("link", "set", self.outer_if, "mtu", str(mtu))
        self.ip("link", "set", self.iface, "mtu", str(mtu))


class Host(Attached):
    """An end host: a public host on the internet, or a host on a site's LAN.

    Attributes:
        addr: IPv4 address (public 198.18.x.y, or the LAN address behind a NAT).
        addr6: IPv6 address for public hosts; None on NATed LANs (IPv4 only).
        site: the Site whose LAN the host is on, or None for a public host.
    """

    def __init__(
        self,
        rig: Rig,
        name: str,
        ns: str,
        outer: Node,
        addr: str,
        addr6: str | None,
        site: Site | None,
    ) -> None:
        super().__init__(rig, name, ns, outer, "eth0")
        self.addr = addr
        self.addr6 = addr6
        self.site = site


class Site(Attached):
    """A home: a NAT router namespace (`ns`) with hosts on its LAN.

    Attributes:
        addr: the router's WAN IPv4 address, the source of masqueraded packets: public, or
            on the upstream's LAN behind a carrier-grade NAT (see `public_addr`).
        addr6: the router's own IPv6 address on the internet (the LAN has no IPv6); None
            behind a carrier-grade NAT.
        lan: the LAN prefix; `gateway` is the router's address on it.
        random_fully, udp_blocked: the current NAT behaviour (change through the Rig).
        isp: the ISP router between the WAN and the internet (isp_hop), or None.
        upstream: the carrier-grade NAT site whose LAN the WAN is on, or None.
        downstream: the sites whose WAN is on this site's LAN (this one is their CGNAT).
    """

    WAN_IF = "wan0"
    LAN_IF = "lan0"

    def __init__(
        self,
        rig: Rig,
        name: str,
        ns: str,
        outer: Node,
        addr: str,
        lan: ipaddress.IPv4Network,
        *,
        isp: IspRouter | None = None,
        upstream: Site | None = None,
    ) -> None:
        super().__init__(rig, name, ns, outer, self.WAN_IF)
        self.addr = addr
        self.addr6: str | None = None
        if upstream is None:
            self.addr6 = v6_for(ipaddress.IPv4Address(addr))
        self.isp = isp
        self.upstream = upstream
        self.downstream: dict[str, Site] = {}
        self.lan = lan
        self.gateway = str(next(lan.hosts()))
        self.random_fully = False
        self.udp_blocked = False
        self.hosts: dict[str, Host] = {}
        self._used_lan: set[ipaddress.IPv4Address] = {ipaddress.IPv4Address(self.gateway)}

    @property
    def public_addr(self) -> str:
        """The address the internet sees this site's traffic come from."""
        return self.upstream.public_addr if self.upstream is not None else self.addr

    @property
    def routers(self) -> list[Site]:
        """This site's NAT routers, innermost first: itself, then its upstreams."""
        return [self, *(self.upstream.routers if self.upstream is not None else [])]

    def add_host(self, name: str, addr: str | None = None) -> Host:
        """Add a host on this site's LAN with a default route via the router."""
        return self.rig._add_lan_host(self, name, addr)


class IspRouter(Attached):
    """The ISP's access router of one site (add_nat_site(isp_hop=True)): a routed hop
    between the site's WAN and the internet bridge; see lab/netns_isp.py.

    Attributes:
        addr, addr6: its own public addresses, the source of the ICMP it sends.
        site: the Site it serves (set once that exists).
    """

    UP_IF = "up0"

    def __init__(self, rig: Rig, name: str, ns: str, outer: Node, addr: str) -> None:
        super().__init__(rig, name, ns, outer, self.UP_IF)
        self.addr = addr
        self.addr6 = v6_for(ipaddress.IPv4Address(addr))
        self.site: Site | None = None
