"""Kusto's series functions against worked examples computed by hand (see comments)."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from detectors.stats import kusto as K

# --- series_stats ---------------------------------------------------------------------


def test_series_stats_matches_kusto_documented_example():
    # The example on the series_stats() page, with its published output.
    x = [23, 46, 23, 87, 4, 8, 3, 75, 2, 56, 13, 75, 32, 16, 29]
    stats = K.series_stats(x)
    assert stats["min"] == 2.0
    assert stats["min_idx"] == 8
    assert stats["max"] == 87.0
    assert stats["max_idx"] == 3
    assert stats["avg"] == pytest.approx(32.8, abs=1e-12)  # 492 / 15
    assert stats["stdev"] == pytest.approx(28.5036338535483, abs=1e-12)
    assert stats["variance"] == pytest.approx(812.457142857143, abs=1e-9)  # 11374.4 / 14


def test_series_stats_reports_first_position_of_ties():
    # min 1 first at 1 (also at 2); max 5 first at 3 (also at 4).
    stats = K.series_stats([3, 1, 1, 5, 5])
    assert (stats["min_idx"], stats["max_idx"]) == (1, 3)


def test_series_stats_variance_is_sample_variance():
    # [2, 4, 6]: mean 4, squared deviations 4 + 0 + 4 = 8, / (3 - 1) = 4, stdev 2.
    stats = K.series_stats([2, 4, 6])
    assert stats["variance"] == 4.0
    assert stats["stdev"] == 2.0


def test_series_stats_of_one_value_has_undefined_stdev():
    stats = K.series_stats([7.0])
    assert stats["avg"] == 7.0
    assert math.isnan(stats["stdev"]) and math.isnan(stats["variance"])


def test_series_stats_is_null_when_a_value_is_not_finite():
    # Kusto's default ignore_nonfinite=false: a NaN anywhere makes every statistic null.
    stats = K.series_stats([1.0, np.nan, 3.0])
    assert math.isnan(stats["min"]) and math.isnan(stats["avg"]) and stats["min_idx"] == -1


def test_series_stats_ragged_matches_each_series_alone():
    values = np.array([2.0, 4.0, 6.0, 10.0, 30.0])
    offsets = np.array([0, 3, 3, 5])  # [2, 4, 6], [], [10, 30]
    stats = K.series_stats_ragged(values, offsets)
    np.testing.assert_array_equal(stats["avg"], [4.0, np.nan, 20.0])
    # [10, 30]: deviations -10, +10 -> 200 / 1 -> stdev sqrt(200)
    np.testing.assert_allclose(stats["stdev"], [2.0, np.nan, math.sqrt(200.0)])
    np.testing.assert_array_equal(stats["min_idx"], [0, -1, 0])
    np.testing.assert_array_equal(stats["max_idx"], [2, -1, 1])


# --- percentiles ----------------------------------------------------------------------


def test_percentiles_follow_nearest_rank_wikipedia_example():
    # Wikipedia's nearest-rank example (cited by Kusto's percentile page), n = 5:
    # rank = ceil(P/100 * 5): P5 -> 1 -> 15, P30 -> 2 -> 20, P40 -> 2 -> 20,
    # P50 -> 3 -> 35, P100 -> 5 -> 50; P0 is the minimum.
    got = K.percentiles([15, 20, 35, 40, 50], [0, 5, 30, 40, 50, 100])
    np.testing.assert_array_equal(got, [15, 15, 20, 20, 35, 50])


def test_percentile_returns_an_element_not_an_interpolation():
    # [1, 2, 3, 4]: P50 rank ceil(2) = 2 -> 2 (linear interpolation would give 2.5).
    assert K.percentiles([4, 1, 3, 2], [50])[0] == 2.0


def test_nearest_rank_index_is_exact_for_whole_ranks():
    # 10 * 30 / 100 = 3 exactly -> rank 3 -> index 2 (0.1 * 30 would be 3.0000000000000004).
    assert K.nearest_rank_index(10, 30) == 2
    # 7 * 100 / 100 = 7 -> index 6; 7 * 101 / 100 = 7.07 -> rank 8 -> index 7.
    assert K.nearest_rank_index(7, 100) == 6
    assert K.nearest_rank_index(7, 101) == 7


def test_percentiles_ignore_nan():
    # NaN is dropped: [1, 2, 3] -> P50 rank ceil(1.5) = 2 -> 2.
    assert K.percentiles([np.nan, 3, 1, 2], [50])[0] == 2.0


def test_percentiles_ragged_gives_nan_for_an_empty_series():
    got = K.percentiles_ragged(np.array([5.0, 1.0]), np.array([0, 0, 2]), [50])
    assert math.isnan(got[0, 0]) and got[1, 0] == 1.0  # [1, 5]: rank ceil(1) = 1 -> 1


# --- series_outliers ------------------------------------------------------------------

# n = 20: one low value 0, 18 values 10..27, one high value 60, in a shuffled order.
OUTLIER_SERIES = [14, 60, 10, 21, 0, 18, 25, 11, 27, 13, 19, 12, 26, 15, 20, 16, 22, 17, 23, 24]


def test_ctukey_scores_distance_beyond_10th_and_90th_percentiles():
    # sorted: 0, 10, 11, ..., 27, 60. Nearest rank: P10 rank ceil(2) = 2 -> 10,
    # P90 rank ceil(18) = 18 -> 26; spread 26 - 10 = 16.
    # 60 -> (60 - 26) / 16 = 2.125;  27 -> (27 - 26) / 16 = 0.0625;
    # 0 -> (0 - 10) / 16 = -0.625;   10..26 -> 0 (inside the percentiles).
    scores = K.series_outliers(OUTLIER_SERIES)
    expected = {60: 2.125, 27: 0.0625, 0: -0.625}
    for value, score in zip(OUTLIER_SERIES, scores, strict=True):
        assert score == expected.get(value, 0.0), value


def test_tukey_kind_uses_quartiles():
    # P25 rank ceil(5) = 5 -> sorted[4] = 13; P75 rank ceil(15) = 15 -> sorted[14] = 23;
    # spread 10. 60 -> 37/10 = 3.7; 27 -> 0.4; 24 -> 0.1; 0 -> -13/10 = -1.3; 10 -> -0.3.
    scores = dict(zip(OUTLIER_SERIES, K.series_outliers(OUTLIER_SERIES, kind="tukey"), strict=True))
    assert scores[60] == pytest.approx(3.7)
    assert scores[27] == pytest.approx(0.4)
    assert scores[24] == pytest.approx(0.1)
    assert scores[0] == pytest.approx(-1.3)
    assert scores[10] == pytest.approx(-0.3)
    assert scores[13] == 0.0 and scores[23] == 0.0


def test_ctukey_custom_percentiles():
    # P5 rank ceil(1) = 1 -> 0; P95 rank ceil(19) = 19 -> 27; spread 27; 60 -> 33/27.
    scores = K.series_outliers(OUTLIER_SERIES, min_percentile=5, max_percentile=95)
    assert scores[OUTLIER_SERIES.index(60)] == pytest.approx(33 / 27)
    assert np.count_nonzero(scores) == 1


def test_ctukey_zero_spread_makes_values_beyond_infinite():
    # ten 5s and one 9 (n = 11): P10 rank ceil(1.1) = 2 -> 5, P90 rank ceil(9.9) = 10 -> 5.
    scores = K.series_outliers([5] * 10 + [9])
    assert scores[-1] == math.inf
    assert np.all(scores[:-1] == 0.0)


def test_ctukey_ignores_nan_and_ignore_val():
    # usable: 1..10 (n = 10): P10 rank 1 -> 1, P90 rank 9 -> 9; 10 -> (10 - 9) / 8.
    x = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, np.nan, -1]
    scores = K.series_outliers(x, ignore_val=-1)
    assert scores[9] == 0.125
    assert scores[10] == 0.0 and scores[11] == 0.0
    assert np.count_nonzero(scores) == 1


def test_series_outliers_ragged_equals_one_call_per_series():
    a = OUTLIER_SERIES
    b = [5] * 10 + [9]
    values = np.array(a + b, dtype=float)
    offsets = K.offsets_from_lengths([len(a), 0, len(b)])
    together = K.series_outliers_ragged(values, offsets)
    np.testing.assert_array_equal(
        together, np.concatenate([K.series_outliers(a), K.series_outliers(b)])
    )


def test_series_outliers_rejects_unknown_kind_and_bad_percentiles():
    with pytest.raises(ValueError):
        K.series_outliers([1, 2, 3], kind="zscore")
    with pytest.raises(ValueError):
        K.series_outliers([1, 2, 3], min_percentile=1)
    with pytest.raises(ValueError):
        K.series_outliers([1, 2, 3], min_percentile=60, max_percentile=40)


def test_flatten_lists_keeps_empty_and_null_lists_as_empty_series():
    values, offsets = K.flatten_lists(pl.Series([[1.0, 2.0], [], None, [3.0]]))
    np.testing.assert_array_equal(values, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(offsets, [0, 2, 2, 2, 3])


# --- series_periods_detect ------------------------------------------------------------

# The 12-hour-bin traffic series from the series_periods_detect() page (Kusto: 14, 0.84).
DOC_PERIOD_SERIES = [
    80, 139, 87, 110, 68, 54, 50, 51, 53, 133, 86, 141, 97, 156, 94, 149, 95, 140, 77, 61,
    50, 54, 47, 133, 72, 152, 94, 148, 105, 162, 101, 160, 87, 63, 53, 55, 54, 151, 103, 189,
    108, 183, 113, 175, 113, 178, 90, 71, 62, 62, 65, 165, 109, 181, 115, 182, 121, 178, 114, 170,
]  # fmt: skip


def _acf_by_loops(y: list[float], lag: int) -> float:
    """The biased autocorrelation, written out plainly as an independent check."""
    mean = sum(y) / len(y)
    num = sum((y[t] - mean) * (y[t + lag] - mean) for t in range(len(y) - lag))
    den = sum((v - mean) ** 2 for v in y)
    return num / den


def test_periods_detect_finds_the_documented_14_bin_week():
    periods, scores = K.series_periods_detect(DOC_PERIOD_SERIES, 0.0, 50.0, 2)
    assert periods[0] == 14.0
    assert scores[0] == pytest.approx(_acf_by_loops(DOC_PERIOD_SERIES, 14))  # 0.736
    assert periods.shape == (2,) and scores.shape == (2,)


def test_periods_detect_finds_nothing_in_a_flat_or_short_series():
    periods, scores = K.series_periods_detect([5.0] * 20, 0.0, 10.0, 1)
    assert periods[0] == 0.0 and scores[0] == 0.0
    periods, _ = K.series_periods_detect([1.0, 9.0] * 3, 0.0, 3.0, 1)  # n = 6 < 2 * 4
    assert periods[0] == 0.0


# --- series_decompose -----------------------------------------------------------------

SPIKE = [10, 12, 11, 13, 10, 12, 11, 13, 14, 44]


def test_decompose_avg_trend_is_the_mean_without_seasonality():
    # mean = ((10 + 12 + 11 + 13) * 2 + 14 + 44) / 10 = 150 / 10 = 15
    parts = K.series_decompose(SPIKE, seasonality=0)
    np.testing.assert_array_equal(parts.baseline, [15.0] * 10)
    np.testing.assert_array_equal(parts.residual, [-5, -3, -4, -2, -5, -3, -4, -2, -1, 29])
    assert parts.period == 0


def test_decompose_seasonal_is_the_median_of_each_phase():
    # period 2: phase 0 = 1, 1, 1, 2 -> median 1; phase 1 = 5, 5, 5, 9 -> median 5.
    # deseasonal = 0, 0, 0, 0, 0, 0, 1, 4 -> avg trend 5/8 = 0.625.
    parts = K.series_decompose([1, 5, 1, 5, 1, 5, 2, 9], seasonality=2)
    np.testing.assert_array_equal(parts.seasonal, [1, 5, 1, 5, 1, 5, 1, 5])
    np.testing.assert_array_equal(parts.trend, [0.625] * 8)
    np.testing.assert_array_equal(parts.residual, [-0.625] * 6 + [0.375, 3.375])


def test_decompose_linefit_is_least_squares_line():
    # t = 0..3, y = 0, 2, 1, 3: mean t 1.5, mean y 1.5, Sxy = 4, Sxx = 5 -> slope 0.8,
    # intercept 1.5 - 0.8 * 1.5 = 0.3 -> 0.3, 1.1, 1.9, 2.7.
    parts = K.series_decompose([0, 2, 1, 3], seasonality=0, trend="linefit")
    np.testing.assert_allclose(parts.trend, [0.3, 1.1, 1.9, 2.7])
    np.testing.assert_allclose(parts.residual, [-0.3, 0.9, -0.9, 0.3], atol=1e-12)


def test_decompose_test_points_are_extrapolated_not_learned():
    # The line is fitted on 0, 1, 2, 3 (y = t) and extrapolated to t = 4 -> 4.
    parts = K.series_decompose([0, 1, 2, 3, 100], seasonality=0, trend="linefit", test_points=1)
    np.testing.assert_allclose(parts.trend, [0, 1, 2, 3, 4], atol=1e-12)
    assert parts.residual[-1] == pytest.approx(96.0)


def test_decompose_with_nothing_enabled_returns_the_series_as_residual():
    parts = K.series_decompose([3, 1, 2], seasonality=0, trend="none")
    np.testing.assert_array_equal(parts.baseline, [0, 0, 0])
    np.testing.assert_array_equal(parts.residual, [3, 1, 2])


def test_decompose_autodetects_a_clear_period():
    # A square wave of period 6; biased ACF at lag 6 = 42/48 = 0.875 >= 0.6.
    pattern = [0, 0, 0, 10, 10, 10]
    parts = K.series_decompose(pattern * 8)
    assert parts.period == 6
    np.testing.assert_array_equal(parts.seasonal, pattern * 8)
    np.testing.assert_array_equal(parts.residual, [0.0] * 48)


def test_decompose_rejects_unknown_trend():
    with pytest.raises(ValueError):
        K.series_decompose([1, 2, 3], trend="loess")


# --- series_decompose_anomalies -------------------------------------------------------


def test_decompose_anomalies_flags_a_single_spike():
    # residuals (baseline 15): sorted -5, -5, -4, -4, -3, -3, -2, -2, -1, 29.
    # n = 10: P10 rank 1 -> -5, P90 rank 9 -> -1; spread 4; 44 -> (29 + 1) / 4 = 7.5.
    result = K.series_decompose_anomalies(SPIKE, 1.5, 0)
    np.testing.assert_array_equal(result.flags, [0] * 9 + [1])
    np.testing.assert_array_equal(result.score, [0] * 9 + [7.5])
    np.testing.assert_array_equal(result.baseline, [15.0] * 10)


def test_decompose_anomalies_flags_a_dip_as_minus_one():
    # 10, 12, 11, 13 x4, then 10, 12, 11, then -20 (n = 20): mean 197 / 20 = 9.85.
    # residuals: 10 -> 0.15 (x5), 11 -> 1.15 (x5), 12 -> 2.15 (x5), 13 -> 3.15 (x4),
    # -20 -> -29.85. P10 rank 2 -> 0.15; P90 rank 18 -> 3.15; spread 3.
    # -20 -> (-29.85 - 0.15) / 3 = -10.
    y = [10, 12, 11, 13] * 4 + [10, 12, 11, -20]
    result = K.series_decompose_anomalies(y, 1.5, 0)
    assert result.flags[-1] == -1
    assert result.score[-1] == pytest.approx(-10.0)
    assert np.count_nonzero(result.flags) == 1


def test_decompose_anomalies_score_at_threshold_is_not_an_anomaly():
    # Same spike, threshold 7.5: its score 7.5 is not > 7.5.
    result = K.series_decompose_anomalies(SPIKE, 7.5, 0)
    assert np.count_nonzero(result.flags) == 0
