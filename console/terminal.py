"""Keep the console from outliving its terminal.

    run_app(app) -> exit status      (console.cli.run_console uses it for `ztui`)

Why this exists (issue 11, defect 2). `su USER -c 'ztui ...'` in tmux: kill the tmux
session and the console used to stay behind at 100% of a core. Measured with util-linux
2.38 `su`:

* `su -c` without `--pty` starts its child in a new session (setsid), so the console has
  no controlling terminal and the kernel's hangup SIGHUP never reaches it. It goes to su,
  the session leader, which keeps SIGHUP blocked (it only catches INT, QUIT and TERM)
  and waits for its child forever.
* Textual's LinuxDriver input thread selects on stdin and reads it; on a hung-up
  terminal select says "readable" at once and read returns b"" at once, and the thread
  loops on that without end (strace: ~5,000 read(0, "") = 0 a second).

The same happens to any console whose terminal goes away without a SIGHUP reaching it:
a pty whose master was closed, a launcher that ignores SIGHUP (nohup). So the console
watches for both itself:

1. A SIGHUP handler asks the app to exit (status 129, as a shell reports a hangup), so
   `kill -HUP` also restores a terminal that is still there.
2. A watch thread blocks in poll() on the terminal's descriptors with no events asked
   for: poll reports POLLHUP, POLLERR or POLLNVAL regardless, and those arrive the moment
   the terminal is hung up or its other end closed, without taking any input from
   Textual's reader. Then the console's output is pointed at /dev/null (there is nothing
   left to restore, and a write would fail with EIO, which kills Textual's writer thread
   and can block the app) and the SIGHUP the kernel could not deliver is raised.
3. Whichever fires, a deadline ends the process with os._exit after EXIT_GRACE_S if the
   orderly exit has not finished by then: a Textual blocked on a dead terminal must not
   turn into a process that spins or hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import select
import signal
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from textual.app import App

HANGUP_EXIT = 128 + signal.SIGHUP  # 129: what a shell reports for a process hung up on
EXIT_GRACE_S = 1.5  # for the orderly exit (~0.2 s idle) before os._exit; issue: 1-2 s
RECHECK_S = 0.5  # poll wakes on the hangup itself; this only bounds a missed wakeup
GONE_EVENTS = select.POLLHUP | select.POLLERR | select.POLLNVAL


class _HangUp(Exception):
    """SIGHUP while no event loop runs (before the app started or after it ended)."""


def terminal_fds() -> list[int]:
    """The descriptors Textual reads and draws on, those that are terminals."""
    fds: list[int] = []
    for stream in (sys.__stdin__, sys.__stdout__):
        if stream is None:
            continue
        with contextlib.suppress(OSError, ValueError):
            fd = stream.fileno()
            if os.isatty(fd) and fd not in fds:
                fds.append(fd)
    return fds


class TerminalWatch:
    """While entered: SIGHUP and a vanished terminal make `app` exit, promptly.

    Args:
        app: the running (or about to run) Textual app.
        fds: terminal descriptors to watch; by default stdin and stdout if terminals.
        grace_s: how long the orderly exit may take before os._exit.
    """

    def __init__(
        self, app: App[Any], fds: list[int] | None = None, grace_s: float = EXIT_GRACE_S
    ) -> None:
        self.app = app
        self.fds = terminal_fds() if fds is None else fds
        self.grace_s = grace_s
        self.hung_up = threading.Event()  # set once, by whichever path fires first
        self.reason = ""
        self._done = threading.Event()  # the app has returned: stand down
        # Reentrant: a second signal can run its handler inside the first one's hang_up.
        self._lock = threading.RLock()
        self._wake_r, self._wake_w = os.pipe()  # wakes the watch thread's poll on exit
        self._thread = threading.Thread(target=self._watch, name="ztui-terminal", daemon=True)
        self._previous: Any = None

    def __enter__(self) -> TerminalWatch:
        self._previous = signal.signal(signal.SIGHUP, self._on_sighup)
        if self.fds:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        signal.signal(signal.SIGHUP, self._previous)
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        if self._thread.is_alive():
            self._thread.join(timeout=RECHECK_S * 2)
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    # -- the two ways in

    def _on_sighup(self, signum: int, frame: FrameType | None) -> None:
        """Runs in the main thread, between two bytecodes of whatever it was doing."""
        self.hang_up("SIGHUP")
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise _HangUp from None  # no app to ask: end run_app from here
        # Thread-safe form even here: it also wakes the loop out of its selector.
        loop.call_soon_threadsafe(functools.partial(self.app.exit, return_code=HANGUP_EXIT))

    def _watch(self) -> None:
        poller = select.poll()
        for fd in self.fds:
            poller.register(fd, 0)
        poller.register(self._wake_r, select.POLLIN)
        while not self._done.is_set():
            try:
                events = poller.poll(int(RECHECK_S * 1000))
            except OSError:
                self._done.wait(RECHECK_S)  # never a busy loop, of all things here
                continue
            gone = [fd for fd, revents in events if fd in self.fds and revents & GONE_EVENTS]
            if gone and not self._done.is_set():
                self.terminal_gone(f"terminal on fd {gone[0]} hung up or closed")
                return

    # -- what they do

    def terminal_gone(self, reason: str) -> None:
        """Nothing can be drawn or restored any more: drop output, then act on a SIGHUP."""
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            for fd in (1, 2):  # Textual writes to stdout; tracebacks go to stderr
                with contextlib.suppress(OSError):
                    os.dup2(devnull, fd)
        finally:
            os.close(devnull)
        self.hang_up(reason)
        # The main thread runs the handler, where the event loop can be reached. Aimed at
        # it: a process-wide signal may land on this or Textual's input thread, and the
        # main thread would only see it at its next wakeup.
        main = threading.main_thread().ident
        if main is not None:
            signal.pthread_kill(main, signal.SIGHUP)

    def hang_up(self, reason: str) -> None:
        """Record why, once, and start the deadline."""
        with self._lock:
            if self.hung_up.is_set():
                return
            self.reason = reason
            self.hung_up.set()
        threading.Thread(target=self._deadline, name="ztui-exit-deadline", daemon=True).start()

    def _deadline(self) -> None:
        if not self._done.wait(self.grace_s):
            os._exit(HANGUP_EXIT)


def run_app(app: App[Any]) -> int:
    """Run `app` in this terminal; its exit status, HANGUP_EXIT if the terminal went away
    or SIGHUP arrived."""
    watch = TerminalWatch(app)
    try:
        with watch:
            app.run()
    except _HangUp:  # raised by the handler wherever no loop ran, even in __exit__
        return HANGUP_EXIT
    if watch.hung_up.is_set():
        return HANGUP_EXIT
    return app.return_code or 0
