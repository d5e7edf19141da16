"""`ztui` as an ordinary user in front of a root-run overlayd started with --api-group:
real users and a real group (made for the test and removed after it, even on failure), a
real daemon, and `ztui` run through `su`.

Issue 11, defect 1: a member of group `ztui` who typed plain `ztui info` was sent to
~/.local/share/ztui and told to start a second overlayd. Here the system home is the
daemon's home, moved with $ZTUI_SYSTEM_HOME so the real /var/lib/ztui is never touched.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from overlay_core.lab.world import overlayd_argv
from tests.nonroot import (
    Accounts,
    as_user,
    in_stale_session,
    run,
    throwaway_accounts,
    unavailable_reason,
)

from .conftest import Processes

SOCKET_WAIT_S = 20.0

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=unavailable_reason() or "")


@pytest.fixture
def accounts() -> Iterator[Accounts]:
    """A group and two system users (one in it), removed at teardown whatever happened."""
    with throwaway_accounts() as made:
        yield made


@pytest.fixture
def daemon_home(
    accounts: Accounts, short_tmp: Path, processes: Processes
) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    """A real overlayd as root in `short_tmp`, sharing its socket with the group."""
    proc = processes.start(
        overlayd_argv("--home", str(short_tmp), "--port", "0", "--api-group", accounts.group)
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


def test_a_member_reaches_the_node_and_an_outsider_is_told_the_group(
    accounts: Accounts, daemon_home: tuple[Path, subprocess.Popen[str]]
) -> None:
    """With `--api unix:SOCKET`: the member's `ztui info` works and names the socket; the
    outsider's is one line naming the socket, the group and `usermod`, exit 1."""
    home, _proc = daemon_home
    sock = home / "control.sock"
    api = f"unix:{sock}"
    member = run(as_user(accounts.member, accounts.python.ztui("--api", api, "info")))
    assert member.returncode == 0, member.stderr
    assert member.stdout.startswith("info ") and member.stdout.splitlines()[-1] == (
        f"  api       {api}"
    )
    outsider = run(as_user(accounts.outsider, accounts.python.ztui("--api", api, "info")))
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
    ztui = accounts.python.ztui("--api", f"unix:{sock}", "info")
    result = run(in_stale_session(accounts.member, ztui))
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
    member = run(as_user(accounts.member, accounts.python.ztui("info", **system)))
    assert member.returncode == 0, member.stderr
    assert member.stdout.splitlines()[-1] == f"  api       unix:{sock}"
    outsider = run(as_user(accounts.outsider, accounts.python.ztui("info", **system)))
    assert outsider.returncode == 1
    assert outsider.stderr.startswith(f"ztui: cannot open {sock}: permission denied — ")
    assert f"usermod -aG {accounts.group}" in outsider.stderr

    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    stopped = run(as_user(accounts.member, accounts.python.ztui("info", **system)))
    assert stopped.returncode == 1
    assert stopped.stderr == (
        f"ztui: overlayd is not running (no socket at {sock}): start it with "
        f"`sudo systemctl start overlayd` (or `sudo overlayd --home {home}`)\n"
    )
