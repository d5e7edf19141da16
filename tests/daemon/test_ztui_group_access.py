"""`ztui` as an ordinary user in front of a root-run overlayd started with --api-group:
real users and a real group (made for the test and removed after it, even on failure), a
real daemon, and `ztui` run through `su`.

Issue 11, defect 1: a member of group `ztui` who typed plain `ztui info` was sent to
~/.local/share/ztui and told to start a second overlayd. Here the system home is the
daemon's home, moved with $ZTUI_SYSTEM_HOME so the real /var/lib/ztui is never touched.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import REPO, Processes, overlayd_cmd

TOOLS = ("useradd", "userdel", "groupadd", "groupdel", "su", "setpriv")
SOCKET_WAIT_S = 20.0


def _unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create a throwaway user and group"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"needs {', '.join(missing)} (passwd, util-linux) to act as another user"
    return None


pytestmark = pytest.mark.skipif(_unavailable() is not None, reason=_unavailable() or "")


@dataclass(frozen=True)
class Accounts:
    group: str  # the daemon's --api-group
    member: str  # in the group
    outsider: str  # not in it
    python: str  # an interpreter these users may run, with the checkout importable

    def env(self, **extra: str) -> str:
        """`env ...` words for a command line: the checkout and its packages on the path,
        a HOME with no node of its own, and `extra`."""
        site = Path(sys.prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
        variables = {
            "PYTHONPATH": f"{REPO}:{site / 'site-packages'}",
            "HOME": "/nonexistent",
            "ZTUI_HOME": "",
            **extra,
        }
        return "env " + " ".join(f"{k}={shlex.quote(v)}" for k, v in variables.items())


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def _as(user: str, command: str) -> subprocess.CompletedProcess[str]:
    """`command` through `su`, which gives the user the groups /etc/group lists, as a
    fresh login does."""
    return _run(["su", "-s", "/bin/sh", user, "-c", command])


def _usable_python(user: str) -> str | None:
    """The test's own interpreter may live where others cannot go (a pyenv under /root);
    the system's python of the same version reads the same packages."""
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    for python in (sys.executable, os.path.realpath(sys.executable), f"/usr/bin/python{version}"):
        probe = Accounts("", "", "", python).env()
        check = f"{probe} {shlex.quote(python)} -c 'import console.cli'"
        if Path(python).exists() and _as(user, check).returncode == 0:
            return python
    return None


@pytest.fixture
def accounts() -> Iterator[Accounts]:
    """A group and two system users (one in it), removed at teardown whatever happened."""
    tag = secrets.token_hex(3)
    group, member, outsider = f"ztg{tag}", f"ztm{tag}", f"zto{tag}"
    made_users: list[str] = []
    made_group = False
    # No home, no group of their own: `nogroup` as primary leaves nothing else to remove.
    user_args = ["--system", "--no-create-home", "--home-dir", "/nonexistent"]
    user_args += ["--shell", "/bin/sh", "--no-user-group", "--gid", "nogroup"]
    try:
        made_group = True
        subprocess.run(["groupadd", "--system", group], check=True, timeout=30)
        made_users.append(member)
        subprocess.run(["useradd", *user_args, "-G", group, member], check=True, timeout=30)
        made_users.append(outsider)
        subprocess.run(["useradd", *user_args, outsider], check=True, timeout=30)
        python = _usable_python(member)
        if python is None:
            pytest.skip("no Python interpreter another user may run (the venv's is private)")
        yield Accounts(group, member, outsider, python)
    finally:
        for user in made_users:
            subprocess.run(["userdel", user], capture_output=True, timeout=30)
        if made_group:
            subprocess.run(["groupdel", group], capture_output=True, timeout=30)


@pytest.fixture
def daemon_home(
    accounts: Accounts, short_tmp: Path, processes: Processes
) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    """A real overlayd as root in `short_tmp`, sharing its socket with the group."""
    proc = processes.start(
        overlayd_cmd("--home", str(short_tmp), "--port", "0", "--api-group", accounts.group)
    )
    socket_path = short_tmp / "control.sock"
    deadline = time.monotonic() + SOCKET_WAIT_S
    while not socket_path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            _out, err = proc.communicate(timeout=10)
            raise AssertionError(f"overlayd made no control socket: {err}")
        time.sleep(0.05)
    time.sleep(0.2)  # the group is given the socket right after it is bound
    yield short_tmp, proc


