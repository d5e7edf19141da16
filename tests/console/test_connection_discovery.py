"""Which overlayd a plain `ztui` finds, and what it says when it cannot use it: the pure
rules of console/discovery.py, then the thin I/O beside them on real files.

The story behind them (issue 11, defect 1): a member of group `ztui` ran `ztui info`, was
sent to ~/.local/share/ztui, told overlayd was not running there and advised to start a
second one, which made a second identity and then failed on the system node's port."""

from __future__ import annotations

import os
import pickle
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from console import discovery
from console.client import ApiClient, ApiError
from console.discovery import AccessFacts, Choice, Seen, not_running_message, pick_home
from console.discovery import permission_message as words

SYSTEM = Path("/var/lib/ztui")
USER = Path("/home/alice/.local/share/ztui")
SOCK = SYSTEM / "control.sock"
ALICE = 1000
NOBODY = 65534
T = TypeVar("T")


def world(**paths: Seen) -> Callable[[Path], Seen]:
    """A `seen` over a few named paths (system, system_sock, user_sock); the rest absent."""
    where = {
        "system": SYSTEM,
        "system_sock": SOCK,
        "user_sock": USER / "control.sock",
        "moved": Path("/opt/ztui/state"),
        "moved_sock": Path("/opt/ztui/state/control.sock"),
    }
    table = {where[name]: state for name, state in paths.items()}
    return lambda path: table.get(path, Seen.ABSENT)


def pick(env: dict[str, str] | None = None, euid: int = ALICE, **paths: Seen) -> Choice:
    return pick_home(env=env or {}, euid=euid, per_user=USER, seen=world(**paths))


# --------------------------------------------------------------------------- the order


def test_a_running_system_node_comes_before_the_users_own() -> None:
    """Both sockets there: the system node wins, whoever asks (the group member's case)."""
    choice = pick(system=Seen.PRESENT, system_sock=Seen.PRESENT, user_sock=Seen.PRESENT)
    assert (choice.home, choice.origin) == (SYSTEM, "system")


def test_a_system_home_closed_to_the_user_is_still_the_system_node() -> None:
    """Home 0750 of group ztui and the user not in it: the socket cannot even be looked
    at. That is the system node, so the user hears about the group, not about a per-user
    node that never existed."""
    choice = pick(system=Seen.PRESENT, system_sock=Seen.HIDDEN)
    assert (choice.home, choice.origin, choice.system_exists) == (SYSTEM, "system", True)


def test_the_users_own_running_node_beats_a_system_home_closed_to_them() -> None:
    """Someone outside the group who runs a node of their own meant that one: a hidden
    system socket must not send them to a permission error instead."""
    choice = pick(system=Seen.HIDDEN, system_sock=Seen.HIDDEN, user_sock=Seen.PRESENT)
    assert (choice.home, choice.origin, choice.system_exists) == (USER, "user", True)


def test_the_users_own_node_when_only_it_runs() -> None:
    """No system socket: a running per-user node is used, system home or not."""
    for system in (Seen.ABSENT, Seen.PRESENT):
        choice = pick(system=system, user_sock=Seen.PRESENT)
        assert (choice.home, choice.origin) == (USER, "user")
        assert choice.system_exists is (system is Seen.PRESENT)


def test_nothing_running_prefers_an_existing_system_home() -> None:
    """No socket anywhere: a system home means a stopped system node (start that one);
    without one, the user's own home."""
    assert pick(system=Seen.PRESENT).home == SYSTEM
    assert pick(system=Seen.HIDDEN).home == SYSTEM
    nothing = pick()
    assert (nothing.home, nothing.origin, nothing.system_exists) == (USER, "user", False)


def test_root_uses_the_system_home_as_overlayd_does() -> None:
    """Root has no per-user home: even a root-run per-user socket is not looked for."""
    choice = pick(euid=0, user_sock=Seen.PRESENT)
    assert (choice.home, choice.origin) == (SYSTEM, "system")


def test_ztui_home_wins_over_everything() -> None:
    """$ZTUI_HOME is the user saying where, as for overlayd."""
    choice = pick({"ZTUI_HOME": "/srv/z"}, system=Seen.PRESENT, system_sock=Seen.PRESENT)
    assert (choice.home, choice.origin) == (Path("/srv/z"), "env")
    assert choice.system_exists is True


