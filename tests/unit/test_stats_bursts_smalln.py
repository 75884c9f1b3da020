"""Bursts (clusters of connections) and the small-n confidence interval of the sleep."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors.stats.bursts import BurstSettings, burst_clusters
from detectors.stats.renewal import deltas_from_times, renewal_test
from detectors.stats.smalln import median_ci, median_ci_ranks


def test_bursts_of_three_every_ten_minutes_are_three_check_ins():
    # Pair 0: bursts at 0, 600, 1200 s of 3, 4 and 2 connections one second apart.
    # Pair 1: a 60 s beacon: its 90th-percentile delta is 60, so the gap threshold is
    # min(30, 0.2 x 60) = 12 s and no delta joins a burst.
    t = np.array([0, 1, 2, 600, 601, 602, 603, 1200, 1201, 0, 60, 120, 180, 240.0])
    b = burst_clusters(t, np.array([9, 5]))
    assert b["starts"].tolist() == [0.0, 600.0, 1200.0, 0.0, 60.0, 120.0, 180.0, 240.0]
    assert b["sizes"].tolist() == [3, 4, 2, 1, 1, 1, 1, 1]
    assert b["bursts"].tolist() == [3, 5]
    assert b["burst_size"].tolist() == [3.0, 1.0]
    assert b["burst_share"].tolist() == [1.0, 0.0]
    assert b["max_gap_s"].tolist() == [30.0, 12.0]


def test_burst_gap_is_a_setting():
    t = np.array([0, 5, 100, 105, 200, 205.0])
    tight = burst_clusters(t, np.array([6]), BurstSettings(max_gap_s=4.0))
    assert tight["bursts"].tolist() == [6]
    loose = burst_clusters(t, np.array([6]))
    assert loose["bursts"].tolist() == [3]


def test_burst_beacon_is_periodic_on_its_starts_not_on_its_deltas():
    # 3-6 connections within 10 s every 600 s (+-10 %), for 40 check-ins.
    rng = np.random.default_rng(4)
    starts = np.cumsum(rng.uniform(570, 630, 40))
    times = np.sort(
        np.concatenate([s + np.sort(rng.uniform(0, 10, rng.integers(3, 7))) for s in starts])
    )
    b = burst_clusters(times, np.array([times.size]))
    assert b["bursts"][0] == 40
    assert 3 <= b["burst_size"][0] <= 6
    d, c = deltas_from_times(b["starts"], b["bursts"])
    r = renewal_test(d, c)
    assert r["sleep_s"][0] == pytest.approx(600.0, rel=0.05)
    assert r["p_value"][0] < 1e-6


def test_interactive_session_is_bursts_with_random_starts():
    rng = np.random.default_rng(9)
    starts = np.cumsum(rng.exponential(900.0, 40))
    times = np.sort(np.concatenate([s + np.sort(rng.uniform(0, 20, 5)) for s in starts]))
    b = burst_clusters(times, np.array([times.size]))
    d, c = deltas_from_times(b["starts"], b["bursts"])
    assert renewal_test(d, c)["p_value"][0] > 0.01


@pytest.mark.parametrize(
    ("m", "rank"),
    # Conover (1999) table A3 / the binomial: P(Bin(m, 1/2) <= l - 1) <= 0.025.
    [(5, 0), (6, 1), (8, 1), (9, 2), (10, 2), (20, 6), (30, 10), (100, 40)],
)
def test_median_ci_ranks_match_the_binomial(m, rank):
    assert median_ci_ranks(np.array([m]))[0] == rank


def test_median_ci_ranks_exact_and_normal_meet_at_1000():
    # 1000/2 - 1.96 sqrt(1000)/2 = 469.01 -> 469, as the exact table says.
    assert median_ci_ranks(np.array([1000, 1001]))[0] == 469
    assert median_ci_ranks(np.array([1001]))[0] == 469


def test_median_ci_worked_numbers():
    # Ten daily sleeps (hours): l = 2, so the interval is [x_(2), x_(9)] = [23.5, 24.4].
    hours = np.array([24.0, 23.9, 24.2, 23.5, 24.1, 24.4, 23.8, 24.0, 24.6, 23.2])
    ci = median_ci(hours, np.zeros(10, dtype=np.int64), 1)
    assert ci["low"][0] == 23.5
    assert ci["high"][0] == 24.4
    assert ci["median"][0] == 24.0
    assert ci["relative_width"][0] == pytest.approx(0.9 / 24.0)


def test_median_ci_needs_six_values():
    ci = median_ci(np.arange(1.0, 6.0), np.zeros(5, dtype=np.int64), 1)
    assert math.isnan(ci["low"][0]) and math.isnan(ci["high"][0])


def test_median_ci_covers_the_true_median_at_the_level():
    # Coverage is >= 95 % for any continuous distribution: 2,000 sets of 12 deltas.
    rng = np.random.default_rng(2)
    values = rng.uniform(0.5, 1.0, (2000, 12))
    ids = np.repeat(np.arange(2000), 12)
    ci = median_ci(values.ravel(), ids, 2000)
    covered = (ci["low"] <= 0.75) & (ci["high"] >= 0.75)
    assert covered.mean() >= 0.95


def test_daily_implant_over_a_week_is_significant_with_its_interval():
    # Seven daily check-ins (6 deltas) with 10 % one-sided jitter: the renewal test
    # alone is weak on 6 deltas but the interval pins the sleep within a few percent.
    rng = np.random.default_rng(12)
    d = rng.uniform(0.9 * 86400, 86400, 6)
    r = renewal_test(d, np.array([6]))
    ci = median_ci(d, np.zeros(6, dtype=np.int64), 1)
    assert r["p_value"][0] < 0.05
    assert ci["relative_width"][0] < 0.12
    assert ci["low"][0] <= r["sleep_s"][0] <= ci["high"][0]
