"""The demo's state directory: one running demo at a time, and no leftovers from killed ones.

    DIR/lock        flock'ed by the running demo for its whole life (freed by the kernel
                    when it dies, however it dies)
    DIR/state.json  this demo's PID, its parent's, every process it started (each with its
                    start time, so a reused PID is never mistaken for ours), the rig prefix
    DIR/homes/      the nodes' home directories

DIR is /run/ztui-demo for the namespace demo (its lock also guards the fixed rig prefix,
so there is one per machine); for the loopback demo $ZTUI_DEMO_DIR if set, else
ztui-demo-loopback under /run (root), $XDG_RUNTIME_DIR, or /tmp (with the uid).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

LOCK_NAME = "lock"
STATE_NAME = "state.json"
HOMES_NAME = "homes"
WAIT_PREVIOUS_S = 30.0
NETNS_DIR = Path("/run/ztui-demo")


class DemoError(RuntimeError):
    """The demo cannot run; the message is one line for the user."""


def default_dir(netns: bool) -> Path:
    """The namespace demo's is fixed, as its rig prefix is: one per machine. The loopback
    demo's can be moved with $ZTUI_DEMO_DIR (tests run several side by side)."""
    if netns:
        return NETNS_DIR
    env = os.environ.get("ZTUI_DEMO_DIR")
    if env:
        return Path(env)
    name = "ztui-demo-loopback"
    if os.geteuid() == 0:
        return Path("/run") / name
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / name
    return Path(tempfile.gettempdir()) / f"{name}-{os.getuid()}"


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22), None
    if there is no such process (or only its zombie). With the PID it names one process
    for good."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    if len(fields) <= 19 or fields[0] in ("Z", "X"):  # a zombie runs nothing any more
        return None
    return fields[19]


def proc_ref(pid: int, what: str) -> dict[str, Any]:
    return {"pid": pid, "start": start_time(pid), "what": what}


def is_alive(ref: dict[str, Any]) -> bool:
    """The process `ref` (from proc_ref) still runs: same PID, same start time."""
    pid = ref.get("pid")
    return isinstance(pid, int) and ref.get("start") is not None and start_time(pid) == ref["start"]


class DemoState:
    """The directory of one demo run; `acquire` first, `remove` last."""

    def __init__(self, directory: Path, progress: Callable[[str], None]) -> None:
        self.dir = directory
        self.homes = directory / HOMES_NAME
        self.file = directory / STATE_NAME
        self.progress = progress
        self.data: dict[str, Any] = {}
        self._lock_fd: int | None = None
        self.locked = False  # the lock is ours: remove() may delete the directory

    # ---- one demo at a time -------------------------------------------------------------

    def acquire(self) -> dict[str, Any] | None:
        """Take the lock, waiting for a dying previous demo; returns the previous run's
        state (to clear with `clear_leftovers`), None if there was none."""
        self._make_dir()
        fd = os.open(self.dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        self._lock_fd = fd
        if not self._try_lock():
            try:
                self._wait_for_holder()
            except BaseException:
                os.close(fd)
                self._lock_fd = None
                raise
        self.locked = True
        return self.read()

    def _make_dir(self) -> None:
        try:
            self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = os.lstat(self.dir)
        except OSError as exc:
            raise DemoError(f"cannot use {self.dir}: {exc.strerror}") from None
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
            raise DemoError(f"{self.dir} is not our directory; remove it or set ZTUI_DEMO_DIR")

    def _try_lock(self) -> bool:
        assert self._lock_fd is not None
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _wait_for_holder(self) -> None:
        holder = self.read() or {}
        owner: dict[str, Any] = holder.get("owner") or {"pid": "?"}
        parent: dict[str, Any] = holder.get("parent") or {"pid": "?"}
        if is_alive(parent):
            raise DemoError(
                f"another ztui demo is running (pid {parent['pid']}, world pid "
                f"{owner['pid']}); stop it first, or set ZTUI_DEMO_DIR"
            )
        self.progress(f"waiting for the previous demo (pid {owner['pid']}) to stop ...")
        deadline = time.monotonic() + WAIT_PREVIOUS_S
        while time.monotonic() < deadline:
            if self._try_lock():
                return
            time.sleep(0.2)
        if is_alive(owner):
            self.progress(f"it did not stop; killing pid {owner['pid']}")
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(owner["pid"]), signal.SIGKILL)
        deadline = time.monotonic() + 5.0
        while not self._try_lock():
            if time.monotonic() > deadline:
                raise DemoError(f"{self.dir / LOCK_NAME} stays locked; is a demo running?")
            time.sleep(0.2)

    # ---- the record -----------------------------------------------------------------------

    def read(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.file.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def write(self, **fields: Any) -> None:
        """Merge `fields` into state.json (atomically: a crash leaves the old or the new)."""
        self.data.update(fields)
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1) + "\n")
        tmp.replace(self.file)

    def add_processes(self, pids: dict[int, str]) -> None:
        known = {p["pid"] for p in self.data.get("processes", [])}
        new = [proc_ref(pid, what) for pid, what in pids.items() if pid not in known]
        if new:
            self.write(processes=[*self.data.get("processes", []), *new])

    # ---- clearing ---------------------------------------------------------------------------

    def clear_leftovers(self, previous: dict[str, Any] | None) -> str | None:
        """Kill what a previous (dead) run started and delete its homes; what was found,
        None if nothing. Namespaces are the caller's (world_netns.py knows the prefix)."""
        killed = 0
        for ref in (previous or {}).get("processes", []):
            if is_alive(ref):
                killed += 1
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(ref["pid"]), signal.SIGKILL)
        homes = self.homes.exists()
        if homes:
            shutil.rmtree(self.homes, ignore_errors=True)
        self.file.unlink(missing_ok=True)
        if previous is None and not homes:
            return None
        return f"{killed} processes killed, homes {'removed' if homes else 'gone already'}"

    def remove(self) -> None:
        """Delete the whole directory (homes, state, lock) and let the lock go; nothing
        if the lock was never ours."""
        if not self.locked:
            return
        self.locked = False
        shutil.rmtree(self.dir, ignore_errors=True)
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None
