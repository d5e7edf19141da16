"""Fixtures for daemon tests: real Daemons on 127.0.0.1, cleaned up even when a test fails."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from overlay_core.lab.loopback import LoopbackOverlay

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A temp dir under /tmp: pytest's tmp_path can exceed the 107-byte UNIX socket limit."""
    path = Path(tempfile.mkdtemp(prefix="zt-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def overlay(short_tmp: Path) -> AsyncIterator[LoopbackOverlay]:
    async with LoopbackOverlay(short_tmp) as net:
        yield net


def subprocess_env() -> dict[str, str]:
    """Run the entry points from this checkout, whether or not it is pip-installed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.pop("ZTUI_HOME", None)
    return env


def overlayd_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "overlay_core.io.cli", *args]


def ztui_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "console", *args]


class Processes:
    """Started subprocesses, each stopped by its own PID at teardown."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[str]] = []

    def start(self, cmd: list[str]) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=subprocess_env(),
        )
        self.started.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=10)


@pytest.fixture
def processes() -> Iterator[Processes]:
    procs = Processes()
    try:
        yield procs
    finally:
        procs.stop_all()


@pytest.fixture
async def tap_overlay(short_tmp: Path) -> AsyncIterator[LoopbackOverlay]:
    """An overlay whose nodes open MemoryTaps (net.taps[name]), so networks need no root."""
    async with LoopbackOverlay(short_tmp, memory_taps=True) as net:
        yield net
