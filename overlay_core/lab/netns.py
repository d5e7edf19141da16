"""A network-namespace rig: a tiny internet with public hosts and NATed home sites.

The system tests (tests/netns) and `ztui demo` need real kernels paths between real
sockets: NAT mappings that expire, UDP that is blocked, a path MTU that is smaller than the
TAP MTU. This module builds that world out of network namespaces, veth pairs, Linux
bridges and iptables, and tears it down again however the test ends.

The world, for `add_public_host("root1")` and `add_nat_site("home1").add_host("nas")`:

    ns zt1a2b-inet            ns zt1a2b-root1          ns zt1a2b-home1 (router)   ns zt1a2b-nas
    br0 198.18.0.1/15   <-->  eth0 198.18.1.10/15
        2001:db8::1/64             2001:db8::198:18:1:10
                        <------------------------------>  wan0 198.18.1.11/15
                                                         lan0 10.1.0.1/24   <-->  eth0 10.1.0.2
                                                         MASQUERADE on wan0        default via .1

* The internet is one flat 198.18.0.0/15 (RFC 2544 benchmarking range) plus 2001:db8::/64
  (documentation range) on a bridge, so there is nothing to route: every public address is
  on-link. A public address a.b.c.d gets the IPv6 address 2001:db8::a:b:c:d, readable at a
  glance next to its IPv4 one.
* A NAT site is a router namespace with a WAN veth on the internet bridge and a LAN bridge;
  iptables MASQUERADE on the WAN side. Linux MASQUERADE keeps the source port when it can
  (an endpoint-independent mapping, "full cone"-ish mapping with address-and-port dependent
  filtering by conntrack); with `--random-fully` every new flow gets a random port, which
  behaves like a symmetric NAT: the port the root sees is not the one a peer will see.
  Home LANs are IPv4 only, like most NATed homes; hole punching is what we test there.
* Routed uplinks (lab/netns_isp.py): `add_nat_site(isp_hop=True)` puts an ISP router
  namespace (`<site>isp`, its own public address) between the site's WAN and the bridge,
  a real L3 hop that decrements the TTL and sends ICMP from a public address, while the
  site's public address stays on-link for everyone else (proxy ARP/NDP). `upstream=cgnat`
  puts a home router's WAN on a carrier-grade NAT site's LAN (100.64.0.0/10), NAT behind
  NAT.
* Names: the rig prefix is `zt` + 4 hex digits, namespaces are `<prefix>-<name>` with
  names of at most 8 characters, so namespace names stay within 15 characters and interface
  names derived from node names (`v-<name>`) well within the kernel's IFNAMSIZ limit.

The namespaces themselves (`Node`, `Host`, `Site`, `IspRouter`: run a command inside one,
change its links) are objects of netns_nodes.py; this module builds and changes the world.

Why shell out to `ip` and `iptables` rather than pyroute2's NetNS: every step is a command
a person can paste into a root shell to reproduce or inspect a failing rig (`ip netns exec
zt1a2b-home1 iptables -t nat -S`), errors carry the exact command and its stderr, and
pyroute2's netns support forks helper processes that complicate the cleanup guarantees.
The rig is built once per test, so the cost of a few dozen fork/execs is irrelevant.

Cleanup guarantees: `Rig.close()` (run by `__exit__`, also on exceptions, and at
interpreter exit for rigs never closed: lifetime.py) kills the process groups it started,
then any process still living in one of its namespaces, then deletes the namespaces, which
destroys the veths and bridges inside them. Nothing is ever created in the host namespace:
veth pairs are created with both ends directly inside their namespaces, so a crash cannot
leave interfaces behind there. A rig records its owner PID in /run/ztui-rigs/<prefix>, which
lets `cleanup_leftovers()` remove the remains of crashed runs without touching the rigs of
a test run that is still going on next door.
"""

from __future__ import annotations

import contextlib
import fnmatch
import ipaddress
import os
import re
import secrets
import shutil
import signal
import subprocess
import warnings
from pathlib import Path
from typing import Any

