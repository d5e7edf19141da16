"""System tests (tier 3): real `overlayd` processes behind real Linux NATs.

The world, built once for the module by the netns rig:

    root1 198.18.1.10  root2 198.18.1.11       two roots on the "internet", UDP+TCP 9993
    home1 (router, MASQUERADE) -- pc1 10.1.0.2  a leaf behind a home NAT
    home2 (router, MASQUERADE) -- pc2 10.2.0.2  another leaf behind another home NAT

The routers also drop unsolicited traffic from the WAN to themselves, the default of every
consumer router (the rig's input_firewall default; its docstring says why hole punching
depends on it).

Both roots run for the whole module. Each test sets the two NATs the way its story needs
(port-preserving, --random-fully, UDP blocked), then starts two fresh leaves (new homes,
so new identities, and a new UDP port, so no NAT mapping from an earlier test is reused)
and stops them again at the end. Leaves bind 0.0.0.0 and advertise only their LAN prefix,
so every address a node ever tells a peer about lies inside the rig.

Everything is observed the way a user would: through `ztui` on each daemon's control
socket (the namespaces share the filesystem, so the console runs in the host namespace).
Waits are polls with deadlines; a failed wait shows every daemon's `ztui info`, `ztui
peers` and the tail of its log, so a red run says what the nodes believed.
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
from typing import Any, TypeVar

import pytest

from overlay_core.lab.netns import Host, Rig, unavailable_reason
from overlay_core.lab.processes import stop_processes

pytestmark = [
    pytest.mark.netns,
    pytest.mark.slow,
    pytest.mark.skipif(unavailable_reason() is not None, reason=unavailable_reason() or ""),
]

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]
ROOT_PORT = 9993
FIRST_LEAF_PORT = 21001
START_TIMEOUT_S = 10.0
ONLINE_TIMEOUT_S = 15.0
TCP_FALLBACK_TIMEOUT_S = 20.0  # the node opens TCP after ~8 s without a UDP answer
UDP_RETURN_TIMEOUT_S = 20.0  # while tunneled it retries UDP to the roots every ~5 s
LOG_TAIL_LINES = 40
ZTUI_TIMEOUT_S = 30.0


def _env() -> dict[str, str]:
    """Run the entry points from this checkout, whether or not it is pip-installed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.pop("ZTUI_HOME", None)
    return env


def _overlayd(*args: str) -> list[str]:
    return [sys.executable, "-m", "overlay_core.io.cli", *args]


