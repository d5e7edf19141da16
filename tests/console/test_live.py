"""LiveStore: rates come from counter deltas over time, histories stay bounded, and a
restarted daemon (counters going down) never shows a negative rate."""

from __future__ import annotations

from console.live import HISTORY_SAMPLES, RateMeter


def test_rate_needs_two_samples_then_divides_by_elapsed_time() -> None:
    meter = RateMeter()
    meter.sample("a", tx=1000, rx=0, now=10.0)
    assert meter.rate("a").tx_bps is None
    meter.sample("a", tx=3000, rx=500, now=12.0)
    rate = meter.rate("a")
    assert (rate.tx_bps, rate.rx_bps, rate.total_bps) == (1000.0, 250.0, 1250.0)
    assert list(meter.history["a"]) == [1250.0]


def test_counter_reset_is_no_rate_not_a_negative_one() -> None:
    meter = RateMeter()
    meter.sample("a", tx=5000, rx=5000, now=1.0)
    meter.sample("a", tx=10, rx=10, now=2.0)
    assert meter.rate("a").tx_bps is None


def test_history_is_bounded_and_forgotten_keys_go() -> None:
    meter = RateMeter()
    for second in range(HISTORY_SAMPLES + 50):
        meter.sample("a", tx=second * 10, rx=0, now=float(second))
        meter.sample("b", tx=second, rx=0, now=float(second))
    assert len(meter.history["a"]) == HISTORY_SAMPLES
    meter.keep_only(["a"])
    assert "b" not in meter.rates and "b" not in meter.history and "b" not in meter.last
