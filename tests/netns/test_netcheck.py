"""`ztui netcheck` on real Linux NATs: does it name each NAT the way the kernel behaves?

The world, built once for the module by the netns rig:

    root1 198.18.1.10  root2 198.18.1.11       two roots on the "internet", UDP+TCP 9993
    home1 (router, MASQUERADE) -- pc1 10.1.0.2  a leaf behind a home NAT
    pub   198.18.1.x                            a leaf with a public address, no NAT

Each story starts a fresh leaf (new home, new UDP port, so no NAT mapping of an earlier
story is reused), waits until both roots have reported where they see it, reads `ztui
netcheck --json` from its control socket, and stops it again:

(a) port-preserving MASQUERADE: both roots see home1's address at the leaf's own port:
    endpoint-independent, port preserved, "Direct connections should work".
(b) MASQUERADE --random-fully: a random port per destination: endpoint-dependent, port
    not preserved, the symmetric-NAT verdict with the port to forward.
(c) a leaf on a public host: the roots see its own address: no NAT.

Where the node has finished its hop trace (hops.py), the NAT hops must be home1's inside
address for (a) and (b) and none for (c); a node that has not traced yet says "tracing".
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from overlay_core.testing.netns import Host, Rig, Site, unavailable_reason
from overlay_core.testing.processes import stop_processes

pytestmark = [
    pytest.mark.netns,
    pytest.mark.slow,
    pytest.mark.skipif(unavailable_reason() is not None, reason=unavailable_reason() or ""),
]

REPO = Path(__file__).resolve().parents[2]
ROOT_PORT = 9993
FIRST_LEAF_PORT = 22001
START_TIMEOUT_S = 10.0
REPORT_TIMEOUT_S = 15.0  # HELLO/OK with both roots, then a keepalive round
ZTUI_TIMEOUT_S = 30.0
HOP_TRACE_GRACE_S = 8.0  # a trace is a few probes of TRACE_STEP_S (0.5 s) at most


def _env() -> dict[str, str]:
    """Run the entry points from this checkout, whether or not it is pip-installed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.pop("ZTUI_HOME", None)
    return env


def _overlayd(*args: str) -> list[str]:
    return [sys.executable, "-m", "overlay_core.io.cli", *args]


