"""An overlay world: real `overlayd` processes in the namespace rig, driven over their APIs.

The rig (lab/netns.py) builds a tiny internet with NATed homes; this module puts nodes
on it and gives the operations a story needs in one place, for the system tests, the
overlay benchmark and `ztui demo`:

    with OverlayWorld() as world:
        world.add_roots(1)                      # root1 on the internet, 198.18.1.10:9993
        ctl = world.add_controller()            # "ctl", a public host (or at_home=True)
        a = world.add_home("home1", "pc1")      # NAT router home1, member host pc1
        b = world.add_home("home2", "pc2", underlay_mtu=1280)
        nwid = world.create_network("lab", pools=["10.147.17.0/24"])
        world.bring_up(nwid, [a, b])            # join, approve, wait for OK
        a.host.run(["ping", "-c", "3", world.overlay_ip(b, nwid)])

What every node is:
* An `OverlayNode` (lab/overlay_node.py) = one overlayd in one rig namespace, with its home
  directory (identity, controller.db, networks.json, control.sock, overlayd.log) under the
  world's short /tmp directory (UNIX socket paths must stay under 108 bytes). It binds
  0.0.0.0 and advertises only its own address as a /32 (or the CIDR `add_member` is
  given), so no address outside the rig is ever told to a peer.
* The host namespace reaches each daemon's control socket directly (namespaces share the
  filesystem), so `node.get("/status")` and `node.ztui("peers")` need no `ip netns exec`.
* Members come with a NAT site of their own (`add_home`), on a public host
  (`add_public_member`), or on a host the rig already has (`add_member`): a story that
  starts fresh leaves on the same homes for each test names a new home and port each time.
* Roots are public hosts listed in one roots file; every node is started with it.
* The controller is an ordinary node whose controller hosts the networks (every node has
  one); `create_network`, `approve`, `deauthorize` talk to it.

Waiting: `wait(what, probe, timeout)` polls until the probe returns something truthy; on
timeout it raises WorldTimeout whose message is `report()`: how each NAT the nodes sit
behind is set, then every node's status, peers, networks and log tail, so a failure says
what the nodes believed. It also fails at once if a daemon died.

Cleanup: `close()` (also `__exit__`, and at interpreter exit for worlds never closed)
stops every daemon by its own PID (SIGTERM, then SIGKILL), closes the rig if the world
created it (which kills whatever is left in its namespaces and deletes them) and removes
the world's directory. Closing is idempotent and never raises.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ..proto.states import Link, NetworkState
from .lifetime import Closing
from .netns import Host, Rig
from .overlay_node import (
    POLL_S,
    ApiCallError,
    OverlayNode,
    WorldError,
    WorldTimeout,
    child_env,
    overlayd_argv,
    stop_nodes,
    ztui_argv,
)

# The nodes' names, beside the world that makes them (importers take them from here).
__all__ = [
    "PORT",
    "ApiCallError",
    "OverlayNode",
    "OverlayWorld",
    "WorldError",
    "WorldTimeout",
    "child_env",
    "overlayd_argv",
    "ztui_argv",
]

T = TypeVar("T")

PORT = 9993


class OverlayWorld(Closing):
    """Roots, a controller and member homes on a rig; use as a context manager.

    Args:
        rig: build on this rig (the caller closes it); a new one, closed with the world,
            if omitted.
        base: directory for the nodes' homes; a fresh short one under /tmp (removed on
            close) if omitted.
        log_level: overlayd's --log-level for every node started.
    """

    def __init__(
        self, rig: Rig | None = None, base: Path | None = None, log_level: str = "info"
    ) -> None:
        self._own_rig = rig is None
        self._own_base = base is None
        self.rig = rig if rig is not None else Rig()
        self.base = base if base is not None else Path(tempfile.mkdtemp(prefix="zt", dir="/tmp"))
        self.log_level = log_level
        self.roots: list[OverlayNode] = []
        self.controller: OverlayNode | None = None
        self.members: list[OverlayNode] = []
        self.roots_file = self.base / "roots.txt"
        self._lans = 0
        self._opened_now()

    # ---- lifecycle ----------------------------------------------------------------------

    @property
    def nodes(self) -> list[OverlayNode]:
        ctl = [self.controller] if self.controller is not None else []
        return [*self.roots, *ctl, *self.members]

    def _release(self) -> None:
        """close(): stop every daemon, delete the rig (if ours) and the homes (if ours)."""
        with contextlib.suppress(Exception):
            stop_nodes(self.nodes)
        if self._own_rig:
            self.rig.close()
        if self._own_base:
            shutil.rmtree(self.base, ignore_errors=True)

    # ---- building -----------------------------------------------------------------------

    def _node(
        self,
        name: str,
        host: Host,
        role: str,
        extra: Sequence[str] = (),
        *,
        port: int = PORT,
        advertise: str | None = None,
        log_level: str | None = None,
    ) -> OverlayNode:
        """An overlayd for `host` with the world's roots file, binding 0.0.0.0 and telling
        peers only `advertise` (the host's own address by default): no address outside the
        rig is ever told to a peer."""
        if not self.roots_file.exists():
            raise WorldError("add_roots first: every node is started with the roots file")
        args = ["--port", str(port), "--bind", "0.0.0.0",
                "--advertise", advertise or f"{host.addr}/32",
                "--roots", str(self.roots_file)]  # fmt: skip
        level = log_level or self.log_level
        return OverlayNode(name, host, self.base / name, role, [*args, *extra], level)

    def add_roots(self, count: int = 1, names: Sequence[str] | None = None) -> list[OverlayNode]:
        """Public hosts running `overlayd --root`, all listed in the world's roots file,
        started. Call once, before any other node is added (they are given that file)."""
        if self.roots:
            raise WorldError("the roots are already there; add_roots is called once")
        names = list(names) if names is not None else [f"root{i + 1}" for i in range(count)]
        hosts = [self.rig.add_public_host(name) for name in names]
        lines = []
        for name, host in zip(names, hosts, strict=True):
            entry = subprocess.run(
                overlayd_argv(
                    "--home", str(self.base / name), "roots-entry",
                    "--endpoint", f"{host.addr}:{PORT}",
                ),
                capture_output=True, text=True, timeout=60, env=child_env(), check=False,
            )  # fmt: skip
            if entry.returncode != 0:
                raise WorldError(f"roots-entry for {name}: {entry.stderr.strip()}")
            lines.append(entry.stdout.strip())
        self.roots_file.write_text("\n".join(lines) + "\n")
        for name, host in zip(names, hosts, strict=True):
            self.roots.append(self._node(name, host, "root", ["--root"]))
        for root in self.roots:
            root.start()
        return list(self.roots)

    def _next_lan(self) -> str:
        self._lans += 1
        return f"10.{self._lans}.0.0/24"

    def add_controller(
        self,
        name: str = "ctl",
        *,
        at_home: bool = False,
        site_name: str = "ctlhome",
        start: bool = True,
    ) -> OverlayNode:
        """The node whose controller hosts the world's networks, started (unless
        start=False): a public host, or (`at_home`) a host behind its own NAT site, like a
        NAS at home."""
        if self.controller is not None:
            raise WorldError("the world has a controller already")
        if at_home:
            host = self.rig.add_nat_site(site_name, lan_cidr=self._next_lan()).add_host(name)
        else:
            host = self.rig.add_public_host(name)
        node = self._node(name, host, "controller")
        self.controller = node
        if start:
            node.start()
        return node

    def add_home(
        self,
        site_name: str,
        host_name: str,
        *,
        lan_cidr: str | None = None,
        underlay_mtu: int | None = None,
        random_fully: bool = False,
        block_udp: bool = False,
        start: bool = True,
    ) -> OverlayNode:
        """A NAT site with one host running a member node (started unless start=False).

        Each site gets its own LAN (10.N.0.0/24) unless `lan_cidr` says otherwise; the
        other arguments are the rig's add_nat_site ones."""
        site = self.rig.add_nat_site(
            site_name,
            lan_cidr=lan_cidr or self._next_lan(),
            random_fully=random_fully,
            block_udp=block_udp,
            underlay_mtu=underlay_mtu,
        )
        return self.add_member(host_name, site.add_host(host_name), start=start)

    def add_public_member(self, name: str, *, start: bool = True) -> OverlayNode:
        """A member node on a public host (no NAT)."""
        return self.add_member(name, self.rig.add_public_host(name), start=start)

    def add_member(
        self,
        name: str,
        host: Host,
        *,
        port: int = PORT,
        advertise: str | None = None,
        log_level: str | None = None,
        start: bool = True,
    ) -> OverlayNode:
        """A member node on a host the rig already has (started unless start=False), with
        its own home `name`: a fresh identity on a host an earlier member used. A new
        `port` too keeps NAT mappings of an earlier run from being reused; `advertise`
        (a CIDR) replaces the host's own address as what the node tells peers."""
        node = self._node(name, host, "member", port=port, advertise=advertise, log_level=log_level)
        self.members.append(node)
        if start:
            node.start()
        return node

    # ---- the controller -----------------------------------------------------------------

    def _ctl(self) -> OverlayNode:
        if self.controller is None:
            raise WorldError("the world has no controller (add_controller first)")
        return self.controller

    def create_network(self, name: str = "lab", **settings: Any) -> str:
        """Create a network on the controller; returns its id. Settings are the API's:
        private, pools, routes, mtu, mss ("off" | "auto" | "fixed:N"), broadcast,
        multicast_limit, rules, presets."""
        record = self._ctl().request("POST", "/controller/networks", {"name": name, **settings})
        return str(record["nwid"])

    def update_network(self, nwid: str, **changes: Any) -> dict[str, Any]:
        return self._ctl().request("PATCH", f"/controller/networks/{nwid}", changes)  # type: ignore[no-any-return]

    def member_list(self, nwid: str) -> list[dict[str, Any]]:
        return self._ctl().get(f"/controller/networks/{nwid}/members")  # type: ignore[no-any-return]

    def set_member(self, nwid: str, node: OverlayNode, **fields: Any) -> dict[str, Any]:
        """PATCH a member: authorized, name, ips, active_bridge."""
        path = f"/controller/networks/{nwid}/members/{node.address}"
        return self._ctl().request("PATCH", path, fields)  # type: ignore[no-any-return]

    def approve(self, nwid: str, node: OverlayNode, **fields: Any) -> dict[str, Any]:
        return self.set_member(nwid, node, authorized=True, **fields)

    def deauthorize(self, nwid: str, node: OverlayNode) -> dict[str, Any]:
        return self.set_member(nwid, node, authorized=False)

    # ---- members ------------------------------------------------------------------------

    def join(self, node: OverlayNode, nwid: str, **settings: Any) -> dict[str, Any]:
        return node.join(nwid, **settings)

    def wait_state(
        self, node: OverlayNode, nwid: str, state: NetworkState, timeout: float = 15.0
    ) -> dict[str, Any]:
        """Until `node` sees `nwid` in `state` (OK also waits for its TAP device to be
        open and, if the network has pools, for an address on it); its NetworkJson."""

        def probe() -> dict[str, Any] | None:
            network = node.network(nwid)
            if network is None or network["state"] != state:
                return None
            if state is NetworkState.OK and network["device"] is None:
                return None
            return network

        return self.wait(f"{node.name} to see {nwid} {state}", probe, timeout)

    def bring_up(
        self, nwid: str, nodes: Iterable[OverlayNode], timeout: float = 20.0, **member: Any
    ) -> dict[str, dict[str, Any]]:
        """Join each node, approve it (with `member` fields such as active_bridge), and
        wait until all are OK; their NetworkJson by node name."""
        nodes = list(nodes)
        for node in nodes:
            node.join(nwid)
        for node in nodes:
            self.wait(
                f"{node.name} to ask the controller for {nwid}",
                functools.partial(self._has_asked, nwid, node.address),
                timeout,
            )
            self.approve(nwid, node, **member)
        return {node.name: self.wait_addressed(node, nwid, timeout) for node in nodes}

    def _has_asked(self, nwid: str, address: str) -> bool:
        return any(m["address"] == address for m in self.member_list(nwid))

    def wait_addressed(self, node: OverlayNode, nwid: str, timeout: float = 15.0) -> dict[str, Any]:
        """OK, and (when the controller assigned some) the addresses on the TAP device."""

        def probe() -> dict[str, Any] | None:
            network = node.network(nwid)
            if network is None or network["state"] != NetworkState.OK or network["device"] is None:
                return None
            wanted = {a.split("/")[0] for a in network["addresses"]}
            if wanted and not wanted <= set(self.device_addresses(node, network["device"])):
                return None
            return network

        return self.wait(f"{node.name} to be OK on {nwid} with its addresses", probe, timeout)

    def overlay_interface(self, node: OverlayNode, nwid: str) -> ipaddress.IPv4Interface:
        """The node's first IPv4 address on the network, with its prefix."""
        network = node.network(nwid)
        if network is None:
            raise WorldError(f"{node.name} has not joined {nwid}")
        for text in network["addresses"]:
            iface = ipaddress.ip_interface(text)
            if isinstance(iface, ipaddress.IPv4Interface):
                return iface
        raise WorldError(f"{node.name} has no IPv4 address on {nwid}: {network['addresses']}")

    def overlay_ip(self, node: OverlayNode, nwid: str) -> str:
        return str(self.overlay_interface(node, nwid).ip)

    def device(self, node: OverlayNode, nwid: str) -> str:
        network = node.network(nwid)
        if network is None or network["device"] is None:
            raise WorldError(f"{node.name} has no device for {nwid}: {network}")
        return str(network["device"])

    @staticmethod
    def device_addresses(node: OverlayNode, device: str) -> list[str]:
        """IPv4 addresses the kernel has on `device` in the node's namespace (`ip -j`)."""
        proc = node.host.run(["ip", "-j", "-4", "addr", "show", "dev", device])
        if proc.returncode != 0 or not proc.stdout.strip():
            return []
        return [
            info["local"]
            for link in json.loads(proc.stdout)
            for info in link.get("addr_info", [])
            if info.get("family") == "inet"
        ]

    # ---- peers --------------------------------------------------------------------------

    def wait_online(self, node: OverlayNode, timeout: float = 15.0) -> dict[str, Any]:
        """Until the node reaches every root."""

        def probe() -> dict[str, Any] | None:
            status = node.try_get("/status")
            ok = status is not None and status["roots_reachable"] >= len(self.roots)
            return status if ok else None

        return self.wait(f"{node.name} to reach the roots", probe, timeout)

    def wait_link(
        self, a: OverlayNode, b: OverlayNode, link: Link = Link.DIRECT, timeout: float = 20.0
    ) -> dict[str, Any]:
        """Until a lists b with this link (DIRECT, RELAY, TCP); a's PeerJson for b."""

        def probe() -> dict[str, Any] | None:
            peer = a.peer(b.address)
            return peer if peer is not None and peer["link"] == link else None

        return self.wait(f"{a.name} to see {b.name} {link}", probe, timeout)

    def wait_path_mtu(self, a: OverlayNode, b: OverlayNode, timeout: float = 30.0) -> int:
        """Until a has finished probing the MTU of its preferred path to b; that MTU."""

        def probe() -> int | None:
            peer = a.peer(b.address)
            if peer is None:
                return None
            preferred = [p for p in peer["paths"] if p["preferred"]]
            if len(preferred) != 1 or preferred[0]["mtu_searching"]:
                return None
            return int(preferred[0]["mtu"])

        return self.wait(f"{a.name}'s path MTU probe to {b.name}", probe, timeout)

    # ---- waiting and reporting ------------------------------------------------------------

    def check_alive(self) -> None:
        dead = [n for n in self.nodes if n.proc is not None and not n.stopped and not n.running]
        if dead:
            raise WorldError(f"overlayd exited: {dead}\n{self.report()}")

    def wait(self, what: str, probe: Callable[[], T | None], timeout: float) -> T:
        """Poll `probe` until it returns something truthy; WorldTimeout with every node's
        view if it does not within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            value = probe()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise WorldTimeout(f"timed out after {timeout:g} s waiting for {what}\n"
                                   f"{self.report()}")  # fmt: skip
            time.sleep(POLL_S)

    def report(self) -> str:
        """For failure messages: how the NATs in front of the nodes are set (a test may
        have changed them), then every running node's `ztui info`, `peers`, `networks` and
        log tail (and the log tail of any that died). Nodes stopped on purpose are left out."""
        nodes = [node for node in self.nodes if not node.stopped]
        sites = {node.site.name: node.site for node in nodes if node.site is not None}
        nats = ", ".join(
            f"{site.name} {site.addr} random_fully={site.random_fully} "
            f"udp_blocked={site.udp_blocked}"
            for site in sites.values()
        )
        return "\n".join([f"NATs: {nats or 'none'}", *(node.report() for node in nodes)])

    def fail(self, message: str) -> str:
        """An assertion message: what went wrong, then what every node believed."""
        return f"{message}\n{self.report()}"
