"""Names everywhere, with real daemons (issue 12): the admin names a member with
`ztui member NWID ADDR --name nas`, the name travels in the network's config, and another
member's `ztui peers`, `ztui ping nas` and its real console (in tmux, 80x24, TERM=screen)
say `nas (10.147.17.x)`.

The daemons are real `Daemon`s on 127.0.0.1 in this process with MemoryTaps (netstory's
world: a root, a controller `ctl` hosting `home`, members `a` and `b`), so no root is
needed; `ztui` runs as a subprocess, as a person would run it. The tmux server has a socket
of its own in a temporary directory; it and the daemons are gone however the test ends.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from overlay_core.lab.loopback import LoopbackOverlay
from overlay_core.lab.world import child_env, ztui_argv
from tests.cli_run import ztui

from .netstory import Story, story, until, wait_state

CONFIG_S = 10.0  # for a config push and a first echo on a loaded machine
CONSOLE_S = 45.0  # Textual's first frame on a loaded machine (as test_terminal_gone)
TMUX_CONF = """\
set -g status off
set -g remain-on-exit on
set -g default-terminal screen
"""


@dataclass
class Named:
    """The story with `b` approved and named "nas" by the admin, and `a` approved."""

    s: Story
    nas: str  # b's address
    ip: str  # b's overlay IP


async def approve_and_name_b_nas(s: Story) -> str:
    """Approve `a` and `b`, and name b "nas" the admin's way: through the real CLI, not
    the API. b's address."""
    nas = s.b.identity.address_text
    await s.approve(s.a)
    await s.approve(s.b)
    code, out, err = await ztui("--home", str(s.ctl.home.path), "member", s.nwid, nas,
                                "--name", "nas")  # fmt: skip
    assert code == 0, err
    assert "name     nas" in out, out
    return nas


@pytest.fixture
async def named(tap_overlay: LoopbackOverlay) -> AsyncIterator[Named]:
    async with story(tap_overlay) as s:
        nas = await approve_and_name_b_nas(s)
        for name in ("a", "b"):
            await wait_state(s.api[name], s.nwid, "OK", CONFIG_S)
        b_net = (await s.api["b"].get(f"/networks/{s.nwid}")).json()
        ip = b_net["addresses"][0].split("/")[0]
        # `a` learns of `b` as a peer once they talk: an echo by address does it.
        code, out, err = await ztui("--home", str(s.a.home.path), "ping", nas, "-c", "1")
        assert code == 0, out + err

        async def a_knows_the_name() -> bool:
            peers = (await s.api["a"].get("/peers")).json()
            entries = [e for p in peers if p["address"] == nas for e in p["names"]]
            return any(e["name"] == "nas" and ip in e["ips"] for e in entries)

        await until(a_knows_the_name, CONFIG_S, f"a's /peers names {nas} nas ({ip})")
        yield Named(s, nas, ip)


async def test_peers_and_ping_by_name_and_ip(named: Named) -> None:
    """`ztui peers` ends b's line with `nas (IP)`; `ztui ping nas` and `ztui ping IP`
    reach b and say its name; an unknown name is one line and exit 2; --json keeps its
    shape (the peer's address)."""
    home = str(named.s.a.home.path)
    label = f"nas ({named.ip})"
    code, out, err = await ztui("--home", home, "peers")
    assert code == 0, err
    row = next(line for line in out.splitlines() if line.startswith(named.nas))
    assert row.endswith(f"  {label}"), out

    for target in ("nas", named.ip):
        code, out, err = await ztui("--home", home, "ping", target, "-c", "2", "-i", "0.2")
        assert code == 0, out + err
        lines = out.splitlines()
        pongs = [line for line in lines if line.startswith(f"pong from {label}: ")]
        assert len(pongs) == 2 and all(" ms via 127.0.0.1:" in p for p in pongs), out
        assert lines[-2] == f"--- {named.nas} {label} ping statistics ---"

    code, out, err = await ztui("--home", home, "ping", "NAS", "-c", "1", "--json")
    assert code == 0, err
    assert '"peer": "' + named.nas + '"' in out

    code, out, err = await ztui("--home", home, "ping", "printer")
    assert (code, out) == (2, "")
    assert err == (
        "ztui: no peer has the name 'printer' (an address is 10 hex digits; "
        "`ztui peers` lists the names and IPs this node knows)\n"
    )


