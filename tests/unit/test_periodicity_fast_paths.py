"""The periodicity hunt's faster paths give what the straightforward computations give.

Each shortcut (the autocorrelation counted from events, the N-point periodogram, the
p-values of every series length in one call, refinements that stop reading converged
pairs, medians and quantiles that skip sorts) is checked against a plain reference:
the previous algorithm, a brute-force loop or numpy's own function, on data built to
reach the shortcut's edge cases.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import detectors.stats.periodogram as periodogram
import detectors.stats.segments as segments
from detectors.stats.bursts import burst_clusters
from detectors.stats.periodogram import (
    PeriodSettings,
    _delta_stage,
    _deltas,
    _fit_multiples,
    _lag_pairs,
    _spectral_stage,
    fisher_g_pvalue,
)
from detectors.stats.renewal import _refined_period, segment_shorth
from detectors.stats.segments import (
    segment_count,
    segment_ids,
    segment_median,
    segment_sum,
    sorted_deltas,
    sorted_within_groups,
)


def _pairs(seed: int, n_pairs: int = 240) -> tuple[np.ndarray, np.ndarray]:
    """Times of many pairs: jittered beacons, beacons with most check-ins lost (deltas
    of 2 and 3 sleeps: fewer than three one-sleep deltas), beacons with nightly pauses,
    bursts, Poisson traffic and short pairs."""
    rng = np.random.default_rng(seed)
    times, counts = [], []
    for i in range(n_pairs):
        kind = i % 6
        size = int(rng.integers(6, 120))
        if kind == 0:
            d = 300.0 * (1 - 0.4 * rng.random(size))
        elif kind == 1:
            d = 120.0 * rng.choice([2.0, 3.0], size) + rng.normal(0, 2.0, size)
        elif kind == 2:
            d = np.where(rng.random(size) < 0.1, 8 * 3600.0, 60.0 + rng.normal(0, 3, size))
        elif kind == 3:
            d = rng.choice([0.5, 1.0, 600.0], size)
        elif kind == 4:
            d = rng.exponential(900.0, size)
        else:
            d = 45.0 + rng.normal(0, 9.0, size)
        t = np.concatenate([[0.0], np.cumsum(np.abs(d) + 0.01)])
        times.append(t)
        counts.append(t.size)
    return np.concatenate(times), np.array(counts, dtype=np.int64)


# --- the autocorrelation counted from events ------------------------------------------


def test_lag_pairs_by_hand():
    # Row 0: bins 0, 2, 2, 5 of 8; lags 2..3: 0->2 twice, 2->5 twice = 4.
    # Row 1: bins 1, 7; lags 6..7: 1->7 = 1 (lag 7 from bin 1 would leave the row).
    size = 8
    flat = np.array([0, 2, 2, 5, size + 1, size + 7])
    row = np.array([0, 0, 0, 0, 1, 1])
    got = _lag_pairs(flat, row, size, np.array([2, 6]), np.array([3, 7]), 2)
    assert got.tolist() == [4.0, 1.0]


def test_lag_pairs_equals_the_raw_autocorrelation():
    rng = np.random.default_rng(3)
    size, n_rows = 64, 40
    bins = [np.sort(rng.integers(0, size, rng.integers(0, 30))) for _ in range(n_rows)]
    row = np.concatenate([np.full(b.size, i) for i, b in enumerate(bins)]).astype(np.int64)
    flat = row * size + np.concatenate(bins).astype(np.int64)
    lag_lo = rng.integers(1, size, n_rows)
    lag_hi = np.minimum(lag_lo + rng.integers(0, 20, n_rows), size - 1)
    got = _lag_pairs(flat, row, size, lag_lo, lag_hi, n_rows)
    for i, b in enumerate(bins):
        x = np.bincount(b, minlength=size)
        acf = np.correlate(x, x, mode="full")[size - 1 :]  # acf[L] = sum_t x_t x_(t+L)
        assert got[i] == acf[lag_lo[i] : lag_hi[i] + 1].sum()


def _spectral_reference(times, counts, eligible, stage, s):
    """The previous spectral stage: 2N-point zero-padded FFTs, the autocorrelation by
    the inverse FFT, one p-value call per batch."""
    n = counts.size
    g = np.full(n, np.nan)
    fisher_p = np.ones(n)
    fft_period = np.full(n, np.nan)
    acf_lift = np.full(n, np.nan)
    period = stage["period"]
    ok = eligible & np.isfinite(period) & (period > 0)
    # the same series (bins, widths) as the fast path: only the spectrum is redone here
    tc, starts, n_bins, width, origin = periodogram.series_grid(
        times, counts, period, stage["gap_index"], s
    )
    k_min = max(1, math.ceil(s.min_span_periods))
    lo = np.nan_to_num(stage["lo"], nan=0.0)
    hi = np.nan_to_num(stage["hi"], nan=0.0)
    bands = {}
    for i in np.flatnonzero(ok):
        size = int(n_bins[i])
        t = tc[starts[i] : starts[i] + counts[i]]
        b = np.floor((t - origin[i]) / width[i])
        b = b[(b >= 0) & (b < size)].astype(np.int64)
        x = np.bincount(b, minlength=size).astype(np.float64)
        spectrum = np.fft.rfft(x, n=2 * size)
        power = spectrum.real**2 + spectrum.imag**2
        band = power[2 * k_min : size : 2]
        bands[i] = (band, size * width[i], k_min)
        g[i] = band.max() / band.sum() if band.sum() > 0 else np.nan
        fisher_p[i] = fisher_g_pvalue(g[i], band.size)[0]
        fft_period[i] = size * width[i] / (band.argmax() + k_min)
        acf = np.fft.irfft(power, n=2 * size)[:size]
        lag_lo = int(np.clip(np.floor(lo[i] / width[i]) - 1, 1, size - 1))
        lag_hi = int(np.clip(np.ceil(hi[i] / width[i]) + 1, 1, size - 1))
        expected = (b.size - 1) * (lag_hi - lag_lo + 1) / size
        if acf[0] > 0 and expected > 0:
            acf_lift[i] = acf[lag_lo : lag_hi + 1].sum() / acf[0] / expected
    return {
        "g": g,
        "fisher_p": fisher_p,
        "fft_period": fft_period,
        "acf_lift": acf_lift,
        "bands": bands,
    }


@pytest.mark.parametrize("max_bins", [2**14, 64])  # 64: long pairs keep their recent part
def test_spectral_stage_equals_the_zero_padded_reference(max_bins):
    times, counts = _pairs(seed=21, n_pairs=120)
    s = PeriodSettings(max_bins=max_bins)
    stage = _delta_stage(times, counts, s)
    eligible = counts >= 6
    got = _spectral_stage(times, counts, eligible, stage, s)
    want = _spectral_reference(times, counts, eligible, stage, s)
    assert np.isfinite(want["acf_lift"]).sum() > 100
    assert (want["fisher_p"] > 0.1).sum() > 5
    if max_bins > 64:
        assert (want["fisher_p"] < 1e-6).sum() > 20
    # The peak's frequency: the same, except where two ordinates tie to rounding (a
    # strictly periodic train has equal harmonics) and the two transforms' last bits
    # pick different ones; then the one taken must be as high as the highest.
    differ = np.flatnonzero(got["fft_period"] != want["fft_period"])
    assert differ.size <= counts.size // 5
    for i in differ:
        band, length_s, k_min = want["bands"][i]
        k = round(length_s / got["fft_period"][i]) - k_min
        assert band[k] == pytest.approx(band.max(), rel=1e-9)
    for key in ("g", "fisher_p"):
        np.testing.assert_allclose(got[key], want[key], rtol=1e-12, atol=1e-300, err_msg=key)
    # The inverse FFT leaves ~1e-16 where no two events are a sleep apart; the count is 0.
    np.testing.assert_allclose(got["acf_lift"], want["acf_lift"], rtol=1e-12, atol=1e-12)
    assert (got["acf_lift"] == 0).sum() >= 5


def test_fisher_pvalue_in_one_call_equals_one_call_each_and_the_formula():
    rng = np.random.default_rng(8)
    g = np.concatenate([rng.uniform(0.001, 0.6, 300), [0.25, 0.5, 1.0, 0.0, np.nan]])
    m = rng.integers(2, 5000, g.size)
    batch = fisher_g_pvalue(g, m)
    each = np.array([fisher_g_pvalue(gi, mi)[0] for gi, mi in zip(g, m, strict=True)])
    np.testing.assert_array_equal(batch, each)
    # Fisher's sum itself, term by term with exact binomials, where it does not cancel.
    for gi, mi in [(0.3, 10), (0.45, 7), (0.2, 20), (0.26, 12), (0.1, 30), (0.05, 60)]:
        exact = math.fsum(
            (-1) ** (j - 1) * math.comb(mi, j) * (1 - j * gi) ** (mi - 1)
            for j in range(1, math.floor(1 / gi) + 1)
        )
        assert fisher_g_pvalue(gi, mi)[0] == pytest.approx(exact, rel=1e-12)


# --- refinements that stop reading converged pairs -----------------------------------


def _fit_reference(dl, n, start, in_run, tol):
    """The previous fit: three passes over every delta, then the fit."""
    period = start.copy()
    d, ids = dl.d, dl.ids
    for _ in range(3):
        p = period[ids]
        k = np.maximum(1.0, np.rint(d / p))
        near = in_run & (np.abs(d / p - k) <= tol)
        total = segment_sum(np.where(near, d / k, 0.0), ids, n)
        used = segment_count(near, ids, n)
        period = np.where(used > 0, total / np.maximum(used, 1), period)
    p = period[ids]
    k = np.maximum(1.0, np.rint(d / p))
    near = in_run & (np.abs(d / p - k) <= tol)
    return period, segment_count(near, ids, n) / np.maximum(segment_count(in_run, ids, n), 1)


def _fit_one_pass(dl, n, period, in_run):
    p = period[dl.ids]
    k = np.maximum(1.0, np.rint(dl.d / p))
    near = in_run & (np.abs(dl.d / p - k) <= 0.35)
    total = segment_sum(np.where(near, dl.d / k, 0.0), dl.ids, n)
    used = segment_count(near, dl.ids, n)
    return np.where(used > 0, total / np.maximum(used, 1), period)


@pytest.mark.parametrize("share", [0.0, 0.5, 1.01])  # never, sometimes, always a subset
def test_fit_multiples_equals_three_full_passes(share, monkeypatch):
    monkeypatch.setattr(segments, "SUBSET_SHARE", share)
    times, counts = _pairs(seed=4)
    n = counts.size
    dl = _deltas(times, segment_ids(counts))
    m0 = segment_median(dl.d, dl.ids, n)
    in_run = dl.d <= 4.0 * m0[dl.ids]
    runs = segment_count(in_run, dl.ids, n)
    moved_last = 0
    for divisor in (1.0, 2.0, 3.0):
        start = m0 / divisor
        got = _fit_multiples(dl, n, start, in_run, 0.35, runs)
        want = _fit_reference(dl, n, start, in_run, 0.35)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
        second = _fit_one_pass(dl, n, _fit_one_pass(dl, n, start, in_run), in_run)
        moved_last += int(np.sum(want[0] != second))
    # Some pairs still move in the third pass: stopping them early would fail above.
    assert moved_last > 0


@pytest.mark.parametrize("share", [0.0, 0.5, 1.01])
def test_refined_period_equals_five_full_passes(share, monkeypatch):
    monkeypatch.setattr(segments, "SUBSET_SHARE", share)
    times, counts = _pairs(seed=6)
    d = sorted_deltas(times, counts)
    ids = segment_ids(counts - 1)
    n = counts.size
    start = segment_median(d, ids, n, presorted=True) * np.linspace(0.6, 1.4, n)
    start[::17] = np.nan  # pairs without a first period stay without
    want = start.copy()
    moved_late = 0
    for step in range(5):
        ratio = d / want[ids]
        refined = segment_median(d, ids, n, (ratio >= 0.5) & (ratio < 1.5), presorted=True)
        new = np.where(np.isfinite(refined), refined, want)
        moved_late += int(np.sum(new != want)) if step >= 2 else 0
        want = new
    np.testing.assert_array_equal(_refined_period(d, ids, n, start), want)
    assert moved_late > 0  # pairs still moving after two passes are in the data


# --- sorts skipped or cheaper ------------------------------------------------------------


def test_shorth_equals_a_loop_over_windows():
    rng = np.random.default_rng(2)
    counts = rng.integers(0, 25, 200)
    values = np.concatenate([np.sort(rng.choice([1.0, 2.0, 3.0, 5.0], c)) for c in counts])
    h = rng.integers(0, 12, counts.size)
    index, ratio = segment_shorth(values, counts, h)
    starts = np.cumsum(counts) - counts
    for g, (c, hg) in enumerate(zip(counts, h, strict=True)):
        if hg < 1 or c < hg:
            assert index[g] == -1 and ratio[g] == np.inf
            continue
        v = values[starts[g] : starts[g] + c]
        ratios = [v[i + hg - 1] / v[i] for i in range(c - hg + 1)]
        best = int(np.argmin(ratios))  # the earliest of ties
        assert (index[g], ratio[g]) == (starts[g] + best, ratios[best])


def test_burst_size_median_equals_numpy_median_per_pair():
    # Pairs of 4 bursts with 2 singles (median 1.5: must be sorted) and with 3 (median 1).
    gap = 1000.0
    pairs = [
        [0, 1, 2, gap, 2 * gap, 2 * gap + 1, 3 * gap],  # sizes 3, 1, 2, 1 -> 1.5
        [0, gap, 2 * gap, 2 * gap + 1, 3 * gap],  # sizes 1, 1, 2, 1 -> 1
        [0, gap, 2 * gap],  # all single -> 1
        [0, 1, gap, gap + 1, 2 * gap, 2 * gap + 1],  # sizes 2, 2, 2 -> 2
    ]
    rng = np.random.default_rng(1)
    for _ in range(150):
        sizes = rng.choice([1, 1, 2, 3], rng.integers(1, 12))
        starts = np.arange(sizes.size) * gap
        pairs.append(
            (starts[:, None] + np.arange(sizes.max())[None, :])[
                np.arange(sizes.max())[None, :] < sizes[:, None]
            ].tolist()
        )
    times = np.concatenate([np.array(p, dtype=np.float64) for p in pairs])
    counts = np.array([len(p) for p in pairs])
    got = burst_clusters(times, counts)
    pair_of_burst = np.repeat(np.arange(counts.size), got["bursts"])
    for i in range(counts.size):
        want = np.median(got["sizes"][pair_of_burst == i])
        assert got["burst_size"][i] == want, i
    assert got["burst_size"][:4].tolist() == [1.5, 1.0, 1.0, 2.0]


def test_sorted_within_groups_equals_lexsort():
    rng = np.random.default_rng(5)
    ids = np.sort(rng.integers(0, 300, 5000))
    values = rng.choice([0.5, 1.0, 2.0, 7.25], ids.size) + rng.integers(0, 3, ids.size)
    want = values[np.lexsort((values, ids))]
    np.testing.assert_array_equal(sorted_within_groups(values, ids), want)
    shuffled = rng.permutation(ids.size)  # groups not contiguous: the other path
    got = sorted_within_groups(values[shuffled], ids[shuffled])
    np.testing.assert_array_equal(got, want)


def test_one_sleep_quantiles_equal_a_sort_of_their_own():
    times, counts = _pairs(seed=13)
    s = PeriodSettings()
    shared = _delta_stage(times, counts, s, sorted_deltas(times, counts))
    own = _delta_stage(times, counts, s)
    # Pairs read as multiples (fewer than three one-sleep deltas) take the sorting path.
    dl = _deltas(times, segment_ids(counts))
    ratio = dl.d / own["period"][dl.ids]
    single = (ratio < 1.6) & (dl.d <= s.gap_factor * own["period"][dl.ids])
    assert (segment_count(single, dl.ids, counts.size) < 3).sum() >= 5
    for key in ("lo", "hi", "centre", "sleep", "jitter_pct", "deltas_p"):
        np.testing.assert_array_equal(shared[key], own[key], err_msg=key)
