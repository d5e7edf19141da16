"""The --on-member-request runner (overlay_core/io/hooks.py) on its own, with real
/bin/sh commands: what the command gets, and the bounds that keep a hostile or broken
command from hurting the node. The daemon end to end is test_member_request_hook.py."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shlex
import time
from pathlib import Path

import pytest

from overlay_core.api.events import EventBus
from overlay_core.controller import Controller
from overlay_core.io import hooks
from overlay_core.io.hooks import HookRunner, MemberRequestJson, check_command
from overlay_core.io.networks import ControllerLink
from overlay_core.proto.effects import ConfigRequest, udp
from overlay_core.proto.identity import Identity
from overlay_core.testing.fakenet import _seeded

SECRET = "tk_s3cret_token_9f"  # in every command below: it must never reach the log


def request(address: str = "a1b2c3d4e5") -> MemberRequestJson:
    return {
        "event": "member_request",
        "nwid": "8056c2e21c000001",
        "network": "home lab",
        "address": address,
        "physical": "192.0.2.7:9993",
        "message": f"{address} asks to join home lab (8056c2e21c000001); approve it?",
        "time": 1700000000.5,
        "node": "8056c2e21c",
    }


def secret_cmd(script: str) -> str:
    """`script`, behind an assignment that puts SECRET in the command text."""
    return f"TOKEN={SECRET}; {script}"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def process_gone(pid: int) -> bool:
    """No such process, or only a zombie left for its new parent to reap."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    state = next(line for line in status.splitlines() if line.startswith("State:"))
    return "Z" in state.split()[1]


async def test_the_command_gets_the_request_as_json_on_stdin_and_in_its_environment(
    tmp_path: Path,
) -> None:
    """stdin is the request as one JSON object and a newline; ZTUI_NWID, ZTUI_NETWORK,
    ZTUI_MEMBER and ZTUI_PHYSICAL say the same for shell one-liners (a network name with
    a space arrives whole); the daemon's own environment (PATH) is still there."""
    stdin_file, env_file = tmp_path / "stdin.json", tmp_path / "env"
    runner = HookRunner(
        f"cat > {shlex.quote(str(stdin_file))}; "
        f'printf "%s|%s|%s|%s|%s" "$ZTUI_NWID" "$ZTUI_NETWORK" "$ZTUI_MEMBER" '
        f'"$ZTUI_PHYSICAL" "$PATH" > {shlex.quote(str(env_file))}'
    )
    runner.run(request())
    await runner.idle()
    raw = stdin_file.read_bytes()
    assert raw.endswith(b"\n") and raw.count(b"\n") == 1
    assert json.loads(raw) == request()
    nwid, network, member, physical, path = env_file.read_text().split("|")
    assert (nwid, network, member, physical) == (
        "8056c2e21c000001",
        "home lab",
        "a1b2c3d4e5",
        "192.0.2.7:9993",
    )
    assert path == os.environ["PATH"]
    assert runner.counters == {"hook_runs": 1}
    assert runner.last is not None and runner.last.status == 0


