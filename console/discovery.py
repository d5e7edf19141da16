"""Which overlayd a plain `ztui` talks to, and what to tell someone its socket refuses.

`--home DIR` and `--api URL` are the user's own choice and are not second-guessed here.
Without them, `pick_home` decides, in this order:

1. `$ZTUI_HOME`: that home, as overlayd itself would use.
2. The system node, `/var/lib/ztui/control.sock`, when the socket is there. Root always
   uses the system home, as overlayd does for root.
3. The per-user home's socket, `~/.local/share/ztui/control.sock`, when it is there.
4. The system node when a directory on the way will not let this user look (a home 0750
   of the `ztui` group): a member of the group then reaches the node, and anyone else is
   told which group to join.
5. Neither socket: the system home when its directory exists (its overlayd is stopped, so
   the advice is `sudo systemctl start overlayd`), else the per-user home.

Looking at the system home before the per-user one is the point: a member of `ztui` who
was sent to `~/.local/share/ztui` used to be told to start a second overlayd there, which
makes a second identity and then fails on the system node's port 9993.

`$ZTUI_SYSTEM_HOME` moves the system home, for tests and for packagers who install the
node elsewhere; overlayd's own default home is not affected (overlay_core/io/home.py).

Everything that decides or words something is a pure function of plain facts
(`pick_home`, `not_running_message`, `permission_message`); `discover` and `access_facts`
are the thin I/O that gathers those facts.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Literal

from overlay_core.api.schema import CONTROL_SOCKET_NAME, HOME_ENV, SYSTEM_HOME, user_home

SYSTEM_HOME_ENV = "ZTUI_SYSTEM_HOME"  # for tests and packagers: where the system node lives

# "given": --home or --api; "env": $ZTUI_HOME; "system" / "user": found by pick_home.
Origin = Literal["given", "env", "system", "user"]


class Seen(Enum):
    """What `stat` says about a path, as far as this user may know."""

    ABSENT = "absent"
    PRESENT = "present"
    HIDDEN = "hidden"  # a directory on the way refuses to be searched: it may well be there


@dataclass(frozen=True, slots=True)
class Choice:
    """The home `ztui` will use, why, and what it knows about the system node."""

    home: Path
    origin: Origin
    system_home: Path
    system_exists: bool  # the system home's directory is there (or hidden from us)


def system_home(env: Mapping[str, str]) -> Path:
    return Path(env.get(SYSTEM_HOME_ENV) or SYSTEM_HOME)


def pick_home(
    *, env: Mapping[str, str], euid: int, per_user: Path, seen: Callable[[Path], Seen]
) -> Choice:
    """The home a plain `ztui` should use (the order is in the module docstring).

    Args:
        env: the environment ($ZTUI_HOME, $ZTUI_SYSTEM_HOME).
        euid: the effective user id; root uses the system home.
        per_user: this user's own home, ~/.local/share/ztui.
        seen: what a path looks like to this user (`look` in real use).
    """
    system = system_home(env)
    system_exists = seen(system) is not Seen.ABSENT
    override = env.get(HOME_ENV)
    if override:
        return Choice(Path(override), "env", system, system_exists)
    system_socket = Seen.PRESENT if euid == 0 else seen(system / CONTROL_SOCKET_NAME)
    if system_socket is Seen.PRESENT:
        return Choice(system, "system", system, system_exists)
    # A system home that hides its socket from us loses to a node of our own that is
    # there: whoever runs one meant it. With none, the hidden system node is the one the
    # user wants, and the permission error then names its group.
    if seen(per_user / CONTROL_SOCKET_NAME) is not Seen.ABSENT:
        return Choice(per_user, "user", system, system_exists)
    if system_socket is Seen.HIDDEN:
        return Choice(system, "system", system, system_exists)
    if system_exists:
        return Choice(system, "system", system, system_exists)
    return Choice(per_user, "user", system, system_exists)


def look(path: Path) -> Seen:
    try:
        os.stat(path)
    except PermissionError:
        return Seen.HIDDEN
    except (OSError, ValueError):  # missing, a file where a directory should be, a NUL
        return Seen.ABSENT
    return Seen.PRESENT


def discover(env: Mapping[str, str] | None = None) -> Choice:
    """pick_home on this process's environment, user and files."""
    env = os.environ if env is None else env
    try:
        per_user = user_home()
    except RuntimeError:  # no $HOME and no passwd entry: nowhere of our own to look
        per_user = Path("~/.local/share/ztui")
    return pick_home(env=env, euid=os.geteuid(), per_user=per_user, seen=look)


