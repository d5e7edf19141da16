"""Running `ztui demo --no-console` (or its world, `python -m overlay_core.demo`) from a
test: start it, read its summary or ready line with a timeout, signal it, and list what
it left behind. Shared by tests/daemon/test_demo_loopback.py and tests/netns/test_demo.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

from overlay_core.demo.state import STATE_NAME, is_alive
from overlay_core.lab.netns import OWNER_DIR, list_namespaces
from overlay_core.lab.world import child_env

SUMMARY_END = "Ctrl-C stops the demo and removes everything it made."


class DemoRun:
    """One demo process, by its own PID; stderr goes to a file (read it with `.stderr`)."""

    def __init__(self, argv: list[str], err_path: Path, env: dict[str, str] | None = None):
        self.err_path = err_path
        self._err: IO[str] = err_path.open("w")
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,  # the world child stops on EOF here; ztui ignores it
            stdout=subprocess.PIPE,
            stderr=self._err,
            env={**child_env(), **(env or {})},
        )
        self.started = time.monotonic()
        self.lines: list[str] = []
        self._buffer = b""

    @classmethod
    def ztui(cls, err_path: Path, *args: str, env: dict[str, str] | None = None) -> DemoRun:
        return cls([sys.executable, "-m", "console", "demo", "--no-console", *args], err_path, env)

    @classmethod
    def world(cls, err_path: Path, *args: str, env: dict[str, str] | None = None) -> DemoRun:
        return cls([sys.executable, "-m", "overlay_core.demo", *args], err_path, env)

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def read_until(self, done: Any, timeout: float) -> str:
        """Read stdout lines until `done(line)`; that line. AssertionError with stderr on
        timeout or EOF. Reads the pipe's fd directly: a buffered readline would keep lines
        that arrived together where select() cannot see them."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while True:
                while b"\n" in self._buffer:
                    raw, self._buffer = self._buffer.split(b"\n", 1)
                    line = raw.decode(errors="replace")
                    self.lines.append(line)
                    if done(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise AssertionError(f"not there within {timeout:g} s\n{self.stderr}")
                chunk = os.read(fd, 65536)
                if not chunk:
                    self.proc.wait(timeout=30)
                    raise AssertionError(f"exited {self.proc.returncode}\n{self.stderr}")
                self._buffer += chunk

    def wait_summary(self, timeout: float = 90.0) -> list[str]:
        self.read_until(lambda line: line == SUMMARY_END, timeout)
        return self.lines

    def wait_ready(self, timeout: float = 90.0) -> dict[str, Any]:
        line = self.read_until(lambda line: line.startswith('{"ready": true'), timeout)
        info: dict[str, Any] = json.loads(line)
        return info

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)

    def close(self) -> None:
        """Stop it if still running (SIGTERM, then SIGKILL), close the pipes."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._err.close()


def read_state(directory: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((directory / STATE_NAME).read_text())
    return data


def started_processes(state: dict[str, Any]) -> list[dict[str, Any]]:
    """Everything the state file says the demo started, the world process included."""
    return [state["owner"], *state.get("processes", [])]


def leftovers(directory: Path, state: dict[str, Any], prefix: str | None = None) -> list[str]:
    """What a stopped demo left: live processes it had started, namespaces with the demo
    prefix, its rig owner file, its state directory."""
    left = [f"pid {p['pid']} ({p['what']})" for p in started_processes(state) if is_alive(p)]
    if prefix is not None:
        left += [ns for ns in list_namespaces() if ns.startswith(prefix + "-")]
        if (OWNER_DIR / prefix).exists():
            left.append(str(OWNER_DIR / prefix))
    if directory.exists():
        left.append(f"{directory}: {sorted(os.listdir(directory))}")
    return left


def wait_gone(state: dict[str, Any], timeout: float = 10.0) -> None:
    """Until every process of `state` has exited (after a SIGKILL they take a moment)."""
    deadline = time.monotonic() + timeout
    while any(is_alive(p) for p in started_processes(state)[:1]):
        if time.monotonic() > deadline:
            raise AssertionError(f"still running: {state['owner']}")
        time.sleep(0.1)


def ztui_json(home: str, *args: str) -> Any:
    proc = subprocess.run(
        [sys.executable, "-m", "console", "--home", home, *args, "--json"],
        capture_output=True,
        text=True,
        timeout=30,
        env=child_env(),
        check=False,
    )
    assert proc.returncode == 0, f"ztui {' '.join(args)}: {proc.stderr}"
    return json.loads(proc.stdout)


def kill_pid(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
