"""`overlayd --on-member-request CMD`: a command of the owner's run for each join request.

A NAS owner wants a push message (ntfy, mail, a Telegram bot) when somebody asks to join
one of the networks the node hosts, without the console open. The controller already
says when a request is news (networks.py, ControllerLink._publish: a member's first
request, the first after it was removed, or after 10 minutes of silence, never every
retry); for each such `member_request` event the daemon runs CMD once:

    /bin/sh -c CMD     stdin: one JSON object, then a newline
    {"event": "member_request", "nwid": "8056c2e21c000001", "network": "home",
     "address": "a1b2c3d4e5", "physical": "192.0.2.7:9993" or null,
     "message": "<the event's text>", "time": <unix seconds>, "node": "8056c2e21c"}

and the same in the environment, for shell one-liners: ZTUI_NWID, ZTUI_NETWORK,
ZTUI_MEMBER, ZTUI_PHYSICAL (empty when unknown), beside the daemon's own environment.

Why `sh -c`: the option is one string the owner writes as on a command line, with pipes
and quotes (`curl -d @- https://ntfy.example/topic`); splitting it ourselves would be a
worse shell. It runs as the user overlayd runs as (root, for the service), and only root
can set it (settings.json is 0600), so this gives nobody a power they did not have.

Why the bounds: anyone who can reach the node can ask to join with a fresh identity every
few seconds, each a new request, so the command must not be able to hurt the node:
- it runs as an asyncio subprocess, never blocking the event loop, with no descriptor of
  the daemon's (asyncio closes them) and in a session of its own (start_new_session), so
  a timeout kills exactly the process group it started, pipes and children included;
- at most MAX_RUNNING at once, and RUNS_PER_MINUTE (burst RUNS_BURST) whatever is running;
  a request beyond either is dropped and counted (hook_dropped, hook_rate_limited), not
  queued;
- TIMEOUT_S, then SIGKILL to that process group;
- its output is read as it comes (so a chatty command never blocks on a full pipe) and
  only the first OUTPUT_KEPT bytes of each stream are kept;
- lines about it are written at most one per LOG_INTERVAL_S per kind (ratelog.py), and a
  line says how many were left out.

The command itself is never logged: it may hold a token (ntfy and Telegram put them in
the URL). Lines name it "on-member-request hook" and give the exit status; a failure adds
the first line of stderr, with every word of the command of SECRET_MIN_CHARS or more cut
out (wget repeats its URL there). Its stdout is never logged either, only counted: a
service's reply may echo the secret topic. Counters (in the daemon's io_counters, so GET /metrics):
hook_runs (started), hook_failures (exit status not 0, timed out, or could not start),
hook_timeouts (killed after TIMEOUT_S; also failures), hook_dropped (MAX_RUNNING already
running), hook_rate_limited (over RUNS_PER_MINUTE).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypedDict

from overlay_core.api.schema import EventJson
from overlay_core.proto.netfields import printable
from overlay_core.proto.ratelimit import TokenBucket

from .ratelog import RateLimitedLog

log = logging.getLogger(__name__)

SHELL = "/bin/sh"
NAME = "on-member-request hook"  # how logs name the command, which is never logged
TIMEOUT_S = 30.0
MAX_RUNNING = 4
# Runs per minute, whatever is running: anyone can ask to join with a fresh identity every
# few tens of milliseconds, and each is news; the owner's phone should not buzz for each.
RUNS_PER_MINUTE = 6.0
RUNS_BURST = 6.0
SECRET_MIN_CHARS = 6  # words of the command this long are cut from logged stderr
OUTPUT_KEPT = 4096  # bytes of stdout and of stderr kept per run
LOG_INTERVAL_S = 10.0
REAP_WAIT_S = 5.0  # after SIGKILL, how long to wait for the process before giving up on it
READ_CHUNK = 65536
STDERR_LINE_CHARS = 200  # of the first stderr line, in a log line


class MemberRequestJson(TypedDict):
    """What the command reads on stdin (as one JSON object)."""

    event: str
    nwid: str
    network: str
    address: str
    physical: str | None
    message: str
    time: float
    node: str


def member_request_json(
    event: EventJson, *, network: str, physical: str | None, node: str
) -> MemberRequestJson:
    """The hook's input for a published member_request `event`; `network` is the
    network's name, `physical` where the request came from, `node` this node's address."""
    return {
        "event": "member_request",
        "nwid": event["nwid"] or "",
        "network": network,
        "address": event["address"] or "",
        "physical": physical,
        "message": event["message"],
        "time": event["time"],
        "node": node,
    }


def member_request_env(request: MemberRequestJson) -> dict[str, str]:
    """The ZTUI_* variables the command gets beside the daemon's environment."""
    return {
        "ZTUI_NWID": request["nwid"],
        "ZTUI_NETWORK": request["network"],
        "ZTUI_MEMBER": request["address"],
        "ZTUI_PHYSICAL": request["physical"] or "",
    }


