"""`ztui demo` without namespaces: the simulated world on loopback (forced with --loopback,
so these run as root too), seen through the controller's API, and its teardown."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from console import demo as console_demo
from overlay_core.demo import NOTICE, loopback_notice
from tests import demo_run

pytestmark = pytest.mark.timeout(120)
# --loopback as root says so; without root it is the plain "not root" notice.
FORCED_NOTICE = loopback_notice("--loopback", os.geteuid() == 0)


@pytest.fixture
def demo_dir() -> Iterator[Path]:
    """A state directory for the demo, not yet made (the demo makes and removes it)."""
    parent = Path(tempfile.mkdtemp(prefix="ztd-", dir="/tmp"))
    try:
        yield parent / "demo"
    finally:
        shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture
def runs(demo_dir: Path) -> Iterator[list[demo_run.DemoRun]]:
    """Demo processes a test starts; stopped (by PID) however the test ends."""
    started: list[demo_run.DemoRun] = []
    try:
        yield started
    finally:
        for run in started:
            run.close()


def start_world(
    runs: list[demo_run.DemoRun], demo_dir: Path, name: str = "world"
) -> demo_run.DemoRun:
    run = demo_run.DemoRun.world(demo_dir.parent / f"{name}.err", "--loopback",
                        env={"ZTUI_DEMO_DIR": str(demo_dir)})  # fmt: skip
    runs.append(run)
    return run


def test_simulated_world_is_real_behind_the_api(
    runs: list[demo_run.DemoRun], demo_dir: Path
) -> None:
    """The world alone: the ready line says simulated with the notice; through ctl's API
    the members are approved with addresses, guest is pending, every peer is DIRECT and
    the in-memory TAPs carry traffic; EOF on its stdin stops it and removes its directory."""
    world = start_world(runs, demo_dir)
    info = world.wait_ready(timeout=60)
    assert info["simulated"] is True and info["notice"] == FORCED_NOTICE
    assert FORCED_NOTICE in world.stderr
    assert "making identities" in world.stderr
    home, nwid = info["home"], info["network"]["nwid"]
    assert home == str(demo_dir / "homes" / "ctl") and info["network"]["pool"] == "10.147.17.0/24"
    assert set(info["nodes"]) == {"root1", "root2", "ctl", "nas", "laptop", "phone", "guest"}
    assert info["nodes"]["ctl"]["role"] == "controller"
    assert info["nodes"]["guest"]["member"] == "pending"

    members = {m["name"]: m for m in demo_run.ztui_json(home, "members", nwid)}
    assert {n: m["state"] for n, m in members.items()} == {
        "ctl": "authorized", "nas": "authorized", "laptop": "authorized",
        "phone": "authorized", "guest": "pending",
    }  # fmt: skip
    assert members["nas"]["ips"] == [info["nodes"]["nas"]["overlay_ip"]]
    [network] = demo_run.ztui_json(home, "networks")
    assert network["nwid"] == nwid and network["state"] == "OK" and network["addresses"]
    [hosted] = demo_run.ztui_json(home, "net", "list")
    assert hosted["members"] == {"authorized": 4, "pending": 1, "deauthorized": 0}

    peers = {p["address"]: p for p in demo_run.ztui_json(home, "peers")}
    for name in ("root1", "root2", "nas", "laptop", "phone"):
        assert peers[info["nodes"][name]["address"]]["link"] == "DIRECT", name
    before = network["port_counters"]
    time.sleep(2.5)
    [network] = demo_run.ztui_json(home, "networks")
    after = network["port_counters"]
    assert after["frames_read"] > before["frames_read"]  # ctl's pings
    assert after["frames_written"] > before["frames_written"]  # their replies

    state = demo_run.read_state(demo_dir)
    assert world.proc.stdin is not None
    world.proc.stdin.close()  # how a vanished `ztui demo` looks to it
    assert world.proc.wait(timeout=30) == 0, world.stderr
    assert demo_run.leftovers(demo_dir, state) == []
    assert "the demo is stopped and removed" in world.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_ztui_demo_no_console_summary_and_stop(
    runs: list[demo_run.DemoRun], demo_dir: Path, sig: int
) -> None:
    """`ztui demo --no-console --loopback`: progress on stderr, a summary with the notice,
    every node and what to try; a signal stops it and nothing is left."""
    run = demo_run.DemoRun.ztui(demo_dir.parent / "ztui.err", "--loopback",
                       env={"ZTUI_DEMO_DIR": str(demo_dir)})  # fmt: skip
    runs.append(run)
    summary = "\n".join(run.wait_summary(timeout=60))
    assert f"note: {FORCED_NOTICE}" in summary
    for name in ("root1", "root2", "ctl", "nas", "laptop", "phone", "guest"):
        assert f"\n  {name} " in summary, name
    assert f"H={demo_dir / 'homes' / 'ctl'}" in summary and "pending approval" in summary
    assert "starting root1 and root2" in run.stderr
    state = demo_run.read_state(demo_dir)
    assert run.stop(sig) == 0, run.stderr
    assert demo_run.leftovers(demo_dir, state) == []
    assert "stopping the demo world" in run.stderr and "stopped and removed" in run.stderr


def test_keep_running_seconds_ends_by_itself(runs: list[demo_run.DemoRun], demo_dir: Path) -> None:
    run = demo_run.DemoRun.ztui(demo_dir.parent / "ztui.err", "--loopback", "--keep-running-seconds", "1",
                       env={"ZTUI_DEMO_DIR": str(demo_dir)})  # fmt: skip
    runs.append(run)
    assert run.wait_summary(timeout=60)[-1] == demo_run.SUMMARY_END
    state = demo_run.read_state(demo_dir)
    assert run.proc.wait(timeout=30) == 0, run.stderr
    assert demo_run.leftovers(demo_dir, state) == []


def test_killed_world_is_cleared_by_the_next(runs: list[demo_run.DemoRun], demo_dir: Path) -> None:
    """A SIGKILLed world leaves its homes; the next demo says so and clears them. While
    one runs (its parent alive), another refuses to start in the same directory."""
    first = start_world(runs, demo_dir, "first")
    first.wait_ready(timeout=60)
    second = start_world(runs, demo_dir, "second")
    assert second.proc.wait(timeout=30) == 1
    assert "another ztui demo is running" in second.stderr.splitlines()[-1]
    state = demo_run.read_state(demo_dir)
    demo_run.kill_pid(first.proc.pid)
    demo_run.wait_gone(state)
    assert (demo_dir / "homes" / "ctl").is_dir()  # the leftovers

    third = start_world(runs, demo_dir, "third")
    third.wait_ready(timeout=60)
    assert "clearing what a previous demo left behind" in third.stderr
    new_state = demo_run.read_state(demo_dir)
    assert new_state["owner"]["pid"] == third.proc.pid
    assert third.stop() == 0, third.stderr
    assert demo_run.leftovers(demo_dir, new_state) == []
    assert demo_run.started_processes(state)[0]["pid"] == first.proc.pid


def test_console_gets_the_home_and_the_notice(
    demo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --no-console the console runs as `ztui --home HOME` would, in this process,
    with the simulated world's notice handed to it; when it returns, the world is stopped
    and removed. The notice is never put in the environment: $ZTUI_DEMO_NOTICE used to
    outlive the demo and mark every later console in the process SIMULATED."""
    monkeypatch.setenv("ZTUI_DEMO_DIR", str(demo_dir))
    monkeypatch.delenv("ZTUI_DEMO_NOTICE", raising=False)
    environ_before = dict(os.environ)
    seen: dict[str, Any] = {}

    def fake_console(args: argparse.Namespace) -> int:
        seen["home"] = args.home
        seen["notice"] = args.demo_notice
        seen["environ"] = dict(os.environ)
        seen["members"] = demo_run.ztui_json(args.home, "net", "list")[0]["members"]
        seen["state"] = demo_run.read_state(demo_dir)
        return 0

    monkeypatch.setattr("console.cli.run_console", fake_console)
    args = argparse.Namespace(no_console=False, keep_running_seconds=None, loopback=True)
    stop_signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    handlers_before = [signal.getsignal(sig) for sig in stop_signals]
    assert console_demo.run(args) == 0
    # Nothing stays ignored: an ignored SIGINT is inherited by every child started later
    # (a later `ztui demo` subprocess then could not be stopped with Ctrl-C).
    assert [signal.getsignal(sig) for sig in stop_signals] == handlers_before
    assert seen["home"] == str(demo_dir / "homes" / "ctl")
    assert seen["notice"] == FORCED_NOTICE
    assert seen["environ"] == environ_before and dict(os.environ) == environ_before
    assert seen["members"]["pending"] == 1
    assert demo_run.leftovers(demo_dir, seen["state"]) == []


def test_usage_errors() -> None:
    args = argparse.Namespace(no_console=False, keep_running_seconds=5.0, loopback=True)
    assert console_demo.run(args) == 2
    args = argparse.Namespace(no_console=True, keep_running_seconds=0.0, loopback=True)
    assert console_demo.run(args) == 2


def test_notice_without_root_and_as_root() -> None:
    assert loopback_notice("needs root", root=False) == NOTICE
    assert NOTICE == (
        "not root: loopback only, no TAP devices or NAT; peers are all DIRECT; "
        "run as root for the full demo"
    )
    assert loopback_notice("--loopback", root=True).startswith("--loopback: loopback only")
