"""The namespace demo's signal handling (overlay_core/demo/__main__.py SyncStop).

Its handler once set a threading.Event: a signal landing while the main thread was inside
that Event's wait (holding its lock) made the handler wait for the lock forever, and the
demo hung until `ztui demo` killed it, its namespaces left behind. These run SyncStop in a
child process, so a hang is a timeout here, not a stuck suite.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading

from overlay_core.demo.__main__ import SyncStop
from overlay_core.lab.world import child_env

CHILD = textwrap.dedent(
    """
    import os, signal, sys, threading, time
    from overlay_core.demo.__main__ import Interrupted, SyncStop

    stopper = SyncStop()
    stopper.install()
    main = threading.main_thread().ident

    def pelt(count):
        for _ in range(count):
            signal.pthread_kill(main, signal.SIGTERM)
            time.sleep(0.0002)

    # 1. The first signal raises Interrupted, wherever the main thread is.
    try:
        threading.Thread(target=pelt, args=(1,)).start()
        stopper.wait(10)
        sys.exit("no Interrupted")
    except Interrupted:
        pass
    # 2. Shielded (the cleanup runs), later ones only ask to stop, wherever they land.
    # A signal runs its handler between two lines of the main thread: this tracer runs it
    # at every line wait reaches, the library's too. The Event-based handler deadlocked
    # here at once (inside Event.wait, the Event's lock held); a timeout in the test.
    stopper.shield()
    stopper.asked = False
    def land_here(frame, event, arg):
        if event == "line":
            stopper._on_signal(signal.SIGTERM, None)
        return land_here
    sys.settrace(land_here)
    asked = stopper.wait(0.05)
    sys.settrace(None)
    assert asked is True
    # 3. Unasked, wait gives up after its timeout.
    stopper.asked = False
    started = time.monotonic()
    assert stopper.wait(0.3) is False
    assert 0.3 <= time.monotonic() - started < 2.0
    print("ok")
    """
)


def test_signals_during_the_wait_never_hang_the_demo() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD], env=child_env(), capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"


def test_the_stop_handler_holds_nothing_a_lock_guards() -> None:
    """What the handler touches is plain attributes: no Event, Condition or lock, whose
    lock the interrupted main thread may hold (the hang above)."""
    stopper = SyncStop()
    lock_types = (threading.Event, threading.Condition, type(threading.Lock()))
    assert not [k for k, v in vars(stopper).items() if isinstance(v, lock_types)]
    stopper.shield()
    stopper._on_signal(signal.SIGTERM, None)  # shielded: only asks
    assert stopper.wait(0) is True
