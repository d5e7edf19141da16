"""The home directory: identity kept across restarts, secrets never readable by others."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from overlay_core.io.daemon import Daemon, StartupError
from overlay_core.io.home import Home, HomeError
from overlay_core.lab.loopback import LoopbackOverlay


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_identity_survives_a_restart(overlay: LoopbackOverlay) -> None:
    """Stopping and starting a daemon on the same home keeps its address."""
    first = await overlay.add_leaf("node")
    address = first.address
    await overlay.stop("node")
    second = await overlay.add_leaf("node")
    assert second.address == address
    assert second.status().address == first.identity.address_text


async def test_secrets_are_0600_and_home_is_0700(overlay: LoopbackOverlay) -> None:
    """identity.secret and authtoken.secret are owner-only; a fresh home is owner-only."""
    daemon = await overlay.add_leaf("node")
    home = daemon.home
    assert mode(home.path) == 0o700
    assert mode(home.identity_secret_path) == 0o600
    assert mode(home.authtoken_path) == 0o600
    assert mode(home.identity_public_path) == 0o644
    assert home.identity_public_path.read_text().strip() == daemon.identity.to_public_text()


def test_authtoken_is_24_url_safe_chars_and_stable(short_tmp: Path) -> None:
    """The token is created once (24 url-safe characters) and read back unchanged."""
    home = Home(short_tmp / "h")
    token = home.load_or_create_authtoken()
    assert len(token) == 24
    assert all(c.isalnum() or c in "-_" for c in token)
    assert Home(short_tmp / "h").load_or_create_authtoken() == token


def test_loose_secret_permissions_are_tightened(short_tmp: Path) -> None:
    """A secret copied in with mode 0644 is put back to 0600 when loaded."""
    home = Home(short_tmp / "h")
    home.load_or_create_identity()
    home.identity_secret_path.chmod(0o644)
    home.load_or_create_identity()
    assert mode(home.identity_secret_path) == 0o600


def test_corrupt_identity_is_one_line_startup_error(short_tmp: Path) -> None:
    """A damaged identity.secret stops the daemon with the file name, never replaces it."""
    home = Home(short_tmp / "h")
    home.ensure()
    home.identity_secret_path.write_text("not an identity\n")
    with pytest.raises(StartupError, match=r"identity\.secret"):
        Daemon(LoopbackOverlay(short_tmp).config("h"))
    assert home.identity_secret_path.read_text() == "not an identity\n"


def test_settings_round_trip(short_tmp: Path) -> None:
    """settings.json stores what the CLI persisted, owner-only; garbage is a HomeError."""
    home = Home(short_tmp / "h")
    assert home.load_settings() == {}
    home.save_settings({"port": 9993, "bind": ["127.0.0.1"]})
    assert home.load_settings() == {"port": 9993, "bind": ["127.0.0.1"]}
    assert mode(home.settings_path) == 0o600
    home.settings_path.write_text("[1, 2")
    with pytest.raises(HomeError, match=r"settings\.json"):
        home.load_settings()


def test_default_home_honours_ztui_home(monkeypatch: pytest.MonkeyPatch, short_tmp: Path) -> None:
    """$ZTUI_HOME overrides the default home for both overlayd and ztui."""
    monkeypatch.setenv("ZTUI_HOME", str(short_tmp / "env-home"))
    assert Home().path == short_tmp / "env-home"
