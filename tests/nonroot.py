"""Acting as another user in the tests: throwaway accounts, removed whatever happens, and
an interpreter those users may run this checkout with.

The tests run as root from a venv whose interpreter may live where nobody else may go (a
pyenv under /root, 0700). Another user runs the system's python of the same version
instead, with this checkout and the venv's site-packages on PYTHONPATH: the same version
loads the same compiled packages.

Shared by tests/daemon/test_ztui_group_access.py, tests/console/test_terminal_gone.py and
tests/netns/test_doctor.py, so each says what it tests, not how to be someone else.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ACCOUNT_TOOLS = ("useradd", "userdel", "groupadd", "groupdel", "su", "setpriv")
RUN_TIMEOUT_S = 60
# The throwaway users' primary group: no group of their own, so nothing else to remove.
PRIMARY_GROUP = "nogroup"


def unavailable_reason(tools: Sequence[str] = ACCOUNT_TOOLS) -> str | None:
    """Why this machine cannot make a throwaway user and act as it, or None."""
    if os.geteuid() != 0:
        return "needs root to create a throwaway user and group"
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        return f"needs {', '.join(missing)} (passwd, util-linux) to act as another user"
    return None


def checkout_pythonpath() -> str:
    """This checkout first (it is what is tested), then the venv's packages."""
    paths = [str(REPO), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    return os.pathsep.join(dict.fromkeys(paths))


@dataclass(frozen=True)
class UserPython:
    """An interpreter, and the PYTHONPATH with which it imports this checkout."""

    python: str
    pythonpath: str

    def env(self, **extra: str) -> str:
        """`env ...` words for a command line: the checkout on the path, a HOME with no
        node of its own, no $ZTUI_HOME, and `extra`."""
        variables = {"PYTHONPATH": self.pythonpath, "HOME": "/nonexistent", "ZTUI_HOME": ""}
        variables.update(extra)
        return "env " + " ".join(f"{k}={shlex.quote(v)}" for k, v in variables.items())

    def command(self, *args: str, **env: str) -> str:
        """A shell command line: this interpreter with `args`, in env(**env)."""
        words = " ".join(shlex.quote(arg) for arg in (self.python, *args))
        return f"{self.env(**env)} {words}"

    def ztui(self, *args: str, **env: str) -> str:
        """`ztui args...` (python -m console) as a shell command line."""
        return self.command("-m", "console", *args, **env)


def as_user(user: str, command: str) -> list[str]:
    """The argv that runs the shell `command` as `user` through su, which gives the user
    the groups /etc/group lists, as a fresh login does."""
    return ["su", "-s", "/bin/sh", user, "-c", command]


def in_stale_session(user: str, command: str) -> list[str]:
    """The argv that runs `command` as `user` carrying no supplementary group at all: a
    login session from before `usermod -aG`, which /etc/group already contradicts. For
    the accounts made here (primary group PRIMARY_GROUP)."""
    return ["setpriv", "--reuid", user, "--regid", PRIMARY_GROUP, "--clear-groups",
            "/bin/sh", "-c", command]  # fmt: skip


def run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=RUN_TIMEOUT_S)


def user_python(user: str) -> UserPython | str:
    """An interpreter `user` can run the console with, or why there is none: the test's
    own when others may reach it, else the system's python of the same version."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = dict.fromkeys(
        [sys.executable, os.path.realpath(sys.executable), f"/usr/bin/{version}"]
    )
    for python in candidates:
        if not Path(python).exists():
            continue
        found = UserPython(python, checkout_pythonpath())
        probe = run(as_user(user, found.command("-c", "import console.cli, console.app")))
        if probe.returncode == 0:
            return found
    return f"user {user} can run none of {', '.join(candidates)} with this checkout's packages"


@dataclass(frozen=True)
class Accounts:
    group: str  # a group made for the test (a daemon's --api-group)
    member: str  # a user in it, per /etc/group
    outsider: str  # a user not in it
    python: UserPython  # what both may run


@contextmanager
def throwaway_accounts() -> Iterator[Accounts]:
    """A group and two system users (one in it), removed on exit whatever happened; the
    test is skipped when they can run no interpreter with this checkout."""
    tag = secrets.token_hex(3)
    group, member, outsider = f"ztg{tag}", f"ztm{tag}", f"zto{tag}"
    made_users: list[str] = []
    made_group = False
    user_args = ["--system", "--no-create-home", "--home-dir", "/nonexistent"]
    user_args += ["--shell", "/bin/sh", "--no-user-group", "--gid", PRIMARY_GROUP]
    try:
        made_group = True
        subprocess.run(["groupadd", "--system", group], check=True, timeout=RUN_TIMEOUT_S)
        made_users.append(member)
        subprocess.run(
            ["useradd", *user_args, "-G", group, member], check=True, timeout=RUN_TIMEOUT_S
        )
        made_users.append(outsider)
        subprocess.run(["useradd", *user_args, outsider], check=True, timeout=RUN_TIMEOUT_S)
        python = user_python(member)
        if isinstance(python, str):
            pytest.skip(python)
        yield Accounts(group, member, outsider, python)
    finally:
        for user in made_users:
            subprocess.run(["userdel", user], capture_output=True, timeout=RUN_TIMEOUT_S)
        if made_group:
            subprocess.run(["groupdel", group], capture_output=True, timeout=RUN_TIMEOUT_S)
