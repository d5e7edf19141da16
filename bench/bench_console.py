"""What the console costs, against FakeNode.large(), each number beside a baseline
measured in the same run.

    python bench/bench_console.py [--peers 500] [--members 200] [--updates 15]
                                  [--idle-s 10] [--settle-s 3]

(a) One poll of every row: FakeNode ticks one second (all latencies, counters and "seen"
    ages move), the poll result is posted to the app as its poller would post it, and the
    clock runs until the frame showing it has been rendered to terminal bytes: 500 peers
    on the Peers tab, then 200 members on the Members tab, then the Paths screen of a
    network of --members members (FakeNode.mesh: the worst sync.PATHS_LIMIT of its
    pairs as a list, and every member, whose report ages move). Median and p90 over
    --updates updates, in wall and CPU milliseconds, with the number of cells that
    changed. The baseline is the same poll with nothing changed (the node did not tick):
    every cell compared, and no frame to draw.
(b) CPU while idle: the real app headless at 120x40, polling the large fake as it always
    does, the node unchanged, for --idle-s seconds: CPU seconds per second of this process
    (which also serves the fake API). Baseline: a bare Textual App with one Static.
    Headless apps compose frames but write nothing, so both render each frame to the
    escape sequences a terminal would get, as the terminal driver does.
(c) Bytes per second written to an idle terminal: `python -m console.testing.fake_app --large`
    in a pseudo-terminal (120x40, TERM=xterm-256color), bytes read from the master side
    for --idle-s seconds after --settle-s seconds, and the child's CPU. What a slow SSH
    link carries. Baselines in the same pty: `top -d 1`, `watch -n1 date`, the bare
    Textual App; and for scale the console on a node whose 500 peers change every second.

Timings depend on the machine; the ratios are what to read. Nothing here asserts a time.
Results also go to bench/results/console.json.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import os
import selectors
import shutil
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
from textual._compositor import CompositorUpdate
from textual.app import App, ComposeResult, RenderableType
from textual.screen import Screen
from textual.widgets import Static

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from record import run_header, write_result

from console.app import ZtuiApp
from console.messages import HostedPolled, NodePolled
from console.screens.paths import PathsScreen
from console.sync import PATHS_LIMIT, Intervals
from console.testing.fake import FakeNode
from console.testing.fakenode.paths import MESH_NWID
from console.widgets.keyed_table import KeyedTable
from overlay_core.lab.processes import stop_processes

REPO = Path(__file__).resolve().parent.parent
SIZE = (120, 40)
# (a) polls only when the bench posts a result; (b) polls as the console always does.
STILL = Intervals(node_s=3600, networks_s=3600, hosted_s=3600)
QUIET_WAKEUPS = 10  # (a) settled: this many prompt event-loop wakeups without a new frame
WAKEUP_S = 0.005


# ----------------------------------------------------------------------------- frames


class FrameMeter:
    """Wraps an app's _display: renders each frame to the bytes a terminal would get (a
    headless app skips that), counts them, and notes when each frame was done."""

    def __init__(self, app: App[Any]) -> None:
        self.app = app
        self.frames = 0
        self.bytes = 0
        self.last_end = 0.0
        self.last_cpu = 0.0
        original = app._display

        def display(screen: Screen[Any], renderable: RenderableType | None) -> None:
            original(screen, renderable)
            if isinstance(renderable, CompositorUpdate):
                self.bytes += len(renderable.render_segments(app.console).encode())
                self.frames += 1
                self.last_end = time.perf_counter()
                self.last_cpu = time.process_time()

        app._display = display  # type: ignore[method-assign]

    async def settle(self, since_frames: int, timeout_s: float = 30.0) -> tuple[float, float]:
        """Until QUIET_WAKEUPS prompt wakeups of the event loop in a row bring no new frame
        (a long synchronous step delays our wakeup, so it never counts as quiet): the app
        has nothing left to draw. The wall and CPU clocks when its work ended: the end of
        its last frame after `since_frames`, or if it drew none, the start of the quiet."""
        deadline = time.perf_counter() + timeout_s
        quiet, seen = 0, self.frames
        quiet_since = (time.perf_counter(), time.process_time())
        while quiet < QUIET_WAKEUPS:
            if time.perf_counter() > deadline:
                raise TimeoutError("the app never settled")
            before = time.perf_counter()
            await asyncio.sleep(WAKEUP_S)
            prompt = time.perf_counter() - before < 4 * WAKEUP_S
            if self.frames != seen or not prompt:
                quiet, seen = 0, self.frames
                quiet_since = (time.perf_counter(), time.process_time())
            else:
                quiet += 1
        if self.frames != since_frames:
            return self.last_end, self.last_cpu
        return quiet_since


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def summary(wall: list[float], cpu: list[float], cells: list[int]) -> dict[str, float]:
    return {
        "wall_p50_ms": 1000 * quantile(wall, 0.5),
        "wall_p90_ms": 1000 * quantile(wall, 0.9),
        "cpu_p50_ms": 1000 * quantile(cpu, 0.5),
        "cpu_p90_ms": 1000 * quantile(cpu, 0.9),
        "cells_changed_p50": quantile([float(c) for c in cells], 0.5),
        "updates": len(wall),
    }


# ----------------------------------------------------------------------------- (a)


def large_app(node: FakeNode, intervals: Intervals) -> ZtuiApp:
    app = ZtuiApp(
        node.client(),
        intervals=intervals,
        clock=lambda: node.now,
        wall_clock=lambda: node.now,
        theme="textual-dark",
    )
    app.animation_level = "none"
    return app


def count_cells(*tables: KeyedTable) -> list[int]:
    """A one-element counter of update_cell calls on `tables` (changed cells)."""
    counter = [0]
    for table in tables:
        update = table.update_cell

        def counted(*args: Any, _update: Any = update, **kwargs: Any) -> None:
            counter[0] += 1
            _update(*args, **kwargs)

        table.update_cell = counted  # type: ignore[method-assign]
    return counter


def move_time(node: FakeNode) -> None:
    """One second on the fake: peers' latencies, counters and receive times move, path
    reports age (and some come again), and each member was seen again lately."""
    node.tick(1.0)
    for listed in node.state.members.values():
        for record in listed.values():
            record["last_seen"] = round(node.now - node.rng.uniform(0, 60), 3)


async def measure(
    app: ZtuiApp,
    meter: FrameMeter,
    node: FakeNode,
    poll: Callable[[], Any],
    tables: tuple[KeyedTable, ...],
    tick: bool,
) -> tuple[float, float, int]:
    """One poll result posted to the app, to the end of the frame that shows it."""
    if tick:
        move_time(node)
    message = await poll()  # fetched beforehand: the API's cost is not the console's
    cells = count_cells(*tables)
    frames = meter.frames
    wall0, cpu0 = time.perf_counter(), time.process_time()
    handled: list[tuple[float, float]] = []
    app.post_message(message)
    # Queued behind the poll result: runs once its handler has returned.
    app.call_later(lambda: handled.append((time.perf_counter(), time.process_time())))
    wall1, cpu1 = await meter.settle(frames)
    wall1, cpu1 = max(wall1, handled[0][0]), max(cpu1, handled[0][1])
    return wall1 - wall0, cpu1 - cpu0, cells[0]


async def update_costs(peers: int, members: int, updates: int) -> dict[str, Any]:
    node = FakeNode.large(peers=peers, members=members)
    app = large_app(node, STILL)
    meter = FrameMeter(app)
    api = node.client()
    async with app.run_test(size=SIZE) as pilot:
        store = app.store
        while not (store.status and store.networks and store.members_loaded):
            await pilot.pause(0.05)
        await meter.settle(0)

        async def node_poll() -> NodePolled:
            return NodePolled(await api.status(), await api.peers(), node.now)

        async def hosted_poll() -> HostedPolled:
            hosted = await api.controller_networks()
            listed = [m for n in hosted for m in await api.members(n["nwid"])]
            return HostedPolled(hosted, listed)

        out: dict[str, Any] = {}
        for tab, poll, table_id in (
            ("1", node_poll, "#peers-table"),
            ("3", hosted_poll, "#members-table"),
        ):
            await pilot.press(tab)
            await meter.settle(0)
            table = app.screen.query_one(table_id, KeyedTable)
            for label, tick in (("changed", True), ("unchanged", False)):
                samples = [
                    await measure(app, meter, node, poll, (table,), tick) for _ in range(updates)
                ]
                wall, cpu, cells = (list(column) for column in zip(*samples, strict=True))
                out[f"{table_id[1:]}_{label}"] = summary(wall, cpu, cells) | {
                    "rows": table.row_count
                }
    await api.aclose()
    return out | await paths_costs(members, updates)


async def paths_costs(members: int, updates: int) -> dict[str, Any]:
    """The Paths screen of a `members`-member network: its hosted poll (the networks,
    their members and the network's worst PATHS_LIMIT pairs) to the rendered frame."""
    node = FakeNode.mesh(members=members)
    app = large_app(node, STILL)
    meter = FrameMeter(app)
    api = node.client()
    async with app.run_test(size=SIZE) as pilot:
        while not app.store.members_loaded:
            await pilot.pause(0.05)
        await pilot.press("3")
        app.screen.query_one("#members-table", KeyedTable).select_key(
            f"{MESH_NWID}/{min(node.state.members[MESH_NWID])}"
        )
        await pilot.press("p")
        screen = app.screen
        assert isinstance(screen, PathsScreen)
        while screen.mode != "list":
            await pilot.pause(0.05)
        await meter.settle(0)

        async def hosted_poll() -> HostedPolled:
            hosted = await api.controller_networks()
            listed = [m for n in hosted for m in await api.members(n["nwid"])]
            paths = await api.paths(MESH_NWID, PATHS_LIMIT)
            return HostedPolled(hosted, listed, paths=paths)

        out: dict[str, Any] = {}
        tables = (screen.pairs_table, screen.members_table)
        for label, tick in (("changed", True), ("unchanged", False)):
            samples = [
                await measure(app, meter, node, hosted_poll, tables, tick) for _ in range(updates)
            ]
            wall, cpu, cells = (list(column) for column in zip(*samples, strict=True))
            out[f"paths-screen_{label}"] = summary(wall, cpu, cells) | {
                "rows": screen.pairs_table.row_count + screen.members_table.row_count
            }
    await api.aclose()
    return out


# ----------------------------------------------------------------------------- (b)


class BareApp(App[None]):
    """The baseline: Textual with one static widget and nothing to do."""

    def compose(self) -> ComposeResult:
        yield Static("idle")


async def idle_cpu(make: Callable[[], App[Any]], seconds: float, settle_s: float) -> float:
    app = make()
    meter = FrameMeter(app)
    async with app.run_test(size=SIZE):
        await asyncio.sleep(settle_s)
        await meter.settle(0)
        wall0, cpu0 = time.perf_counter(), time.process_time()
        await asyncio.sleep(seconds)
        return (time.process_time() - cpu0) / (time.perf_counter() - wall0)


# ----------------------------------------------------------------------------- (c)


def pty_run(argv: list[str], seconds: float, settle_s: float) -> dict[str, float]:
    """Run argv on a fresh 120x40 pty; bytes/s it writes and its CPU, after settle_s."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", SIZE[1], SIZE[0], 0, 0))
    env = dict(os.environ, TERM="xterm-256color", COLUMNS=str(SIZE[0]), LINES=str(SIZE[1]))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.pop("COLORTERM", None)
    proc = subprocess.Popen(
        argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
    )
    os.close(slave)
    selector = selectors.DefaultSelector()
    selector.register(master, selectors.EVENT_READ)

    def drain(until: float) -> int:
        total = 0
        while (left := until - time.monotonic()) > 0:
            for _ in selector.select(left):
                try:
                    total += len(os.read(master, 65536))
                except OSError:  # EIO: the child has gone
                    return total
        return total

    try:
        drain(time.monotonic() + settle_s)
        child = psutil.Process(proc.pid)
        cpu0 = sum(child.cpu_times()[:2])
        start = time.monotonic()
        written = drain(start + seconds)
        elapsed = time.monotonic() - start
        cpu = sum(child.cpu_times()[:2]) - cpu0
        if proc.poll() is not None:
            raise RuntimeError(f"{argv[0]} exited {proc.returncode} during the run")
        return {"bytes_per_s": written / elapsed, "cpu_per_s": cpu / elapsed}
    finally:
        stop_processes([proc])
        selector.close()
        os.close(master)


BARE_APP = (
    "from textual.app import App\n"
    "from textual.widgets import Static\n"
    "class Bare(App):\n"
    "    def compose(self):\n"
    "        yield Static('idle')\n"
    "Bare().run()\n"
)


def pty_cases(peers: int, members: int) -> list[tuple[str, list[str] | None]]:
    fake = [sys.executable, "-m", "console.testing.fake_app", "--large"]
    fake += ["--peers", str(peers), "--members", str(members)]
    return [
        ("ztui, large fake, idle", fake),
        ("ztui, sample fake, idle", [sys.executable, "-m", "console.testing.fake_app"]),
        ("bare Textual App (baseline)", [sys.executable, "-c", BARE_APP]),
        ("top -d 1 (baseline)", ["top", "-d", "1"] if shutil.which("top") else None),
        (
            "watch -n1 date (baseline)",
            ["watch", "-n1", "date"] if shutil.which("watch") else None,
        ),
        ("ztui, large fake ticking 1/s", [*fake, "--tick-s", "1"]),
    ]


# ----------------------------------------------------------------------------- main


def part_a(args: argparse.Namespace) -> dict[str, Any]:
    updates = asyncio.run(update_costs(args.peers, args.members, args.updates))
    print(f"\n(a) one poll to its rendered frame, {args.updates} polls each")
    print(
        f"{'':34}{'wall p50':>10}{'p90 ms':>8}{'cpu p50':>10}{'p90 ms':>8}{'cells':>8}{'rows':>6}"
    )
    for name, row in updates.items():
        print(
            f"{name:34}{row['wall_p50_ms']:>10.1f}{row['wall_p90_ms']:>8.1f}"
            f"{row['cpu_p50_ms']:>10.1f}{row['cpu_p90_ms']:>8.1f}"
            f"{row['cells_changed_p50']:>8.0f}{row['rows']:>6}"
        )
    return updates


def part_b(args: argparse.Namespace) -> dict[str, float]:
    def ztui_idle() -> App[Any]:
        return large_app(FakeNode.large(peers=args.peers, members=args.members), Intervals())

    idle = {
        "ztui_large_idle": asyncio.run(idle_cpu(ztui_idle, args.idle_s, args.settle_s)),
        "bare_textual_app": asyncio.run(idle_cpu(BareApp, args.idle_s, args.settle_s)),
    }
    print(f"\n(b) CPU while idle, headless, {args.idle_s:g} s (CPU s per s, this process)")
    for name, value in idle.items():
        print(f"{name:34}{100 * value:>9.2f} %")
    return idle


def part_c(args: argparse.Namespace) -> dict[str, dict[str, float] | None]:
    print(f"\n(c) an idle terminal: pty {SIZE[0]}x{SIZE[1]}, {args.idle_s:g} s after a "
          f"{args.settle_s:g} s settle")  # fmt: skip
    print(f"{'':34}{'bytes/s':>10}{'CPU %':>8}")
    terminal: dict[str, dict[str, float] | None] = {}
    for name, argv in pty_cases(args.peers, args.members):
        if argv is None:
            print(f"{name:34}{'(not installed)':>18}")
            terminal[name] = None
            continue
        terminal[name] = row = pty_run(argv, args.idle_s, args.settle_s)
        print(f"{name:34}{row['bytes_per_s']:>10.0f}{100 * row['cpu_per_s']:>8.2f}")
    return terminal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=int, default=500)
    parser.add_argument("--members", type=int, default=200)
    parser.add_argument("--updates", type=int, default=15)
    parser.add_argument("--idle-s", type=float, default=10.0)
    parser.add_argument("--settle-s", type=float, default=3.0)
    parser.add_argument("--parts", default="abc", help="which measurements (default abc)")
    args = parser.parse_args()
    os.environ["TEXTUAL_ANIMATIONS"] = "none"

    print(f"FakeNode.large(peers={args.peers}, members={args.members}), {SIZE[0]}x{SIZE[1]}")
    result: dict[str, Any] = {
        **run_header(),
        "args": vars(args),
    }
    if "a" in args.parts:
        result["update"] = part_a(args)
    if "b" in args.parts:
        result["idle_cpu_per_s"] = part_b(args)
    if "c" in args.parts:
        result["terminal_idle"] = part_c(args)
    write_result("console", result)


if __name__ == "__main__":
    main()