def test_ztui_system_home_moves_the_system_node() -> None:
    """$ZTUI_SYSTEM_HOME (tests, packagers) is where the system node is looked for, and
    /var/lib/ztui is then ignored."""
    env = {"ZTUI_SYSTEM_HOME": "/opt/ztui/state"}
    moved = pick(env, moved=Seen.PRESENT, moved_sock=Seen.PRESENT, system_sock=Seen.PRESENT)
    assert (moved.home, moved.system_home) == (Path("/opt/ztui/state"), Path("/opt/ztui/state"))
    assert pick(env, system=Seen.PRESENT, system_sock=Seen.PRESENT).home == USER


# --------------------------------------------------------------------------- "not running"


def test_a_stopped_system_node_is_started_with_systemctl_not_a_second_overlayd() -> None:
    """The defect's message advised `overlayd --home ~/.local/share/ztui`; with a system
    home the advice is to start that node."""
    choice = pick(system=Seen.PRESENT)
    message = not_running_message(f"no socket at {SOCK}", choice.home, choice, ALICE)
    assert message == (
        f"overlayd is not running (no socket at {SOCK}): start it with "
        "`sudo systemctl start overlayd` (or `sudo overlayd --home /var/lib/ztui`)"
    )
    as_root = not_running_message("x", SYSTEM, pick(euid=0, system=Seen.PRESENT), 0)
    assert "`systemctl start overlayd` (or `overlayd --home /var/lib/ztui`)" in as_root


def test_a_stale_user_socket_beside_a_system_home_points_at_the_system_node() -> None:
    """A per-user socket left by a crash, on a machine with a system node: start that one,
    not a second node in the user's home."""
    choice = pick(system=Seen.PRESENT, user_sock=Seen.PRESENT)
    message = not_running_message("stale socket at X", USER, choice, ALICE)
    assert message == (
        "overlayd is not running (stale socket at X): start it with "
        "`sudo systemctl start overlayd`, this machine's node at /var/lib/ztui"
    )
    assert str(USER) not in message


def test_no_system_home_or_a_home_the_user_named_keeps_overlayd_home() -> None:
    """Without a system home, or for a home given with --home, starting overlayd there is
    the right advice (the wording the daemon tests already pin down)."""
    nothing = pick()
    assert not_running_message("d", USER, nothing, ALICE) == (
        f"overlayd is not running (d): start it with `overlayd --home {USER}` "
        "or `systemctl start overlayd`"
    )
    named = Choice(Path("/tmp/h"), "given", SYSTEM, True)
    assert "`overlayd --home /tmp/h` or" in not_running_message("d", Path("/tmp/h"), named, 0)
    assert "`overlayd --home DIR`" in not_running_message("d", None, named, 0)


# --------------------------------------------------------------------------- "permission denied"


def facts(**overrides: object) -> AccessFacts:
    base: dict[str, object] = dict(
        blocked=SOCK, gid=998, group="ztui", user="alice", in_database=False, in_session=False
    )
    base.update(overrides)
    return AccessFacts(**base)  # type: ignore[arg-type]


def test_not_in_the_group_says_usermod_then_log_in_again() -> None:
    assert words(SOCK, facts()) == (
        f"cannot open {SOCK}: permission denied — it belongs to group ztui and alice is not "
        "in it: `sudo usermod -aG ztui $USER`, then log out and back in"
    )


def test_added_to_the_group_but_not_in_this_session_says_log_in_again() -> None:
    """usermod -aG took effect in /etc/group, but a session's groups are fixed at login."""
    assert words(SOCK, facts(in_database=True)) == (
        f"cannot open {SOCK}: permission denied — it belongs to group ztui, which alice "
        "joined after this login session began: log out and back in (or `newgrp ztui`)"
    )


def test_a_closed_directory_is_named_instead_of_the_socket() -> None:
    """Home 0750: the directory refused, so it is the one named, with its group."""
    message = words(SOCK, facts(blocked=SYSTEM))
    assert message.startswith(
        f"cannot open {SOCK}: permission denied — /var/lib/ztui belongs to group ztui and "
    )


