"""The renewal (jitter-tolerant) test: worked numbers, generated implants, Poisson traffic."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.stats.renewal import (
    RenewalSettings,
    deltas_from_times,
    renewal_test,
    scan_pvalue,
    segment_shorth,
)


def _one(deltas) -> dict[str, float]:
    result = renewal_test(np.asarray(deltas, dtype=np.float64), np.array([len(deltas)]))
    return {key: float(value[0]) for key, value in result.items()}


# --- worked numbers ------------------------------------------------------------------


def test_deltas_from_times_stay_inside_each_pair():
    deltas, counts = deltas_from_times(np.array([0.0, 10.0, 25.0, 100.0, 160.0]), np.array([3, 2]))
    assert deltas.tolist() == [10.0, 15.0, 60.0]
    assert counts.tolist() == [2, 1]


def test_shorth_finds_the_window_with_the_least_ratio_per_group():
    # Group 0: windows of 3 have ratios 4/1, 8/2, 9/4, 10/8 -> the last, 1.25, at index 3.
    # Group 1: [5, 6, 30]: one window, 30/5 = 6. Group 2 has too few values.
    values = np.array([1.0, 2.0, 4.0, 8.0, 9.0, 10.0, 5.0, 6.0, 30.0, 7.0])
    index, ratio = segment_shorth(values, np.array([6, 3, 1]), np.array([3, 3, 3]))
    assert index.tolist() == [3, 6, -1]
    assert ratio[:2].tolist() == [1.25, 6.0]
    assert math.isinf(ratio[2])


def _scan_by_hand(n: int, h: int, c: float) -> float:
    """The bound written out window by window (an independent loop, plain math)."""
    log_r = max(0.5 * math.log(c), math.log(40.0 / 1e-5) / 200)
    wide = c * math.exp(log_r)
    total = 0.0
    for j in range(201):
        x = 1e-5 * math.exp(log_r * j)
        if x > 40.0:
            break
        p = math.exp(-x) - math.exp(-wide * x)
        a = h / n
        if a <= p:
            total += 1.0
            continue
        kl = a * math.log(a / p) + ((1 - a) * math.log((1 - a) / (1 - p)) if a < 1 else 0.0)
        total += math.exp(-n * kl)
    return min(total, 1.0)


@pytest.mark.parametrize(("n", "h", "c"), [(10, 8, 1.2), (30, 27, 1.9), (6, 4, 1.1)])
def test_scan_pvalue_matches_the_bound_written_out(n, h, c):
    got = scan_pvalue(np.array([n]), np.array([h]), np.array([c]))[0]
    assert got == pytest.approx(_scan_by_hand(n, h, c), rel=1e-9)


def test_scan_pvalue_is_one_when_the_likeliest_window_already_holds_h_over_n():
    # W = c r = 4 * 2 = 8: p* = 8^(-1/7) (7/8) = 0.6358 >= h/n = 0.5.
    assert scan_pvalue(np.array([10]), np.array([5]), np.array([4.0]))[0] == 1.0


def test_scan_pvalue_bounds_the_simulated_null():
    # 20,000 sets of 10 exponential deltas: how often 8 of them fit a window of ratio
    # 1.5 must not exceed the bound (it is a union bound, so well above).
    rng = np.random.default_rng(7)
    x = np.sort(rng.exponential(1.0, (20_000, 10)), axis=1)
    ratios = (x[:, 7:] / x[:, :3]).min(axis=1)
    simulated = float((ratios <= 1.5).mean())
    bound = scan_pvalue(np.array([10]), np.array([8]), np.array([1.5]))[0]
    assert 0 < simulated <= bound


def test_fixed_sleep_with_one_lost_connection():
    # Five one-sleep deltas of 100 s and one of 200 s (a connection not logged).
    r = _one([100, 100, 100, 200, 100, 100])
    assert r["sleep_s"] == 100.0
    assert r["lower_s"] == 100.0 and r["upper_s"] == 100.0
    assert r["spread"] == 0.0
    assert r["n_used"] == 5
    assert r["missed_share"] == pytest.approx(1 / 6)
    assert r["pauses"] == 0
    assert r["p_value"] < 1e-3


def test_jitter_interval_edges_are_unbiased_for_a_uniform_interval():
    # One-sleep deltas 90..110 (m = 5): w = (110 - 90) * 6 / 4 = 30, so the edges are
    # 90 - 30/6 = 85 and 110 + 30/6 = 115; spread = (q95 - q05) / q50 = (109 - 91) / 100.
    r = _one([100, 90, 110, 95, 105])
    assert r["lower_s"] == pytest.approx(85.0)
    assert r["upper_s"] == pytest.approx(115.0)
    assert r["sleep_s"] == pytest.approx(100.0)
    assert r["spread"] == pytest.approx(0.18)


def test_pauses_are_neither_jitter_nor_loss():
    # Ten sleeps of 60 s, a night of 8 h, ten more sleeps.
    r = _one([60.0] * 10 + [8 * 3600.0] + [60.0] * 10)
    assert r["sleep_s"] == 60.0
    assert r["pauses"] == 1
    assert r["missed_share"] == 0.0
    assert r["n_used"] == 20


def test_too_few_deltas_are_not_tested():
    r = _one([60.0, 60.0, 60.0])
    assert r["p_value"] == 1.0
    assert math.isnan(r["sleep_s"])


def test_duplicate_times_are_left_out():
    r = _one([0.0, 60.0, 0.0, 60.0, 60.0, 60.0, 0.0])
    assert r["n_deltas"] == 4
    assert r["sleep_s"] == 60.0


def test_most_connections_lost_the_sleep_is_the_submultiple():
    # Sleep 100 s, but most deltas are 2 sleeps: the half-period cluster has its own
    # deltas (20 % of them), so the sleep is 100, not 200.
    d = [200.0, 202.0, 198.0, 201.0, 199.0, 200.0, 100.0, 200.0, 101.0, 99.0] * 3
    r = _one(d)
    assert r["sleep_s"] == pytest.approx(100.0, abs=1.0)
    assert r["missed_share"] == pytest.approx(21 / 30)


def test_wide_one_sided_jitter_is_not_mistaken_for_loss():
    # Deltas spread evenly over [150, 300]: the low tail is not a cluster at half the period.
    r = _one(np.linspace(150.0, 300.0, 31).tolist())
    assert r["missed_share"] == 0.0
    assert r["upper_s"] == pytest.approx(305.0)  # 300 + 150 * 32/30 / 32
    assert r["lower_s"] == pytest.approx(145.0)


# --- generated implants ----------------------------------------------------------------


def _implant(rng, sleep: float, jitter: float, n: int, one_sided: bool) -> np.ndarray:
    if one_sided:  # Cobalt Strike: sleep x (1 - U(0, j))
        return rng.uniform(sleep * (1 - jitter), sleep, n)
    return rng.uniform(sleep * (1 - jitter / 2), sleep * (1 + jitter / 2), n)


# Measured share of 5,000 pairs of 30 deltas within 5 % (seed 5): 1.0 everywhere but
# one-sided 25 % (0.9994) and 50 % (0.983) and symmetric 50 % (0.9992). The misses are
# the order-statistic limit, not a bias: the longest of 30 sleeps on [S/2, S] falls under
# 0.95 S with probability (0.9 - 1/31)^30 ~ 1.4 %, and no estimator can see the edge then.
FLOOR = {(0.10, True): 1.0, (0.25, True): 0.995, (0.50, True): 0.97}


@pytest.mark.parametrize("jitter", [0.10, 0.25, 0.50])
@pytest.mark.parametrize("one_sided", [True, False])
def test_generated_renewal_sequences_find_the_sleep_within_5pct(jitter, one_sided):
    rng = np.random.default_rng(int(jitter * 100) + one_sided)
    pairs = 400
    d = np.concatenate([_implant(rng, 300.0, jitter, 30, one_sided) for _ in range(pairs)])
    r = renewal_test(d, np.full(pairs, 30))
    estimate = r["upper_s"] if one_sided else r["sleep_s"]
    share = float(np.mean(np.abs(estimate / 300.0 - 1) <= 0.05))
    assert share >= FLOOR.get((jitter, one_sided), 0.995)
    assert np.all(r["p_value"] <= 1e-3)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    sleep=st.floats(1.0, 86_400.0),
    jitter=st.floats(0.0, 0.5),
    n=st.integers(30, 300),
    one_sided=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_sleep_within_5pct_for_jitter_up_to_50pct(sleep, jitter, n, one_sided, seed):
    """Deterministic examples (derandomize): a draw misses 5 % with probability under
    1.5 % in the worst case (one-sided 50 %, n = 30; see FLOOR above)."""
    d = _implant(np.random.default_rng(seed), sleep, jitter, n, one_sided)
    r = _one(d)
    estimate = r["upper_s"] if one_sided else r["sleep_s"]
    assert abs(estimate / sleep - 1) <= 0.05
    assert r["p_value"] <= 0.01


LEVEL = 0.01


@pytest.mark.parametrize("n", [6, 10, 30, 100])
def test_false_positive_rate_on_poisson_traffic_is_under_the_1pct_level(n):
    """Measured: 0.1-0.2 % of Poisson pairs at n = 6-10 deltas, 0 % from 30 (seed 11)."""
    rng = np.random.default_rng(11)
    pairs = 3000
    d = rng.exponential(300.0, pairs * n)
    r = renewal_test(d, np.full(pairs, n))
    rate = float((r["p_value"] <= LEVEL).mean())
    assert rate <= LEVEL + 0.005


def test_settings_fractions_set_the_bonferroni_factor():
    d = np.full(10, 60.0)
    one = renewal_test(d, np.array([10]), RenewalSettings(fractions=(0.9,)))["p_value"][0]
    three = renewal_test(d, np.array([10]))["p_value"][0]
    assert three <= 3 * one + 1e-300


def _workhours_times(rng, sleep: float, jitter: float) -> np.ndarray:
    """A one-sided-jitter implant active 09:00-17:00 on five weekdays of one week."""
    days = []
    for day in range(5):
        t = day * 86400.0 + 9 * 3600.0 + rng.uniform(0, sleep)
        stamps = []
        while t < day * 86400.0 + 17 * 3600.0:
            stamps.append(t)
            t += rng.uniform(sleep * (1 - jitter), sleep)
        days.append(stamps)
    return np.concatenate(days)


def test_workhours_beacon_keeps_its_period_inside_the_active_windows():
    # 15 min sleeps, 30 % one-sided jitter, five office days: the four nights are pauses
    # (not loss, not jitter), and the sleep comes from the in-window deltas only.
    times = _workhours_times(np.random.default_rng(21), 900.0, 0.3)
    d, c = deltas_from_times(times, np.array([times.size]))
    r = renewal_test(d, c)
    assert r["pauses"][0] == 4
    assert r["missed_share"][0] == 0.0
    assert r["upper_s"][0] == pytest.approx(900.0, rel=0.05)
    assert r["p_value"][0] < 1e-10


# --- the shortcut for pairs whose p-value is 1 ---------------------------------------


@pytest.mark.parametrize(
    ("n", "h", "c"), [(10, 8, 1.2), (30, 27, 1.9), (6, 4, 1.1), (5, 3, 3.0), (70, 35, 1.4)]
)
def test_near_peak_terms_are_part_of_the_bound_written_out(n, h, c):
    from detectors.stats.renewal import _near_peak_terms

    near = _near_peak_terms(np.array([n]), np.array([h]), np.array([c]), 0.5, 200)[0]
    assert 0.0 < near <= _scan_by_hand(n, h, c) * (1 + 1e-12) or _scan_by_hand(n, h, c) == 1.0


def test_renewal_p_values_equal_the_full_scan_of_every_pair(monkeypatch):
    # Poisson pairs (mostly p = 1, settled by the shortcut), jittered beacons (small p)
    # and pairs in between: the shortcut must give exactly the full scan's p-values.
    import detectors.stats.renewal as renewal

    rng = np.random.default_rng(11)
    sizes = rng.integers(4, 60, 400)
    parts = []
    for i, size in enumerate(sizes):
        if i % 3 == 0:
            parts.append(rng.exponential(600.0, size))
        elif i % 3 == 1:
            parts.append(300.0 * (1 - 0.5 * rng.random(size)))
        else:
            parts.append(np.where(rng.random(size) < 0.5, 60.0, rng.exponential(600.0, size)))
    deltas, counts = np.concatenate(parts), sizes.astype(np.int64)
    fast = renewal_test(deltas, counts)["p_value"]
    monkeypatch.setattr(renewal, "_near_peak_terms", lambda n, *rest: np.zeros(np.size(n)))
    full = renewal_test(deltas, counts)["p_value"]
    assert (fast == 1.0).sum() > 50  # the shortcut had pairs to settle
    assert (fast < 1e-6).sum() > 50
    np.testing.assert_array_equal(fast, full)