def check_command(value: object) -> str:
    """A command as settings.json or the command line gave it ("" when off). TypeError or
    ValueError with a reason that does not quote it (it may hold a token)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TypeError("on_member_request must be a string (a shell command, or '' for off)")
    if "\0" in value:
        raise ValueError("on_member_request: a command cannot contain a NUL character")
    return value if value.strip() else ""


@dataclass(frozen=True, slots=True)
class HookResult:
    """How one run ended. status: the exit status, -N when killed by signal N, None when
    it timed out or could not start. stdout/stderr: the first OUTPUT_KEPT bytes."""

    status: int | None
    stdout: bytes = b""
    stderr: bytes = b""
    stdout_bytes: int = 0  # all it wrote, kept or not
    timed_out: bool = False
    error: str | None = None  # why it could not start


class HookRunner:
    """Runs `command` for each request given to `run()`, within the bounds above."""

    def __init__(
        self,
        command: str,
        *,
        timeout_s: float = TIMEOUT_S,
        max_running: int = MAX_RUNNING,
        output_kept: int = OUTPUT_KEPT,
        log_interval_s: float = LOG_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        logger: logging.Logger = log,
    ) -> None:
        self.command = check_command(command)
        self.timeout_s = timeout_s
        self.max_running = max_running
        self.output_kept = output_kept
        self.counters: Counter[str] = Counter()
        self.last: HookResult | None = None  # the latest finished run (for tests, debugging)
        self._log = RateLimitedLog(logger, log_interval_s, clock=clock)
        self._tasks: set[asyncio.Task[None]] = set()
        self._groups: set[int] = set()  # process groups started and not yet reaped
        self._closing = False
        self._budget = TokenBucket.full(RUNS_PER_MINUTE / 60.0, RUNS_BURST, clock())
        self._clock = clock

    @property
    def enabled(self) -> bool:
        return bool(self.command)

    @property
    def running(self) -> int:
        return len(self._tasks)

    def run(self, request: MemberRequestJson) -> None:
        """Start the command for `request` in the background and return at once; called
        on the event loop thread. Nothing when no command is set; dropped (counted, and a
        line at a bounded rate) when max_running are still running."""
        if not self.command or self._closing:
            return
        if len(self._tasks) >= self.max_running:
            self.counters["hook_dropped"] += 1
            self._log.warning(
                "dropped",
                "%s: %d still running, not run for %s in %s",
                NAME,
                len(self._tasks),
                request["address"],
                request["nwid"],
            )
            return
        if not self._budget.take(self._clock()):
            self.counters["hook_rate_limited"] += 1
            self._log.warning(
                "rate",
                "%s: more than %g join requests a minute; not run for %s in %s",
                NAME,
                RUNS_PER_MINUTE,
                request["address"],
                request["nwid"],
            )
            return
        self.counters["hook_runs"] += 1
        stdin = json.dumps(request).encode() + b"\n"
        env = {**os.environ, **member_request_env(request)}
        what = f"{request['address']} in {request['nwid']}"
        task = asyncio.get_running_loop().create_task(
            self._run(stdin, env, what), name="on-member-request"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def idle(self) -> None:
        """Until every run started so far has finished (for tests)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def close(self) -> None:
        """Kill what still runs and wait for it; start nothing more (the daemon stops).

        Killing, not cancelling: a task cancelled while asyncio starts its process would
        wait for that process with nobody to kill it. A run still starting kills its own
        group once started; only what outlives REAP_WAIT_S is cancelled."""
        self._closing = True
        for pgid in list(self._groups):
            _kill_group(pgid)
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=REAP_WAIT_S)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._closing = False  # nothing runs now; a daemon started again may run it again

    # ---- one run

    async def _run(self, stdin: bytes, env: dict[str, str], what: str) -> None:
        result = await self._execute(stdin, env)
        self.last = result
        if result.status == 0:
            self._log.info(
                "ran",
                "%s for %s: exit status 0 (%d bytes of output)",
                NAME,
                what,
                result.stdout_bytes,
            )
            return
        self.counters["hook_failures"] += 1
        if result.timed_out:
            self.counters["hook_timeouts"] += 1
            why = f"still running after {self.timeout_s:g} s, killed"
        elif result.error is not None:
            why = f"could not start: {result.error}"
        else:
            why = _status_text(result.status)
            line = _redact(_first_line(result.stderr), self.command)
            if line:
                why += f": {line}"
        self._log.warning("failed", "%s for %s failed: %s", NAME, what, why)

    async def _execute(self, stdin: bytes, env: dict[str, str]) -> HookResult:
        try:
            proc = await asyncio.create_subprocess_exec(
                SHELL,
                "-c",
                self.command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                start_new_session=True,  # its own process group: what a timeout kills
            )
        except (OSError, ValueError) as exc:  # no /bin/sh, no processes left, a NUL in env
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            return HookResult(None, error=reason)
        pgid = proc.pid  # a session leader's group id is its pid
        self._groups.add(pgid)
        if self._closing:  # close() came while it was starting
            _kill_group(pgid)
        assert proc.stdout is not None and proc.stderr is not None
        out, err = _Bounded(self.output_kept), _Bounded(self.output_kept)
        timed_out = False
        try:
            async with asyncio.timeout(self.timeout_s):
                await asyncio.gather(
                    _feed(proc, stdin), out.drain(proc.stdout), err.drain(proc.stderr)
                )
                await proc.wait()
        except TimeoutError:
            timed_out = True
        finally:
            # Timed out (the shell may have exited while a child of it keeps our pipes
            # open: the group goes too), or cancelled because the daemon is stopping.
            if timed_out or proc.returncode is None:
                _kill_group(pgid)
                await _reap(proc)
            self._groups.discard(pgid)
        if timed_out:
            return HookResult(None, out.kept, err.kept, out.total, timed_out=True)
        return HookResult(proc.returncode, out.kept, err.kept, out.total)