from . import netns_isp
from .lifetime import Closing
from .netns_nodes import (
    INET_BRIDGE,
    INET_BRIDGE_V4,
    INET_BRIDGE_V6,
    Attached,
    Host,
    Internet,
    IspRouter,
    Node,
    RigError,
    Site,
    sh,
    v6_for,
)
from .processes import stop_processes

# The namespaces are made here; importers take them from here too.
__all__ = [
    "OWNER_DIR",
    "Host",
    "Internet",
    "IspRouter",
    "Node",
    "Rig",
    "RigError",
    "Site",
    "cleanup_leftovers",
    "list_namespaces",
    "unavailable_reason",
]

OWNER_DIR = Path("/run/ztui-rigs")
INTERNET_V4 = ipaddress.IPv4Network("198.18.0.0/15")
DEFAULT_MTU = 1500
# First automatically assigned public address; .0.x is left for the bridge and by hand.
FIRST_AUTO_PUBLIC = ipaddress.IPv4Address("198.18.1.10")
TERM_GRACE_S = 3.0

_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,7}$")
_PREFIX_RE = re.compile(r"^zt[0-9a-f]{4}$")


def unavailable_reason() -> str | None:
    """Why a rig cannot be built on this machine, or None if it can."""
    if os.geteuid() != 0:
        return "needs root for network namespaces and TAP devices"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"needs the `{tool}` command (run `make sysdeps` as root)"
    return None


def list_namespaces() -> list[str]:
    """Names of all network namespaces known to `ip netns` (lines look like `name (id: 3)`)."""
    out = sh(["ip", "netns", "list"]).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _namespace_pids(ns: str) -> list[int]:
    proc = sh(["ip", "netns", "pids", ns], check=False)
    return [int(tok) for tok in proc.stdout.split() if tok.isdigit()]


def _kill_namespace_processes(ns: str) -> None:
    """SIGKILL whatever still runs in a namespace we created (daemons that left their
    process group): a live process would keep the namespace, and its veths, alive."""
    for pid in _namespace_pids(ns):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _delete_namespace(ns: str) -> None:
    """Best effort, warning instead of raising: cleanup must not mask the test's error."""
    try:
        _kill_namespace_processes(ns)
        proc = sh(["ip", "netns", "del", ns], check=False)
        if proc.returncode != 0 and ns in list_namespaces():
            warnings.warn(f"could not delete netns {ns}: {proc.stderr.strip()}", stacklevel=2)
    except (OSError, subprocess.SubprocessError, RigError) as exc:
        warnings.warn(f"could not delete netns {ns}: {exc}", stacklevel=2)


def _owner_alive(prefix: str) -> bool:
    try:
        pid = int((OWNER_DIR / prefix).read_text().strip())
    except (OSError, ValueError):
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # A zombie owner closes nothing any more. An orphan's zombie lingers until PID 1 reaps
    # it (slowly, in some containers), and its rig was then taken for a live one.
    return stat[stat.rindex(")") + 2 :][:1] not in ("Z", "X")


def cleanup_leftovers(prefix_glob: str = "zt????", *, only_orphans: bool = True) -> list[str]:
    """Delete namespaces left by crashed rigs; returns the names deleted.

    Args:
        prefix_glob: fnmatch pattern for rig prefixes, e.g. "zt1a2b" or "zt????".
        only_orphans: skip rigs whose owner process is still alive, so one test run does
            not tear down the rigs of another running beside it.
    """
    removed: list[str] = []
    prefixes: set[str] = set()
    for ns in list_namespaces():
        prefix, sep, _ = ns.partition("-")
        if not sep or not _PREFIX_RE.match(prefix) or not fnmatch.fnmatch(prefix, prefix_glob):
            continue
        if only_orphans and _owner_alive(prefix):
            continue
        _delete_namespace(ns)
        removed.append(ns)
        prefixes.add(prefix)
    if OWNER_DIR.is_dir():
        for owner in OWNER_DIR.iterdir():
            if fnmatch.fnmatch(owner.name, prefix_glob) and (
                owner.name in prefixes or not (only_orphans and _owner_alive(owner.name))
            ):
                owner.unlink(missing_ok=True)
    return removed