async def test_an_unknown_physical_address_is_null_in_json_and_empty_in_the_environment(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    runner = HookRunner(f'{{ cat; printf "[%s]" "$ZTUI_PHYSICAL"; }} > {shlex.quote(str(out))}')
    runner.run({**request(), "physical": None})
    await runner.idle()
    first, second = out.read_text().split("\n")
    assert json.loads(first)["physical"] is None
    assert second == "[]"


async def test_a_command_that_outlives_the_timeout_is_killed_with_its_whole_group(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`sleep 60 & ...; wait` holds our pipes through a child: after the timeout the
    process group the runner started is killed, child included, and the run ends within
    about the timeout, counted as a timeout and a failure, logged without the command."""
    pid_file = tmp_path / "child.pid"
    runner = HookRunner(
        secret_cmd(f"sleep 60 & echo $! > {shlex.quote(str(pid_file))}; wait"), timeout_s=0.5
    )
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger=hooks.__name__):
        runner.run(request())
        await asyncio.wait_for(runner.idle(), 10)
    assert time.monotonic() - started < 5
    child = int(pid_file.read_text())
    assert await until_true(lambda: process_gone(child)), f"sleep {child} survived"
    assert runner.counters == {"hook_runs": 1, "hook_failures": 1, "hook_timeouts": 1}
    assert runner.last is not None and runner.last.timed_out
    [line] = [r.getMessage() for r in caplog.records]
    assert "on-member-request hook for a1b2c3d4e5 in 8056c2e21c000001 failed" in line
    assert "still running after 0.5 s, killed" in line
    assert SECRET not in caplog.text


async def until_true(check: object, timeout_s: float = 5.0) -> bool:
    assert callable(check)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.02)
    return bool(check())


async def test_beyond_max_running_requests_are_dropped_counted_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With 2 allowed and both still running, 4 more requests start nothing: each is
    counted in hook_dropped, and one line says so within the rate window. Closing the
    runner (the daemon stopping) kills the two that run (even one still being started)
    and returns promptly."""
    clock = Clock()
    runner = HookRunner(secret_cmd("sleep 60"), max_running=2, timeout_s=60, clock=clock)
    with caplog.at_level(logging.INFO, logger=hooks.__name__):
        for n in range(6):
            runner.run(request(f"a1b2c3d4e{n}"))
        assert runner.running == 2
        started = time.monotonic()
        await asyncio.wait_for(runner.close(), 10)
    assert time.monotonic() - started < 5
    assert runner.running == 0
    assert runner.counters["hook_runs"] == 2 and runner.counters["hook_dropped"] == 4
    runner.run(request())  # closed and idle: a daemon started again runs it again
    assert runner.running == 1
    await asyncio.wait_for(runner.close(), 10)
    dropped = [r.getMessage() for r in caplog.records if "still running" in r.getMessage()]
    assert dropped == [
        "on-member-request hook: 2 still running, not run for a1b2c3d4e2 in 8056c2e21c000001"
    ]
    assert SECRET not in caplog.text


async def test_a_failing_command_is_counted_each_time_and_logged_once_per_window(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Exit status 3 is a failure: counted at every run, logged with the first line of
    stderr at most once per 10 s; the next line after the window says how many were left
    out. The command text (with its token) is in none of them."""
    clock = Clock()
    runner = HookRunner(
        secret_cmd('printf "\\n  curl: (22) 403 Forbidden\\nsecond line\\n" >&2; exit 3'),
        clock=clock,
    )
    with caplog.at_level(logging.INFO, logger=hooks.__name__):
        for _ in range(3):
            runner.run(request())
            await runner.idle()
        clock.now += 11
        runner.run(request())
        await runner.idle()
    assert runner.counters == {"hook_runs": 4, "hook_failures": 4}
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "on-member-request hook for a1b2c3d4e5 in 8056c2e21c000001 failed: "
        "exit status 3: curl: (22) 403 Forbidden",
        "on-member-request hook for a1b2c3d4e5 in 8056c2e21c000001 failed: "
        "exit status 3: curl: (22) 403 Forbidden (+2 more like this in 11 s, not logged)",
    ]
    assert all(r.levelno == logging.WARNING for r in caplog.records)
    assert SECRET not in caplog.text


async def test_output_is_kept_only_up_to_the_bound_and_never_blocks_the_command(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A command writing 1 MB to stdout and stderr still finishes (its output is read as
    it comes); the first 4 KB of each is kept; stdout's content is not logged, only its
    size."""
    runner = HookRunner(
        secret_cmd("head -c 1000000 /dev/zero | tr '\\0' x | tee /dev/stderr"), timeout_s=20
    )
    with caplog.at_level(logging.INFO, logger=hooks.__name__):
        runner.run(request())
        await runner.idle()
    result = runner.last
    assert result is not None and result.status == 0
    assert result.stdout == b"x" * hooks.OUTPUT_KEPT and result.stderr == b"x" * hooks.OUTPUT_KEPT
    assert result.stdout_bytes == 1_000_000
    [line] = [r.getMessage() for r in caplog.records]
    assert line.endswith(": exit status 0 (1000000 bytes of output)")
    assert "xxxx" not in caplog.text and SECRET not in caplog.text


async def test_a_command_killed_by_a_signal_or_not_reading_stdin_is_reported_plainly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A command that closes stdin unread and exits 0 is a success (no broken pipe
    anywhere); one that kills itself is "killed by SIGTERM"."""
    runner = HookRunner("exec 0<&-; exit 0")
    runner.run(request())
    await runner.idle()
    assert runner.counters == {"hook_runs": 1}
    runner = HookRunner("kill -TERM $$")
    with caplog.at_level(logging.WARNING, logger=hooks.__name__):
        runner.run(request())
        await runner.idle()
    assert runner.counters["hook_failures"] == 1
    assert caplog.records[-1].getMessage().endswith("failed: killed by SIGTERM")


async def test_a_command_that_cannot_start_is_a_failure_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(hooks, "SHELL", "/nonexistent/sh")
    runner = HookRunner(secret_cmd("true"))
    with caplog.at_level(logging.WARNING, logger=hooks.__name__):
        runner.run(request())
        await runner.idle()
    assert runner.counters == {"hook_runs": 1, "hook_failures": 1}
    assert (
        caplog.records[-1]
        .getMessage()
        .endswith("failed: could not start: No such file or directory")
    )
    assert SECRET not in caplog.text


@pytest.mark.parametrize("command", ["", "   ", None])
async def test_an_empty_command_does_nothing(command: str | None) -> None:
    runner = HookRunner(check_command(command))
    assert not runner.enabled
    runner.run(request())
    assert runner.running == 0 and runner.counters == {} and runner.last is None


def test_a_bad_command_setting_is_refused_without_quoting_it() -> None:
    """settings.json could hold a number, or a NUL no shell can take; the reason never
    repeats the value, which may hold a token."""
    with pytest.raises(TypeError, match="must be a string"):
        check_command(42)
    with pytest.raises(ValueError, match="NUL") as caught:
        check_command(f"curl {SECRET}\0")
    assert SECRET not in str(caught.value)
    assert check_command("curl -d @- https://ntfy.example/x") == (
        "curl -d @- https://ntfy.example/x"
    )


# --------------------------------------------------------------------------- the controller


def test_the_controller_hands_each_announced_request_to_the_hook_once(tmp_path: Path) -> None:
    """ControllerLink gives on_member_request what the member_request event says plus the
    network's name, where the member asked from and this node's address; a retry of the
    same pending member is no new request, so the hook is not given it again."""
    admin, phone = Identity.generate(_seeded(7)), Identity.generate(_seeded(8))
    controller = Controller(admin, tmp_path / "controller.db")
    nwid = controller.create_network("home", private=True, now=0.0).nwid
    bus = EventBus(lambda: 1700000000.0)
    given: list[MemberRequestJson] = []
    link = ControllerLink(controller, lambda call: None, bus, on_member_request=given.append)
    for now in (0.0, 10.0, 20.0):  # a waiting member asks every 10 s
        link.answer(ConfigRequest(nwid, phone, "0.1.0", udp("192.0.2.7", 9993)), now)
    [event] = [e for e in bus.recent() if e["kind"] == "member_request"]
    assert given == [
        {
            "event": "member_request",
            "nwid": f"{nwid:016x}",
            "network": "home",
            "address": phone.address_text,
            "physical": "192.0.2.7:9993",
            "message": event["message"],
            "time": 1700000000.0,
            "node": admin.address_text,
        }
    ]


async def test_a_flood_of_requests_runs_the_command_at_most_six_times_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Fresh identities cost a stranger milliseconds and each is news: past 6 in a minute
    the command is not run (counted, one line per window), and runs again as time passes."""
    clock = Clock()
    runner = HookRunner("true", clock=clock)
    with caplog.at_level(logging.INFO, logger=hooks.__name__):
        for i in range(20):
            runner.run(request(f"a1b2c3d4{i:02x}"))
            await runner.idle()
        assert runner.counters["hook_runs"] == 6
        assert runner.counters["hook_rate_limited"] == 14
        clock.now += 10  # one more token
        runner.run(request())
        await runner.idle()
    assert runner.counters["hook_runs"] == 7
    limited = [r for r in caplog.records if "join requests a minute" in r.getMessage()]
    assert len(limited) == 1


async def test_stderr_that_repeats_the_commands_url_is_logged_without_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """wget prints the URL it fetches, sh the word it could not run: a token in the command
    is cut out of the logged line."""
    url = f"https://api.example/bot{SECRET}/sendMessage"
    runner = HookRunner(f"echo 'wget: {url}: 403' >&2; exit 4 # {url}")
    with caplog.at_level(logging.INFO, logger=hooks.__name__):
        runner.run(request())
        await runner.idle()
    assert "exit status 4: wget: … 403" in caplog.text
    assert SECRET not in caplog.text
