"""Measuring one phase: the attacks run while A echoes B and the root, then a settle.

Bench is the running overlay and everything measured so far. run_phase() runs a phase's
attacks, samples CPU and (every 50 ms, with the RSS guard) memory of the daemons, takes
/status counters, log lines and the attack sockets' byte counts before and after, and
returns the phase's record (also appended to bench.phases).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from overlay_core.proto.roots import RootEntry

from .attacks import Attack, SocketGroup, blast
from .daemons import MB, Api, Daemon
from .legit import LegitNode

_LOG_PREFIX = re.compile(rb"^\S+ \S+ ")  # asctime (date, time)
_LOG_NUMBERS = re.compile(rb"[0-9a-f]{6,}|\d+")


@dataclass
class Bench:
    args: argparse.Namespace
    base: Path
    root: Daemon
    a: Daemon
    b: Daemon
    root_entry: RootEntry
    apis: dict[str, Api]
    legit: LegitNode
    groups: dict[str, SocketGroup]
    rng: random.Random
    pow_keys: list[tuple[int, bytes]] = field(default_factory=list)
    phases: list[dict[str, Any]] = field(default_factory=list)
    snapshot: dict[str, Any] = field(default_factory=dict)

    @property
    def daemons(self) -> dict[str, Daemon]:
        return {"root": self.root, "A": self.a, "B": self.b}


def _cpu_seconds(pid: int) -> float | None:
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return None
    return float(times.user + times.system)


def _rss_mb(pid: int) -> float | None:
    try:
        return float(psutil.Process(pid).memory_info().rss) / MB
    except psutil.Error:
        return None


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _summary(samples: list[tuple[float | None, str]]) -> dict[str, Any]:
    rtts = [rtt for rtt, _ in samples if rtt is not None]
    return {
        "sent": len(samples),
        "answered": len(rtts),
        "loss_pct": 100.0 * (len(samples) - len(rtts)) / len(samples) if samples else None,
        "p50_ms": _pct(rtts, 0.5),
        "p95_ms": _pct(rtts, 0.95),
        "links": dict(Counter(link for _, link in samples)),
    }


async def ping_loop(
    api: Api, targets: dict[str, str], rate: float, stop: asyncio.Event
) -> dict[str, list[tuple[float | None, str]]]:
    results: dict[str, list[tuple[float | None, str]]] = {name: [] for name in targets}
    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task[None]] = []

    async def one(name: str, address: str) -> None:
        results[name].append(await api.echo(address, 1.0))

    next_at = loop.time()
    while not stop.is_set():
        for name, address in targets.items():
            tasks.append(asyncio.create_task(one(name, address)))
        next_at += 1.0 / rate
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, next_at - loop.time()))
    await asyncio.gather(*tasks)
    return results


@dataclass
class Watch:
    """Samples the daemons' RSS every 50 ms; trips the phase's stop past the guard."""

    bench: Bench
    stop: asyncio.Event
    guard_mb: float | None
    peak_mb: dict[str, float] = field(default_factory=dict)
    tripped: str | None = None
    killed: bool = False

    async def run(self, done: asyncio.Event) -> None:
        while not done.is_set():
            for name, daemon in self.bench.daemons.items():
                rss = _rss_mb(daemon.proc.pid) if daemon.alive() else None
                if rss is None:
                    continue
                self.peak_mb[name] = max(self.peak_mb.get(name, 0.0), rss)
                if name != "root" or self.guard_mb is None or rss <= self.guard_mb:
                    continue
                if self.tripped is None:
                    self.tripped = f"root RSS {rss:.0f} MB > guard {self.guard_mb:.0f} MB"
                    self.stop.set()
                if rss > self.bench.args.rss_kill_mb and not self.killed:
                    self.killed = True
                    limit = self.bench.args.rss_kill_mb
                    self.tripped = f"{self.tripped}; root killed at {rss:.0f} MB > {limit:.0f} MB"
                    daemon.proc.kill()  # our own child, by its PID
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 0.05)


def _log_lines(daemon: Daemon) -> tuple[int, Counter[bytes]]:
    """Lines the daemon logged since the last call, and their shapes."""
    shapes: Counter[bytes] = Counter()
    lines = 0
    try:
        with open(daemon.log, "rb") as log:
            log.seek(daemon.log_offset)
            for line in log:
                if not line.endswith(b"\n"):
                    break
                daemon.log_offset += len(line)
                lines += 1
                shape = _LOG_NUMBERS.sub(b"#", _LOG_PREFIX.sub(b"", line.rstrip()))[:90]
                shapes[shape] += 1
    except OSError:
        pass
    return lines, shapes


async def take_snapshot(bench: Bench) -> dict[str, Any]:
    names = list(bench.daemons)
    statuses = await asyncio.gather(
        *(bench.apis[n].status(8.0) if bench.daemons[n].alive() else _none() for n in names)
    )
    logs = {}
    for name in names:
        lines, shapes = _log_lines(bench.daemons[name])
        logs[name] = {
            "lines": lines,
            "top": [(s.decode(errors="replace"), c) for s, c in shapes.most_common(3)],
        }
    return {
        "status": dict(zip(names, statuses, strict=True)),
        "logs": logs,
        "groups": {kind: group.totals() for kind, group in bench.groups.items()},
    }


async def _none() -> None:
    return None


def _diff(after: dict[str, int] | None, before: dict[str, int] | None) -> dict[str, int]:
    if after is None:
        return {}
    before = before or {}
    out = {k: v - before.get(k, 0) for k, v in after.items()}
    return {k: v for k, v in sorted(out.items(), key=lambda kv: -kv[1]) if v}


async def settle(bench: Bench) -> float:
    """Until the root is idle (< 25 % CPU over 0.5 s) and answers A's echo; bounded."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    await asyncio.sleep(1.0)
    while loop.time() - start < bench.args.settle_max and bench.root.alive():
        before = _cpu_seconds(bench.root.proc.pid)
        await asyncio.sleep(0.5)
        after = _cpu_seconds(bench.root.proc.pid)
        if before is None or after is None:
            break
        if (after - before) / 0.5 < 0.25:
            rtt, _ = await bench.apis["A"].echo(bench.root.address, 1.0)
            if rtt is not None:
                break
    return loop.time() - start