# --------------------------------------------------------------------------------------
# The rig


class Rig(Closing):
    """A named world of namespaces; use as a context manager.

    Example:
        with Rig() as rig:
            root = rig.add_public_host("root1")
            home = rig.add_nat_site("home1", random_fully=True)
            nas = home.add_host("nas")
            assert nas.run(["ping", "-c1", "-W2", root.addr]).returncode == 0
    """

    def __init__(self, prefix: str | None = None) -> None:
        """Args:
        prefix: `zt` + 4 hex digits; random (and checked to be unused) by default.
        """
        reason = unavailable_reason()
        if reason is not None:
            raise RigError(reason)
        if prefix is not None and not _PREFIX_RE.match(prefix):
            raise RigError(f"rig prefix must look like zt1a2b, not {prefix!r}")
        self.prefix = prefix or self._claim_prefix()
        if prefix is not None:
            self._write_owner()
        self.internet: Internet | None = None
        self.nodes: dict[str, Node] = {}
        self.namespaces: list[str] = []
        self._procs: list[subprocess.Popen[Any]] = []
        self._used_public: set[ipaddress.IPv4Address] = set()
        self._opened_now()

    # ---- lifecycle --------------------------------------------------------------------

    def _release(self) -> None:
        """close(): kill our processes, delete our namespaces. Never raises."""
        self._stop_processes()
        for ns in reversed(self.namespaces):
            _delete_namespace(ns)
        (OWNER_DIR / self.prefix).unlink(missing_ok=True)

    def _claim_prefix(self) -> str:
        existing = {ns.partition("-")[0] for ns in list_namespaces()}
        OWNER_DIR.mkdir(parents=True, exist_ok=True)
        for _ in range(100):
            prefix = "zt" + secrets.token_hex(2)
            if prefix in existing:
                continue
            try:  # O_EXCL: the owner file doubles as the lock on the prefix
                fd = os.open(OWNER_DIR / prefix, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                continue
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()}\n")
            return prefix
        raise RigError("could not find an unused rig prefix")

    def _write_owner(self) -> None:
        OWNER_DIR.mkdir(parents=True, exist_ok=True)
        (OWNER_DIR / self.prefix).write_text(f"{os.getpid()}\n")

    def _track(self, proc: subprocess.Popen[Any]) -> None:
        self._procs.append(proc)

    def _stop_processes(self) -> None:
        """SIGTERM each started process group, SIGKILL what is left after a grace period
        (popen starts each in a new session, so a group is all it spawned)."""
        stop_processes(self._procs, TERM_GRACE_S, groups=True)
        for p in self._procs:
            for stream in (p.stdin, p.stdout, p.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()

    # ---- building ----------------------------------------------------------------------

    def _new_namespace(self, name: str) -> str:
        if not _NAME_RE.match(name):
            raise RigError(f"node name must match {_NAME_RE.pattern} (short, for ifnames)")
        ns = f"{self.prefix}-{name}"
        if ns in self.namespaces:
            raise RigError(f"rig {self.prefix} already has a node named {name!r}")
        self.namespaces.append(ns)  # recorded first: a half-made namespace is cleaned too
        sh(["ip", "netns", "add", ns])
        node = Node(self, name, ns)
        node.ip("link", "set", "lo", "up")
        # Skip IPv6 duplicate address detection: addresses are usable at once, no flaky
        # "tentative" window at the start of every test.
        node.sysctl("net.ipv6.conf.all.accept_dad", 0)
        node.sysctl("net.ipv6.conf.default.accept_dad", 0)
        return ns

    def _public_addr(self, addr: str | None) -> ipaddress.IPv4Address:
        if addr is None:
            candidate = FIRST_AUTO_PUBLIC
            while candidate in self._used_public:
                candidate += 1
        else:
            candidate = ipaddress.IPv4Address(addr)
            if candidate not in INTERNET_V4 or candidate in self._used_public:
                raise RigError(f"public address {addr} is outside {INTERNET_V4} or taken")
        self._used_public.add(candidate)
        return candidate

    def _veth(self, outer: Node, outer_if: str, inner_ns: str, inner_if: str) -> None:
        """A veth pair created with each end directly in its namespace (never in ours)."""
        outer.ip("link", "add", outer_if, "type", "veth", "peer", "name", inner_if,
                 "netns", inner_ns)  # fmt: skip

    def add_internet(self) -> Internet:
        """Create the internet namespace with its bridge (once; later calls return it)."""
        if self.internet is not None:
            return self.internet
        inet = Internet(self, "inet", self._new_namespace("inet"))
        inet.ip("link", "add", INET_BRIDGE, "type", "bridge")
        # Multicast snooping off: IPv6 neighbour discovery must reach every port at once.
        inet.ip("link", "set", INET_BRIDGE, "type", "bridge", "mcast_snooping", "0")
        # An MTU set by hand pins the bridge: it no longer follows its smallest port once
        # set_link_mtu shrinks one site's link.
        inet.ip("link", "set", INET_BRIDGE, "mtu", str(DEFAULT_MTU))
        inet.ip("addr", "add", f"{INET_BRIDGE_V4}/{INTERNET_V4.prefixlen}", "dev", INET_BRIDGE)
        inet.ip("-6", "addr", "add", f"{INET_BRIDGE_V6}/64", "dev", INET_BRIDGE, "nodad")
        inet.ip("link", "set", INET_BRIDGE, "up")
        self._used_public.add(ipaddress.IPv4Address(INET_BRIDGE_V4))
        self.internet = inet
        return inet

    def _attach_to_internet(self, node: Attached, v4: ipaddress.IPv4Address) -> None:
        inet = self.add_internet()
        self._veth(inet, node.outer_if, node.ns, node.iface)
        inet.ip("link", "set", node.outer_if, "master", INET_BRIDGE, "up")
        node.ip("addr", "add", f"{v4}/{INTERNET_V4.prefixlen}", "dev", node.iface)
        node.ip("-6", "addr", "add", f"{v6_for(v4)}/64", "dev", node.iface, "nodad")
        node.ip("link", "set", node.iface, "up")

    def add_public_host(self, name: str, addr: str | None = None) -> Host:
        """A host with a public IPv4 (198.18.0.0/15) and IPv6 (2001:db8::/64) address.

        Args:
            name: short node name ([a-z][a-z0-9]{0,7}), unique in the rig.
            addr: IPv4 address inside 198.18.0.0/15; the next free one from 198.18.1.10 if
                omitted. The IPv6 address is derived from it (see module docstring).
        """
        inet = self.add_internet()
        v4 = self._public_addr(addr)
        host = Host(self, name, self._new_namespace(name), inet, str(v4), v6_for(v4), None)
        self._attach_to_internet(host, v4)
        self.nodes[name] = host
        return host

    def add_nat_site(
        self,
        name: str,
        public_addr: str | None = None,
        lan_cidr: str = "10.1.0.0/24",
        random_fully: bool = False,
        block_udp: bool = False,
        underlay_mtu: int | None = None,
        input_firewall: bool = True,
        isp_hop: bool = False,
        upstream: Site | None = None,
    ) -> Site:
        """A home: NAT router namespace with its WAN on the internet and a LAN bridge.

        Several sites may use the same lan_cidr, like real homes. Add hosts with
        `site.add_host(name)`.

        Args:
            name: short node name, also the router namespace's suffix.
            public_addr: the router's WAN address in 198.18.0.0/15 (auto if omitted); with
                `upstream`, a free address on the upstream's LAN (the next one if omitted).
            lan_cidr: LAN prefix; the router takes the first host address.
            random_fully: MASQUERADE with --random-fully (symmetric-NAT-like mapping).
            block_udp: drop forwarded UDP in both directions (TCP still passes).
            underlay_mtu: MTU of the WAN link (both veth ends), see set_link_mtu.
            input_firewall: drop new connections from the WAN to the router itself, as
                every consumer router does. Without it a hole-punching packet that reaches
                the router before its own host has sent one is delivered to the router,
                and conntrack keeps that entry (UNREPLIED, 30 s, refreshed by every later
                probe); it holds the router's public port, so the host's own punch is
                masqueraded to another port the peer's NAT does not expect, and the pair
                never goes DIRECT. A dropped packet leaves no confirmed entry.
            isp_hop: reach the internet through an ISP router namespace (`<name>isp`, the
                next free public address): a routed hop with its own public address, as
                between any two homes on the real internet (lab/netns_isp.py).
            upstream: a home behind a carrier-grade NAT: the WAN is on this site's LAN
                (give it lan_cidr="100.64.0.0/24"), default route via its gateway. The
                upstream site can have the isp_hop; this one cannot.
        """
        inet = self.add_internet()
        lan = ipaddress.IPv4Network(lan_cidr)
        if upstream is not None:
            if isp_hop:
                raise RigError("a site behind a carrier NAT has no ISP hop; its upstream has")
            wan = self._claim_lan_addr(upstream, public_addr)
            ns = self._new_namespace(name)
            site = Site(self, name, ns, upstream, str(wan), lan, upstream=upstream)
            netns_isp.wire_upstream(self, site, upstream)
            upstream.downstream[name] = site
        elif isp_hop:
            v4 = self._public_addr(public_addr)
            isp_name = netns_isp.isp_name(name, self.nodes)
            isp_v4 = self._public_addr(None)
            isp = IspRouter(self, isp_name, self._new_namespace(isp_name), inet, str(isp_v4))
            self._attach_to_internet(isp, isp_v4)
            self.nodes[isp_name] = isp
            site = Site(self, name, self._new_namespace(name), isp, str(v4), lan, isp=isp)
            isp.site = site
            netns_isp.wire_isp_hop(self, isp, site)
        else:
            v4 = self._public_addr(public_addr)
            site = Site(self, name, self._new_namespace(name), inet, str(v4), lan)
            self._attach_to_internet(site, v4)
        site.ip("link", "add", Site.LAN_IF, "type", "bridge")
        site.ip("addr", "add", f"{site.gateway}/{lan.prefixlen}", "dev", Site.LAN_IF)
        site.ip("link", "set", Site.LAN_IF, "up")
        site.sysctl("net.ipv4.ip_forward", 1)
        self.nodes[name] = site
        if input_firewall:
            site.run(
                ["iptables", "-A", "INPUT", "-i", Site.WAN_IF, "-m", "conntrack",
                 "--ctstate", "NEW,INVALID", "-j", "DROP"],
                check=True,
            )  # fmt: skip
        self.set_nat_random_fully(site, random_fully)
        self.block_udp(site, block_udp)
        if underlay_mtu is not None:
            self.set_link_mtu(site, underlay_mtu)
        return site

    def add_node(self, name: str) -> Node:
        """A bare namespace (loopback up, nothing else) for topologies the helpers above
        do not build, such as a LAN behind a bridging overlay member; wire it with `veth`.
        It is deleted with the rig like every other node."""
        node = Node(self, name, self._new_namespace(name))
        self.nodes[name] = node
        return node

    def veth(self, a: Node, a_if: str, b: Node, b_if: str, *, up: bool = True) -> None:
        """A veth pair between two of the rig's nodes: `a_if` in a, `b_if` in b, each
        created directly in its namespace (never in ours), both set up unless `up=False`."""
        self._veth(a, a_if, b.ns, b_if)
        if up:
            a.ip("link", "set", a_if, "up")
            b.ip("link", "set", b_if, "up")

    def _claim_lan_addr(self, site: Site, addr: str | None) -> ipaddress.IPv4Address:
        if addr is None:
            free = (a for a in site.lan.hosts() if a not in site._used_lan)
            chosen = next(free, None)
            if chosen is None:
                raise RigError(f"{site.name}'s LAN {site.lan} is full")
        else:
            chosen = ipaddress.IPv4Address(addr)
            if chosen not in site.lan or chosen in site._used_lan:
                raise RigError(f"{addr} is not a free address on {site.name}'s LAN {site.lan}")
        site._used_lan.add(chosen)
        return chosen

    def _add_lan_host(self, site: Site, name: str, addr: str | None) -> Host:
        addr = str(self._claim_lan_addr(site, addr))
        host = Host(self, name, self._new_namespace(name), site, addr, None, site)
        self._veth(site, host.outer_if, host.ns, host.iface)
        site.ip("link", "set", host.outer_if, "master", Site.LAN_IF, "up")
        host.ip("addr", "add", f"{addr}/{site.lan.prefixlen}", "dev", host.iface)
        host.ip("link", "set", host.iface, "up")
        host.ip("route", "add", "default", "via", site.gateway)
        site.hosts[name] = host
        self.nodes[name] = host
        return host

    # ---- changing the world at run time -------------------------------------------------

    def set_nat_random_fully(self, site: Site, enabled: bool) -> None:
        """Switch a site's MASQUERADE between port-preserving and --random-fully.

        Flushes the router's conntrack table so existing mappings do not outlive the
        change (without the `conntrack` tool they linger until they time out)."""
        site.run(["iptables", "-t", "nat", "-F", "POSTROUTING"], check=True)
        rule = ["iptables", "-t", "nat", "-A", "POSTROUTING", "-o", Site.WAN_IF,
                "-j", "MASQUERADE"]  # fmt: skip
        site.run([*rule, "--random-fully"] if enabled else rule, check=True)
        site.random_fully = enabled
        self.flush_conntrack(site)

    def block_udp(self, site: Site, blocked: bool) -> None:
        """Drop (or stop dropping) all UDP forwarded by a site's router; TCP passes.

        The rule is unconditional, so established flows stop at once; conntrack is flushed
        anyway so that unblocking starts from fresh NAT mappings."""
        rule = ["FORWARD", "-p", "udp", "-j", "DROP"]
        present = site.run(["iptables", "-C", *rule]).returncode == 0
        if blocked and not present:
            site.run(["iptables", "-I", *rule], check=True)
        elif not blocked:
            while site.run(["iptables", "-C", *rule]).returncode == 0:
                site.run(["iptables", "-D", *rule], check=True)
        site.udp_blocked = blocked
        self.flush_conntrack(site)

    def flush_conntrack(self, site: Site) -> bool:
        """Forget all NAT mappings on a site's router; False if `conntrack` is missing."""
        if shutil.which("conntrack") is None:
            return False
        site.run(["conntrack", "-F"])  # exits 1 when the table was already empty
        return True

    def set_link_mtu(self, node: Site | Host, mtu: int) -> None:
        """Shrink (or restore) the MTU of a node's uplink: a site's WAN link or a public
        host's link to the internet, or a LAN host's link to its router.

        On a site, oversized DF packets leaving the LAN get ICMP "fragmentation needed" from
        the router (a routed hop). Oversized frames arriving from the internet are dropped
        silently by the internet bridge (bridges send no ICMP): a PMTU black hole, which
        the overlay's own path-MTU probing has to detect (behind an ISP hop the ISP router
        answers them with "fragmentation needed" instead). Hosts that learned a smaller
        path MTU keep it after the MTU is restored (the kernel caches it for ~10 min):
        `host.run(["ip", "route", "flush", "cache"])` forgets it."""
        node.set_mtu(mtu)
