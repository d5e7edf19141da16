"""`make fuzz`: every fuzz target of tests/fuzz for a bounded time, with fresh inputs.

    python -m tests.fuzz.run [--seconds 60] [--seed N] [--only NAME ...]

The time is split across the targets (the node targets, which cost the most per input and
reach the most code, get three shares each). Each target runs in batches of fresh random
inputs until its share is spent, and stops at its first finding, which Hypothesis shrinks
to a minimal input. Printed per target: executions (shrinking replays included), time,
executions per second, and any finding: the exception type and message, the minimal input
(hex for bytes) and where it was raised. Exits 1 when anything was found, else 0.

A run is reproducible from its seed (printed first): `--seed N --only NAME`.

The process's address space is capped (--memory-mb, 4 GiB by default), so an input that
makes the code allocate without bound is reported as a MemoryError finding instead of
bringing the shared machine into the OOM killer (a replay window shifted by a 2^40 packet
id did that once).
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time

from tests.fuzz.harness import Result, Target, run_target

HEAVY = {"node.datagram", "node.sealed", "node.sequence", "node.batch"}
BATCH_SECONDS = 2.0
PROBE_EXAMPLES = 20


def fuzz_target(target: Target, seconds: float, rng: random.Random) -> Result:
    result = Result(target.name)
    deadline = time.perf_counter() + seconds
    examples = PROBE_EXAMPLES
    while result.finding is None:
        left = deadline - time.perf_counter()
        if left <= 0:
            break
        started, executed = time.perf_counter(), result.executions
        run_target(target, examples, derandomize=False, seed=rng.getrandbits(64), result=result)
        spent = max(time.perf_counter() - started, 1e-3)
        rate = max(result.executions - executed, 1) / spent
        examples = max(PROBE_EXAMPLES, int(rate * min(BATCH_SECONDS, left)))
    return result


def _where(traceback_text: str) -> str:
    """The last two frames of a traceback, enough to find the line."""
    frames = [line for line in traceback_text.splitlines() if line.startswith('  File "')]
    return "\n".join(f"      {f.strip()}" for f in frames[-2:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=60.0, help="total, split by target")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--only", nargs="*", default=None, help="target names (substrings)")
    parser.add_argument("--memory-mb", type=int, default=4096, help="address space cap")
    args = parser.parse_args(argv)
    cap = args.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    seed = args.seed if args.seed is not None else random.SystemRandom().getrandbits(32)
    print(f"fuzz: seed {seed}, {args.seconds:g} s in all; building the seed world...")
    from tests.fuzz.targets_codec import registry as codec
    from tests.fuzz.targets_node import registry as node
    from tests.fuzz.targets_offload import registry as offload

    targets = [
        t
        for t in codec.targets + node.targets + offload.targets
        if not args.only or any(name in t.name for name in args.only)
    ]
    if not targets:
        print("fuzz: no target matches", args.only)
        return 2
    shares = {t.name: 3 if t.name in HEAVY else 1 for t in targets}
    unit = args.seconds / sum(shares.values())
    rng = random.Random(seed)
    results = []
    print(f"{'target':28} {'executions':>10} {'seconds':>8} {'exec/s':>8}  result")
    for target in targets:
        result = fuzz_target(target, unit * shares[target.name], rng)
        results.append(result)
        rate = result.executions / result.seconds if result.seconds else 0.0
        status = "ok" if result.finding is None else "FINDING"
        print(
            f"{target.name:28} {result.executions:>10} {result.seconds:>8.1f} {rate:>8.0f}  "
            f"{status}",
            flush=True,
        )
        if result.finding is not None:
            print(f"    {result.finding.error}")
            print(f"    input: {result.finding.input}")
            print(_where(result.finding.traceback))
    total = sum(r.executions for r in results)
    seconds = sum(r.seconds for r in results)
    found = [r for r in results if r.finding is not None]
    print(
        f"fuzz: {total} executions in {seconds:.0f} s ({total / max(seconds, 1e-9):.0f}/s), "
        f"{len(targets)} targets, {len(found)} with findings (seed {seed})"
    )
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
