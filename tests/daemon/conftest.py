"""Fixtures for daemon tests: overlayd processes, each stopped by its own PID at teardown.
Real Daemons on 127.0.0.1 in this process (`overlay`, `tap_overlay`) and `short_tmp` are
in tests/conftest.py, shared with tests/console; running ztui and overlayd as commands is
tests/cli_run.py."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator

import pytest

from overlay_core.lab.world import child_env


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
            env=child_env(),
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
