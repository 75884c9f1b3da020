"""The periodicity hunt sorts each pair's deltas once and hands them to the periodogram,
the bursts and the renewal test: each must give exactly what its own sort gives."""

from __future__ import annotations

import numpy as np
import pytest

import detectors.stats.periodogram as periodogram
from detectors.stats.periodogram import estimate_periods
from detectors.stats.segments import sorted_deltas
from detectors.stats.timing import timing_estimates


def _pairs(seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Times of 300 pairs: jittered beacons, bursts of 3 every 600 s, Poisson traffic,
    near-repeats (half-second deltas) and pairs of one or two times."""
    rng = np.random.default_rng(seed)
    times, counts = [], []
    for i in range(300):
        kind = i % 5
        size = int(rng.integers(1, 80))
        if kind == 0:
            t = np.cumsum(300.0 * (1 - 0.5 * rng.random(size)))
        elif kind == 1:
            starts = np.arange(max(size // 3, 1)) * 600.0
            t = (starts[:, None] + np.array([0.0, 2.0, 4.5])).ravel()
        elif kind == 2:
            t = np.cumsum(rng.exponential(900.0, size))
        elif kind == 3:
            t = np.cumsum(rng.choice([0.5, 60.0, 61.0], size))
        else:
            t = np.arange(min(size, 2)) * 30.0
        times.append(t - t[0])
        counts.append(t.size)
    return np.concatenate(times), np.array(counts, dtype=np.int64)


def test_sorted_deltas_are_each_pairs_differences_sorted():
    times = np.array([0.0, 10.0, 12.0, 30.0, 5.0, 6.0, 100.0])
    assert sorted_deltas(times, np.array([4, 1, 2])).tolist() == [2.0, 10.0, 18.0, 94.0]


def test_timing_with_the_shared_sort_equals_its_own_sort():
    times, counts = _pairs()
    own = timing_estimates(times, counts)
    shared = timing_estimates(times, counts, sorted_deltas=sorted_deltas(times, counts))
    assert own["bursty"].sum() >= 30  # burst pairs take the starts' path
    for key, value in own.items():
        np.testing.assert_array_equal(shared[key], value, err_msg=key)


@pytest.mark.parametrize("workers", [1, 3])
def test_periods_with_the_shared_sort_equal_their_own_sort(workers, monkeypatch):
    monkeypatch.setattr(periodogram, "_PARALLEL_MIN_TIMES", 10)  # split this small input
    times, counts = _pairs(seed=9)
    own = estimate_periods(times, counts, workers=workers)
    shared = estimate_periods(
        times, counts, workers=workers, sorted_deltas=sorted_deltas(times, counts)
    )
    assert np.isfinite(own["period_s"]).sum() > 100
    for key, value in own.items():
        np.testing.assert_array_equal(shared[key], value, err_msg=key)


def test_batch_sizes_do_not_change_any_number(monkeypatch):
    # The FFT batches and the renewal scan's batches only bound memory.
    import detectors.stats.renewal as renewal

    times, counts = _pairs(seed=12)
    before = estimate_periods(times, counts), timing_estimates(times, counts)
    monkeypatch.setattr(periodogram, "_FFT_CELLS", 1 << 10)
    monkeypatch.setattr(renewal, "_SCAN_CELLS", 201 * 3)
    after = estimate_periods(times, counts), timing_estimates(times, counts)
    for old, new in zip(before, after, strict=True):
        for key, value in old.items():
            np.testing.assert_array_equal(new[key], value, err_msg=key)
