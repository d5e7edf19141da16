"""The real `ztui` in a real terminal (tmux) on real daemons: create a network, join it
from a second console, approve the member, and read the result off both screens.

The world, all in one private network namespace (only its loopback is used, and deleting
the namespace at the end takes the member's TAP with it):

    root  127.0.0.1:19993   overlayd --root
    ctl   127.0.0.1:19994   the controller node: hosts the network, never joins it
    mem   127.0.0.1:19995   the member: joins, so it opens a real TAP (hence root)

Two tmux windows on a private tmux server (`tmux -L ztui-e2e-<pid>`, 120x40,
TERM=screen-256color) run `ztui --home <ctl>` and `ztui --home <mem>` from the host
namespace: the control sockets are files, so the consoles reach the daemons without
`ip netns exec`. The story, keystroke by keystroke as a person would type it:

1. ctl: `3` Members, `c` new network, type "lab", Tab Down Enter picks the second pool
   preset (192.168.191.0/24), Ctrl+S creates it; the network id is read off the screen.
2. mem: `2` Networks, `j` join, the id is pasted, Enter; the row says AWAITING APPROVAL.
3. ctl: the member appears PENDING on its own (the event stream pokes the poller); `a`
   approves it; the row says AUTHORIZED with an address from the pool.
4. mem: the network turns OK with that address; the API and the TAP agree.
5. `q` in both windows: each ztui exits with status 0.

After each key the test waits for what it should make visible before typing the next
one, as a person would; a wait that runs out fails with the last capture of that window
and every daemon's status and log tail. The tmux server, the daemons (by their own
process groups) and the namespace are removed however the test ends.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import psutil
import pytest

from overlay_core.lab.netns import Node, Rig, unavailable_reason
from overlay_core.lab.world import OverlayNode, child_env, overlayd_argv

T = TypeVar("T")

pytestmark = [
    pytest.mark.netns,
    pytest.mark.slow,
    pytest.mark.skipif(unavailable_reason() is not None, reason=unavailable_reason() or ""),
    pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (run `make sysdeps`)"),
    pytest.mark.timeout(180),
]

WIDTH, HEIGHT = 120, 40
PORTS = {"root": 19993, "ctl": 19994, "mem": 19995}  # the namespace is ours: no clashes
POOL_PREFIX = "192.168.191."  # the second preset in the create dialog
SCREEN_S = 20.0  # for anything a screen should show; a loaded CI machine gets slack
TMUX_CONF = """\
set -g status off
set -g remain-on-exit on
set -g default-terminal screen-256color
set -g history-limit 2000
"""


class Tmux:
    """A private tmux server (its own socket), driven and read with tmux commands."""

    def __init__(self, socket: str, conf: Path) -> None:
        self.socket = socket
        self.conf = conf
        self.last: dict[str, str] = {}  # window -> last capture, for failure messages
        self.socket_path: str | None = None

    def run(self, *args: str) -> str:
        proc = subprocess.run(
            ["tmux", "-L", self.socket, "-f", str(self.conf), *args],
            capture_output=True,
            text=True,
            timeout=10,
            env=child_env(),
            check=False,
        )
        if proc.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    def open(self, window: str, argv: list[str], status: Path) -> None:
        """A window running `argv` in a 120x40 terminal; the first one starts the server.

        A shell runs it and writes its exit status to `status`: tmux 3.3a was seen here to
        leave an exited ztui a zombie for good now and then (its main had returned, its
        atexit handlers had run), so #{pane_dead_status} would never say how it ended."""
        # PYTHONFAULTHANDLER: a SIGABRT prints where every thread is (see Story.quit).
        run = ["env", "TERM=screen-256color", "PYTHONFAULTHANDLER=1", *argv]
        script = f'"$@"; echo $? > {shlex.quote(str(status))}'
        command = shlex.join(["sh", "-c", script, "sh", *run])
        if not self.last:
            self.run("new-session", "-d", "-s", "e2e", "-n", window, "-x", str(WIDTH),
                     "-y", str(HEIGHT), command)  # fmt: skip
            self.socket_path = self.run("display-message", "-p", "#{socket_path}").strip()
        else:
            self.run("new-window", "-d", "-t", "e2e:", "-n", window, command)
        self.last[window] = ""

    def keys(self, window: str, *keys: str, literal: bool = False) -> None:
        """tmux key names ("Enter", "C-s", "Tab"), or text typed as is with literal=True."""
        self.run("send-keys", "-t", f"e2e:{window}", *(["-l"] if literal else []), *keys)

    def capture(self, window: str) -> str:
        screen = self.run("capture-pane", "-p", "-t", f"e2e:{window}")
        self.last[window] = screen
        return screen

    def pane(self, window: str, fmt: str) -> str:
        return self.run("display-message", "-p", "-t", f"e2e:{window}", fmt).strip()

    def kill_server(self) -> None:
        """The server and every ztui in it (SIGHUP); tmux leaves its socket file behind."""
        subprocess.run(
            ["tmux", "-L", self.socket, "kill-server"],
            capture_output=True,
            timeout=10,
            check=False,
        )
        if self.socket_path:
            Path(self.socket_path).unlink(missing_ok=True)


