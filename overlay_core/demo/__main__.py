"""`python -m overlay_core.demo [--loopback]`: run the demo world (see
overlay_core/demo/__init__.py). Progress on stderr, one ready JSON line on stdout, then
traffic until SIGTERM, SIGINT, SIGHUP, EOF on a piped stdin or the parent's death; then
everything it made is removed. Exit 0 after a clean stop, 1 if the world could not be
built (the reason is the last stderr line)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import logging
import os
import signal
import stat
import sys
import threading
import time
import traceback
from types import FrameType
from typing import Any

from . import loopback_notice
from .state import DemoError, DemoState, default_dir, proc_ref

PR_SET_PDEATHSIG = 1
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


WAIT_SLICE_S = 0.2  # how late a stop asked by a later signal is noticed, at most


class Interrupted(BaseException):
    """A stop signal arrived while the namespace world was being built or running."""


def progress(line: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        print(line, file=sys.stderr, flush=True)


def emit_ready(info: dict[str, Any]) -> None:
    line = json.dumps({"ready": True, **info})
    with contextlib.suppress(OSError, ValueError):
        print(line, flush=True)


def die_with_parent() -> None:
    """SIGTERM to us when the process that started us dies (Linux; best effort), and a
    watcher thread for the same. (A parent that died before this call closed our stdin
    pipe already: stop_on_stdin_eof sees that.)"""
    parent = os.getppid()
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        progress("the process that started the demo is gone; stopping")
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def stop_on_stdin_eof() -> None:
    """A piped stdin (how `ztui demo` starts us) closing means stop; a terminal or
    /dev/null stdin is not watched (`python -m overlay_core.demo < /dev/null` runs on)."""
    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode
    except (OSError, ValueError):
        return
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        return

    def watch() -> None:
        with contextlib.suppress(OSError, ValueError):
            while os.read(sys.stdin.fileno(), 4096):
                pass
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="stdin-watch", daemon=True).start()


# ---- the namespace world (synchronous; signals raise Interrupted) ------------------------


class SyncStop:
    """Signals for the synchronous namespace world: the first raises Interrupted in the
    main thread; after `shield()`, and for later ones, they only ask to stop.

    The handler only assigns: it runs between two bytecodes of the main thread, which may
    be inside a lock at that moment (a threading.Event's, while it waits on one), and a
    handler that took the same lock would wait for itself forever. That once hung a demo
    whose stdin closed and SIGTERM arrived together, until `ztui demo` killed it."""

    def __init__(self) -> None:
        self.asked = False
        self.raised = False

    def install(self) -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.asked = True
        if not self.raised:
            self.raised = True
            raise Interrupted(signal.Signals(signum).name)

    def shield(self) -> None:
        """From now on signals only ask to stop: the cleanup under way runs to its end."""
        self.raised = True

    def wait(self, timeout: float) -> bool:
        """True once a stop was asked; False after `timeout` without. Sleeps in short
        slices (no lock), and a signal that raises cuts the sleep short."""
        deadline = time.monotonic() + timeout
        while not self.asked:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(left, WAIT_SLICE_S))
        return True


def run_netns(state: DemoState, stopper: SyncStop) -> None:
    from . import world_netns

    world_netns.clear_leftovers(progress)
    world_netns.run(state, progress, ready, stopper.wait, stopper.shield)


# ---- the loopback world (asyncio; signals cancel the main task) ---------------------------


def run_loopback(state: DemoState, notice: str) -> None:
    from . import world_loopback

    async def main() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        stopping = False

        def stop() -> None:
            nonlocal stopping
            if not stopping:
                stopping = True
                task.cancel()

        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, stop)
        with contextlib.suppress(asyncio.CancelledError):
            await world_loopback.run(state, notice, progress, ready)

    asyncio.run(main())


# ---- both ---------------------------------------------------------------------------------


_state: DemoState | None = None


def ready(info: dict[str, Any]) -> None:
    if _state is not None:
        _state.write(ready=True, home=info["home"], simulated=info["simulated"])
        info = {**info, "state_dir": str(_state.dir)}
    emit_ready(info)


def main(argv: list[str] | None = None) -> int:
    global _state
    parser = argparse.ArgumentParser(prog="python -m overlay_core.demo")
    parser.add_argument("--loopback", action="store_true", help="the non-root world, even as root")
    args = parser.parse_args(argv)
    stopper = SyncStop()  # until the loopback world's event loop takes the signals over
    stopper.install()
    die_with_parent()
    stop_on_stdin_eof()
    reason: str | None = "--loopback"
    if not args.loopback:
        from .world_netns import unavailable

        reason = unavailable()
    notice = None if reason is None else loopback_notice(reason, os.geteuid() == 0)
    if notice is not None:
        progress(notice)
    state = DemoState(default_dir(netns=reason is None), progress)
    _state = state
    started = time.monotonic()
    try:
        previous = state.acquire()
        found = state.clear_leftovers(previous)
        if found is not None:
            progress(f"clearing what a previous demo left behind: {found}")
        state.homes.mkdir(mode=0o700, parents=True, exist_ok=True)
        logging.basicConfig(
            filename=state.dir / "demo.log",
            level=logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        state.write(
            owner=proc_ref(os.getpid(), "python -m overlay_core.demo"),
            parent=proc_ref(os.getppid(), "the demo's parent"),
            simulated=reason is not None,
            ready=False,
        )
        if reason is None:
            run_netns(state, stopper)
        else:
            run_loopback(state, notice or "")
    except Interrupted:
        pass
    except DemoError as exc:
        progress(f"demo: {exc}")
        return 1
    except Exception as exc:  # a failed build (the world's cleanup has run by now)
        if not isinstance(exc, RuntimeError):  # not a world, rig or API error: a bug
            progress(traceback.format_exc().rstrip())
        progress(f"demo: could not build the world: {exc}")
        return 1
    finally:  # cleanup is not interrupted again
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        logging.shutdown()
        state.remove()
    progress(f"the demo is stopped and removed ({time.monotonic() - started:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
