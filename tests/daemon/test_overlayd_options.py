"""`overlayd` against a home whose node is already running, and `overlayd options`.

The defect: with the systemd service running, `overlayd --roots FILE` tried to start a
second node, failed with "Address already in use" and saved nothing, so the running node
could never get roots. Now it hands them to the running node, which applies and saves
them; other options are remembered for the next start with a line saying a restart is
needed; `overlayd options` shows and resets what is remembered, with or without a node.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from pathlib import Path

import httpx

from overlay_core.io.home import Home
from overlay_core.io.roots_live import save_roots
from overlay_core.lab.loopback import LoopbackOverlay
from overlay_core.lab.world import overlayd_argv
from overlay_core.proto.effects import udp
from overlay_core.proto.identity import Identity
from overlay_core.proto.roots import RootEntry, parse_roots
from tests.cli_run import overlayd

from .conftest import Processes

LINK_WAIT_S = 15.0


def start_node(processes: Processes, home: Path, *args: str) -> subprocess.Popen[str]:
    """A real overlayd process on loopback, once its control socket answers."""
    proc = processes.start(
        overlayd_argv("--home", str(home), "--port", "0", "--bind", "127.0.0.1", *args)
    )
    deadline = time.monotonic() + 20
    while True:
        assert proc.poll() is None, proc.communicate()
        try:
            if get(home, "/status").status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "control.sock never answered"
        time.sleep(0.05)


def get(home: Path, path: str) -> httpx.Response:
    transport = httpx.HTTPTransport(uds=str(home / "control.sock"))
    with httpx.Client(transport=transport, base_url="http://overlayd", timeout=10) as client:
        return client.get(path)


async def wait_for_udp_root(home: Path, address: str) -> None:
    deadline = time.monotonic() + LINK_WAIT_S
    while True:
        roots = (await asyncio.to_thread(get, home, "/roots")).json()["roots"]
        if [(r["address"], r["link"]) for r in roots] == [(address, "UDP")]:
            return
        assert time.monotonic() < deadline, roots
        await asyncio.sleep(0.1)


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr
    return stderr


async def test_roots_go_to_the_running_node_and_outlive_the_file_and_a_restart(
    overlay: LoopbackOverlay, processes: Processes, short_tmp: Path
) -> None:
    """With a node running on the home, `overlayd --roots FILE` exits 0 with one line
    instead of failing on the port, and the node reaches the root at once. `--port` is
    remembered with a line naming `systemctl restart overlayd`. The file given is then
    deleted, the node restarted: it still has the root, from the copy in its home."""
    root = await overlay.add_root()
    home = short_tmp / "nas"
    proc = start_node(processes, home)
    given = overlay.write_roots_file(short_tmp / "given.roots")

    result = await asyncio.to_thread(overlayd, "--home", str(home), "--roots", str(given))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "in use" not in result.stderr
    (line,) = result.stdout.strip().splitlines()
    assert "gave the running node" in line and "1 root" in line and "no restart" in line
    await wait_for_udp_root(home, root.identity.address_text)

    later = await asyncio.to_thread(overlayd, "--home", str(home), "--port", "4000")
    assert later.returncode == 0, later.stderr
    (line,) = later.stdout.strip().splitlines()
    assert "--port 4000" in line and "systemctl restart overlayd" in line
    assert Home(home).load_settings()["port"] == 4000

    nothing = await asyncio.to_thread(overlayd, "--home", str(home))
    assert nothing.returncode == 1
    assert "already runs" in nothing.stderr and "Traceback" not in nothing.stderr

    given.unlink()
    stop(proc)
    start_node(processes, home)  # --port 0 again: 4000 may be taken on this machine
    await wait_for_udp_root(home, root.identity.address_text)


async def test_roots_given_at_start_are_copied_into_the_home(
    overlay: LoopbackOverlay, processes: Processes, short_tmp: Path
) -> None:
    """`overlayd --roots FILE` starting a node copies the roots into HOME/roots.txt and
    remembers that copy, not FILE: with FILE deleted, a plain restart still has them."""
    root = await overlay.add_root()
    home = short_tmp / "nas"
    given = overlay.write_roots_file(short_tmp / "given.roots")
    proc = start_node(processes, home, "--roots", str(given))
    await wait_for_udp_root(home, root.identity.address_text)
    copy = (home / "roots.txt").resolve()
    deadline = time.monotonic() + 10  # remembered just after the node is up
    while Home(home).load_settings().get("roots") != str(copy):
        assert time.monotonic() < deadline, Home(home).load_settings()
        await asyncio.sleep(0.05)
    assert parse_roots(copy.read_text()) == overlay.roots

    given.unlink()
    stop(proc)
    start_node(processes, home)
    await wait_for_udp_root(home, root.identity.address_text)


async def test_a_bad_roots_file_for_a_running_node_is_refused_with_one_line(
    processes: Processes, short_tmp: Path
) -> None:
    """A roots file with a bad line is refused before anything reaches the node: exit 1,
    one line naming the line, and the node's roots are unchanged (still none)."""
    home = short_tmp / "nas"
    start_node(processes, home)
    bad = short_tmp / "bad.roots"
    bad.write_text("garbage 1.2.3.4:9993\n")
    result = await asyncio.to_thread(overlayd, "--home", str(home), "--roots", str(bad))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "line 1" in line
    assert get(home, "/roots").json()["roots"] == []