class _Loopback:
    """What OverlayNode needs of a rig host: all three nodes share one namespace."""

    site = None

    def __init__(self, node: Node) -> None:
        self.ns = node.ns
        self.popen = node.popen


class Story:
    """The world and the two consoles, with waits that explain themselves."""

    def __init__(self, base: Path, rig: Rig, tmux: Tmux) -> None:
        self.base = base
        self.rig = rig
        self.tmux = tmux
        self.nodes: dict[str, OverlayNode] = {}

    def start_daemons(self) -> None:
        host = _Loopback(self.rig.add_node("e2e"))
        roots = self.base / "roots"
        entry = subprocess.run(
            overlayd_argv("--home", str(self.base / "root"), "roots-entry",
                          "--endpoint", f"127.0.0.1:{PORTS['root']}"),
            capture_output=True, text=True, timeout=60, env=child_env(), check=True,
        )  # fmt: skip
        roots.write_text(entry.stdout)
        for name, port in PORTS.items():
            args = ["--port", str(port), "--bind", "127.0.0.1", "--advertise", "127.0.0.1/32",
                    "--roots", str(roots), *(["--root"] if name == "root" else [])]  # fmt: skip
            node = OverlayNode(name, host, self.base / name, name, args, "info")  # type: ignore[arg-type]
            self.nodes[name] = node
            node.start()

    def report(self, window: str | None = None) -> str:
        parts = []
        if window is not None:
            parts.append(f"----- last capture of the {window} window:\n{self.tmux.last[window]}")
        parts += [node.report() for node in self.nodes.values()]
        return "\n".join(parts)

    def wait(self, what: str, probe: Callable[[], T | None], window: str | None = None) -> T:
        deadline = time.monotonic() + SCREEN_S
        while True:
            for name, node in self.nodes.items():
                if not node.running:
                    raise AssertionError(f"overlayd {name} died\n{self.report(window)}")
            found = probe()
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {SCREEN_S:g} s\n{self.report(window)}")
            time.sleep(0.1)

    def ended(self, window: str) -> str | None:
        """How the window's ztui ended, "exit N" (128+N: killed by signal N); None while
        it runs."""
        try:
            return f"exit {(self.base / f'{window}.exit').read_text().strip()}"
        except FileNotFoundError:
            return None

    def quit(self, window: str) -> str:
        """Press q and wait for ztui to end; how it ended. One that hangs is sent SIGABRT,
        so the failure shows its threads' stacks (faulthandler) in the capture."""
        self.tmux.keys(window, "q")
        deadline = time.monotonic() + SCREEN_S
        while (end := self.ended(window)) is None:
            if time.monotonic() > deadline:
                shell = psutil.Process(int(self.tmux.pane(window, "#{pane_pid}")))
                for child in shell.children():
                    child.send_signal(signal.SIGABRT)
                time.sleep(1.0)
                self.tmux.capture(window)
                raise AssertionError(f"ztui in {window} did not exit on q\n{self.report(window)}")
            time.sleep(0.1)
        return end

    def see(self, window: str, pattern: str) -> re.Match[str]:
        """Wait until the window's screen matches `pattern` (a regex); the match."""
        regex = re.compile(pattern, re.MULTILINE)

        def probe() -> re.Match[str] | None:
            if self.ended(window):
                raise AssertionError(f"ztui in {window} exited\n{self.report(window)}")
            return regex.search(self.tmux.capture(window))

        return self.wait(f"{window} screen never showed {pattern!r}", probe, window)

    def console(self, window: str) -> None:
        node = self.nodes[window]
        argv = [sys.executable, "-m", "console", "--home", str(node.home)]
        self.tmux.open(window, argv, self.base / f"{window}.exit")
        self.see(window, rf"ztui\s+{node.address}\s+● ONLINE")


