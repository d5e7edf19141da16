"""Fuzzing harness for hostile packets: every decoder and `Node.receive_datagram`.

Engine: Hypothesis, not atheris.

* It runs inside pytest, so the short run is an ordinary part of `make test` on every
  machine, with no second process model; `make fuzz` (tests/fuzz/run.py) drives the very
  same targets for longer.
* Deterministic when asked (`derandomize`): the in-suite run tests the same inputs on
  every machine, so it can't flake; `make fuzz` draws fresh ones and prints its seed.
* It shrinks a finding to a minimal input, which is what a report needs (hex included).
* Its strategies describe structured inputs: packets sealed under a real session key with
  the verb and payload chosen by the fuzzer. Coverage guidance, atheris's strength, can't
  get past a 16-byte AEAD tag by itself anyway; the structure is what reaches the verb
  handlers behind authentication.
* Pure Python, on PyPI for every Python we run. atheris needs libFuzzer builds: for
  CPython 3.11 pip finds only an older release's 35 MB x86_64-only wheel, not its newest,
  and libFuzzer stops the process at the first crash: one target per process, no
  in-pytest run.

A `Target` is a Hypothesis strategy and a function that feeds one drawn input to the code
under test and checks its contract: a decoder returns or raises its documented error
(`expect`), a node never raises and its state stays within bounds. Anything else escaping
`Target.run` is a finding. `run_target` runs one target for a number of examples and
returns how many inputs it executed and the finding, if any, with the (shrunk) input.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass, field
from typing import Any

import hypothesis
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import strategies as st
from hypothesis.database import ExampleDatabase

from overlay_core.proto import wire


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    strategy: st.SearchStrategy[Any]
    run: Callable[[Any], None]
    describe: Callable[[Any], str] = repr  # the input, readable in a report (hex for bytes)


@dataclass(slots=True)
class Finding:
    target: str
    error: str  # exception type and message
    input: str  # the shrunk input, as Target.describe renders it
    traceback: str


@dataclass(slots=True)
class Result:
    target: str
    executions: int = 0
    seconds: float = 0.0
    finding: Finding | None = None


class ContractError(AssertionError):
    """A decoder raised something other than its documented error, or state grew."""


def expect(*errors: type[BaseException]) -> AbstractContextManager[None]:
    """The block may raise only `errors` (its documented contract); anything else is
    re-raised as is, so the report names the real exception type."""
    return suppress(*errors)


def hexed(value: object) -> str:
    """bytes as hex, recursively through tuples, lists and dataclass-ish reprs."""
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    if isinstance(value, tuple | list):
        inner = ", ".join(hexed(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner})"
    describe = getattr(value, "describe", None)
    if callable(describe):
        return str(describe())
    return repr(value)


# --------------------------------------------------------------------------- strategies


@st.composite
def mutated(draw: st.DrawFn, seeds: Sequence[bytes], max_ops: int = 4) -> bytes:
    """A seed with a few byte-level mutations: bit flips, byte sets, truncation, splices
    with another seed, insertions, deletions, and header fields a fuzzer should hit on
    purpose: flags (hops, FRAGMENTED, cipher), the fragment marker and numbering, a fresh
    packet id (so a mutant gets past the replay window to the MAC)."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, max_ops))):
        op = draw(st.integers(0, 9))
        at = draw(st.integers(0, 4096)) % (len(data) + 1)
        if op == 0 and data:
            data[at % len(data)] ^= 1 << draw(st.integers(0, 7))
        elif op == 1 and data:
            data[at % len(data)] = draw(st.integers(0, 255))
        elif op == 2:
            del data[at:]
        elif op == 3:
            other = draw(st.sampled_from(seeds))
            data = data[:at] + other[draw(st.integers(0, 4096)) % (len(other) + 1) :]
        elif op == 4:
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif op == 5:
            del data[at : at + draw(st.integers(1, 64))]
        elif op == 6 and len(data) > 18:
            data[18] = draw(st.sampled_from([0x00, 0x01, 0x07, 0x08, 0x10, 0x20, 0x28, 0x30, 0xC0]))
        elif op == 7 and len(data) > 20:
            data[13] = wire.FRAGMENT_MARKER
            data[19] = draw(st.integers(0, 255))
            data[20] = draw(st.integers(0, 7))
        elif op == 8 and len(data) >= 8:
            data[0:8] = draw(st.integers(0, (1 << 64) - 1)).to_bytes(8, "big")
        elif op == 9 and len(data) > 20:
            data[19] = draw(st.integers(0, 255))  # key id
    return bytes(data)


def datagrams(seeds: Sequence[bytes]) -> st.SearchStrategy[bytes]:
    """Mutated real datagrams, mostly; random bytes of every interesting length too."""
    return st.one_of(
        mutated(seeds),
        mutated(seeds),
        mutated(seeds),
        st.binary(max_size=64),
        st.binary(min_size=wire.HEADER_BYTES, max_size=1600),
    )


# --------------------------------------------------------------------------- running


def hypothesis_settings(
    max_examples: int,
    *,
    derandomize: bool,
    database: ExampleDatabase | None = None,
) -> settings:
    return settings(
        max_examples=max_examples,
        derandomize=derandomize,
        database=database,
        deadline=None,
        report_multiple_bugs=False,
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
        print_blob=False,
    )


def run_target(
    target: Target,
    max_examples: int,
    *,
    derandomize: bool = True,
    database: ExampleDatabase | None = None,
    seed: int | None = None,
    result: Result | None = None,
) -> Result:
    """Run `target` for `max_examples` drawn inputs (plus shrinking, on a finding).

    Every execution counts, shrinking replays included. On a finding the input shown is
    the last one executed, which is Hypothesis's final replay of the shrunk example.
    """
    result = result or Result(target.name)
    last: list[Any] = [None]

    def execute(value: Any) -> None:
        result.executions += 1
        last[0] = value
        target.run(value)

    test = given(target.strategy)(execute)
    if seed is not None:
        test = hypothesis.seed(seed)(test)
    test = hypothesis_settings(max_examples, derandomize=derandomize, database=database)(test)
    started = time.perf_counter()
    try:
        test()
    except Exception as exc:
        result.finding = Finding(
            target.name,
            f"{type(exc).__name__}: {exc}",
            target.describe(last[0]),
            "".join(traceback.format_exception(exc)),
        )
    finally:
        result.seconds += time.perf_counter() - started
    return result


@dataclass(slots=True)
class Registry:
    """Targets by name, in the order they were declared."""

    targets: list[Target] = field(default_factory=list)

    def add(
        self,
        name: str,
        strategy: st.SearchStrategy[Any],
        describe: Callable[[Any], str] = hexed,
    ) -> Callable[[Callable[[Any], None]], Callable[[Any], None]]:
        def register(run: Callable[[Any], None]) -> Callable[[Any], None]:
            self.targets.append(Target(name, strategy, run, describe))
            return run

        return register
