"""Stopping the processes a test or benchmark started: by their own PIDs, never by name.

SIGTERM every one still running first (so a world's daemons shut down side by side), then
wait for each; one that outlives the grace period gets SIGKILL and is reaped.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Iterable
from typing import Any

GRACE_S = 5.0


def stop_processes(procs: Iterable[subprocess.Popen[Any] | None], grace_s: float = GRACE_S) -> None:
    """Stop and reap `procs` (None entries and finished ones are skipped). Idempotent."""
    live = [p for p in procs if p is not None]
    for proc in live:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
    for proc in live:
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=grace_s)
