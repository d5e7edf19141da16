"""`ztui demo [--no-console] [--keep-running-seconds N] [--loopback]`: a small overlay on
this machine, and the console on it, in one command.

The console imports nothing from overlay_core but the API schema, so the world runs in a
child process, `python -m overlay_core.demo`: it prints progress lines on stderr (shown
here as they come), one JSON line on stdout when ready, and keeps traffic going until it is
told to stop. Then:

* default: the console on the controller's home, exactly as `ztui --home HOME` runs it;
* --no-console: a one-screen summary (nodes, addresses, the network, what to try), then
  wait for Ctrl-C, SIGTERM or N seconds.

Either way the world is stopped and waited for when this ends (quit, Ctrl-C, SIGTERM, an
exception). The child also dies with us: PR_SET_PDEATHSIG, a watch on its parent PID,
and EOF on its stdin pipe each make it clean up, and a later `ztui demo` clears whatever a
SIGKILLed run left. Without root the world is simulated on loopback; its notice is shown
in the summary and handed to the console app itself, never through the environment (an
environment variable outlived the demo and changed every later console in the process).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import ctypes
import json
import signal
import subprocess
import sys
import threading
import time
from types import FrameType
from typing import Any

from .commands.common import EXIT_FAIL, EXIT_OK, EXIT_USAGE, Subparsers

DEMO_MODULE = "overlay_core.demo"
STOP_TIMEOUT_S = 90.0  # the world stops in seconds; under load its bounded steps add up
PR_SET_PDEATHSIG = 1
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _Stop(BaseException):
    """SIGTERM or SIGHUP: end like Ctrl-C does."""


def add_parser(sub: Subparsers) -> None:
    demo = sub.add_parser(
        "demo",
        help="bring up a small overlay on this machine and open the console on it",
        description=(
            "Roots, a controller and members in network namespaces behind NATs (as root; "
            "on loopback otherwise), with traffic flowing, then the console on the "
            "controller. Quitting removes everything the demo made."
        ),
    )
    demo.add_argument(
        "--no-console",
        action="store_true",
        help="print a summary instead of opening the console; stop on Ctrl-C",
    )
    demo.add_argument(
        "--keep-running-seconds",
        type=float,
        metavar="N",
        help="with --no-console: stop by itself after N seconds",
    )
    demo.add_argument(
        "--loopback",
        action="store_true",
        help="the simulated world on loopback (no namespaces, NAT or TAPs), even as root",
    )


class DemoWorld:
    """The `python -m overlay_core.demo` child: started, read, stopped."""

    def __init__(self, loopback: bool) -> None:
        libc = ctypes.CDLL(None, use_errno=True)  # loaded here, not in the forked child

        def die_with_us() -> None:
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)

        argv = [sys.executable, "-m", DEMO_MODULE, *(["--loopback"] if loopback else [])]
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # the terminal's Ctrl-C is ours to handle, not its
            preexec_fn=die_with_us,
        )
        self.echo = True  # show its stderr lines; off while the console owns the screen
        self.tail: collections.deque[str] = collections.deque(maxlen=40)
        self._pump = threading.Thread(target=self._read_stderr, name="demo-stderr", daemon=True)
        self._pump.start()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.tail.append(line)
            if self.echo:
                with contextlib.suppress(OSError, ValueError):
                    sys.stderr.write(line)
                    sys.stderr.flush()

    def wait_ready(self) -> dict[str, Any] | None:
        """The ready line's object, or None if the world exited first."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                info = json.loads(line)
                if isinstance(info, dict) and info.get("ready"):
                    return info
        self.proc.wait()
        self._pump.join(timeout=2)
        return None

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int | None:
        """Ask it to stop (stdin EOF and SIGTERM, to its own PID), wait for its cleanup;
        SIGKILL after STOP_TIMEOUT_S. Its exit code, None if it had to be killed."""
        self.echo = True
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            print(
                f"ztui demo: the demo world (pid {self.proc.pid}) did not stop within "
                f"{STOP_TIMEOUT_S:g} s and was killed; the next `ztui demo` removes what it "
                "left",
                file=sys.stderr,
            )
            return None
        finally:
            self._pump.join(timeout=2)
        return code


