"""The periodogram, Fisher's g-test, the deltas test and the period estimator."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors.stats import periodogram as periodogram_module
from detectors.stats.periodogram import (
    KIND_NONE,
    KIND_ONE_SIDED,
    KIND_UNIFORM,
    PeriodSettings,
    benjamini_hochberg,
    chernoff_binomial_pvalue,
    estimate_period,
    estimate_periods,
    fisher_g_pvalue,
    fisher_g_test,
    periodogram,
)
from detectors.stats.segments import segment_ids, segment_median, segment_quantiles


def _from_deltas(deltas: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(deltas)])


# --- Fisher's g-test --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("g", "expected"),
    [
        # m = 5: P(G > g) = sum_{j=1}^{floor(1/g)} (-1)^(j-1) C(5, j) (1 - j g)^4
        (0.6, 5 * 0.4**4),  # one term: 0.128
        (0.5, 5 * 0.5**4 - 10 * 0.0**4),  # 0.3125
        (0.3, 5 * 0.7**4 - 10 * 0.4**4 + 10 * 0.1**4),  # 1.2005 - 0.256 + 0.001 = 0.9455
    ],
)
def test_fisher_g_pvalue_matches_hand_computation_for_five_ordinates(g, expected):
    assert fisher_g_pvalue(g, 5)[0] == pytest.approx(expected, abs=1e-12)


def test_fisher_g_test_takes_max_over_sum_of_ordinates():
    g, p = fisher_g_test(np.array([4.0, 1.0, 1.0, 1.0, 1.0]))
    assert g == pytest.approx(0.5)  # 4 / 8
    assert p == pytest.approx(0.3125)


def test_fisher_g_pvalue_stays_accurate_for_large_m():
    # m = 10000, g = 0.01: terms C(m, j)(1 - j g)^(m-1) fall fast; the first two, in
    # log space with lgamma, are an independent computation of the same sum.
    m, g = 10000, 0.01
    first = math.exp(math.log(m) + (m - 1) * math.log1p(-g))
    second = math.exp(
        math.lgamma(m + 1) - math.lgamma(3) - math.lgamma(m - 1) + (m - 1) * math.log1p(-2 * g)
    )
    assert fisher_g_pvalue(g, m)[0] == pytest.approx(first - second, rel=1e-9)
    assert 0 < first < 1e-38


def test_fisher_g_pvalue_near_one_for_unremarkable_peak():
    # m e^(-m g) = 10000 e^(-5) = 67 > 20: the asymptotic 1 - (1 - e^-5)^10000 ~ 1 - 1e-29
    assert fisher_g_pvalue(0.0005, 10000)[0] == pytest.approx(1.0, abs=1e-12)


def test_fisher_g_pvalue_is_uniform_under_white_noise():
    # Gaussian white noise: the share of series with p < 0.05 must be near 5 %.
    rng = np.random.default_rng(11)
    series = rng.normal(size=(4000, 102))
    power = np.abs(np.fft.rfft(series, axis=1)[:, 1:51]) ** 2
    g = power.max(axis=1) / power.sum(axis=1)
    rejected = (fisher_g_pvalue(g, 50) < 0.05).mean()
    assert 0.04 < rejected < 0.06


def test_chernoff_bound_is_exact_when_every_trial_succeeds():
    assert chernoff_binomial_pvalue(np.array([10]), np.array([10]), np.array([0.5]))[
        0
    ] == pytest.approx(0.5**10)


def test_chernoff_bound_is_one_at_or_below_expectation():
    assert chernoff_binomial_pvalue(np.array([3]), np.array([10]), np.array([0.4]))[0] == 1.0


def test_chernoff_bound_dominates_exact_binomial_tail():
    n, x, p = 30, 20, 0.3
    exact = sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(x, n + 1))
    bound = chernoff_binomial_pvalue(np.array([x]), np.array([n]), np.array([p]))[0]
    assert exact <= bound < 1e-3


def test_benjamini_hochberg_matches_hand_computation():
    # sorted 0.005, 0.01, 0.03, 0.04 (m = 4) -> x 4/i: 0.02, 0.02, 0.04, 0.04, then the
    # running minimum from the top; back in the original order.
    q = benjamini_hochberg(np.array([0.01, 0.04, 0.03, 0.005]))
    assert q == pytest.approx([0.02, 0.04, 0.04, 0.02])


def test_benjamini_hochberg_caps_at_one():
    assert benjamini_hochberg(np.array([0.9, 0.95])) == pytest.approx([0.95, 0.95])
    assert benjamini_hochberg(np.array([])).size == 0


# --- the periodogram -------------------------------------------------------------------


def test_periodogram_peaks_at_a_harmonic_of_the_sleep():
    ts = np.arange(0, 6 * 3600, 60.0)  # every minute for six hours
    pg = periodogram(ts)
    assert pg.bin_width_s == pytest.approx(7.5)  # median delta 60 / 8 bins per period
    peak_hz = pg.frequencies_hz[np.argmax(pg.power)]
    harmonic = peak_hz * 60
    assert harmonic == pytest.approx(round(harmonic), abs=0.01)
    assert fisher_g_test(pg.power)[1] < 1e-10


def test_periodogram_caps_series_length():
    ts = np.arange(0, 86400 * 7, 1.0)
    pg = periodogram(ts, max_bins=4096)
    assert pg.n_bins <= 4096


# --- the period estimator --------------------------------------------------------------


def test_exact_sleep_has_no_jitter_and_tiny_p_value():
    est = estimate_period(np.arange(0, 6 * 3600, 300.0))
    assert est.period_s == pytest.approx(300.0)
    assert est.jitter_kind == KIND_NONE
    assert est.jitter_pct == pytest.approx(0.0, abs=1e-9)
    assert est.multiple_fraction == 0.0
    assert est.p_value < 1e-10


def test_unlogged_connections_count_as_multiples_of_the_sleep():
    # Connections 0..99 every 600 s; every one with i % 4 == 1 went unlogged, so
    # one delta in three is 1200 s. The deltas test still sees a clean 600 s sleep.
    kept = np.array([i for i in range(100) if i % 4 != 1])
    est = estimate_period(kept * 600.0)
    assert est.period_s == pytest.approx(600.0)
    assert est.jitter_pct == pytest.approx(0.0, abs=1e-9)
    assert est.multiple_fraction == pytest.approx((np.diff(kept) >= 2).mean())  # 25/74
    assert est.p_value < 1e-10


def test_one_sided_jitter_reports_the_configured_sleep_as_upper_edge():
    # Cobalt Strike: sleep 120 s x (1 - U(0, 0.5)), deltas spread evenly over [60, 120].
    # Order statistics 1.99 and 197.01 of 200, extrapolated: exactly 60 and 120; 120 is
    # a rounder number than the centre 90, so the kind is one-sided and the sleep 120.
    rng = np.random.default_rng(5)
    est = estimate_period(_from_deltas(120 * (1 - rng.permutation(np.linspace(0, 0.5, 200)))))
    assert est.jitter_kind == KIND_ONE_SIDED
    assert est.period_s == pytest.approx(120.0)
    assert est.jitter_pct == pytest.approx(50.0)


def test_uniform_jitter_reports_the_centre():
    # Empire style: 300 s x (1 + U(-0.3, 0.3)) spread evenly over [210, 390].
    rng = np.random.default_rng(5)
    est = estimate_period(_from_deltas(300 * (1 + rng.permutation(np.linspace(-0.3, 0.3, 200)))))
    assert est.jitter_kind == KIND_UNIFORM
    assert est.period_s == pytest.approx(300.0)
    assert est.jitter_pct == pytest.approx(30.0)


def test_workhours_pauses_are_neither_jitter_nor_loss():
    # 09:00-16:45 every 900 s for five days: 32 calls a day, 31 deltas of 900 s.
    days = [d * 86400 + 9 * 3600 + np.arange(32) * 900.0 for d in range(5)]
    est = estimate_period(np.concatenate(days))
    assert est.period_s == pytest.approx(900.0)
    assert est.jitter_pct == pytest.approx(0.0, abs=1e-9)
    assert est.multiple_fraction == 0.0
    # active 5 x 31 x 900 = 139500 s of a span of 4 days + 27900 s = 373500 s
    assert est.active_fraction == pytest.approx(139500 / 373500)
    assert est.p_value < 1e-10


def test_six_hour_sleep_over_three_days_is_significant():
    rng = np.random.default_rng(5)
    est = estimate_period(_from_deltas(21600 * (1 + rng.permutation(np.linspace(-0.05, 0.05, 12)))))
    assert est.period_s == pytest.approx(21600.0)
    assert est.jitter_pct == pytest.approx(5.0)
    assert est.p_value < 1e-6


def test_random_times_are_not_reported_as_regular():
    rng = np.random.default_rng(5)
    est = estimate_period(np.sort(rng.uniform(0, 86400, 200)))
    assert est.p_value > 0.01 or est.jitter_pct > 60


def test_sub_second_precision_keeps_a_fast_beacon_regular():
    # 1.25 s sleep: whole-second deltas would alternate 1 and 2 (the seed's bug).
    est = estimate_period(np.arange(0, 600, 1.25))
    assert est.period_s == pytest.approx(1.25)
    assert est.jitter_pct == pytest.approx(0.0, abs=1e-9)


def test_batch_estimates_equal_one_pair_estimates():
    a = np.arange(0, 7200, 60.0)
    b = np.array([i for i in range(60) if i % 3 != 2]) * 300.0
    batch = estimate_periods(np.concatenate([a, b]), np.array([a.size, b.size]))
    for index, ts in enumerate((a, b)):
        single = estimate_period(ts)
        assert batch["period_s"][index] == pytest.approx(single.period_s)
        assert batch["p_value"][index] == pytest.approx(single.p_value)
        assert batch["multiple_fraction"][index] == pytest.approx(single.multiple_fraction)


def _varied_pairs(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` pairs of beacons with jitter, loss and night pauses, and random chatter."""
    pairs = []
    for index in range(n):
        sleep = float(rng.choice([45.0, 300.0, 3600.0]))
        ts = np.cumsum(sleep * (1 + rng.uniform(-0.2, 0.2, 60 + index % 40)))
        if index % 3 == 0:  # a twelve-hour pause in the middle
            ts[ts.size // 2 :] += 43200.0
        if index % 5 == 0:  # no rhythm at all
            ts = np.sort(rng.uniform(0, 86400, ts.size))
        pairs.append(ts - ts[0])
    return np.concatenate(pairs), np.array([p.size for p in pairs])


def test_threads_and_batch_neighbours_do_not_change_any_estimate(monkeypatch):
    # every number of a pair comes from that pair alone: estimated in three threads,
    # or next to other pairs, it is the same to the last bit (a running sum over the
    # whole batch once shifted the FFT period of a pair by its neighbours' spans)
    monkeypatch.setattr(periodogram_module, "_PARALLEL_MIN_TIMES", 0)
    times, counts = _varied_pairs(np.random.default_rng(11), 90)
    one = estimate_periods(times, counts)
    three = estimate_periods(times, counts, workers=3)
    last = estimate_periods(times[-counts[-1] :], counts[-1:])
    assert one.keys() == three.keys()
    for key in one:
        np.testing.assert_array_equal(one[key], three[key], err_msg=key)
        np.testing.assert_array_equal(one[key][-1:], last[key], err_msg=key)
    assert one["eligible"].size == 90 and one["eligible"].sum() > 30


def test_fft_is_skipped_for_pairs_too_jittery_to_report():
    rng = np.random.default_rng(5)
    ts = np.sort(rng.uniform(0, 86400, 300))
    out = estimate_periods(ts, np.array([ts.size]), PeriodSettings(fft_max_jitter_pct=60))
    assert out["fisher_p"][0] == 1.0
    assert np.isnan(out["g"][0])


def test_too_short_data_is_not_eligible():
    out = estimate_periods(np.array([0.0, 60.0, 120.0]), np.array([3]), min_events=6)
    assert not out["eligible"][0]
    assert out["p_value"][0] == 1.0


# --- segment statistics ------------------------------------------------------------------


def test_segment_quantiles_match_numpy_per_group():
    rng = np.random.default_rng(3)
    counts = np.array([5, 1, 8, 3])
    values = rng.normal(size=counts.sum())
    ids = segment_ids(counts)
    got = segment_quantiles(values, ids, 5, (0.1, 0.5, np.array([0.9, 0.9, 0.2, 0.9, 0.9])))
    starts = np.cumsum(counts) - counts
    for g, (s, c) in enumerate(zip(starts, counts, strict=True)):
        group = values[s : s + c]
        assert got[0, g] == pytest.approx(np.quantile(group, 0.1))
        assert got[1, g] == pytest.approx(np.median(group))
        assert got[2, g] == pytest.approx(np.quantile(group, 0.2 if g == 2 else 0.9))
    assert np.isnan(got[:, 4]).all()  # the fifth group is empty
    assert segment_median(values, ids, 4)[1] == values[5]