# --------------------------------------------------------------------------- options


def remembered_home(base: Path) -> tuple[Home, RootEntry]:
    home = Home(base / "node")
    home.save_settings({"port": 4000, "offload": "tap", "tcp_fallback": "auto", "x": 1})
    entry = RootEntry(Identity.generate().public(), (udp("198.18.0.1", 9993),))
    save_roots(home, [entry])
    return home, entry


def test_overlayd_options_shows_remembered_options_beside_the_defaults(short_tmp: Path) -> None:
    """With no node running, `overlayd options` marks each remembered option with `*`
    and its default, shows the others unmarked, and counts the remembered roots file's
    roots; --json says the same for scripts."""
    home, _ = remembered_home(short_tmp)
    result = overlayd("--home", str(home.path), "options")
    assert result.returncode == 0, result.stderr
    lines = {line[2:].split()[0]: line for line in result.stdout.splitlines()[1:-2]}
    assert lines["--port"].startswith("* ") and "4000  (default: 9993)" in lines["--port"]
    assert lines["--offload"].startswith("* ") and "(default: auto)" in lines["--offload"]
    assert lines["--tcp-fallback"].startswith("* ") and "the default too" in lines["--tcp-fallback"]
    assert lines["--root"].startswith("  ") and lines["--root"].split()[-1] == "no"
    assert lines["--roots"].startswith("* ") and "(1 root)" in lines["--roots"]
    assert set(lines) == {
        "--port", "--bind", "--root", "--roots", "--advertise", "--tcp-fallback",
        "--api-tcp", "--api-group", "--offload", "--on-member-request",
    }  # fmt: skip

    data = json.loads(overlayd("--home", str(home.path), "options", "--json").stdout)
    assert data["options"]["port"] == {"value": 4000, "default": 9993, "remembered": True}
    assert data["options"]["bind"]["remembered"] is False


def test_overlayd_options_reset_forgets_options_offline(short_tmp: Path) -> None:
    """`--reset NAME` (as `port` or `tcp-fallback`) forgets just those and says a
    restart applies them; resetting roots also removes the node's copy; --reset-all
    forgets every option but leaves keys overlayd does not know. An unknown name, or both
    flags at once, is exit 2 with one line."""
    home, _ = remembered_home(short_tmp)
    result = overlayd("--home", str(home.path), "options", "--reset", "port", "tcp-fallback")
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.strip().splitlines()
    assert "forgot --port, --tcp-fallback" in line and "(default: 9993, auto)" in line
    assert "next start" in line
    assert set(home.load_settings()) == {"offload", "roots", "x"}

    roots_copy = home.path / "roots.txt"
    assert roots_copy.exists()
    assert overlayd("--home", str(home.path), "options", "--reset", "roots").returncode == 0
    assert not roots_copy.exists() and "roots" not in home.load_settings()

    again = overlayd("--home", str(home.path), "options", "--reset", "port")
    assert again.returncode == 0 and "not remembered" in again.stdout

    for args in (("--reset", "nope"), ("--reset", "port", "--reset-all")):
        bad = overlayd("--home", str(home.path), "options", *args)
        assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad
        assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert (
        "one of port, bind" in overlayd("--home", str(home.path), "options", "--reset", "x").stderr
    )

    assert overlayd("--home", str(home.path), "options", "--reset-all").returncode == 0
    assert home.load_settings() == {"x": 1}


async def test_options_reset_with_a_node_running_says_it_needs_a_restart(
    processes: Processes, short_tmp: Path
) -> None:
    """Resetting while the node runs changes only the file, and says so."""
    home = short_tmp / "nas"
    start_node(processes, home, "--offload", "tap")
    result = await asyncio.to_thread(overlayd, "--home", str(home), "options", "--reset", "offload")
    assert result.returncode == 0, result.stderr
    assert "systemctl restart overlayd" in result.stdout
    assert "offload" not in Home(home).load_settings()
