"""`ztui` subcommands as a person runs them: against a live daemon, and against none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from overlay_core import __version__
from overlay_core.lab.loopback import LoopbackOverlay
from tests.cli_run import overlayd, ztui, ztui_sync


def test_no_daemon_is_one_line_and_nonzero(short_tmp: Path) -> None:
    """With nothing running, `ztui info` says overlayd is not running, names the socket it
    looked for and how to start it, in one line, exit 1, no traceback."""
    result = ztui_sync("--home", str(short_tmp), "info")
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "overlayd is not running" in lines[0]
    assert str(short_tmp / "control.sock") in lines[0]
    assert f"overlayd --home {short_tmp}" in lines[0]


def test_version_is_the_packages() -> None:
    """`ztui --version` prints `ztui X.Y.Z` from the same source as `overlayd --version`,
    exit 0, no daemon needed."""
    result = ztui_sync("--version")
    assert (result.returncode, result.stdout, result.stderr) == (0, f"ztui {__version__}\n", "")
    assert overlayd("--version").stdout.split() == ["overlayd", __version__]


async def test_mistyped_address_is_usage_error(overlay: LoopbackOverlay) -> None:
    """`ztui ping nothex` exits 2 with one line saying what an address is. `ping` also
    takes a peer's name, so the node is asked first whether a peer is called that."""
    await overlay.add_root()
    leaf = await overlay.add_leaf("leaf")
    code, out, err = await ztui("--home", str(leaf.home.path), "ping", "nothex")
    assert (code, out) == (2, "")
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "10 hex digits" in lines[0], err
    assert "Traceback" not in err


def test_a_name_to_ping_with_no_daemon_says_it_is_not_running(short_tmp: Path) -> None:
    """Without a node nobody can say whether "nas" is a peer's name: the one-line 'not
    running' error, exit 1, as for any command that needs the node."""
    result = ztui_sync("--home", str(short_tmp), "ping", "nas")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "overlayd is not running" in lines[0], result.stderr


@pytest.mark.parametrize("command", ["info", "doctor"])
def test_malformed_api_is_usage_error(command: str) -> None:
    """`--api bogus` is a typo like a bad address: exit 2, one line, nothing sent."""
    result = ztui_sync("--api", "bogus", command)
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "expected unix:PATH" in lines[0], result.stderr


def test_no_subcommand_without_a_terminal_points_to_the_subcommands() -> None:
    """Bare `ztui` in a script (no TTY) does not draw a full-screen app into a pipe: one
    line on stderr says to use a subcommand, exit 2."""
    result = ztui_sync()
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("ztui: the console needs a terminal")
    assert len(result.stderr.strip().splitlines()) == 1


async def test_info_json_against_a_running_daemon(overlay: LoopbackOverlay) -> None:
    """`ztui info --json` prints the daemon's status as JSON a script can parse."""
    await overlay.add_root()
    leaf = await overlay.add_leaf("leaf")
    await overlay.wait_online()
    code, out, err = await ztui("--home", str(leaf.home.path), "info", "--json")
    assert code == 0, err
    status = json.loads(out)
    assert status["address"] == leaf.identity.address_text
    assert status["state"] == "ONLINE"


async def test_info_and_peers_text(overlay: LoopbackOverlay) -> None:
    """The text forms: `info` leads with address, version and state; `peers` is a table
    with zerotier-cli's columns and the root in it."""
    root = await overlay.add_root()
    leaf = await overlay.add_leaf("leaf")
    await overlay.wait_online()
    code, out, err = await ztui("info", "--home", str(leaf.home.path))
    assert code == 0, err
    assert out.splitlines()[0] == f"info {leaf.identity.address_text} 0.1.0 ONLINE"
    assert "1/1 reachable" in out
    assert out.splitlines()[-1] == f"  api       unix:{leaf.home.path / 'control.sock'}"
    code, out, err = await ztui("--home", str(leaf.home.path), "peers")
    assert code == 0, err
    header, *rows = out.splitlines()
    assert header.split() == [
        "ADDRESS", "VER", "ROLE", "LAT", "LINK", "LASTTX", "LASTRX", "PATH", "NAME"
    ]  # fmt: skip
    assert any(row.startswith(root.identity.address_text) and "ROOT" in row for row in rows)


