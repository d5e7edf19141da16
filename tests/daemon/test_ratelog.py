"""RateLimitedLog: lines a remote party can trigger are written at a bounded rate, counted."""

from __future__ import annotations

import logging

import pytest

from overlay_core.io.ratelog import MAX_KINDS, RateLimitedLog

LOGGER = "tests.ratelog"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def rlog(clock: Clock, caplog: pytest.LogCaptureFixture) -> RateLimitedLog:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    return RateLimitedLog(logging.getLogger(LOGGER), 10.0, clock=clock)


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def test_one_line_per_kind_per_interval_then_the_count_of_the_rest(
    rlog: RateLimitedLog, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """A flood of one kind writes its first line, counts the next ones while the interval
    runs, and the first line after it says how many were left out."""
    assert rlog.info("framing", "closing %s: %s", "a", "bad length") is True
    for n in range(500):
        clock.now += 0.01
        assert rlog.info("framing", "closing %s: %s", n, "bad length") is False
    assert rlog.suppressed["framing"] == 500
    clock.now = 110.0
    assert rlog.info("framing", "closing %s: %s", "z", "bad length") is True
    assert messages(caplog) == [
        "closing a: bad length",
        "closing z: bad length (+500 more like this in 10 s, not logged)",
    ]
    assert rlog.suppressed["framing"] == 0


def test_kinds_are_limited_separately(
    rlog: RateLimitedLog, caplog: pytest.LogCaptureFixture
) -> None:
    """A flood of one kind does not silence another kind."""
    assert rlog.info("refused", "refused %d", 1)
    assert not rlog.info("refused", "refused %d", 2)
    assert rlog.warning("deadline", "deadline %d", 1)
    assert rlog.debug("link", "link %d", 1)
    assert messages(caplog) == ["refused 1", "deadline 1", "link 1"]
    levels = [r.levelno for r in caplog.records if r.name == LOGGER]
    assert levels == [logging.INFO, logging.WARNING, logging.DEBUG]


def test_lines_below_the_level_are_neither_written_nor_counted(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """With the logger at INFO, debug lines cost a level check and take no slot: the first
    info line of the same kind is still written."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    rlog = RateLimitedLog(logging.getLogger(LOGGER), 10.0, clock=clock)
    assert rlog.debug("link", "hidden") is False
    assert rlog.suppressed["link"] == 0
    assert rlog.info("link", "shown") is True
    assert messages(caplog) == ["shown"]


def test_the_record_names_the_caller(
    rlog: RateLimitedLog, caplog: pytest.LogCaptureFixture
) -> None:
    """The line is attributed to the code that called info(), not to ratelog.py."""
    rlog.info("kind", "from the test")
    (record,) = [r for r in caplog.records if r.name == LOGGER]
    assert record.funcName == "test_the_record_names_the_caller"


def test_memory_is_bounded_even_with_too_many_kinds(rlog: RateLimitedLog) -> None:
    """Kinds should be a fixed vocabulary; a caller that uses addresses instead still
    cannot make it hold more than MAX_KINDS of them."""
    for n in range(MAX_KINDS * 4):
        rlog.info(f"kind-{n}", "line")
        assert len(rlog._last) <= MAX_KINDS
