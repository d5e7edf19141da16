"""The short fuzz run of tests/fuzz/targets_offload.py, deterministic like test_fuzz.py's,
plus a check that the inputs reach what the targets are there for."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from overlay_core.proto.offload import (
    GSO_TCPV4,
    GSO_TCPV6,
    OffloadError,
    coalesce,
    split_vnet,
    validate,
)
from tests.fuzz.harness import Target, run_target
from tests.fuzz.targets_offload import batches, registry, tap_reads

EXAMPLES = 300


@pytest.mark.parametrize("target", registry.targets, ids=[t.name for t in registry.targets])
def test_offload_fuzz_target_short_run(target: Target) -> None:
    result = run_target(target, EXAMPLES, derandomize=True)
    finding = result.finding
    assert finding is None, (
        f"{finding.error}\ninput: {finding.input}\n{finding.traceback}" if finding else ""
    )


def test_the_strategies_reach_accepted_and_refused_inputs() -> None:
    """Not vacuous: among the drawn reads some validate as GSO and some are refused for
    several reasons; among the batches some merge into super-frames."""
    reasons: set[str] = set()
    gso_ok: list[int] = []
    merged: list[int] = []

    @settings(max_examples=300, derandomize=True, deadline=None, database=None)
    @given(tap_reads(), batches())
    def draw(raw: bytes, batch: list[bytes]) -> None:
        try:
            header, frame = split_vnet(raw)
            validate(header, frame)
            if header.gso_type & 0x7F in (GSO_TCPV4, GSO_TCPV6):
                gso_ok.append(1)
        except OffloadError as exc:
            reasons.add(exc.reason)
        if any(split_vnet(b)[0].gso_type for b in coalesce(batch)):
            merged.append(1)

    draw()
    assert len(gso_ok) >= 30 and len(merged) >= 100
    assert len(reasons) >= 6, reasons
