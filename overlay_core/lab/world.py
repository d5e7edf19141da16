"""An overlay world: real `overlayd` processes in the namespace rig, driven over their APIs.

The rig (testing/netns.py) builds a tiny internet with NATed homes; this module puts nodes
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
* A `OverlayNode` = one overlayd in one rig namespace, with its home directory (identity,
  controller.db, networks.json, control.sock, overlayd.log) under the world's short /tmp
  directory (UNIX socket paths must stay under 108 bytes). It binds 0.0.0.0 and advertises
  only its own address as a /32, so no address outside the rig is ever told to a peer.
* The host namespace reaches each daemon's control socket directly (namespaces share the
  filesystem), so `node.get("/status")` and `node.ztui("peers")` need no `ip netns exec`.
* Roots are public hosts listed in one roots file; every node is started with it.
* The controller is an ordinary node whose controller hosts the networks (every node has
  one); `create_network`, `approve`, `deauthorize` talk to it.

Waiting: `wait(what, probe, timeout)` polls until the probe returns something truthy; on
timeout it raises WorldTimeout whose message is `report()`: every node's status, peers,
networks and log tail, so a failure says what the nodes believed. It also fails at once if
a daemon died.

Cleanup: `close()` (also `__exit__`, and at interpreter exit for worlds never closed)
stops every daemon by its own PID (SIGTERM, then SIGKILL), closes the rig if the world
created it (which kills whatever is left in its namespaces and deletes them) and removes
the world's directory. Closing is idempotent and never raises.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx

from .netns import Host, Rig, Site
from .processes import stop_processes

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]
PORT = 9993
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0
API_TIMEOUT_S = 10.0
POLL_S = 0.2
LOG_TAIL_LINES = 30
DEFAULT_POOL = "10.147.17.0/24"


class WorldError(RuntimeError):
    """A world operation failed (a daemon would not start, an API call was refused)."""


class WorldTimeout(WorldError, AssertionError):
    """A wait ran out; the message carries every node's view (see OverlayWorld.report).

    It is an AssertionError too, so pytest shows it as a failed expectation."""


class ApiCallError(WorldError):
    """The daemon answered an API call with an error status."""

    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        super().__init__(f"{method} {path} -> {status}: {body}")
        self.status = status
        self.body = body


def child_env() -> dict[str, str]:
    """The environment for overlayd and ztui children: this checkout first on the path,
    no ZTUI_HOME leaking in from the caller's shell."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.pop("ZTUI_HOME", None)
    return env


def overlayd_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "overlay_core.io.cli", *args]


def ztui_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "console", *args]


# --------------------------------------------------------------------------------------
# Nodes