class Daemon:
    """One overlayd in a rig namespace; its stderr (the log) goes to HOME/overlayd.log."""

    def __init__(self, name: str, host: Host, home: Path, args: list[str]) -> None:
        self.name = name
        self.host = host
        self.home = home
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
        self.address = ""

    def __repr__(self) -> str:
        return f"<overlayd {self.name} {self.address or '?'} in {self.host.ns}>"

    def ztui(self, *args: str, timeout: float = ZTUI_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        """`ztui --home HOME args...`, run in the host namespace over the control socket."""
        return subprocess.run(
            [sys.executable, "-m", "console", "--home", str(self.home), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_env(),
            check=False,
        )

    def ztui_json(self, *args: str, timeout: float = ZTUI_TIMEOUT_S) -> Any:
        """Parsed `--json` output, or None if the daemon could not answer (yet)."""
        proc = self.ztui(*args, "--json", timeout=timeout)
        if not proc.stdout.strip():
            return None
        return json.loads(proc.stdout)

    def info(self) -> dict[str, Any] | None:
        return self.ztui_json("info")  # type: ignore[no-any-return]

    def peers(self) -> list[dict[str, Any]]:
        return self.ztui_json("peers") or []

    def peer(self, address: str) -> dict[str, Any] | None:
        return next((p for p in self.peers() if p["address"] == address), None)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(text.splitlines()[-lines:])

    def report(self) -> str:
        state = "running" if self.proc.poll() is None else f"EXITED {self.proc.returncode}"
        parts = [f"===== {self!r} ({state}), home {self.home}"]
        if self.proc.poll() is None:
            for command in ("info", "peers"):
                try:
                    out = self.ztui(command, timeout=10)
                    parts.append(f"$ ztui {command}\n{out.stdout}{out.stderr}".rstrip())
                except subprocess.TimeoutExpired:
                    parts.append(f"$ ztui {command}\n(no answer within 10 s)")
        parts.append(f"$ tail {self.log}\n{self.log_tail()}")
        return "\n".join(parts)

    def stop(self) -> None:
        """SIGTERM, wait, then SIGKILL: by our own PID only (the rig also kills its groups)."""
        stop_processes([self.proc])


class World:
    """The rig, the two roots, and the leaves of the test that is running."""

    def __init__(self, rig: Rig, tmp: Path) -> None:
        self.rig = rig
        self.tmp = tmp
        self.root1_host = rig.add_public_host("root1")
        self.root2_host = rig.add_public_host("root2")
        self.home1 = rig.add_nat_site("home1", lan_cidr="10.1.0.0/24")
        self.home2 = rig.add_nat_site("home2", lan_cidr="10.2.0.0/24")
        self.pc1 = self.home1.add_host("pc1")
        self.pc2 = self.home2.add_host("pc2")
        self.roots: list[Daemon] = []
        self.leaves: list[Daemon] = []
        self.roots_file = tmp / "roots.txt"
        self._next_port = FIRST_LEAF_PORT
        self._runs = 0

    # ---- daemons ------------------------------------------------------------------------

    def start_roots(self) -> None:
        lines = []
        for name, host in (("r1", self.root1_host), ("r2", self.root2_host)):
            home = self.tmp / name
            endpoint = f"{host.addr}:{ROOT_PORT}"
            entry = subprocess.run(
                _overlayd("--home", str(home), "roots-entry", "--endpoint", endpoint),
                capture_output=True,
                text=True,
                timeout=30,
                env=_env(),
                check=True,
            )
            lines.append(entry.stdout.strip())
        self.roots_file.write_text("\n".join(lines) + "\n")
        for name, host in (("r1", self.root1_host), ("r2", self.root2_host)):
            args = ["--root", "--port", str(ROOT_PORT), "--bind", "0.0.0.0",
                    "--roots", str(self.roots_file)]  # fmt: skip
            self.roots.append(Daemon(name, host, self.tmp / name, args))
        for root in self.roots:
            self._wait_started(root)

    def start_leaves(self) -> tuple[Daemon, Daemon]:
        """Fresh leaves on pc1 and pc2 (new homes, new port); waits until their APIs answer."""
        self._runs += 1
        port = self._next_port
        self._next_port += 1
        started = []
        for name, host in ((f"a{self._runs}", self.pc1), (f"b{self._runs}", self.pc2)):
            site = host.site
            assert site is not None
            args = ["--port", str(port), "--bind", "0.0.0.0", "--roots", str(self.roots_file),
                    "--advertise", str(site.lan), "--log-level", "debug"]  # fmt: skip
            leaf = Daemon(name, host, self.tmp / name, args)
            self.leaves.append(leaf)
            started.append(leaf)
        for leaf in started:
            self._wait_started(leaf)
        return started[0], started[1]

    def _wait_started(self, daemon: Daemon) -> None:
        info = self.wait(f"{daemon.name}'s API to answer", daemon.info, START_TIMEOUT_S)
        daemon.address = info["address"]

    def stop_leaves(self) -> None:
        for leaf in self.leaves:
            leaf.stop()
        self.leaves.clear()

    def stop_all(self) -> None:
        self.stop_leaves()
        for root in self.roots:
            root.stop()

    @property
    def root_addresses(self) -> set[str]:
        return {r.address for r in self.roots}

    # ---- the NATs -----------------------------------------------------------------------

    def set_nats(self, *, random_fully: bool, block_udp_home1: bool = False) -> None:
        for site in (self.home1, self.home2):
            self.rig.set_nat_random_fully(site, random_fully)
        self.rig.block_udp(self.home1, block_udp_home1)
        self.rig.block_udp(self.home2, False)

    # ---- observing ------------------------------------------------------------------------

    def report(self) -> str:
        nats = ", ".join(
            f"{s.name} {s.addr} random_fully={s.random_fully} udp_blocked={s.udp_blocked}"
            for s in (self.home1, self.home2)
        )
        return "\n".join([f"NATs: {nats}", *(d.report() for d in self.roots + self.leaves)])

    def check_alive(self) -> None:
        dead = [d for d in self.roots + self.leaves if d.proc.poll() is not None]
        assert not dead, f"overlayd exited: {dead}\n{self.report()}"

    def wait(self, what: str, probe: Callable[[], T | None], timeout: float) -> T:
        """Poll `probe` until it returns something truthy; fail with every node's view."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            value = probe()
            if value:
                return value
            if time.monotonic() >= deadline:
                pytest.fail(f"timed out after {timeout:g} s waiting for {what}\n{self.report()}")
            time.sleep(0.25)

    def fail(self, message: str) -> str:
        """An assertion message: what went wrong, then what every node believed."""
        return f"{message}\n{self.report()}"


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
                w.stop_all()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def net(world: World) -> Iterator[World]:
    """The module's world; leaves started by the test are stopped and the NATs reset."""
    try:
        yield world
    finally:
        world.stop_leaves()
        world.set_nats(random_fully=False)


# --------------------------------------------------------------------------------------
# helpers


def _online(leaf: Daemon, roots: int = 2) -> Callable[[], dict[str, Any] | None]:
    def probe() -> dict[str, Any] | None:
        info = leaf.info()
        return info if info and info["roots_reachable"] >= roots else None

    return probe


def _nat_says(leaf: Daemon, word: str) -> Callable[[], dict[str, Any] | None]:
    def probe() -> dict[str, Any] | None:
        info = leaf.info()
        return info if info and word in info["nat"] else None

    return probe


def _peer_link(leaf: Daemon, address: str, link: str) -> Callable[[], dict[str, Any] | None]:
    def probe() -> dict[str, Any] | None:
        peer = leaf.peer(address)
        return peer if peer is not None and peer["link"] == link else None

    return probe


def _explains_failed_punch(leaf: Daemon, address: str) -> Callable[[], dict[str, Any] | None]:
    """The peer once its relay reason counts direct attempts (the punch was tried)."""

    def probe() -> dict[str, Any] | None:
        peer = leaf.peer(address)
        reason = peer["relay_reason"] if peer is not None else None
        if reason is None or reason["punch_attempts"] == 0:
            return None
        return peer if "direct attempts" in reason["summary"] else None

    return probe


def _tunneled(leaf: Daemon, tunneled: bool) -> Callable[[], dict[str, Any] | None]:
    """`info` once the node reaches a root and is (or is no longer) tunneled over TCP."""

    def probe() -> dict[str, Any] | None:
        info = leaf.info()
        if info is None or info["tunneled"] != tunneled or info["roots_reachable"] < 1:
            return None
        return info

    return probe


def _ping(net: World, src: Daemon, dst: Daemon, count: int, interval: float) -> dict[str, Any]:
    proc = src.ztui(
        "ping", dst.address, "-c", str(count), "-i", str(interval), "--timeout", "2", "--json"
    )
    assert proc.stdout.strip(), net.fail(f"ztui ping printed nothing: {proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def _links(result: dict[str, Any]) -> list[str]:
    """One word per echo, in order: DIRECT, RELAY, TCP, or '-' for no reply."""
    return [r["link"] if r is not None else "-" for r in result["replies"]]


def _host(endpoint: str) -> str:
    return endpoint.rsplit(":", 1)[0].strip("[]")


# --------------------------------------------------------------------------------------
# the stories


def test_hole_punching_gives_direct(net: World) -> None:
    """Two homes behind ordinary (port-preserving) NATs end up talking directly.

    Each leaf HELLOs both roots and learns its external endpoint from them; with two
    reporters agreeing on the port, `ztui info` calls the NAT a cone that punching works
    through. pc1 pings pc2: the first echoes go through a root (pc1 has no idea where
    pc2 is), the root sends both a RENDEZVOUS with the other's public endpoint, they punch
    through their NATs, and the later echoes come back DIRECT. Afterwards each side's
    `ztui peers` lists the other as DIRECT over a path to the other NAT's public address.
    """
    net.set_nats(random_fully=False)
    a, b = net.start_leaves()
    for leaf in (a, b):
        net.wait(f"{leaf.name} to reach both roots", _online(leaf), ONLINE_TIMEOUT_S)
        net.wait(f"{leaf.name} to call its NAT a cone", _nat_says(leaf, "cone"), ONLINE_TIMEOUT_S)

    result = _ping(net, a, b, count=8, interval=0.5)
    links = _links(result)
    first = result["replies"][0]
    assert first is not None and first["link"] == "RELAY", net.fail(f"echo links {links}")
    assert first["relay"] in net.root_addresses, net.fail(f"first echo {first}")
    last = result["replies"][-1]
    assert last is not None and last["link"] == "DIRECT", net.fail(f"echo links {links}")
    assert _host(last["endpoint"]) == net.home2.addr, net.fail(f"last echo {last}")
    assert result["received"] == result["sent"], net.fail(f"echo links {links}")

    for me, other, other_site in ((a, b, net.home2), (b, a, net.home1)):
        peer = net.wait(
            f"{me.name} to list {other.name} as DIRECT",
            _peer_link(me, other.address, "DIRECT"),
            ONLINE_TIMEOUT_S,
        )
        preferred = peer["preferred_path"]
        assert preferred is not None and _host(preferred) == other_site.addr, net.fail(
            f"{me.name}'s preferred path to {other.name} is {preferred}, "
            f"not {other_site.name}'s public address {other_site.addr}"
        )
        live = [p["endpoint"] for p in peer["paths"] if p["alive"]]
        assert any(_host(e) == other_site.addr for e in live), net.fail(f"live paths {live}")
        assert peer["relay_reason"] is None, net.fail(f"DIRECT with a reason: {peer}")


def test_random_fully_on_both_nats_stays_relay_and_says_why(net: World) -> None:
    """Two homes behind port-randomising (symmetric) NATs stay relayed, and say why.

    With --random-fully each new flow leaves the NAT on a random port, so the two roots
    see each leaf on different ports: `ztui info` reports a symmetric NAT. The root's
    RENDEZVOUS hands each side the port the *root* saw, which the other NAT does not use
    for the peer, so every punch is dropped. Traffic still flows through the root (the
    pings are answered, RELAY), and `ztui peers` tells the user in words why the link is
    relayed: the direct attempts got no answers, and this node's NAT is symmetric.
    """
    net.set_nats(random_fully=True)
    a, b = net.start_leaves()
    for leaf in (a, b):
        net.wait(f"{leaf.name} to reach both roots", _online(leaf), ONLINE_TIMEOUT_S)
        net.wait(
            f"{leaf.name} to call its NAT symmetric",
            _nat_says(leaf, "symmetric"),
            ONLINE_TIMEOUT_S,
        )
    info_text = a.ztui("info").stdout
    assert "symmetric" in info_text and "hole punching fails" in info_text, net.fail(info_text)

    # Long enough for all punch probes (6 x 0.5 s per endpoint) to go unanswered.
    result = _ping(net, a, b, count=8, interval=0.5)
    links = _links(result)
    assert result["received"] >= result["sent"] - 1, net.fail(f"echo links {links}")
    assert set(links) <= {"RELAY", "-"}, net.fail(f"a link went direct: {links}")
    replies = [r for r in result["replies"] if r is not None]
    assert all(r["relay"] in net.root_addresses for r in replies), net.fail(f"{replies}")

    for me, other in ((a, b), (b, a)):
        peer = net.wait(
            f"{me.name} to have punched at {other.name} and explain the relay",
            _explains_failed_punch(me, other.address),
            ONLINE_TIMEOUT_S,
        )
        assert peer["link"] == "RELAY", net.fail(f"{me.name} sees {other.name} as {peer['link']}")
        reason = peer["relay_reason"]
        assert reason["punch_replies"] == 0, net.fail(f"punch answered? {reason}")
        words = " ".join([reason["summary"], reason["local_nat"], *reason["details"]])
        assert "symmetric" in words, net.fail(f"the reason does not mention the NAT: {reason}")

        text = me.ztui("peers").stdout
        lines = text.splitlines()
        row = next((i for i, line in enumerate(lines) if line.startswith(other.address)), None)
        assert row is not None and "RELAY" in lines[row], net.fail(f"ztui peers:\n{text}")
        because = lines[row + 1] if row + 1 < len(lines) else ""
        assert because.strip().startswith("relay because:"), net.fail(f"ztui peers:\n{text}")
        assert "direct attempts" in because and "NAT is symmetric" in because, net.fail(
            f"ztui peers:\n{text}"
        )


def test_udp_blocked_uses_tcp_fallback(net: World) -> None:
    """A home whose router drops all UDP still joins the overlay, over TCP to the roots.

    pc1's HELLOs to the roots go unanswered; after ~8 s it opens TCP connections to the
    roots' port and `ztui info` shows it tunneled. pc2 (ordinary NAT) is reached through a
    root over that TCP link: `ztui peers` on pc1 shows pc2 with link TCP, and pings get
    replies. When the router lets UDP through again, pc1's periodic UDP retries to the
    roots are answered and it drops back to UDP (tunneled false).
    """
    net.set_nats(random_fully=False, block_udp_home1=True)
    a, b = net.start_leaves()
    net.wait(f"{b.name} to reach both roots", _online(b), ONLINE_TIMEOUT_S)
    net.wait(
        f"{a.name} to tunnel to the roots over TCP",
        _tunneled(a, True),
        TCP_FALLBACK_TIMEOUT_S,
    )

    result = _ping(net, a, b, count=4, interval=0.5)
    links = _links(result)
    assert result["received"] >= 3, net.fail(f"pings over TCP: {links}")
    peer = net.wait(
        f"{a.name} to list {b.name} with link TCP",
        _peer_link(a, b.address, "TCP"),
        ONLINE_TIMEOUT_S,
    )
    text = a.ztui("peers").stdout
    assert "tcp because:" in text and "allow outbound UDP" in text, net.fail(
        f"ztui peers:\n{text}\npeer: {peer}"
    )

    net.rig.block_udp(net.home1, False)
    net.wait(
        f"{a.name} to return to UDP after UDP was unblocked",
        _tunneled(a, False),
        UDP_RETURN_TIMEOUT_S,
    )
    result = _ping(net, a, b, count=4, interval=0.5)
    links = _links(result)
    assert result["received"] >= 3 and "TCP" not in links, net.fail(f"pings after: {links}")
