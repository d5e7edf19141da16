"""What the lab leaves behind: nothing. Rigs and worlds close on `with` exit and, still
open at interpreter exit, newest first (lab/lifetime.py); the processes they started are
stopped side by side, by PID or process group, within two grace periods however many
there are (lab/processes.py). No root needed: plain objects and plain child processes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from overlay_core.lab import lifetime
from overlay_core.lab.processes import stop_processes

# A child that ignores SIGTERM, says so, then sleeps: only SIGKILL stops it.
STUBBORN = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)
# A child that starts a grandchild in its own process group and prints its PID.
PARENT = (
    "import subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    "print(child.pid, flush=True)\n"
    "time.sleep(60)\n"
)


class Thing(lifetime.Closing):
    lifetimes = lifetime.Lifetimes()  # not the process's: that one holds real rigs

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log
        self._opened_now()

    def _release(self) -> None:
        self.log.append(self.name)


def test_with_closes_even_when_the_body_raises() -> None:
    log: list[str] = []
    with pytest.raises(RuntimeError), Thing("rig", log) as rig:
        raise RuntimeError("a failed test")
    assert rig.closed and log == ["rig"]


def test_close_all_closes_what_is_still_open_newest_first() -> None:
    """A world built on a rig is closed before the rig: its daemons stop before their
    namespaces go. What was closed already is not closed again."""
    log: list[str] = []
    rig, world, done = Thing("rig", log), Thing("world", log), Thing("done", log)
    done.close()
    Thing.lifetimes.close_all()
    world.close()  # again: nothing more happens
    assert log == ["done", "world", "rig"]
    assert rig.closed and world.closed


def _stubborn() -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    return proc


def test_stubborn_processes_are_killed_side_by_side() -> None:
    """Three children that ignore SIGTERM: all killed and reaped after one grace period
    for SIGTERM and one for SIGKILL, not one grace period each."""
    procs = [_stubborn() for _ in range(3)]
    grace_s = 0.5
    started = time.monotonic()
    stop_processes([*procs, None], grace_s)
    elapsed = time.monotonic() - started
    assert [p.returncode for p in procs] == [-9, -9, -9]
    assert elapsed < 2 * grace_s + 0.5, f"took {elapsed:.2f} s"
    for proc in procs:
        assert proc.stdout is not None
        proc.stdout.close()


def _gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for a reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat[stat.rindex(")") + 2] in "ZX"


def test_groups_take_what_the_process_started_with_it() -> None:
    """With groups=True the whole process group gets the signals: a grandchild the rig
    never saw goes too."""
    proc = subprocess.Popen(
        [sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert proc.stdout is not None
    grandchild = int(proc.stdout.readline())
    proc.stdout.close()
    stop_processes([proc], 2.0, groups=True)
    assert proc.returncode is not None
    deadline = time.monotonic() + 5
    while not _gone(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(grandchild)
