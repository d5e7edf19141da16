"""ApiClient turns every way of not reaching the daemon into one actionable line."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from console.client import ApiClient, ApiError

NOBODY = 65534


@pytest.fixture
def home(short_tmp: Path) -> Path:
    """A home under /tmp (tests/conftest.py): its socket path fits the UNIX limit."""
    return short_tmp


def test_missing_socket_says_not_running(home: Path) -> None:
    """No control.sock: 'overlayd is not running', the path, and how to start it."""
    with ApiClient(home=home) as client, pytest.raises(ApiError) as caught:
        client.status()
    message = str(caught.value)
    assert "overlayd is not running (no socket at" in message
    assert f"`overlayd --home {home}`" in message and "systemctl start overlayd" in message
    assert "\n" not in message


def test_stale_socket_says_not_running(home: Path) -> None:
    """A socket file nobody listens on (a crashed daemon) reads as 'not running'."""
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(home / "control.sock"))
    stale.close()
    with ApiClient(home=home) as client, pytest.raises(ApiError, match="stale socket"):
        client.status()


def test_tcp_api_not_listening(home: Path) -> None:
    """An --api URL with nothing behind it says so, and hints at --api-tcp."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with ApiClient(api=f"http://127.0.0.1:{port}", home=home) as client:
        with pytest.raises(ApiError, match=r"not answering .* --api-tcp"):
            client.status()


def test_bad_api_url_is_rejected() -> None:
    """--api accepts unix:PATH or http://; anything else is named in the error."""
    with pytest.raises(ApiError, match="ftp://x"):
        ApiClient(api="ftp://x")


@contextlib.contextmanager
def as_nobody() -> Iterator[None]:
    """Run the block with nobody's effective uid, gid and no groups; root gets them back."""
    groups = os.getgroups()
    os.setgroups([])
    os.setegid(NOBODY)
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)
        os.setgroups(groups)


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another user needs root")
@pytest.mark.parametrize("home_mode", [0o700, 0o755])
def test_permission_denied_names_the_fix(home: Path, home_mode: int) -> None:
    """A user who may not reach the root-owned socket (home 0700) or open it (socket 0660)
    is told, in one line, what refused (the home or the socket), that its group is root's
    so only root gets in, and the two ways out. (Group-owned sockets, the usual case, are
    tests/daemon/test_ztui_group_access.py and tests/console/test_connection_discovery.py.)"""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(home / "control.sock"))
    listener.listen()
    os.chmod(home / "control.sock", 0o660)
    home.chmod(home_mode)
    try:
        with as_nobody(), ApiClient(home=home) as client, pytest.raises(ApiError) as caught:
            client.status()
    finally:
        listener.close()
    message = str(caught.value)
    refused = f"{home} belongs to group root" if home_mode == 0o700 else "it belongs to group root"
    assert message == (
        f"cannot open {home / 'control.sock'}: permission denied — {refused}, so only root "
        "may use it: run ztui as root, or start overlayd with `--api-group ztui` "
        "(as contrib/overlayd.service does)"
    )
