"""Stopping the processes a test, a benchmark or the demo started: by their own PIDs (or
process groups), never by name.

Every one still running gets SIGTERM at once (so a world's daemons shut down side by
side), then one shared grace period; whatever still runs then gets SIGKILL and a second
one, and is reaped. However many there are, that takes at most twice the grace period: a
demo with seven slow daemons must not outlast what `ztui demo` waits for it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterable
from typing import Any

GRACE_S = 5.0


def stop_processes(
    procs: Iterable[subprocess.Popen[Any] | None], grace_s: float = GRACE_S, *, groups: bool = False
) -> None:
    """Stop and reap `procs` (None entries and reaped ones are skipped). Idempotent.

    groups: signal each one's process group instead (it was started in a new session), so
    what it spawned goes too. A group is signalled only while its leader is unreaped: until
    then its PGID cannot have been reused by a stranger."""
    live = [p for p in procs if p is not None and p.returncode is None]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for proc in live:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if groups:
                    os.killpg(proc.pid, sig)
                else:
                    proc.send_signal(sig)  # a no-op once it has exited (it polls first)
        deadline = time.monotonic() + grace_s
        for proc in live:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        live = [p for p in live if p.returncode is None]
        if not live:
            return