async def test_ping_by_name_reaches_a_member_never_talked_to(
    tap_overlay: LoopbackOverlay,
) -> None:
    """Right after joining, a's /peers knows only the root; `ztui ping nas` still reaches b:
    the network's config names every member (GET /networks' roster), and the first echo
    is what starts the conversation."""
    async with story(tap_overlay) as s:
        nas = await approve_and_name_b_nas(s)

        async def a_has_the_roster() -> bool:
            network = (await s.api["a"].get(f"/networks/{s.nwid}")).json()
            return any(e["name"] == "nas" for e in network.get("roster", []))

        await until(a_has_the_roster, CONFIG_S, "a's config names nas")
        peers = (await s.api["a"].get("/peers")).json()
        assert nas not in {p["address"] for p in peers}, "a has talked to b already"
        code, out, err = await ztui("--home", str(s.a.home.path), "ping", "nas", "-c", "1")
        assert code == 0, out + err
        assert out.startswith("pong from nas ("), out


# --------------------------------------------------------------------------- the console


class Tmux:
    """A tmux server of our own (its socket in `base`), one 80x24 window."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.socket = base / "tmux.sock"
        self.conf = base / "tmux.conf"
        self.conf.write_text(TMUX_CONF)
        self.status = base / "ztui.exit"
        self.last = ""

    async def run(self, *args: str) -> str:
        """A tmux command, off the event loop the daemons run on."""
        argv = ["tmux", "-S", str(self.socket), "-f", str(self.conf), *args]
        proc = await asyncio.to_thread(
            subprocess.run, argv, capture_output=True, text=True, timeout=10,
            env=child_env(), check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    async def start(self, argv: list[str]) -> None:
        # The shell records how ztui ended: tmux 3.3a may keep an exited pane's process a
        # zombie (tests/console/test_e2e_tmux.py), so #{pane_dead_status} can't be trusted.
        script = f'"$@"; echo $? > {shlex.quote(str(self.status))}'
        command = shlex.join(["sh", "-c", script, "sh", "env", "TERM=screen", *argv])
        await self.run("new-session", "-d", "-s", "names", "-x", "80", "-y", "24", command)

    async def see(self, pattern: str, timeout_s: float) -> str:
        """Wait until the screen matches `pattern`; the screen."""
        regex = re.compile(pattern, re.MULTILINE)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            self.last = await self.run("capture-pane", "-p", "-t", "names")
            if regex.search(self.last):
                return self.last
            if self.status.exists() or loop.time() > deadline:
                raise AssertionError(f"the screen never showed {pattern!r}:\n{self.last}")
            await asyncio.sleep(0.2)

    async def ended(self, timeout_s: float) -> str:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not self.status.exists():
            if loop.time() > deadline:
                raise AssertionError(f"ztui did not exit:\n{self.last}")
            await asyncio.sleep(0.1)
        return self.status.read_text().strip()

    def kill(self) -> None:
        """The server and the ztui in it (SIGHUP); the socket file is left, so remove it."""
        subprocess.run(["tmux", "-S", str(self.socket), "kill-server"], capture_output=True,
                       timeout=10, check=False)  # fmt: skip
        self.socket.unlink(missing_ok=True)


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    if shutil.which("tmux") is None:
        pytest.skip("needs tmux (run `make sysdeps`)")
    base = Path(tempfile.mkdtemp(prefix="ztn-", dir="/tmp"))
    server = Tmux(base)
    try:
        yield server
    finally:
        server.kill()
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_the_real_console_shows_the_name_on_the_peers_tab(named: Named, tmux: Tmux) -> None:
    """`ztui --home <a>` at 80x24: on the Peers tab b's row reads `<address>  nas (IP)`,
    followed by its link; Enter shows its name in home; q ends the console with 0."""
    s = named.s
    await tmux.start(ztui_argv("--home", str(s.a.home.path)))
    await tmux.see(rf"ztui\s+{s.a.identity.address_text}\s+● ONLINE", CONSOLE_S)
    await tmux.run("send-keys", "-t", "names", "1")
    ip = re.escape(named.ip)
    screen = await tmux.see(rf"^ {named.nas}\s+nas \({ip}\)\s+DIRECT\s", CONFIG_S)
    root = s.net.roots[0].identity.address_text
    assert re.search(rf"^ {root}\s+DIRECT\s", screen, re.MULTILINE), screen  # no name
    assert all(len(line) <= 80 for line in screen.splitlines())
    # Enter on b: the peer screen names it in home
    rows = [line for line in screen.splitlines() if re.match(r"^ [0-9a-f]{10}\s", line)]
    index = next(i for i, line in enumerate(rows) if line.startswith(f" {named.nas}"))
    for _ in range(index):
        await tmux.run("send-keys", "-t", "names", "Down")
    await tmux.run("send-keys", "-t", "names", "Enter")
    await tmux.see(rf"in home \({s.nwid}\) as nas: {ip}", CONFIG_S)
    await tmux.run("send-keys", "-t", "names", "Escape")
    await tmux.see(r"sorted by address", CONFIG_S)
    await tmux.run("send-keys", "-t", "names", "q")
    assert await tmux.ended(CONFIG_S) == "0"
