"""One overlayd in a rig namespace, driven over its control socket (lab/world.py builds them).

An `OverlayNode` is started as a child process with `ip netns exec` (through its rig Host),
its log appended to HOME/overlayd.log, and answers through an httpx client on its control
socket: the namespaces share the filesystem, so `node.get("/status")` and `node.ztui(
"peers")` work from the host namespace. `report()` is what a failed wait prints about it:
its state, `ztui info`/`peers`/`networks` and the tail of its log.

`child_env`, `overlayd_argv` and `ztui_argv` run the entry points from this checkout,
whether or not it is pip-installed; the demo and the system tests use them for their own
children too.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from .netns import Host, Site
from .processes import stop_processes

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0
API_TIMEOUT_S = 10.0
POLL_S = 0.2
LOG_TAIL_LINES = 30


class WorldError(RuntimeError):
    """A world operation failed (a daemon would not start, an API call was refused)."""


class WorldTimeout(WorldError, AssertionError):
    """A wait ran out; the message carries every node's view (see OverlayWorld.report).

    It is an AssertionError too, so pytest shows it as a failed expectation."""


class ApiCallError(WorldError):
    """The daemon answered an API call with an error status."""

    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        super().__init__(f"{method} {path} -> {status}: {body}")
        self.status = status
        self.body = body


def child_env() -> dict[str, str]:
    """The environment for overlayd and ztui children: this checkout first on the path,
    no ZTUI_HOME leaking in from the caller's shell."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.pop("ZTUI_HOME", None)
    return env


def overlayd_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "overlay_core.io.cli", *args]


def ztui_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "console", *args]


