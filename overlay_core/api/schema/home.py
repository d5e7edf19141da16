"""Where a console finds a daemon (the home directory layout) and which API it speaks:
as much a part of the contract as the JSON is.
"""

from __future__ import annotations

import os
from pathlib import Path

from overlay_core import __version__

API_VERSION = 1
VERSION = __version__  # the software's, for `ztui --version` (console may import only this)

# --------------------------------------------------------------------------- home layout

HOME_ENV = "ZTUI_HOME"
SYSTEM_HOME = Path("/var/lib/ztui")
CONTROL_SOCKET_NAME = "control.sock"
AUTHTOKEN_NAME = "authtoken.secret"
DEFAULT_UDP_PORT = 9993


def user_home() -> Path:
    """A non-root user's own home: ~/.local/share/ztui."""
    return Path.home() / ".local" / "share" / "ztui"


def default_home() -> Path:
    """overlayd's home: `$ZTUI_HOME`, else /var/lib/ztui for root, else ~/.local/share/ztui.

    The console does not use this to find a node: it looks for the system node's socket
    first, whoever runs it (console/discovery.py)."""
    override = os.environ.get(HOME_ENV)
    if override:
        return Path(override)
    if os.geteuid() == 0:
        return SYSTEM_HOME
    return user_home()
