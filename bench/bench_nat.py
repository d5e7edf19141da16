"""Time to DIRECT through different pairs of NATs, in namespaces (issue 10).

    sudo python bench/bench_nat.py [--runs 5] [--cap 20] [--pairings a b c fw]

One rig (overlay_core/testing/nat_pairs.py) with two roots on the internet and two homes
per pairing, each home a NAT router with one host:

    a     plain MASQUERADE, no input firewall, ISP hop  <->  the same
    b     a home behind a carrier-grade NAT (both plain, no input firewall; ISP hop on the
          carrier NAT)                                   <->  plain, no firewall, ISP hop
    c     MASQUERADE + input firewall, ISP hop           <->  plain, no firewall, ISP hop
    fw    MASQUERADE + input firewall, flat internet     <->  the same (tests/netns/
          test_overlay_nat.py's rig)
    flat  plain MASQUERADE, no input firewall, flat      <->  the same (not run by default:
          the peer's router is the next hop, so no low TTL can help)

A run: fresh leaves in both homes (new identities, new UDP ports, so no NAT state of an
earlier run is reused), both online (both roots reachable); then leaf 1 echoes leaf 2
every 0.25 s through its API, as `ztui ping -i 0.25` does. The clock starts as the first
echo is sent and stops at the first echo that comes back DIRECT, or the first time leaf 1
lists leaf 2 with link DIRECT, whichever comes first; a run that is not DIRECT after
--cap seconds is "never". The leaves are stopped after each run. Runs go one at a time.

Prints per pairing the median and range of --runs runs (a "never" counts as slower than
any time) and each run; writes bench/results/nat.json. Benchmarks never fail on speed: the
exit status is 0 whatever the times (1 only if the rig or the daemons could not be set
up). Everything it creates (namespaces, daemons, their homes under /tmp) is removed at the
end, also on errors or Ctrl-C, and only processes started here are signalled, by PID. As
non-root it prints one line saying why and exits 0. Takes ~1 minute when every pairing
goes DIRECT at once, ~25 s more per run that never does.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from record import run_header, write_result

from overlay_core.lab.netns import RigError, unavailable_reason
from overlay_core.lab.world import OverlayWorld, WorldError
from overlay_core.testing.nat_pairs import ECHO_INTERVAL_S, PAIRINGS, DirectTiming, NatPairs

DEFAULT_PAIRINGS = ("a", "b", "c", "fw")
ONLINE_TIMEOUT_S = 20.0


def say(text: str) -> None:
    print(f"bench-nat: {text}", flush=True)


def _fmt(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.2f} s"


def summarize(timings: list[DirectTiming]) -> dict[str, Any]:
    """Median and range over runs; a run that never went DIRECT sorts after every time."""
    values = [t.seconds if t.seconds is not None else float("inf") for t in timings]
    median = statistics.median_low(values) if values else float("inf")
    finite = [v for v in values if v != float("inf")]

    def seconds(v: float) -> float | None:
        return None if v == float("inf") else round(v, 3)

    return {
        "median_s": seconds(median),
        "min_s": seconds(min(values, default=float("inf"))),
        "max_s": seconds(max(values, default=float("inf"))),
        "direct_runs": len(finite),
        "runs": len(values),
    }


def measure(nat: NatPairs, keys: list[str], runs: int, cap_s: float) -> list[dict[str, Any]]:
    rows = []
    for key in keys:
        pair = nat.pairs[key]
        timings: list[DirectTiming] = []
        for index in range(runs):
            a, b = nat.start_leaves(pair)
            try:
                nat.wait_online([a, b], ONLINE_TIMEOUT_S)
                timing = nat.time_to_direct(a, b, cap_s)
            finally:
                nat.stop_leaves(pair)
            timings.append(timing)
            via = f" ({timing.via})" if timing.via else f" (echoes: {_grouped(timing.echoes)})"
            say(f"{key} run {index + 1}/{runs}: {_fmt(timing.seconds)}{via}")
        rows.append(
            {
                "key": key,
                "title": pair.spec.title,
                "homes": [h.describe() for h in pair.spec.homes],
                **summarize(timings),
                "each": [t.as_json() for t in timings],
            }
        )
    return rows


def _grouped(echoes: list[str]) -> str:
    """["RELAY", "RELAY", "-"] -> "RELAY x2, - x1" (- is an echo without a reply)."""
    groups: list[list[Any]] = []
    for word in echoes:
        if groups and groups[-1][0] == word:
            groups[-1][1] += 1
        else:
            groups.append([word, 1])
    return ", ".join(f"{word} x{count}" for word, count in groups)


def _span(low: float | None, high: float | None) -> str:
    if _fmt(low) == _fmt(high):
        return _fmt(low)
    if low is None or high is None:
        return f"{_fmt(low)} - never"
    return f"{low:.2f}-{high:.2f} s"


def print_table(rows: list[dict[str, Any]], runs: int, cap_s: float) -> None:
    print(
        f"\nTime to DIRECT: first echo -> first DIRECT echo or link, {runs} runs per pairing, "
        f"'never' = not within {cap_s:g} s"
    )
    header = f"{'pairing':<8} {'median':>8} {'range':>16} {'DIRECT':>7}  homes"
    print(header)
    print("-" * len(header) + "-" * 50)
    for row in rows:
        span = _span(row["min_s"], row["max_s"])
        print(
            f"{row['key']:<8} {_fmt(row['median_s']):>8} {span:>16} "
            f"{str(row['direct_runs']) + '/' + str(row['runs']):>7}  {row['title']}"
        )
        each = ", ".join(_fmt(t["seconds"]) for t in row["each"])
        print(f"{'':<9}runs: {each}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per pairing (default 5)")
    parser.add_argument("--cap", type=float, default=20.0, help="seconds before 'never'")
    parser.add_argument(
        "--pairings", nargs="+", choices=list(PAIRINGS), default=list(DEFAULT_PAIRINGS)
    )
    args = parser.parse_args(argv)
    reason = unavailable_reason()
    if reason is not None:
        print(f"bench-nat: skipped: {reason}")
        return 0
    if args.runs < 1 or args.cap <= 0:
        parser.error("--runs and --cap must be positive")
    keys = [k for k in PAIRINGS if k in args.pairings]
    # SIGTERM unwinds like Ctrl-C, so the world's cleanup runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    started = time.monotonic()
    try:
        with OverlayWorld(log_level="info") as world:
            say(f"building the rig: two roots, pairings {' '.join(keys)} ...")
            nat = NatPairs(world, keys, log_level="info")
            for key in keys:
                say(nat.describe(nat.pairs[key]).replace("\n", "\n           "))
            rows = measure(nat, keys, args.runs, args.cap)
    except KeyboardInterrupt:  # the world has closed (with-block) by the time we are here
        say("interrupted; everything it made is removed, nothing written")
        return 130
    except (WorldError, RigError) as exc:
        say(f"could not set up the overlay: {exc}")
        return 1

    print_table(rows, args.runs, args.cap)
    doc = {
        **run_header(),
        "runs_per_pairing": args.runs,
        "cap_s": args.cap,
        "echo_interval_s": ECHO_INTERVAL_S,
        "wall_seconds": round(time.monotonic() - started, 1),
        "pairings": rows,
    }
    write_result("nat", doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