def given(home: Path, env: Mapping[str, str] | None = None) -> Choice:
    """A home the user named (--home, or --api with or without it): no searching, but
    the system node's whereabouts still shape the advice."""
    system = system_home(os.environ if env is None else env)
    return Choice(home, "given", system, look(system) is not Seen.ABSENT)


# --------------------------------------------------------------------------- wording


def not_running_message(detail: str, home: Path | None, choice: Choice, euid: int) -> str:
    """ "overlayd is not running (DETAIL): start it with ...", one line.

    `home` is the home whose socket was tried, or None for a socket named by --api.
    Where a system home exists, the advice never starts a second overlayd beside it,
    unless the user named that other home themselves.
    """
    sudo = "" if euid == 0 else "sudo "
    if home is not None and home == choice.system_home:
        how = f"`{sudo}systemctl start overlayd` (or `{sudo}overlayd --home {home}`)"
    elif choice.system_exists and choice.origin in ("system", "user"):
        how = f"`{sudo}systemctl start overlayd`, this machine's node at {choice.system_home}"
    else:
        start = f"overlayd --home {home}" if home is not None else "overlayd --home DIR"
        how = f"`{start}` or `systemctl start overlayd`"
    return f"overlayd is not running ({detail}): start it with {how}"


@dataclass(frozen=True, slots=True)
class AccessFacts:
    """Who is refused, by what, and how they stand with its group."""

    blocked: Path  # the socket, or the directory on its way that refused us
    gid: int | None  # its group; None when nothing on the way could be looked at
    group: str | None  # the group's name; None when the gid has none
    user: str
    in_database: bool  # /etc/group lists the user in it, or it is their primary group
    in_session: bool  # this process has it: a login session only learns groups at login


def permission_message(socket_path: Path, facts: AccessFacts) -> str:
    """ "cannot open SOCKET: permission denied — WHY: WHAT TO DO", one line."""
    head = f"cannot open {socket_path}: permission denied"
    if facts.gid is None:
        return f"{head} — run as root or join the group that owns it"
    group = facts.group or str(facts.gid)
    what = "it" if facts.blocked == socket_path else str(facts.blocked)
    if facts.gid == 0:
        # overlayd was started without --api-group: nobody but root was meant to get in.
        return (
            f"{head} — {what} belongs to group {group}, so only root may use it: run ztui "
            "as root, or start overlayd with `--api-group ztui` (as contrib/overlayd.service does)"
        )
    if facts.in_session:
        return (
            f"{head} — {facts.user} is in group {group}, yet {what} does not let the group in: "
            f"restart overlayd with `--api-group {group}` (socket 0660, home 0750)"
        )
    if facts.in_database:
        return (
            f"{head} — {what} belongs to group {group}, which {facts.user} joined after this "
            f"login session began: log out and back in (or `newgrp {group}`)"
        )
    return (
        f"{head} — {what} belongs to group {group} and {facts.user} is not in it: "
        f"`sudo usermod -aG {group} $USER`, then log out and back in"
    )


def group_standing(gid: int) -> tuple[bool | None, bool]:
    """How this process's user stands with group `gid`: (the user database puts them in
    it, as their next login would; None when the user or group has no entry), and (this
    login session has it: a session only learns its groups at login)."""
    in_session = gid == os.getegid() or gid in os.getgroups()
    try:
        user = pwd.getpwuid(os.geteuid())
        group = grp.getgrgid(gid)
    except KeyError:
        return None, in_session
    return user.pw_gid == gid or user.pw_name in group.gr_mem, in_session


def access_facts(socket_path: Path) -> AccessFacts:
    """Which group stands between this user and the socket, and whether they are in it."""
    blocked, gid = socket_path, None
    # The first of the socket and its directories we may stat is the one that refused us:
    # a socket we could stat refused the connect; a directory we could stat refused to
    # let us search it for the socket.
    for candidate in (socket_path, *socket_path.parents):
        try:
            gid = os.stat(candidate).st_gid
        except PermissionError:
            continue
        except OSError:
            break
        blocked = candidate
        break
    euid = os.geteuid()
    try:
        user = pwd.getpwuid(euid).pw_name
    except KeyError:  # a uid with no name (a container's): still say something useful
        user = os.environ.get("USER") or f"uid {euid}"
    group: str | None = None
    in_database = in_session = False
    if gid is not None:
        with contextlib.suppress(KeyError):
            group = grp.getgrgid(gid).gr_name
        listed, in_session = group_standing(gid)
        in_database = bool(listed)
    return AccessFacts(blocked, gid, group, user, in_database, in_session)
