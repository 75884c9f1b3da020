"""Elastic's beaconing statistics against hand-worked numbers (see the comments) and
against a plain loop-per-row rendering of the published reduce script."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors.stats import elastic as E

# --- truncation -----------------------------------------------------------------------


def test_truncate_keeps_order_statistics_at_elastic_indices():
    # n = 10 non-zero values: lower index floor(0.1*10 + 0.5) = 1 -> value 2,
    # upper index floor(0.8*10 + 0.5) = 8 -> value 9; kept 2..9.
    kept = E.truncate([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    np.testing.assert_array_equal(kept, [2, 3, 4, 5, 6, 7, 8, 9])


def test_truncate_rounds_index_half_up():
    # n = 5: lower floor(0.5 + 0.5) = 1 -> 2; upper min(floor(4.0 + 0.5), 4) = 4 -> 5.
    np.testing.assert_array_equal(E.truncate([5, 4, 3, 2, 1]), [5, 4, 3, 2])


def test_truncate_ignores_empty_buckets_and_keeps_original_order():
    # Non-zero values 5, 1, 3 (n = 3): lower floor(0.3 + 0.5) = 0 -> 1,
    # upper min(floor(2.4 + 0.5), 2) = 2 -> 5; all three kept, zeros never.
    np.testing.assert_array_equal(E.truncate([0, 5, 0, 1, 3]), [5, 1, 3])


def test_truncate_keeps_every_tie_at_a_bound():
    # Nine 4s and one 100: both bounds are 4 (indices 1 and 8), so all nine 4s stay.
    np.testing.assert_array_equal(E.truncate([4] * 9 + [100]), [4] * 9)


def test_truncate_single_value_is_kept():
    # n = 1: upper index min(floor(0.8 + 0.5), 0) = 0.
    np.testing.assert_array_equal(E.truncate([0, 7, 0]), [7])


# --- coefficient of variation / relative variance --------------------------------------


def test_coefficient_of_variation_of_truncated_values():
    # 1..10 truncates to 2..9: mean 5.5, population variance (8^2 - 1)/12 = 5.25.
    cov = E.coefficient_of_variation(np.arange(1, 11))
    assert cov[0] == pytest.approx(math.sqrt(5.25) / 5.5, rel=1e-15)


def test_relative_variance_is_std_over_mean_as_the_script_tests():
    # 9, 11 alternating (n = 10): bounds 9 and 11, all kept; mean 10, variance 1 -> 0.1.
    # (variance/mean would be 0.1 too here, so also check a case where they differ.)
    assert E.relative_variance([9, 11] * 5)[0] == 0.1
    # 2, 6 alternating: mean 4, variance 4, std 2 -> std/mean 0.5 (variance/mean = 1.0).
    assert E.relative_variance([2, 6] * 5)[0] == 0.5


def test_truncated_stats_rows_are_independent():
    matrix = np.array([[9, 11] * 5, [0] * 10, [2, 6] * 5], dtype=float)
    stats = E.truncated_stats(matrix)
    np.testing.assert_array_equal(stats.mean, [10.0, np.nan, 4.0])
    np.testing.assert_array_equal(stats.std, [1.0, np.nan, 2.0])
    np.testing.assert_array_equal(stats.kept, [10, 0, 10])


def test_low_variation_passes_exactly_at_the_limit():
    stats = E.truncated_stats([9, 11] * 5)  # std 1 = 0.1 * mean 10
    assert E.low_variation(stats, 0.1)[0]
    assert not E.low_variation(stats, 0.0999)[0]


def test_low_variation_fails_for_an_empty_row():
    assert not E.low_variation(E.truncated_stats([0, 0, 0]), 10.0)[0]


# --- autocovariance -------------------------------------------------------------------


def test_autocovariance_lag_one_worked_example():
    # [1, 2, 3, 4], lag 1: segments start at 0, 1, 2; mean over [1, 3) = (2 + 3)/2 = 2.5.
    # x - m = -0.5, 0.5, 1.5; y - m = -1.5, -0.5, 0.5.
    # sum xy = 0.75 - 0.25 + 0.75 = 1.25; sum x^2 = sum y^2 = 2.75 -> 1.25 / 2.75 = 5/11.
    assert E.autocovariance([1, 2, 3, 4], 1) == pytest.approx(5 / 11, rel=1e-15)


def test_autocovariance_lag_two_worked_example():
    # [1, 3, 2, 4, 1, 3, 2, 4], lag 2: segments at 0, 2, 4; mean over [2, 4) = 3.
    # x blocks [2,4] [1,3] [2,4] -> deviations [-1,1] [-2,0] [-1,1], sum x^2 = 8
    # y blocks [1,3] [2,4] [1,3] -> deviations [-2,0] [-1,1] [-2,0], sum y^2 = 10
    # sum xy = 2 + 2 + 2 = 6 -> 6 / sqrt(80).
    value = E.autocovariance([1, 3, 2, 4, 1, 3, 2, 4], 2)
    assert value == pytest.approx(6 / math.sqrt(80), rel=1e-15)


def test_autocovariance_uses_zero_mean_when_the_script_range_is_empty():
    # [1, 3, 2, 4, 1, 3], lag 2: mean range [2, 2 * floor(3 / 2)) = [2, 2) is empty, so
    # the script's mean is 0. x blocks [2,4] [1,3], y blocks [1,3] [2,4]:
    # sum xy = 2 + 12 + 2 + 12 = 28, sum x^2 = sum y^2 = 30 -> 28/30.
    assert E.autocovariance([1, 3, 2, 4, 1, 3], 2) == pytest.approx(28 / 30, rel=1e-15)


def test_autocovariance_of_a_constant_signal_is_one():
    # Every deviation is 0, so the denominator is 0 and the script answers 1.0.
    assert E.autocovariance([5.0] * 12, 3) == 1.0


def test_autocovariance_rejects_a_signal_shorter_than_two_lags():
    with pytest.raises(ValueError):
        E.autocovariance([1, 2, 3], 2)


# --- periodic score -------------------------------------------------------------------


def test_active_span_is_first_to_one_past_last_non_empty_bucket():
    first, stop = E.active_span(np.array([[0, 0, 3, 0, 1, 0], [0, 0, 0, 0, 0, 0]]))
    np.testing.assert_array_equal(first, [2, 0])
    np.testing.assert_array_equal(stop, [5, 0])


def test_periodic_score_finds_a_spike_train_period():
    # A spike every 3 buckets, span 25: periods 2..floor(25/6) = 4. At lag 3 every block
    # is [2, 0, 0] against [2, 0, 0] -> exactly 1; lags 2 and 4 are below 1.
    counts = [0, 0] + [2, 0, 0] * 8 + [2, 0]
    score, period = E.periodic_score(counts)
    assert period[0] == 3
    assert score[0] == pytest.approx(1.0, abs=1e-15)


def test_periodic_score_of_constant_counts_is_one_at_the_shortest_period():
    # Zero denominators give 1.0 for every period; the first maximum is period 2.
    score, period = E.periodic_score([4.0] * 12)
    assert (score[0], period[0]) == (1.0, 2)


def test_periodic_score_needs_span_of_two_shortest_periods():
    # Span 11 < 2 * 6: no candidate period (floor(11/6) = 1).
    score, period = E.periodic_score([1.0] * 11)
    assert math.isnan(score[0]) and period[0] == 0


def test_periodic_score_jitter_recovers_a_wobbling_beacon():
    # A spike every 4 buckets, every other one late by one bucket: without jitter the
    # blocks never line up; with max_jitter 0.25 (one bucket at period 4) they do.
    counts = np.zeros(48)
    for k in range(12):
        counts[4 * k + (k % 2)] = 1.0
    # Spikes are alternately 5 and 3 buckets apart, so each has another exactly 8 later:
    # at period 7, jitter ±floor(0.25*7) = ±1 reaches lag 8 in every block -> 1.0.
    strict, _ = E.periodic_score(counts, 6, 0.0)
    jittered, period = E.periodic_score(counts, 6, 0.25)
    assert strict[0] < 0.5
    assert (jittered[0], period[0]) == (pytest.approx(1.0, abs=1e-12), 7)
    assert (jittered[0], period[0]) == (pytest.approx(_reference(counts, 6, 0.25)[0]), 7)


def _reference(counts: np.ndarray, periods: int, max_jitter: float) -> tuple[float, int]:
    """The reduce script's periodicity part, one row, loops as published (independent
    of the vectorised code): greedy jitter per block, multiples folded into divisors."""
    c = [float(v) for v in counts]
    a = next((i for i, v in enumerate(c) if v != 0), len(c))
    b = len(c) - next((i for i, v in enumerate(reversed(c)) if v != 0), len(c))
    top = (b - a) // periods
    if top < 2:
        return math.nan, 0
    xs, ys, xys = [0.0] * (top + 1), [0.0] * (top + 1), [0.0] * (top + 1)
    seen, avg = [0] * (top + 1), [0.0] * (top + 1)

    def ratio(xy: float, x: float, y: float) -> float:
        z = math.sqrt(x * y)
        return 1.0 if z == 0.0 else xy / z

    for p in range(2, top + 1):
        jit = int(max_jitter * p)
        start, last = a + jit, b - 2 * p
        window = c[start + p : start + p * ((last + 1 - start) // p)]
        m = sum(window) / len(window) if window else 0.0
        for i in range(start, last + 1, p):
            xv = sum((c[j] - m) ** 2 for j in range(i + p, i + 2 * p))
            yv, xy = [], []
            for d in range(-jit, jit + 1):
                yv.append(sum((c[j - p - d] - m) ** 2 for j in range(i + p, i + 2 * p)))
                xy.append(sum((c[j - p - d] - m) * (c[j] - m) for j in range(i + p, i + 2 * p)))
            sig = [ratio(xy[k], xv, yv[k]) for k in range(2 * jit + 1)]
            k = sig.index(max(sig))
            xs[p], ys[p], xys[p] = xs[p] + xv, ys[p] + yv[k], xys[p] + xy[k]
            for q in range(2, p // 2):
                if p % q == 0:
                    jq = int(max_jitter * q)
                    sub = xy[jit - jq : jit + jq + 1]
                    k2 = jit - jq + sub.index(max(sub))
                    xs[q], ys[q], xys[q] = xs[q] + xv, ys[q] + yv[k2], xys[q] + xy[k2]
        seen[p] += 1
        avg[p] = ratio(xys[p], xs[p], ys[p])
        for q in range(2, p // 2):
            if p % q == 0:
                n = seen[q] + 1
                seen[q] += 1
                avg[q] = ((n - 1) * avg[q] + ratio(xys[q], xs[q], ys[q])) / n
    scores = avg[2:]
    best = scores.index(max(scores))
    return scores[best], best + 2


@pytest.mark.parametrize("max_jitter", [0.0, 0.1, 0.25, 0.5])
def test_periodic_score_matches_the_published_loops_row_by_row(max_jitter):
    rng = np.random.default_rng(7)
    rows = []
    for index in range(24):
        length = int(rng.integers(12, 160))
        if index % 3 == 0:
            row = rng.poisson(1.0, length).astype(float)
        elif index % 3 == 1:
            row = np.zeros(length)
            row[:: int(rng.integers(2, 9))] = rng.integers(1, 4)
            row *= rng.random(length) > 0.15  # some beats lost
        else:
            row = (rng.random(length) < 0.4) * rng.integers(1, 6, length).astype(float)
        pad = int(rng.integers(0, 6))
        rows.append(np.concatenate([np.zeros(pad), row]))
    matrix = np.zeros((len(rows), 170))
    for index, row in enumerate(rows):
        matrix[index, : row.size] = row
    score, period = E.periodic_score(matrix, 6, max_jitter)
    for index in range(len(rows)):
        want_score, want_period = _reference(matrix[index], 6, max_jitter)
        if math.isnan(want_score):
            assert math.isnan(score[index]) and period[index] == 0
        else:
            assert score[index] == pytest.approx(want_score, abs=1e-12)
            assert period[index] == want_period


def test_periodic_score_folds_multiples_into_divisors():
    # Span 36: periods 2..6, and period 6 folds into period 2 (2 < 6 // 2). Period 2's
    # score is then the mean of its own value and the pooled (lag 2 + lag 6) value, so
    # it is no longer the lone lag-2 autocovariance.
    counts = np.array([3.0, 1.0] * 18)
    counts[7], counts[20] = 2.0, 4.0  # two disturbed beats
    want_score, want_period = _reference(counts, 6, 0.0)
    score, period = E.periodic_score(counts)
    assert period[0] == want_period == 2
    assert score[0] == pytest.approx(want_score, abs=1e-12)
    assert abs(score[0] - E.autocovariance(counts, 2)) > 1e-3


def test_periodic_score_chunks_give_the_same_answer(monkeypatch):
    rng = np.random.default_rng(11)
    matrix = rng.poisson(0.7, (40, 90)).astype(float)
    whole = E.periodic_score(matrix, 6, 0.1)
    monkeypatch.setattr(E, "_CHUNK_ELEMENTS", 1)  # one row per chunk
    pieces = E.periodic_score(matrix, 6, 0.1)
    np.testing.assert_array_equal(whole[0], pieces[0])
    np.testing.assert_array_equal(whole[1], pieces[1])


def test_periodic_score_rejects_jitter_outside_zero_to_one():
    with pytest.raises(ValueError):
        E.periodic_score([1.0] * 20, 6, 1.5)