async def test_ping_prints_pongs_and_a_summary(overlay: LoopbackOverlay) -> None:
    """`ztui ping ADDR -c 3` prints one pong line per reply with the path it came back on,
    then ping's summary; exit 0 when anything answered."""
    await overlay.add_root()
    a, b = await overlay.add_leaf("a"), await overlay.add_leaf("b")
    await overlay.wait_online()
    target = b.identity.address_text
    code, out, err = await ztui("--home", str(a.home.path), "ping", target, "-c", "3", "-i", "0.2")
    assert code == 0, err
    lines = out.splitlines()
    pongs = [line for line in lines if line.startswith(f"pong from {target}: ")]
    assert len(pongs) == 3, out
    assert all(" ms via 127.0.0.1:" in line for line in pongs)
    assert lines[-2] == f"--- {target} ping statistics ---"
    assert lines[-1].startswith("3 sent, 3 received, 0% loss, rtt min/avg/max ")


async def test_ping_with_no_replies_exits_1(overlay: LoopbackOverlay) -> None:
    """Pinging a node that went away: a no-reply line per echo, 100% loss, exit 1."""
    await overlay.add_root()
    leaf = await overlay.add_leaf("leaf")
    gone = await overlay.add_leaf("gone")
    await overlay.wait_online()
    await overlay.stop("gone")
    address = gone.identity.address_text
    code, out, err = await ztui(
        "--home", str(leaf.home.path), "ping", address, "-c", "1", "--timeout", "0.3"
    )
    assert code == 1, err
    assert f"no reply from {address}" in out
    assert "1 sent, 0 received, 100% loss" in out


async def test_ping_to_an_address_nobody_has_says_so(overlay: LoopbackOverlay) -> None:
    """The roots know no such node: one line saying so, exit 1, no waiting out timeouts."""
    await overlay.add_root()
    leaf = await overlay.add_leaf("leaf")
    await overlay.wait_online()
    code, _out, err = await ztui("--home", str(leaf.home.path), "ping", "0123456789", "-c", "3")
    assert code == 1
    assert (
        err.strip()
        == "ztui: no node 0123456789 is known to root " + overlay.roots[0].identity.address_text
    )


async def test_plain_ztui_finds_the_system_node_and_says_so(
    overlay: LoopbackOverlay, short_tmp: Path
) -> None:
    """No --home and no $ZTUI_HOME: `ztui info` reaches the node in the system home
    ($ZTUI_SYSTEM_HOME stands in for /var/lib/ztui) even though the user has a home of
    their own, and its last line names the socket it used."""
    await overlay.add_root()
    leaf = await overlay.add_leaf("leaf")
    await overlay.wait_online()
    own = short_tmp / "user"
    (own / ".local" / "share" / "ztui").mkdir(parents=True)
    env = {"ZTUI_SYSTEM_HOME": str(leaf.home.path), "HOME": str(own)}
    code, out, err = await ztui("info", env=env)
    assert code == 0, err
    assert out.splitlines()[0].startswith(f"info {leaf.identity.address_text} ")
    assert out.splitlines()[-1] == f"  api       unix:{leaf.home.path / 'control.sock'}"


async def test_tcp_api_with_token_from_home(overlay: LoopbackOverlay) -> None:
    """`--api http://127.0.0.1:PORT` uses the home's authtoken.secret; a wrong --token is
    refused with one line."""
    await overlay.add_root()
    leaf = await overlay.add_leaf("leaf", api_tcp_port=0)
    url = f"http://127.0.0.1:{leaf.api_tcp_port}"
    code, out, err = await ztui("--api", url, "--home", str(leaf.home.path), "info", "--json")
    assert code == 0, err
    assert json.loads(out)["address"] == leaf.identity.address_text
    code, out, err = await ztui("--api", url, "--token", "wrong", "info")
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and "refused the API token" in err
