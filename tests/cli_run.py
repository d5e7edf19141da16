"""Running `ztui` and `overlayd` from a test as a person runs them: subprocesses of this
checkout (overlay_core.lab.world's child_env: the checkout first on PYTHONPATH, no
ZTUI_HOME leaking in from the caller's shell), bounded by a timeout, output as text.
Shared by tests/daemon and tests/console; `ztui demo` has tests/demo_run.py instead.

`ztui` is the one to use while daemons run in the test's own event loop: the blocking
forms would stop the loop, and the daemon the command talks to with it.
"""

from __future__ import annotations

import asyncio
import subprocess

from overlay_core.lab.world import child_env, overlayd_argv, ztui_argv

TIMEOUT_S = 60.0  # a ceiling for a loaded machine; a healthy command takes about a second


def ztui_sync(
    *args: str, stdin: str | None = None, timeout_s: float = TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    """`ztui ARGS` to its end, `stdin` fed to it."""
    return subprocess.run(
        ztui_argv(*args),
        input=stdin,
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=timeout_s,
        check=False,
    )


def overlayd(*args: str, timeout_s: float = TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """`overlayd ARGS` to its end: for the commands and the refusals that exit."""
    return subprocess.run(
        overlayd_argv(*args),
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=timeout_s,
        check=False,
    )


async def ztui(
    *args: str, timeout_s: float = TIMEOUT_S, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """`ztui ARGS` without blocking the event loop: exit code, stdout, stderr. `env` adds
    to the environment. Killed (by its own PID) if it outlives `timeout_s`."""
    proc = await asyncio.create_subprocess_exec(
        *ztui_argv(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**child_env(), **(env or {})},
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()