class OverlayNode:
    """One overlayd in a rig namespace, with an API client on its control socket.

    Attributes:
        name: the rig node's name (also the home directory's name).
        host: the rig Host it runs in; `host.run([...])` runs a command beside it.
        site: the NAT site for a node at home, None for a public one.
        role: "root", "controller" or "member" (what the world made it for).
        address: the node's 10-hex-digit overlay address, known once started.
    """

    def __init__(
        self,
        name: str,
        host: Host,
        home: Path,
        role: str,
        args: Sequence[str],
        log_level: str = "info",
    ) -> None:
        self.name = name
        self.host = host
        self.site: Site | None = host.site
        self.home = home
        self.role = role
        self.args = list(args)
        self.log_level = log_level
        self.log = home / "overlayd.log"
        self.address = ""
        self.proc: subprocess.Popen[str] | None = None
        self._client: httpx.Client | None = None
        self.starts = 0
        self.stopped = False  # stopped on purpose: not a crash for check_alive

    def __repr__(self) -> str:
        return f"<overlayd {self.name} {self.address or '?'} in {self.host.ns}>"

    # ---- process ------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def socket_path(self) -> Path:
        return self.home / "control.sock"

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Start overlayd (same home, so the same identity, controller and networks) and
        wait until its API answers. The log is appended to, so restarts keep history."""
        if self.running:
            return
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.starts += 1
        self.stopped = False
        with self.log.open("a") as log:
            log.write(f"----- start #{self.starts} {time.strftime('%H:%M:%S')}\n")
            log.flush()
            self.proc = self.host.popen(
                overlayd_argv("--home", str(self.home), *self.args, "--log-level", self.log_level),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=child_env(),
            )
        deadline = time.monotonic() + timeout
        while True:
            if not self.running:
                raise WorldError(f"{self.name}: overlayd exited at start\n{self.log_tail()}")
            status = self.try_get("/status")
            if status is not None:
                self.address = status["address"]
                return
            if time.monotonic() >= deadline:
                raise WorldError(f"{self.name}: no API within {timeout:g} s\n{self.log_tail()}")
            time.sleep(POLL_S)

    def stop(self, grace_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM, wait, then SIGKILL, by this node's own PID only. Idempotent."""
        stop_nodes([self], grace_s)

    def restart(self, timeout: float = START_TIMEOUT_S) -> None:
        self.stop()
        self.start(timeout)

    # ---- API ----------------------------------------------------------------------------

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(
                transport=httpx.HTTPTransport(uds=str(self.socket_path)),
                base_url="http://overlayd",
                timeout=API_TIMEOUT_S,
            )
        return self._client

    def _stopping(self) -> None:
        """Stopped on purpose from now on (not a crash for check_alive); no API calls."""
        self.stopped = True
        if self._client is not None:
            self._client.close()
            self._client = None

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """One API call; the parsed JSON (text for /metrics), ApiCallError on >= 400."""
        try:
            response = self.client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise WorldError(f"{self.name}: {method} {path}: {exc}") from exc
        if response.status_code >= 400:
            try:
                detail: Any = response.json()
            except ValueError:
                detail = response.text
            raise ApiCallError(method, path, response.status_code, detail)
        if "json" not in response.headers.get("content-type", ""):
            return response.text
        return response.json()

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def try_get(self, path: str) -> Any:
        """GET, or None if the daemon cannot answer (not up yet) or says 404."""
        try:
            return self.get(path)
        except ApiCallError as exc:
            if exc.status == 404:
                return None
            raise
        except WorldError:
            return None

    def status(self) -> dict[str, Any]:
        return self.get("/status")  # type: ignore[no-any-return]

    def peers(self) -> list[dict[str, Any]]:
        return self.get("/peers")  # type: ignore[no-any-return]

    def peer(self, address: str) -> dict[str, Any] | None:
        return next((p for p in self.peers() if p["address"] == address), None)

    def networks(self) -> list[dict[str, Any]]:
        return self.get("/networks")  # type: ignore[no-any-return]

    def network(self, nwid: str) -> dict[str, Any] | None:
        """This node's view of a joined network (NetworkJson), None if not joined."""
        return self.try_get(f"/networks/{nwid}")  # type: ignore[no-any-return]

    def join(self, nwid: str, **settings: Any) -> dict[str, Any]:
        return self.request("POST", f"/networks/{nwid}", settings or None)  # type: ignore[no-any-return]

    def leave(self, nwid: str) -> dict[str, Any]:
        return self.request("DELETE", f"/networks/{nwid}")  # type: ignore[no-any-return]

    def metrics(self) -> str:
        return str(self.get("/metrics"))

    def ztui(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """`ztui --home HOME args...` from the host namespace (the console over the socket)."""
        return subprocess.run(
            ztui_argv("--home", str(self.home), *args),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=child_env(),
            check=False,
        )

    # ---- diagnostics --------------------------------------------------------------------

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(text.splitlines()[-lines:])

    def report(self) -> str:
        if self.proc is None:
            state = "never started"
        elif self.stopped:
            state = f"stopped, exit {self.proc.returncode}"
        elif self.running:
            state = "running"
        else:
            state = f"EXITED {self.proc.returncode}"
        parts = [f"===== {self!r} ({self.role}, {state}), home {self.home}"]
        if self.running:
            for command in ("info", "peers", "networks"):
                try:
                    out = self.ztui(command, timeout=10)
                    parts.append(f"$ ztui {command}\n{out.stdout}{out.stderr}".rstrip())
                except subprocess.TimeoutExpired:
                    parts.append(f"$ ztui {command}\n(no answer within 10 s)")
        parts.append(f"$ tail {self.log}\n{self.log_tail()}")
        return "\n".join(parts)


def stop_nodes(nodes: Sequence[OverlayNode], grace_s: float = STOP_TIMEOUT_S) -> None:
    """Stop these nodes' daemons side by side (lab/processes.py): at most 2 x grace_s
    however many there are, where one after the other could take that for each."""
    for node in nodes:
        # One node's client failing to close must not leave the others' daemons running.
        with contextlib.suppress(Exception):
            node._stopping()
    stop_processes([node.proc for node in nodes], grace_s)