@pytest.fixture
def story() -> Iterator[Story]:
    base = Path(tempfile.mkdtemp(prefix="zte2e-", dir="/tmp"))  # control.sock paths < 108 B
    conf = base / "tmux.conf"
    conf.write_text(TMUX_CONF)
    tmux = Tmux(f"ztui-e2e-{os.getpid()}", conf)
    rig = Rig()
    try:
        yield Story(base, rig, tmux)
    finally:
        tmux.kill_server()
        rig.close()  # each daemon's process group, then anything left in the namespace
        shutil.rmtree(base, ignore_errors=True)


def test_create_join_approve_in_two_consoles(story: Story) -> None:
    story.start_daemons()
    ctl, mem = story.nodes["ctl"], story.nodes["mem"]
    tmux = story.tmux

    # 1. The admin creates a private network with the second pool preset.
    story.console("ctl")
    tmux.keys("ctl", "3")
    story.see("ctl", r"hosts no networks\. Press c to create one")
    tmux.keys("ctl", "c")
    story.see("ctl", r"Create a network on this node's controller")
    tmux.keys("ctl", "lab", literal=True)
    story.see("ctl", r"✓ lab with 10\.147\.17\.0/24")
    tmux.keys("ctl", "Tab")
    tmux.keys("ctl", "Down")
    tmux.keys("ctl", "Enter")
    story.see("ctl", r"✓ lab with 192\.168\.191\.0/24")
    tmux.keys("ctl", "C-s")
    nwid = story.see("ctl", r"^ lab ([0-9a-f]{16}): private, 0 members, 0 pending").group(1)
    assert nwid.startswith(ctl.address)
    hosted = ctl.get("/controller/networks")
    assert [(n["nwid"], n["pools"]) for n in hosted] == [(nwid, ["192.168.191.0/24"])]

    # 2. The member pastes the id into its own console.
    story.console("mem")
    tmux.keys("mem", "2")
    story.see("mem", r"j Join")
    tmux.keys("mem", "j")
    story.see("mem", r"Join a network")
    tmux.keys("mem", nwid, literal=True)
    story.see("mem", rf"✓ network {nwid[10:]} of controller {ctl.address}")
    tmux.keys("mem", "Enter")
    story.see("mem", rf"^ {nwid}\s+-\s+AWAITING APPROVAL")

    # 3. It shows up pending on the admin's screen, unasked; `a` lets it in.
    story.see("ctl", rf"●\s+{mem.address}\s+{nwid}\s+PENDING")
    story.see("ctl", r"3 Members \(1 pending\)")
    tmux.keys("ctl", "a")
    row = story.see(
        "ctl", rf"^\s+{mem.address}\s+{nwid}\s+AUTHORIZED\s+({re.escape(POOL_PREFIX)}\d+)\s"
    )
    ip = row.group(1)
    story.see("ctl", rf"approved {mem.address} on lab with {re.escape(ip)}")

    # 4. The member's network is up with that address, on screen, in the API, on its TAP.
    story.see("mem", rf"^ {nwid}\s+lab\s+OK\s+{re.escape(ip)}/24\s")
    network = mem.network(nwid)
    assert network is not None
    assert (network["state"], network["addresses"]) == ("OK", [f"{ip}/24"]), network
    shown = subprocess.run(
        ["ip", "-n", story.rig.nodes["e2e"].ns, "-o", "-4", "addr", "show", "dev",
         network["device"]],
        capture_output=True, text=True, timeout=10, check=False,
    ).stdout  # fmt: skip
    assert f"inet {ip}/24" in shown, shown

    # 5. Both consoles quit cleanly on q.
    for window in ("ctl", "mem"):
        end = story.quit(window)
        assert end == "exit 0", f"ztui in {window} ended with {end}\n{story.report(window)}"