class _Bounded:
    """Reads a stream to its end, keeping only the first `limit` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.kept = b""
        self.total = 0

    async def drain(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(READ_CHUNK):
            self.total += len(chunk)
            room = self.limit - len(self.kept)
            if room > 0:
                self.kept += chunk[:room]


async def _feed(proc: asyncio.subprocess.Process, data: bytes) -> None:
    """Write the request to stdin and close it; a command that does not read it (exits
    first, or closes stdin) is no error."""
    assert proc.stdin is not None
    try:
        proc.stdin.write(data)
        await proc.stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        proc.stdin.close()


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # everyone in it has exited already
    except PermissionError:  # cannot be ours then; never signal what we did not start
        log.warning("%s: process group %d is not ours to kill", NAME, pgid)


async def _reap(proc: asyncio.subprocess.Process) -> None:
    """Wait for a killed process so no zombie stays; bounded, since a process stuck in
    the kernel (uninterruptible I/O) cannot be hurried."""
    try:
        async with asyncio.timeout(REAP_WAIT_S):
            await proc.wait()
    except TimeoutError:
        log.warning("%s: pid %d did not exit after SIGKILL", NAME, proc.pid)


def _status_text(status: int | None) -> str:
    if status is not None and status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exit status {status}"


def _redact(line: str, command: str) -> str:
    """`line` with every longer word of the command cut out: stderr often repeats its
    command's URL (wget prints it; sh prints a mistyped word), which may hold a token."""
    for word in sorted(set(command.replace("'", " ").replace('"', " ").split()), key=len)[::-1]:
        if len(word) >= SECRET_MIN_CHARS:
            line = line.replace(word, "…")
    return line


def _first_line(data: bytes) -> str:
    """The first non-blank line of `data`, printable and short enough for one log line."""
    for raw in data.decode("utf-8", "replace").splitlines():
        line = printable(raw.strip())
        if line:
            return line[:STDERR_LINE_CHARS]
    return ""