class Daemon:
    """One overlayd in a rig namespace; its log goes to HOME/overlayd.log."""

    def __init__(self, name: str, host: Host, home: Path, args: list[str]) -> None:
        self.name, self.host, self.home = name, host, home
        self.log = home / "overlayd.log"
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self.log.open("w") as log:
            self.proc: subprocess.Popen[str] = host.popen(
                _overlayd("--home", str(home), *args),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_env(),
            )

    def ztui(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`ztui --home HOME args...` in the host namespace, over the control socket."""
        return subprocess.run(
            [sys.executable, "-m", "console", "--home", str(self.home), *args],
            capture_output=True,
            text=True,
            timeout=ZTUI_TIMEOUT_S,
            env=_env(),
            check=False,
        )

    def netcheck(self) -> dict[str, Any] | None:
        """`ztui netcheck --json`, or None while the daemon cannot answer yet."""
        proc = self.ztui("netcheck", "--json")
        return json.loads(proc.stdout) if proc.returncode == 0 and proc.stdout.strip() else None

    def report(self) -> str:
        state = "running" if self.proc.poll() is None else f"EXITED {self.proc.returncode}"
        parts = [f"===== {self.name} in {self.host.ns} ({state}), home {self.home}"]
        if self.proc.poll() is None:
            out = self.ztui("netcheck")
            parts.append(f"$ ztui netcheck\n{out.stdout}{out.stderr}".rstrip())
        try:
            tail = self.log.read_text(errors="replace").splitlines()[-30:]
        except OSError as exc:
            tail = [f"(no log: {exc})"]
        parts.append(f"$ tail {self.log}\n" + "\n".join(tail))
        return "\n".join(parts)

    def stop(self) -> None:
        stop_processes([self.proc])


class World:
    def __init__(self, rig: Rig, tmp: Path) -> None:
        self.rig, self.tmp = rig, tmp
        self.root_hosts = [rig.add_public_host("root1"), rig.add_public_host("root2")]
        self.home1: Site = rig.add_nat_site("home1", lan_cidr="10.1.0.0/24")
        self.pc1 = self.home1.add_host("pc1")
        self.pub = rig.add_public_host("pub")
        self.roots: list[Daemon] = []
        self.leaves: list[Daemon] = []
        self.roots_file = tmp / "roots.txt"
        self._port = FIRST_LEAF_PORT

    def start_roots(self) -> None:
        lines = []
        for index, host in enumerate(self.root_hosts, 1):
            entry = subprocess.run(
                _overlayd("--home", str(self.tmp / f"r{index}"), "roots-entry",
                          "--endpoint", f"{host.addr}:{ROOT_PORT}"),
                capture_output=True, text=True, timeout=30, env=_env(), check=True,
            )  # fmt: skip
            lines.append(entry.stdout.strip())
        self.roots_file.write_text("\n".join(lines) + "\n")
        for index, host in enumerate(self.root_hosts, 1):
            args = ["--root", "--port", str(ROOT_PORT), "--bind", "0.0.0.0",
                    "--roots", str(self.roots_file)]  # fmt: skip
            self.roots.append(Daemon(f"r{index}", host, self.tmp / f"r{index}", args))

    def start_leaf(self, host: Host, advertise: str) -> tuple[Daemon, int]:
        """A fresh leaf on `host` (new home, new port); returns it and its UDP port."""
        port, self._port = self._port, self._port + 1
        name = f"{host.name}-{port}"
        args = ["--port", str(port), "--bind", "0.0.0.0", "--roots", str(self.roots_file),
                "--advertise", advertise]  # fmt: skip
        leaf = Daemon(name, host, self.tmp / name, args)
        self.leaves.append(leaf)
        return leaf, port

    def stop(self) -> None:
        for daemon in self.leaves + self.roots:
            daemon.stop()
        self.leaves.clear()

    def report(self) -> str:
        nat = f"home1 {self.home1.addr} random_fully={self.home1.random_fully}"
        return "\n".join([f"NAT: {nat}", *(d.report() for d in self.roots + self.leaves)])

    def wait(self, what: str, probe: Callable[[], dict[str, Any] | None]) -> dict[str, Any]:
        """Poll until `probe` answers; fail with every daemon's netcheck and log."""
        deadline = time.monotonic() + START_TIMEOUT_S + REPORT_TIMEOUT_S
        while True:
            dead = [d.name for d in self.roots + self.leaves if d.proc.poll() is not None]
            assert not dead, f"overlayd exited: {dead}\n{self.report()}"
            value = probe()
            if value:
                return value
            if time.monotonic() >= deadline:
                pytest.fail(f"timed out waiting for {what}\n{self.report()}")
            time.sleep(0.25)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    tmp = Path(tempfile.mkdtemp(prefix="zt", dir="/tmp"))  # control.sock paths < 108 bytes
    try:
        with Rig() as rig:
            w = World(rig, tmp)
            try:
                w.start_roots()
                yield w
            finally:
                w.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def net(world: World) -> Iterator[World]:
    """The module's world; the test's leaves are stopped and home1 reset afterwards."""
    try:
        yield world
    finally:
        for leaf in world.leaves:
            leaf.stop()
        world.leaves.clear()
        world.rig.set_nat_random_fully(world.home1, False)


def _both_roots_reported(leaf: Daemon) -> Callable[[], dict[str, Any] | None]:
    """The report once both roots answer over UDP and have said where they see us, and
    the hop trace has finished; after HOP_TRACE_GRACE_S a node still "tracing" is taken
    as it is (one whose node does not drive the trace never finishes it)."""
    started = time.monotonic()

    def probe() -> dict[str, Any] | None:
        report = leaf.netcheck()
        if report is None or len(report["roots"]) != 2:
            return None
        if not all(r["link"] == "UDP" and r["external_v4"] for r in report["roots"]):
            return None
        if report["hops_traced"] or time.monotonic() - started > HOP_TRACE_GRACE_S:
            return report
        return None

    return probe


def _check_hops(net: World, report: dict[str, Any], expected: list[str]) -> None:
    if report["hops_traced"]:
        assert report["nat_hops"] == expected, net.report()
    else:
        assert report["nat_hops"] == [] and report["hops"] == "tracing", net.report()


def test_port_preserving_masquerade_is_endpoint_independent(net: World) -> None:
    """(a) Plain MASQUERADE keeps the leaf's port: both roots see home1:port."""
    net.rig.set_nat_random_fully(net.home1, False)
    leaf, port = net.start_leaf(net.pc1, str(net.home1.lan))
    report = net.wait("both roots to report the leaf", _both_roots_reported(leaf))
    assert report["udp"] and not report["tunneled"], net.report()
    assert report["external_v4"] == [f"{net.home1.addr}:{port}"], net.report()
    assert report["mapping"] == "endpoint-independent", net.report()
    assert report["port_preserved"] is True and report["local_port"] == port, net.report()
    assert report["level"] == "ok", net.report()
    assert report["verdict"] == "Direct connections should work (endpoint-independent NAT)"
    _check_hops(net, report, [net.home1.gateway])
    text = leaf.ztui("netcheck").stdout
    assert (
        text.startswith("Direct connections should work")
        and "mapping   endpoint-independent" in text
    )


def test_random_fully_is_endpoint_dependent(net: World) -> None:
    """(b) --random-fully gives each root its own random port: symmetric, port moved, and
    the verdict says peers behind another symmetric NAT get relayed."""
    net.rig.set_nat_random_fully(net.home1, True)
    leaf, port = net.start_leaf(net.pc1, str(net.home1.lan))
    report = net.wait("both roots to report the leaf", _both_roots_reported(leaf))
    assert report["mapping"] == "endpoint-dependent (symmetric)", net.report()
    assert report["port_preserved"] is False, net.report()
    assert len(report["external_v4"]) == 2, net.report()
    assert all(e.startswith(f"{net.home1.addr}:") for e in report["external_v4"]), net.report()
    assert report["level"] == "warn", net.report()
    assert report["verdict"].startswith("Symmetric NAT"), net.report()
    assert f"forward UDP port {port}" in report["advice"], net.report()
    _check_hops(net, report, [net.home1.gateway])


def test_public_host_has_no_nat(net: World) -> None:
    """(c) A leaf with a public address: the roots see its own address and port."""
    leaf, port = net.start_leaf(net.pub, "198.18.0.0/15")
    report = net.wait("both roots to report the leaf", _both_roots_reported(leaf))
    assert report["external_v4"] == [f"{net.pub.addr}:{port}"], net.report()
    assert report["mapping"] == "none (public address)", net.report()
    assert report["port_preserved"] is True, net.report()
    assert report["verdict"] == "Direct connections should work (public address, no NAT)"
    _check_hops(net, report, [])
