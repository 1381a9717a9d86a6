"""The sliding windows behind the flow map's rates and the processing delay: close, bounded, forgetful."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.core.windows import LatencyWindow, RateWindow, bin_bounds, bin_of


def test_bins_cover_every_value_once_within_3_percent():
    previous_high = -1
    for index in range(0, 32 + 16 * 40):
        low, high = bin_bounds(index)
        assert low == previous_high + 1  # contiguous, no gaps, no overlaps
        assert bin_of(low) == index and bin_of(high) == index
        assert (high - low) / 2 <= max(low, 1) * 0.032
        previous_high = high
    assert bin_of(-5) == 0


def test_rate_is_events_per_second_over_the_window_and_forgets():
    window = RateWindow(window_ms=10_000, slots=10)
    for second in range(10):
        window.add(50, now=second * 1000)
    assert window.rate(now=9_999) == pytest.approx(50.0)
    assert window.total == 500
    assert window.rate(now=14_500) == pytest.approx(25.0)  # half the slots fell out
    assert window.rate(now=60_000) == 0.0
    window.add(10, now=60_000)  # a reused slot starts from zero
    assert window.rate(now=60_000) == pytest.approx(1.0)


def test_latency_quantiles_are_close_to_the_truth():
    window = LatencyWindow()
    values = list(range(1, 1001))
    random.Random(7).shuffle(values)
    for value in values:
        window.add(value, now=1_000)
    quantiles = window.quantiles(now=1_000)
    assert quantiles is not None and quantiles.count == 1000
    assert quantiles.p50 == pytest.approx(500, rel=0.04)
    assert quantiles.p99 == pytest.approx(990, rel=0.04)
    assert quantiles.max == pytest.approx(1000, rel=0.04)


def test_latency_window_slides_and_stays_bounded():
    window = LatencyWindow(window_ms=60_000, slots=6)
    for i in range(100_000):
        window.add(i % 5000, now=0)
    assert sum(len(bins) for bins in window._bins) < 200  # bins, not samples
    window.add(7, now=30_000)
    assert window.quantiles(now=59_999).count == 100_001
    only_recent = window.quantiles(now=65_000)
    assert only_recent is not None and only_recent.count == 1 and only_recent.p50 == 7
    assert window.quantiles(now=200_000) is None


def test_small_values_are_exact():
    window = LatencyWindow()
    for value in (3, 3, 3, 9):
        window.add(value, now=0)
    quantiles = window.quantiles(now=0)
    assert quantiles is not None and (quantiles.p50, quantiles.p99, quantiles.max) == (3, 9, 9)


def test_a_window_needs_room_for_its_slots():
    with pytest.raises(ValueError):
        RateWindow(window_ms=5, slots=10)


@given(st.lists(st.integers(-5, 10**9), max_size=50), st.integers(0, 10**7))
def test_add_many_counts_what_add_one_by_one_counts(values, now):
    one_by_one, at_once = LatencyWindow(), LatencyWindow()
    for value in values:
        one_by_one.add(value, now)
    at_once.add_many(values, now)
    assert at_once._bins == one_by_one._bins
