"""The overlay under attack: root and leaves as real `overlayd` processes, and their API.

Processes starts each daemon (`python -m overlay_core.io.cli`) in its own session with a
log file, and stop() signals only the PIDs it started. Api talks to a daemon's control
socket (GET /status, POST /peers/ADDR/echo). SetupError is any failure to bring the
overlay up: the bench then exits 1.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from overlay_core.lab.processes import stop_processes
from overlay_core.proto.roots import RootEntry, parse_roots

REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
BASE_URL = "http://overlayd"  # the host part is ignored on a UNIX socket
MB = 1024 * 1024


class SetupError(Exception):
    """The overlay could not be brought up; one line, the bench exits 1."""


# --------------------------------------------------------------------------- processes


@dataclass
class Daemon:
    name: str
    home: Path
    port: int
    log: Path
    proc: subprocess.Popen[bytes]
    address: str = ""
    log_offset: int = 0

    @property
    def socket(self) -> Path:
        return self.home / "control.sock"

    @property
    def endpoint(self) -> tuple[str, int]:
        return (HOST, self.port)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 8) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(f"    {line}" for line in text[-lines:])


class Processes:
    """Every process this bench starts, and nothing else: stop() signals only these PIDs."""

    def __init__(self) -> None:
        self.daemons: list[Daemon] = []

    def start(self, name: str, base: Path, port: int, *args: str) -> Daemon:
        home = base / name
        log = base / f"{name}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "overlay_core.io.cli", "--home", str(home), *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                env=_env(),
                start_new_session=True,  # Ctrl-C reaches only us; we stop them in order
            )
        daemon = Daemon(name, home, port, log, proc)
        self.daemons.append(daemon)
        return daemon

    def stop(self) -> None:
        stop_processes([daemon.proc for daemon in self.daemons])


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def free_port() -> int:
    """A port free on 127.0.0.1 for both UDP and TCP (a root takes both)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp_sock:
            tcp_sock.bind((HOST, 0))
            port = int(tcp_sock.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp_sock:
                try:
                    udp_sock.bind((HOST, port))
                except OSError:
                    continue
        return port
    raise SetupError("no free port on 127.0.0.1")


def roots_entry(base: Path, port: int) -> tuple[str, RootEntry]:
    home = base / "root"
    done = subprocess.run(
        [sys.executable, "-m", "overlay_core.io.cli", "--home", str(home), "--log-level",
         "warning", "roots-entry", "--endpoint", f"{HOST}:{port}"],
        capture_output=True, text=True, cwd=REPO, env=_env(), timeout=60,
    )  # fmt: skip
    if done.returncode != 0:
        raise SetupError(f"overlayd roots-entry failed: {done.stderr.strip()[-300:]}")
    line = done.stdout.strip().splitlines()[-1]
    return line, parse_roots(line)[0]


# --------------------------------------------------------------------------- control API


class Api:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.http = httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=str(daemon.socket)),
            base_url=BASE_URL,
            timeout=5.0,
        )

    async def status(self, timeout_s: float = 5.0) -> dict[str, Any] | None:
        try:
            response = await self.http.get("/status", timeout=timeout_s)
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        data: dict[str, Any] = response.json()
        return data

    async def echo(self, address: str, timeout_s: float = 1.0) -> tuple[float | None, str]:
        """(rtt ms as the node measured it, link), or (None, why) for a lost echo."""
        try:
            response = await self.http.post(
                f"/peers/{address}/echo", json={"timeout_s": timeout_s}, timeout=timeout_s + 4
            )
        except httpx.HTTPError as exc:
            return None, f"api:{type(exc).__name__}"
        if response.status_code == 200:
            body = response.json()
            return float(body["rtt_ms"]), str(body["link"])
        try:
            return None, str(response.json().get("error", response.status_code))
        except ValueError:
            return None, str(response.status_code)

    async def close(self) -> None:
        await self.http.aclose()


async def wait_for(what: str, check: Callable[[], Any], timeout_s: float) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        result = await check()
        if result:
            return result
        if loop.time() >= deadline:
            raise SetupError(f"timed out after {timeout_s:g} s waiting for {what}")
        await asyncio.sleep(0.2)