class OverlayNode:
    """One overlayd in a rig namespace, with an API client on its control socket.

    Attributes:
        name: the rig node's name (also the home directory's name).
        host: the rig Host it runs in; `host.run([...])` runs a command beside it.
        site: the NAT site for a node at home, None for a public one.
        role: "root", "controller" or "member" (what the world made it for).
        address: the node's 10-hex-digit overlay address, known once started.
    """

    def __init__(
        self,
        name: str,
        host: Host,
        home: Path,
        role: str,
        args: Sequence[str],
        log_level: str = "info",
    ) -> None:
        self.name = name
        self.host = host
        self.site: Site | None = host.site
        self.home = home
        self.role = role
        self.args = list(args)
        self.log_level = log_level
        self.log = home / "overlayd.log"
        self.address = ""
        self.proc: subprocess.Popen[str] | None = None
        self._client: httpx.Client | None = None
        self.starts = 0
        self.stopped = False  # stopped on purpose: not a crash for check_alive

    def __repr__(self) -> str:
        return f"<overlayd {self.name} {self.address or '?'} in {self.host.ns}>"

    # ---- process ------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def socket_path(self) -> Path:
        return self.home / "control.sock"

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Start overlayd (same home, so the same identity, controller and networks) and
        wait until its API answers. The log is appended to, so restarts keep history."""
        if self.running:
            return
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.starts += 1
        self.stopped = False
        with self.log.open("a") as log:
            log.write(f"----- start #{self.starts} {time.strftime('%H:%M:%S')}\n")
            log.flush()
            self.proc = self.host.popen(
                overlayd_argv("--home", str(self.home), *self.args, "--log-level", self.log_level),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=child_env(),
            )
        deadline = time.monotonic() + timeout
        while True:
            if not self.running:
                raise WorldError(f"{self.name}: overlayd exited at start\n{self.log_tail()}")
            status = self.try_get("/status")
            if status is not None:
                self.address = status["address"]
                return
            if time.monotonic() >= deadline:
                raise WorldError(f"{self.name}: no API within {timeout:g} s\n{self.log_tail()}")
            time.sleep(POLL_S)

    def stop(self) -> None:
        """SIGTERM, wait, then SIGKILL, by this node's own PID only. Idempotent."""
        self.stopped = True
        self._close_client()
        stop_processes([self.proc], STOP_TIMEOUT_S)

    def restart(self, timeout: float = START_TIMEOUT_S) -> None:
        self.stop()
        self.start(timeout)

    # ---- API ----------------------------------------------------------------------------

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(
                transport=httpx.HTTPTransport(uds=str(self.socket_path)),
                base_url="http://overlayd",
                timeout=API_TIMEOUT_S,
            )
        return self._client

    def _close_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """One API call; the parsed JSON (text for /metrics), ApiCallError on >= 400."""
        try:
            response = self.client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise WorldError(f"{self.name}: {method} {path}: {exc}") from exc
        if response.status_code >= 400:
            try:
                detail: Any = response.json()
            except ValueError:
                detail = response.text
            raise ApiCallError(method, path, response.status_code, detail)
        if "json" not in response.headers.get("content-type", ""):
            return response.text
        return response.json()

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def try_get(self, path: str) -> Any:
        """GET, or None if the daemon cannot answer (not up yet) or says 404."""
        try:
            return self.get(path)
        except ApiCallError as exc:
            if exc.status == 404:
                return None
            raise
        except WorldError:
            return None

    def status(self) -> dict[str, Any]:
        return self.get("/status")  # type: ignore[no-any-return]

    def peers(self) -> list[dict[str, Any]]:
        return self.get("/peers")  # type: ignore[no-any-return]

    def peer(self, address: str) -> dict[str, Any] | None:
        return next((p for p in self.peers() if p["address"] == address), None)

    def networks(self) -> list[dict[str, Any]]:
        return self.get("/networks")  # type: ignore[no-any-return]

    def network(self, nwid: str) -> dict[str, Any] | None:
        """This node's view of a joined network (NetworkJson), None if not joined."""
        return self.try_get(f"/networks/{nwid}")  # type: ignore[no-any-return]

    def join(self, nwid: str, **settings: Any) -> dict[str, Any]:
        return self.request("POST", f"/networks/{nwid}", settings or None)  # type: ignore[no-any-return]

    def leave(self, nwid: str) -> dict[str, Any]:
        return self.request("DELETE", f"/networks/{nwid}")  # type: ignore[no-any-return]

    def metrics(self) -> str:
        return str(self.get("/metrics"))

    def ztui(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """`ztui --home HOME args...` from the host namespace (the console over the socket)."""
        return subprocess.run(
            ztui_argv("--home", str(self.home), *args),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=child_env(),
            check=False,
        )

    # ---- diagnostics --------------------------------------------------------------------

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(text.splitlines()[-lines:])

    def report(self) -> str:
        if self.proc is None:
            state = "never started"
        elif self.stopped:
            state = f"stopped, exit {self.proc.returncode}"
        elif self.running:
            state = "running"
        else:
            state = f"EXITED {self.proc.returncode}"
        parts = [f"===== {self!r} ({self.role}, {state}), home {self.home}"]
        if self.running:
            for command in ("info", "peers", "networks"):
                try:
                    out = self.ztui(command, timeout=10)
                    parts.append(f"$ ztui {command}\n{out.stdout}{out.stderr}".rstrip())
                except subprocess.TimeoutExpired:
                    parts.append(f"$ ztui {command}\n(no answer within 10 s)")
        parts.append(f"$ tail {self.log}\n{self.log_tail()}")
        return "\n".join(parts)


# --------------------------------------------------------------------------------------
# The world


_open_worlds: weakref.WeakSet[OverlayWorld] = weakref.WeakSet()


@atexit.register
def _close_open_worlds() -> None:
    for world in list(_open_worlds):
        world.close()


class OverlayWorld:
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
        self._closed = False
        _open_worlds.add(self)

    # ---- lifecycle ----------------------------------------------------------------------

    def __enter__(self) -> OverlayWorld:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def nodes(self) -> list[OverlayNode]:
        ctl = [self.controller] if self.controller is not None else []
        return [*self.roots, *ctl, *self.members]

    def close(self) -> None:
        """Stop every daemon, delete the rig (if ours) and the homes (if ours)."""
        if self._closed:
            return
        self._closed = True
        _open_worlds.discard(self)
        for node in reversed(self.nodes):
            with contextlib.suppress(Exception):
                node.stop()
        if self._own_rig:
            self.rig.close()
        if self._own_base:
            shutil.rmtree(self.base, ignore_errors=True)

    # ---- building -----------------------------------------------------------------------

    def _node(self, name: str, host: Host, role: str, extra: Sequence[str] = ()) -> OverlayNode:
        if not self.roots_file.exists():
            raise WorldError("add_roots first: every node is started with the roots file")
        args = ["--port", str(PORT), "--bind", "0.0.0.0", "--advertise", f"{host.addr}/32",
                "--roots", str(self.roots_file)]  # fmt: skip
        return OverlayNode(name, host, self.base / name, role, [*args, *extra], self.log_level)

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
        node = self._node(host_name, site.add_host(host_name), "member")
        self.members.append(node)
        if start:
            node.start()
        return node

    def add_public_member(self, name: str, *, start: bool = True) -> OverlayNode:
        """A member node on a public host (no NAT)."""
        node = self._node(name, self.rig.add_public_host(name), "member")
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

    def network_record(self, nwid: str) -> dict[str, Any]:
        return self._ctl().get(f"/controller/networks/{nwid}")  # type: ignore[no-any-return]

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
        self, node: OverlayNode, nwid: str, state: str, timeout: float = 15.0
    ) -> dict[str, Any]:
        """Until `node` sees `nwid` in `state` (OK also waits for its TAP device to be
        open and, if the network has pools, for an address on it); its NetworkJson."""

        def probe() -> dict[str, Any] | None:
            network = node.network(nwid)
            if network is None or network["state"] != state:
                return None
            if state == "OK" and network["device"] is None:
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
            if network is None or network["state"] != "OK" or network["device"] is None:
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
        self, a: OverlayNode, b: OverlayNode, link: str = "DIRECT", timeout: float = 20.0
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
        """Every running node's `ztui info`, `peers`, `networks` and log tail (and the log
        tail of any that died), for failure messages. Nodes stopped on purpose are left out."""
        return "\n".join(node.report() for node in self.nodes if not node.stopped)

    def fail(self, message: str) -> str:
        """An assertion message: what went wrong, then what every node believed."""
        return f"{message}\n{self.report()}"