def _ztui(accounts: Accounts, *args: str, **env: str) -> str:
    words = " ".join(shlex.quote(a) for a in args)
    return f"{accounts.env(**env)} {shlex.quote(accounts.python)} -m console {words}"


def test_a_member_reaches_the_node_and_an_outsider_is_told_the_group(
    accounts: Accounts, daemon_home: tuple[Path, subprocess.Popen[str]]
) -> None:
    """With `--api unix:SOCKET`: the member's `ztui info` works and names the socket; the
    outsider's is one line naming the socket, the group and `usermod`, exit 1."""
    home, _proc = daemon_home
    sock = home / "control.sock"
    api = f"unix:{sock}"
    member = _as(accounts.member, _ztui(accounts, "--api", api, "info"))
    assert member.returncode == 0, member.stderr
    assert member.stdout.startswith("info ") and member.stdout.splitlines()[-1] == (
        f"  api       {api}"
    )
    outsider = _as(accounts.outsider, _ztui(accounts, "--api", api, "info"))
    assert (outsider.returncode, outsider.stdout) == (1, ""), outsider.stderr
    assert outsider.stderr == (
        f"ztui: cannot open {sock}: permission denied — {home} belongs to group "
        f"{accounts.group} and {accounts.outsider} is not in it: "
        f"`sudo usermod -aG {accounts.group} $USER`, then log out and back in\n"
    )


def test_a_member_whose_session_predates_the_group_is_told_to_log_in_again(
    accounts: Accounts, daemon_home: tuple[Path, subprocess.Popen[str]]
) -> None:
    """In the group per /etc/group but not in this process (a login from before
    `usermod -aG`, played with setpriv --clear-groups): log out and back in, or newgrp."""
    home, _proc = daemon_home
    sock = home / "control.sock"
    stale = ["setpriv", "--reuid", accounts.member, "--regid", "nogroup", "--clear-groups"]
    result = _run([*stale, "/bin/sh", "-c", _ztui(accounts, "--api", f"unix:{sock}", "info")])
    assert result.returncode == 1, result
    assert result.stderr == (
        f"ztui: cannot open {sock}: permission denied — {home} belongs to group "
        f"{accounts.group}, which {accounts.member} joined after this login session began: "
        f"log out and back in (or `newgrp {accounts.group}`)\n"
    )


def test_plain_ztui_uses_the_system_node_before_a_per_user_one(
    accounts: Accounts, daemon_home: tuple[Path, subprocess.Popen[str]]
) -> None:
    """No --home, --api or $ZTUI_HOME: the member reaches the system node (here
    $ZTUI_SYSTEM_HOME), the outsider hears about the group instead of being sent to a
    per-user home, and once the node is stopped the advice is to start it with
    systemctl, not to start a second overlayd."""
    home, proc = daemon_home
    sock = home / "control.sock"
    system = {"ZTUI_SYSTEM_HOME": str(home)}
    member = _as(accounts.member, _ztui(accounts, "info", **system))
    assert member.returncode == 0, member.stderr
    assert member.stdout.splitlines()[-1] == f"  api       unix:{sock}"
    outsider = _as(accounts.outsider, _ztui(accounts, "info", **system))
    assert outsider.returncode == 1
    assert outsider.stderr.startswith(f"ztui: cannot open {sock}: permission denied — ")
    assert f"usermod -aG {accounts.group}" in outsider.stderr

    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    stopped = _as(accounts.member, _ztui(accounts, "info", **system))
    assert stopped.returncode == 1
    assert stopped.stderr == (
        f"ztui: overlayd is not running (no socket at {sock}): start it with "
        f"`sudo systemctl start overlayd` (or `sudo overlayd --home {home}`)\n"
    )
