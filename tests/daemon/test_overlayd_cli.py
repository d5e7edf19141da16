"""`overlayd` as a command: roots-entry, startup failures, and a clean SIGTERM shutdown."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

from overlay_core.io.cli import build_parser, merge_settings
from overlay_core.io.home import Home
from overlay_core.lab.world import overlayd_argv
from overlay_core.proto.roots import parse_roots
from tests.cli_run import overlayd

from .conftest import Processes


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def assert_one_line_failure(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, result
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(("overlayd: ", "usage:")) or "error:" in last
    return last


def test_roots_entry_prints_a_parseable_line(short_tmp: Path) -> None:
    """`overlayd roots-entry --endpoint` prints one roots-file line for this node's identity,
    creating the identity on first use; the same identity is used by the daemon later."""
    home = short_tmp / "root"
    result = overlayd("--home", str(home), "roots-entry", "--endpoint", "127.0.0.1:9993")
    assert result.returncode == 0, result.stderr
    (entry,) = parse_roots(result.stdout)
    assert entry.identity.address_text == (home / "identity.public").read_text()[:10]
    assert [str(e) for e in entry.endpoints] == ["127.0.0.1:9993"]


def test_roots_entry_defaults_to_the_bound_address(short_tmp: Path) -> None:
    """Without --endpoint, roots-entry uses --bind and --port."""
    result = overlayd(
        "--home", str(short_tmp / "r"), "--bind", "127.0.0.1", "--port", "4242", "roots-entry"
    )
    assert result.returncode == 0, result.stderr
    (entry,) = parse_roots(result.stdout)
    assert [str(e) for e in entry.endpoints] == ["127.0.0.1:4242"]


def test_port_in_use_is_one_line_exit_1(short_tmp: Path) -> None:
    """A taken UDP port stops startup with one clear line and exit code 1, no traceback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = str(taken.getsockname()[1])
        result = overlayd("--home", str(short_tmp / "n"), "--bind", "127.0.0.1", "--port", port)
    last = assert_one_line_failure(result, 1)
    assert "in use" in last and port in last


def test_unreadable_roots_file_is_one_line_exit_1(short_tmp: Path) -> None:
    """A roots file that is missing (or malformed) is named in a one-line error, exit 1."""
    missing = short_tmp / "nope.roots"
    result = overlayd("--home", str(short_tmp / "n"), "--roots", str(missing), "--port", "0")
    assert str(missing) in assert_one_line_failure(result, 1)
    bad = short_tmp / "bad.roots"
    bad.write_text("garbage 1.2.3.4:9993\n")
    result = overlayd("--home", str(short_tmp / "n"), "--roots", str(bad), "--port", "0")
    assert "line 1" in assert_one_line_failure(result, 1)


def test_bad_arguments_exit_2() -> None:
    """argparse rejects a bad option value with a usage line and exit code 2."""
    result = overlayd("--port", "99999")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_overlayd_answers_then_exits_cleanly_on_sigterm(
    short_tmp: Path, processes: Processes
) -> None:
    """A real overlayd process serves the API, and on SIGTERM exits 0 and removes
    control.sock (so the next start does not trip over it)."""
    home = short_tmp / "d"
    proc = processes.start(
        overlayd_argv("--home", str(home), "--bind", "127.0.0.1", "--port", str(free_udp_port()))
    )
    sock = home / "control.sock"
    deadline = time.monotonic() + 20
    while not sock.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "control.sock never appeared"
        time.sleep(0.05)
    transport = httpx.HTTPTransport(uds=str(sock))
    with httpx.Client(transport=transport, base_url="http://overlayd", timeout=10) as client:
        status = client.get("/status").json()
    assert status["address"] == (home / "identity.public").read_text()[:10]
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "started as leaf" in stderr
    assert not sock.exists()


def test_options_are_remembered_for_the_next_start(short_tmp: Path, processes: Processes) -> None:
    """Options from a successful start land in settings.json, so roots-entry (and a later
    plain start) sees the port the node ran with; a failed start remembers nothing."""
    home = short_tmp / "n"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        overlayd("--home", str(home), "--bind", "127.0.0.1", "--port", str(taken.getsockname()[1]))
    assert not (home / "settings.json").exists()
    port = str(free_udp_port())
    proc = processes.start(
        overlayd_argv("--home", str(home), "--bind", "127.0.0.1", "--port", port)
    )
    deadline = time.monotonic() + 20
    while not (home / "settings.json").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "settings.json never appeared"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=20)
    result = overlayd("--home", str(home), "roots-entry")
    (entry,) = parse_roots(result.stdout)
    assert [str(e) for e in entry.endpoints] == [f"127.0.0.1:{port}"]


def test_command_line_beats_settings_beats_defaults(short_tmp: Path) -> None:
    """Precedence is command line > settings.json > built-in defaults, and `--api-tcp off`
    / `--no-root` can switch off what an earlier start remembered."""
    home = Home(short_tmp / "h")
    home.save_settings({"port": 4000, "root": True, "api_tcp": 8080})
    parser = build_parser()
    settings, changed = merge_settings(home, parser.parse_args([]))
    assert (settings["port"], settings["root"], settings["api_tcp"]) == (4000, True, 8080)
    assert settings["tcp_fallback"] == "auto" and not changed
    args = parser.parse_args(["--port", "5000", "--no-root", "--api-tcp", "off"])
    settings, changed = merge_settings(home, args)
    assert (settings["port"], settings["root"], settings["api_tcp"]) == (5000, False, None)
    assert changed


def test_api_group_opens_the_socket_to_a_group(short_tmp: Path, processes: Processes) -> None:
    """--api-group: home 0750 and socket owned by the group, secrets still 0600; an
    unknown group is one line and exit 1."""
    import grp
    import stat

    group = grp.getgrgid(os.getgid()).gr_name
    home = short_tmp / "node"
    proc = processes.start(
        overlayd_argv("--home", str(home), "--port", "0", "--bind", "127.0.0.1",
                      "--api-group", group)
    )  # fmt: skip
    sock = home / "control.sock"
    deadline = time.monotonic() + 15
    while not sock.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert sock.exists(), proc.stderr.read() if proc.stderr else ""
    assert stat.S_IMODE(home.stat().st_mode) == 0o750
    assert sock.stat().st_gid == os.getgid()
    assert stat.S_IMODE((home / "identity.secret").stat().st_mode) == 0o600
    bad = overlayd("--home", str(short_tmp / "other"), "--port", "0", "--bind", "127.0.0.1",
                   "--api-group", "no-such-group-zt")  # fmt: skip
    assert bad.returncode == 1
    assert "no such group" in bad.stderr and "Traceback" not in bad.stderr