def run(args: argparse.Namespace) -> int:
    if args.keep_running_seconds is not None and not args.no_console:
        print("ztui demo: --keep-running-seconds goes with --no-console", file=sys.stderr)
        return EXIT_USAGE
    if args.keep_running_seconds is not None and args.keep_running_seconds <= 0:
        print("ztui demo: --keep-running-seconds must be positive", file=sys.stderr)
        return EXIT_USAGE

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise _Stop(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGHUP)}
    world: DemoWorld | None = None
    ready = False
    try:
        print("ztui demo: building the demo world ...", file=sys.stderr, flush=True)
        world = DemoWorld(args.loopback)
        info = world.wait_ready()
        if info is None:
            print(
                f"ztui demo: the demo world could not start (exit {world.proc.returncode}); "
                "its last lines are above",
                file=sys.stderr,
            )
            return EXIT_FAIL
        ready = True
        if args.no_console:
            print("\n".join(summary_lines(info)), flush=True)
            return _wait(world, args.keep_running_seconds)
        return _console(world, info)
    except (KeyboardInterrupt, _Stop):
        return EXIT_OK if ready else 130
    finally:
        if world is not None:
            print("ztui demo: stopping the demo world ...", file=sys.stderr, flush=True)
            _stop_world(world)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stop_world(world: DemoWorld) -> None:
    """world.stop(), which a second Ctrl-C or SIGTERM must not cut short: leaving then
    would leave the world cleaning up alone, unobserved. Says so when it went wrong."""
    # Restored after: `run` may be called in a process that goes on (tests), and an
    # ignored SIGINT would be inherited by every child it starts later.
    saved = {sig: signal.signal(sig, signal.SIG_IGN) for sig in _STOP_SIGNALS}
    try:
        code = world.stop()
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    if code not in (0, None):  # None: killed after STOP_TIMEOUT_S, already said
        print(f"ztui demo: the demo world exited with {code}", file=sys.stderr, flush=True)


def _console(world: DemoWorld, info: dict[str, Any]) -> int:
    # The same path as `ztui --home HOME`, plus the notice on the app.
    from .cli import build_parser, run_console

    args = build_parser()[0].parse_args(["--home", str(info["home"])])
    args.demo_notice = str(info["notice"]) if info.get("notice") else None
    world.echo = False
    try:
        return run_console(args)
    finally:
        world.echo = True


def _wait(world: DemoWorld, seconds: float | None) -> int:
    deadline = None if seconds is None else time.monotonic() + seconds
    with contextlib.suppress(KeyboardInterrupt, _Stop):
        while deadline is None or time.monotonic() < deadline:
            try:
                world.proc.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                continue
            print(
                f"ztui demo: the demo world stopped by itself (exit {world.proc.returncode})",
                file=sys.stderr,
            )
            return EXIT_FAIL
    return EXIT_OK


def summary_lines(info: dict[str, Any]) -> list[str]:
    """One screen: the nodes, the network, what to look at."""
    network = info.get("network") or {}
    nwid = str(network.get("nwid", "?"))
    nodes: dict[str, dict[str, Any]] = info.get("nodes") or {}
    simulated = bool(info.get("simulated"))
    if simulated:
        how = "simulated on loopback (no namespaces, NAT or TAP devices)"
    else:
        how = "network namespaces ztde00-*, NAT routers, real TAP devices"
    row = "  {:<7} {:<11} {:<11} {:<16} {:<12} {:<16} {}"
    lines = [
        f"The demo is up: {len(nodes)} nodes; {how}.",
        *([f"note: {info['notice']}"] if info.get("notice") else []),
        "",
        row.format("NODE", "ROLE", "ADDRESS", "UNDERLAY", "PUBLIC", "NAT", "OVERLAY IP"),
    ]
    for name, node in nodes.items():
        overlay = node.get("overlay_ip") or ("pending approval" if node.get("member") else "-")
        cells = [node.get(key) or "-" for key in ("role", "address", "underlay", "public", "nat")]
        lines.append(row.format(name, *cells, overlay))
    guest = nodes.get("guest", {}).get("address", "ADDRESS")
    if simulated:
        peers = "every peer DIRECT (loopback)"
    else:
        peers = "nas, laptop go DIRECT; phone stays RELAY, and says why"
    tries = [
        ("ztui --home $H", "the console, on the controller"),
        ("ztui --home $H peers", peers),
        (f"ztui --home $H members {nwid}", "guest waits for approval"),
        (f"ztui --home $H approve {nwid} {guest}", "let it in"),
    ]
    member_ns = nodes.get("nas", {}).get("namespace")
    laptop_ip = nodes.get("laptop", {}).get("overlay_ip")
    if member_ns and laptop_ip:
        tries.append((f"ip netns exec {member_ns} ping {laptop_ip}", "nas pings laptop"))
    width = max(len(command) for command, _ in tries)
    return [
        *lines,
        "",
        f"network {network.get('name', '?')} {nwid} ({network.get('pool', '?')}), hosted by ctl",
        f"traffic: {info.get('traffic', '-')}",
        "",
        "Try, from another terminal" + ("" if simulated else " (as root)") + ":",
        f"  H={info['home']}",
        *(f"  {command:<{width}}  # {what}" for command, what in tries),
        "",
        "Ctrl-C stops the demo and removes everything it made.",
    ]
