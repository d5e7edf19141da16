"""The daemon's home directory: identity, API token, persisted settings, control socket.

    DIR/                    0700 when we create it (an admin may loosen it to 0750 so a
                            group can reach control.sock; we never tighten an existing dir)
      identity.secret       0600  ADDRESS:0:PUBLIC:SEED, the node's whole identity
      identity.public       0644  ADDRESS:0:PUBLIC, safe to hand out
      authtoken.secret      0600  bearer token for the TCP control API
      settings.json         0600  options the CLI was last started with (see cli.py)
      networks.json         0600  joined networks and their local settings (networks.py)
      controller.db         0600  the network controller's SQLite store
      control.sock          0660  the control API, while overlayd runs

Secrets are created with O_CREAT|O_EXCL at mode 0600 under a temporary name and renamed into
place, so they are never readable by others, not even for an instant, and a crash mid-write
never leaves a truncated identity behind. Nothing here logs file contents.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import stat
from pathlib import Path
from typing import Any

from overlay_core.api.schema import AUTHTOKEN_NAME, CONTROL_SOCKET_NAME, default_home
from overlay_core.proto.identity import Identity

log = logging.getLogger(__name__)

__all__ = ["Home", "HomeError", "default_home"]

IDENTITY_SECRET_NAME = "identity.secret"
IDENTITY_PUBLIC_NAME = "identity.public"
SETTINGS_NAME = "settings.json"
NETWORKS_NAME = "networks.json"
CONTROLLER_DB_NAME = "controller.db"
AUTHTOKEN_CHARS = 24  # secrets.token_urlsafe(18) is exactly 24 url-safe characters


class HomeError(Exception):
    """A home directory problem, phrased as one line for the operator."""


def write_file_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write `data` to `path` via a fresh O_EXCL temp file of `mode`, then rename over it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        # The umask may have masked bits off `mode`; fchmod sets exactly what we asked for.
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)


class Home:
    """Paths and load-or-create helpers for one home directory."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else default_home()

    @property
    def identity_secret_path(self) -> Path:
        return self.path / IDENTITY_SECRET_NAME

    @property
    def identity_public_path(self) -> Path:
        return self.path / IDENTITY_PUBLIC_NAME

    @property
    def authtoken_path(self) -> Path:
        return self.path / AUTHTOKEN_NAME

    @property
    def settings_path(self) -> Path:
        return self.path / SETTINGS_NAME

    @property
    def networks_path(self) -> Path:
        return self.path / NETWORKS_NAME

    @property
    def controller_db_path(self) -> Path:
        return self.path / CONTROLLER_DB_NAME

    @property
    def control_socket_path(self) -> Path:
        return self.path / CONTROL_SOCKET_NAME

    def ensure(self) -> None:
        """Create the directory (0700) if it is missing."""
        try:
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise HomeError(f"cannot create home {self.path}: {exc.strerror}") from None
        if not self.path.is_dir():
            raise HomeError(f"home {self.path} is not a directory")

    # -- identity

    def load_identity(self) -> Identity | None:
        """The stored identity, or None if there is none yet. Raises HomeError if unusable."""
        path = self.identity_secret_path
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise HomeError(f"cannot read {path}: {exc.strerror}") from None
        try:
            identity = Identity.from_text(text)
        except ValueError as exc:
            raise HomeError(f"{path} is not a valid identity: {exc}") from None
        if identity.seed is None:
            raise HomeError(f"{path} holds only a public identity; the secret part is missing")
        self._tighten(path)
        return identity

    def load_or_create_identity(self) -> Identity:
        """The node's identity; generated and stored on first start, kept forever after."""
        self.ensure()
        identity = self.load_identity()
        if identity is None:
            identity = Identity.generate()
            try:
                write_file_atomic(
                    self.identity_secret_path, identity.to_secret_text().encode() + b"\n", 0o600
                )
            except OSError as exc:
                raise HomeError(f"cannot write {self.identity_secret_path}: {exc}") from None
            log.info("generated a new identity %s in %s", identity.address_text, self.path)
        self._write_public(identity)
        return identity

    def _write_public(self, identity: Identity) -> None:
        public = identity.to_public_text() + "\n"
        path = self.identity_public_path
        try:
            if path.exists() and path.read_text() == public:
                return
            write_file_atomic(path, public.encode(), 0o644)
        except OSError as exc:
            # Only a convenience copy: the daemon runs fine without it.
            log.warning("cannot write %s: %s", path, exc)

    # -- token

    def load_or_create_authtoken(self) -> str:
        self.ensure()
        path = self.authtoken_path
        try:
            token = path.read_text().strip()
        except FileNotFoundError:
            token = ""
        except OSError as exc:
            raise HomeError(f"cannot read {path}: {exc.strerror}") from None
        if token:
            self._tighten(path)
            return token
        token = secrets.token_urlsafe(18)
        assert len(token) == AUTHTOKEN_CHARS
        try:
            write_file_atomic(path, token.encode() + b"\n", 0o600)
        except OSError as exc:
            raise HomeError(f"cannot write {path}: {exc}") from None
        return token

    # -- settings

    def load_settings(self) -> dict[str, Any]:
        return self._load_json_object(self.settings_path)

    def save_settings(self, settings: dict[str, Any]) -> None:
        self._save_json(self.settings_path, settings)

    # -- joined networks

    def load_networks(self) -> dict[str, Any]:
        """networks.json: {"networks": {NWID: settings}}; {} when there is no file yet."""
        return self._load_json_object(self.networks_path)

    def save_networks(self, data: dict[str, Any]) -> None:
        self._save_json(self.networks_path, data)

    # -- helpers

    def _load_json_object(self, path: Path) -> dict[str, Any]:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise HomeError(f"cannot read {path}: {exc.strerror}") from None
        except ValueError as exc:
            raise HomeError(f"{path} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise HomeError(f"{path} must hold a JSON object")
        return data

    def _save_json(self, path: Path, data: dict[str, Any]) -> None:
        self.ensure()
        text = json.dumps(data, indent=2, sort_keys=True) + "\n"
        try:
            write_file_atomic(path, text.encode(), 0o600)
        except OSError as exc:
            raise HomeError(f"cannot write {path}: {exc}") from None

    @staticmethod
    def _tighten(path: Path) -> None:
        """A secret someone copied in with loose permissions gets fixed, loudly."""
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
            if mode & 0o077:
                log.warning("%s had mode %o; setting it to 600", path, mode)
                path.chmod(0o600)
        except OSError as exc:
            log.warning("cannot check permissions of %s: %s", path, exc)