def test_in_the_group_and_still_refused_points_at_the_modes() -> None:
    message = words(SOCK, facts(in_database=True, in_session=True))
    assert "alice is in group ztui, yet it does not let the group in" in message
    assert "`--api-group ztui`" in message and "usermod" not in message


def test_root_group_and_unknown_group() -> None:
    """A root:root socket (overlayd without --api-group) is root's alone; a gid without a
    name is given by number; nothing to stat at all keeps the general advice."""
    assert "belongs to group root, so only root may use it" in words(
        SOCK, facts(gid=0, group="root")
    )
    assert "usermod -aG 4242 $USER" in words(SOCK, facts(gid=4242, group=None))
    assert words(SOCK, facts(gid=None, group=None)).endswith(
        "— run as root or join the group that owns it"
    )


def test_every_message_is_one_line() -> None:
    variants = [
        facts(),
        facts(in_database=True),
        facts(in_session=True),
        facts(gid=0),
        facts(gid=None),
    ]
    assert all("\n" not in words(SOCK, f) for f in variants)


# --------------------------------------------------------------------------- the I/O beside


@pytest.fixture
def tmp() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="zt-", dir="/tmp"))  # short: UNIX socket paths
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def as_nobody(call: Callable[[], T]) -> T:
    """`call()` in a forked child that has become nobody, its result pickled back: the
    test process itself never changes user (another thread would run as nobody too)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        status = 1
        try:
            os.close(read_fd)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            with os.fdopen(write_fd, "wb") as out:
                pickle.dump(call(), out)
            status = 0
        finally:
            os._exit(status)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as back:
        data = back.read()
    _, wait_status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(wait_status) == 0 and data, "the child as nobody failed"
    result: T = pickle.loads(data)
    return result


def test_look_tells_present_absent_and_hidden(tmp: Path) -> None:
    (tmp / "there").touch()
    assert discovery.look(tmp / "there") is Seen.PRESENT
    assert discovery.look(tmp / "missing") is Seen.ABSENT
    assert discovery.look(tmp / "there" / "below") is Seen.ABSENT  # a file, not a dir


@pytest.mark.skipif(os.geteuid() != 0, reason="HIDDEN needs another user to hide from")
def test_look_tells_hidden(tmp: Path) -> None:
    closed = tmp / "closed"
    closed.mkdir(mode=0o700)
    (closed / "control.sock").touch()
    assert as_nobody(lambda: discovery.look(closed / "control.sock")) is Seen.HIDDEN


def test_plain_client_reaches_the_system_socket_from_the_environment(
    tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no --home, ApiClient looks at $ZTUI_SYSTEM_HOME's socket first and names it;
    a listener that never answers HTTP is enough to see where it went."""
    system, own = tmp / "system", tmp / "own"
    system.mkdir()
    own.mkdir()
    monkeypatch.delenv("ZTUI_HOME", raising=False)
    monkeypatch.setenv("ZTUI_SYSTEM_HOME", str(system))
    monkeypatch.setenv("HOME", str(own))
    with ApiClient() as client:
        # No socket yet, but a system home: that is where the node belongs.
        assert client.endpoint == f"unix:{system / 'control.sock'}"
        with pytest.raises(ApiError) as caught:
            client.status()
    assert "systemctl start overlayd" in str(caught.value)
    assert str(own) not in str(caught.value)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(str(system / "control.sock"))
        with ApiClient() as client:
            assert client.endpoint == f"unix:{system / 'control.sock'}"
    finally:
        listener.close()


def test_access_facts_names_the_group_that_refused(tmp: Path) -> None:
    """As nobody, a root:root home 0700 is what refused, group root, and nobody is not in
    it; as root the socket itself is looked at."""
    if os.geteuid() != 0:
        pytest.skip("switching to another user needs root")
    sock = tmp / "control.sock"
    sock.touch()
    tmp.chmod(0o700)
    seen = as_nobody(lambda: discovery.access_facts(sock))
    assert (seen.blocked, seen.gid, seen.group, seen.user) == (tmp, 0, "root", "nobody")
    assert not seen.in_database and not seen.in_session
    mine = discovery.access_facts(sock)
    assert (mine.blocked, mine.gid, mine.in_session) == (sock, 0, True)