async def run_phase(
    bench: Bench,
    name: str,
    seconds: float,
    attacks: list[Attack],
    before_start: Callable[[], None] | None = None,
    guard_mb: float | None = None,
) -> dict[str, Any]:
    print(f"bench-hostile: phase {name} ({seconds:g} s) ...", flush=True)
    loop = asyncio.get_running_loop()
    stop, done = asyncio.Event(), asyncio.Event()
    watch = Watch(bench, stop, guard_mb)
    watcher = asyncio.create_task(watch.run(done))
    pids = {n: d.proc.pid for n, d in bench.daemons.items()}
    cpu0 = {n: _cpu_seconds(pid) for n, pid in pids.items()}
    self_cpu0 = _cpu_seconds(os.getpid())
    busy0 = _machine_busy_seconds()
    t0 = loop.time()
    pinger = asyncio.create_task(
        ping_loop(
            bench.apis["A"],
            {"A->B": bench.b.address, "A->root": bench.root.address},
            bench.args.ping_rate,
            stop,
        )
    )
    blasters = [asyncio.create_task(blast(a, bench.groups[a.kind], stop)) for a in attacks]
    if before_start is not None:
        before_start()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    stop.set()
    elapsed = loop.time() - t0
    cpu1 = {n: _cpu_seconds(pid) for n, pid in pids.items()}
    self_cpu1 = _cpu_seconds(os.getpid())
    busy1 = _machine_busy_seconds()
    await asyncio.gather(*blasters)
    pings = await pinger
    settled = await settle(bench)
    done.set()
    await watcher
    before, after = bench.snapshot, await take_snapshot(bench)
    bench.snapshot = after

    def cpu(n: str) -> float | None:
        a, b = cpu0[n], cpu1[n]
        return None if a is None or b is None else round(100.0 * (b - a) / elapsed, 1)

    nodes: dict[str, Any] = {}
    for n, daemon in bench.daemons.items():
        status_after = after["status"][n]
        status_before = before["status"].get(n)
        nodes[n] = {
            "alive": daemon.alive(),
            "exit_code": daemon.proc.poll(),
            "cpu_pct": cpu(n),
            "rss_mb_peak": round(watch.peak_mb[n], 1) if n in watch.peak_mb else None,
            "rss_mb_end": _round(_rss_mb(daemon.proc.pid) if daemon.alive() else None),
            "peer_count": status_after["peer_count"] if status_after else None,
            "drops": _diff(
                status_after["drops"] if status_after else None,
                status_before["drops"] if status_before else None,
            ),
            "counters": _diff(
                status_after["counters"] if status_after else None,
                status_before["counters"] if status_before else None,
            ),
            "log_lines": after["logs"][n]["lines"],
            "log_top": after["logs"][n]["top"],
        }
    amplification = {}
    for attack in attacks:
        g0, g1 = before["groups"][attack.kind], after["groups"][attack.kind]
        sent = g1["sent_bytes"] - g0["sent_bytes"]
        got = g1["received_bytes"] - g0["received_bytes"]
        amplification[attack.kind] = {
            "bytes_in": sent,  # toward the nodes, from the unconfirmed addresses
            "bytes_out": got,  # from the nodes, toward those addresses
            "ratio": round(got / sent, 4) if sent else None,
            "from": {
                k: v - g0["received_from"].get(k, 0)
                for k, v in g1["received_from"].items()
                if v - g0["received_from"].get(k, 0)
            },
        }
    self_cpu = (
        None
        if self_cpu0 is None or self_cpu1 is None
        else round(100.0 * (self_cpu1 - self_cpu0) / elapsed, 1)
    )
    result = {
        "phase": name,
        "seconds": round(elapsed, 2),
        "settle_s": round(settled, 2),
        "attacks": [
            {
                "kind": a.kind,
                "what": a.what,
                "target_rate": a.rate,
                "sent": a.sent,
                "rate": round(a.sent / elapsed, 1),
            }
            for a in attacks
        ],
        "rate": round(sum(a.sent for a in attacks) / elapsed, 1),
        "ping": {target: _summary(samples) for target, samples in pings.items()},
        "nodes": nodes,
        "generator_cpu_pct": self_cpu,
        # Everything else on the machine (other users' tests...): disturbs the numbers.
        "others_cpu_pct": _others(busy1 - busy0, elapsed, [cpu(n) for n in nodes], self_cpu),
        "amplification": amplification,
        "guard": watch.tripped,
    }
    bench.phases.append(result)
    return result


def _machine_busy_seconds() -> float:
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def _others(busy: float, elapsed: float, ours: list[float | None], self_cpu: float | None) -> float:
    mine = sum(c for c in [*ours, self_cpu] if c is not None)
    return round(max(0.0, 100.0 * busy / elapsed - mine), 1)


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)
