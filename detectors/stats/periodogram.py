"""Periodicity of a pair's connection times: the sleep, the jitter and a significance test.

Per-delta methods (seed 001) break when connections go unlogged (a delta becomes 2x or
3x the sleep), when the sleep is long, or when a beacon only runs in working hours.
This module works on the *counting process* and on deltas read as multiples of a
period, after Heard, Rubin-Delanchy & Lawson (2014, "Filtering automated polling
traffic in computer network flow data"): the periodogram of the binned event times is
tested with Fisher's g-test (Fisher 1929), as MSTICPy's PeriodogramPollingDetector
does; the candidate period is checked against the autocorrelation as in Baywatch
(Hu et al., DSN 2016), and against the deltas.

Everything runs over many pairs at once: times of all pairs are laid end to end with
a count per pair, statistics per pair use ``stats.segments``, and the FFTs are batched
per series length. ``estimate_period`` is the one-pair front door.
"""

from __future__ import annotations

import itertools
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import polars as pl

from detectors.stats.segments import (
    moving_rows,
    segment_count,
    segment_ids,
    segment_median,
    segment_quantiles,
    segment_sum,
    sorted_within_groups,
)

KIND_NONE = "none"
KIND_UNIFORM = "uniform"
KIND_ONE_SIDED = "one-sided"
KINDS = (KIND_NONE, KIND_UNIFORM, KIND_ONE_SIDED)  # index = the code in batch results

# Sleeps operators type, largest first: an interval edge on one of these is "round".
_ROUND_UNITS_S = np.array(
    [
        86400,
        43200,
        21600,
        14400,
        7200,
        3600,
        1800,
        1200,
        900,
        600,
        300,
        120,
        60,
        30,
        15,
        10,
        5,
        2,
        1,
    ],
    dtype=np.float64,
)


@dataclass(frozen=True)
class PeriodSettings:
    """Knobs of the estimator; the periodicity detector maps its parameters onto these."""

    bins_per_period: float = 8.0
    """Counting-process bins per estimated period (the FFT sees harmonics up to half this)."""
    min_bin_s: float = 0.01
    """Finest bin width: sub-second beacons need bins finer than a second."""
    max_bins: int = 2**14
    """Longest series one FFT sees (a power of two); longer data uses its most recent part."""
    gap_factor: float = 4.0
    """A delta over this many periods is a pause (night, weekend), not jitter or loss."""
    min_span_periods: float = 3.0
    """The data must span this many periods; also the lowest frequency tested, in cycles."""
    multiple_tolerance: float = 0.35
    """How far (in periods) a delta may sit from k x period and still count as k sleeps."""
    none_jitter_pct: float = 2.0
    """Below this jitter the beacon is called jitter-free (kind "none")."""
    max_gap_share: float = 0.3
    """Pauses are joined out only when at most this share of deltas are pauses."""
    fft_max_jitter_pct: float | None = None
    """Skip the FFT for pairs whose deltas show more jitter than this (a detector that
    drops them anyway saves the work); their p-value then comes from the deltas alone."""


# --- the periodogram and Fisher's g-test ---------------------------------------------


@dataclass(frozen=True)
class Periodogram:
    """Fourier ordinates k = 1 .. floor((N-1)/2) of a binned counting process."""

    frequencies_hz: np.ndarray
    power: np.ndarray
    bin_width_s: float
    n_bins: int


def periodogram(
    timestamps_s: np.ndarray,
    *,
    bin_width_s: float | None = None,
    bins_per_period: float = 8.0,
    min_bin_s: float = 0.01,
    max_bins: int = 2**16,
) -> Periodogram:
    """Periodogram of the event counts per bin, I(f_k) = |sum_t x_t e^(-2 pi i k t / N)|^2 / N.

    The bin width adapts to the pair: median delta / ``bins_per_period`` (never under
    ``min_bin_s``), widened so the series has at most ``max_bins`` points. The zero
    frequency and the Nyquist frequency are left out, as Fisher's test requires.
    """
    ts = np.sort(np.asarray(timestamps_s, dtype=np.float64))
    if ts.size < 2:
        empty = np.zeros(0)
        return Periodogram(empty, empty, float(bin_width_s or min_bin_s), ts.size)
    span = float(ts[-1] - ts[0])
    if bin_width_s is None:
        deltas = np.diff(ts)
        bin_width_s = max(min_bin_s, float(np.median(deltas[deltas > 0])) / bins_per_period)
    width = max(float(bin_width_s), span / (max_bins - 1))
    n_bins = int(span // width) + 1
    counts = np.bincount(((ts - ts[0]) // width).astype(np.int64), minlength=n_bins)
    spectrum = np.fft.rfft(counts - counts.mean())
    top = (n_bins - 1) // 2
    power = np.abs(spectrum[1 : top + 1]) ** 2 / n_bins
    freqs = np.arange(1, top + 1) / (n_bins * width)
    return Periodogram(freqs, power, width, n_bins)


def fisher_g_pvalue(g: np.ndarray | float, m: np.ndarray | int) -> np.ndarray:
    """P(G > g) for Fisher's g = max ordinate / sum of ``m`` ordinates, under white noise.

    Fisher (1929), "Tests of significance in harmonic analysis", Proc. R. Soc. A 125:
    P(G > g) = sum_{j=1}^{floor(1/g)} (-1)^(j-1) C(m, j) (1 - j g)^(m-1).
    Terms are formed in log space. When m e^(-m g) > 20 the alternating sum would
    cancel catastrophically, but there the p-value is within e^-20 of 1, so the
    asymptotic form 1 - (1 - e^(-m g))^m (the maximum of m unit exponentials) is used.
    """
    g_arr = np.atleast_1d(np.asarray(g, dtype=np.float64))
    m_arr = np.broadcast_to(np.atleast_1d(np.asarray(m, dtype=np.float64)), g_arr.shape)
    out = np.ones(g_arr.shape)
    valid = np.isfinite(g_arr) & (m_arr >= 2) & (g_arr > 0)
    if not valid.any():
        return out
    gv, mv = g_arr[valid], m_arr[valid]
    x = mv * gv
    asymptotic = mv * np.exp(-x) > 20.0
    result = -np.expm1(mv * np.log1p(-np.exp(-x)))
    exact = ~asymptotic
    if exact.any():
        result[exact] = _fisher_alternating_sum(gv[exact], mv[exact])
    out[valid] = np.clip(result, 0.0, 1.0)
    return out


def _fisher_alternating_sum(g: np.ndarray, m: np.ndarray) -> np.ndarray:
    """sum_{j=1}^{floor(1/g)} (-1)^(j-1) C(m, j) (1 - j g)^(m-1), terms in log space.

    A value's sum ends at its own j = floor(1/g) (or when 1 - j g reaches 0), and never
    resumes: each step computes only the values still summing, so a batch of many
    pairs costs what their terms cost, the same additions in the same order.
    """
    top = np.minimum(np.floor(1.0 / g), m)
    total = np.zeros(g.shape)
    log_choose = np.zeros(g.shape)
    live = np.arange(g.size)  # the values still summing: ge, me, lc are theirs
    ge, me, lc = g, m, log_choose
    for j in range(1, 101):  # terms shrink like 20^j / j!: negligible well before 100
        lc = lc + np.log(np.maximum(me - j + 1, 1.0)) - math.log(j)
        base = 1.0 - j * ge
        use = (j <= top[live]) & (base > 0)
        if not use.all():
            live, ge, me, lc, base = live[use], ge[use], me[use], lc[use], base[use]
            if live.size == 0:
                break
        log_term = lc + (me - 1) * np.log(base)
        total[live] += (-1.0) ** (j - 1) * np.exp(log_term)
    return total


def fisher_g_test(power: np.ndarray) -> tuple[float, float]:
    """(g, p-value) of Fisher's test on periodogram ordinates (DC and Nyquist left out)."""
    ordinates = np.asarray(power, dtype=np.float64)
    total = float(ordinates.sum()) if ordinates.size else 0.0
    if ordinates.size < 2 or total <= 0:
        return float("nan"), 1.0
    g = float(ordinates.max()) / total
    return g, float(fisher_g_pvalue(g, ordinates.size)[0])


def chernoff_binomial_pvalue(
    successes: np.ndarray, trials: np.ndarray, p0: np.ndarray
) -> np.ndarray:
    """Upper bound on P(X >= successes), X ~ Binomial(trials, p0): exp(-n KL(x/n || p0)).

    The Chernoff-Hoeffding bound; exact (p0^n) when every trial succeeds. Used as a
    conservative p-value, so it never overstates significance.
    """
    x = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    p = np.clip(np.asarray(p0, dtype=np.float64), 1e-300, 1.0)
    out = np.ones(np.broadcast(x, n, p).shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(n > 0, x / np.where(n > 0, n, 1), 0.0)
        above = (n > 0) & (a > p) & (p < 1.0)
        a_safe = np.clip(a, 1e-300, 1.0)
        first = a_safe * np.log(a_safe / p)
        rest = np.where(a < 1.0, (1.0 - a) * np.log((1.0 - a) / (1.0 - p)), 0.0)
        # Only cells ``above`` are read, and there p < 1 and a > p: rest is finite, so
        # no nan_to_num pass (four passes over the renewal scan's 200 cells a pair).
        kl = first + rest
        out = np.where(above, np.exp(np.minimum(-n * kl, 0.0)), out)
    return np.clip(out, 0.0, 1.0)


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values) for a family of tests.

    Benjamini & Hochberg (1995): q_(i) = min_{j >= i} p_(j) m / j over the sorted
    p-values. Rejecting q <= alpha keeps the expected share of false discoveries at
    most alpha, which a per-pair threshold cannot do over 100,000 pairs.
    """
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out


# --- the estimator -------------------------------------------------------------------


@dataclass(frozen=True)
class PeriodEstimate:
    """What ``estimate_period`` found for one pair (NaN where it could not say)."""

    period_s: float
    """The sleep: the jitter interval's centre, or its upper edge for one-sided jitter."""
    p_value: float
    """Bonferroni-combined p-value of the g-test and the deltas test."""
    fisher_p: float
    deltas_p: float
    jitter_pct: float
    jitter_kind: str
    multiple_fraction: float
    """Share of deltas that were k x sleep with k >= 2: connections that went unlogged."""
    coverage: float
    """Share of deltas (inside active stretches) that sit near a multiple of the period."""
    fft_period_s: float
    fft_agrees: bool
    acf_lift: float
    """Autocorrelation at lag ~period over what random times would give (Baywatch check)."""
    active_fraction: float
    span_s: float
    n_deltas: int


def _roundness(values: np.ndarray, tolerance: np.ndarray) -> np.ndarray:
    """The largest operator-style unit a value is a multiple of, within ``tolerance``.

    Units finer than four tolerances, or than a twelfth of the value, say nothing
    (too many values sit near a multiple of them), so they do not count. 0 when no
    unit fits.
    """
    v = values[:, None]
    tol = tolerance[:, None]
    units = _ROUND_UNITS_S[None, :]
    off = np.abs(v - units * np.rint(v / units))
    fits = (off <= tol) & (units >= np.maximum(4 * tol, v / 12)) & (units <= v * 1.0001)
    best = np.where(fits, units, 0.0)
    return best.max(axis=1) if values.size else np.zeros(0)


@dataclass
class _Deltas:
    """Per-delta arrays of all pairs laid end to end."""

    d: np.ndarray
    ids: np.ndarray
    end_index: np.ndarray  # index into the times array of the delta's later event


def _deltas(times: np.ndarray, ids_t: np.ndarray) -> _Deltas:
    same = ids_t[1:] == ids_t[:-1]
    d = np.diff(times)[same]
    end_index = np.arange(1, times.size)[same]
    return _Deltas(d, ids_t[1:][same], end_index)


def _near_multiples(
    d: np.ndarray, p: np.ndarray, in_run: np.ndarray, tol: float
) -> tuple[np.ndarray, np.ndarray]:
    """(k, near): the multiple of ``p`` each delta is read as (at least 1), and whether
    it lies within ``tol`` periods of it (inside an active stretch). One division per
    delta, the temporaries reused: this runs twelve times over every delta."""
    ratio = d / p
    k = np.rint(ratio)
    np.maximum(k, 1.0, out=k)
    np.subtract(ratio, k, out=ratio)
    np.abs(ratio, out=ratio)
    near = ratio <= tol
    near &= in_run
    return k, near


def _fit_multiples(
    dl: _Deltas, n: int, start: np.ndarray, in_run: np.ndarray, tol: float, runs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Refine a period so deltas sit near integer multiples of it; return (period, fit).

    ``runs`` is each pair's number of deltas inside active stretches (``in_run``).
    A pair whose period a pass leaves exactly as it was has converged: every later pass
    would compute the same, and the deltas near a multiple are the ones that pass
    found. Once few pairs are still moving, later passes read only their deltas.
    """
    period = start.copy()
    d, ids = dl.d, dl.ids
    near_all = np.zeros(d.size, dtype=bool)
    moving = np.ones(n, dtype=bool)
    rows: np.ndarray | None = None  # the deltas read, when not all of them
    for step in range(4):
        if rows is None:
            d_m, ids_m, run_m = d, ids, in_run
        else:
            d_m, ids_m, run_m = d[rows], ids[rows], in_run[rows]
        k, near = _near_multiples(d_m, period[ids_m], run_m, tol)
        if rows is None:
            near_all = near
        else:
            near_all[rows] = near
        if step == 3:  # the final read of the last moving pairs' periods
            break
        # The mean of the deltas near a multiple, each divided by its multiple (the
        # tolerance already trims outliers, and a mean is one pass, a median a sort).
        np.divide(d_m, k, out=k)
        k *= near  # d / k where near, else 0: adding 0 leaves each sum as it was
        total = segment_sum(k, ids_m, n)
        used = np.bincount(ids_m, weights=near, minlength=n)  # as floats: no gather
        new = np.where(moving & (used > 0), total / np.maximum(used, 1), period)
        moving &= new != period
        period = new
        if not moving.any():
            break
        rows = moving_rows(moving, ids, rows)
    fit = np.bincount(ids, weights=near_all, minlength=n) / np.maximum(runs, 1)
    return period, fit


def _one_sleep_quantiles(
    sorted_d: np.ndarray,
    ids: np.ndarray,
    n: int,
    period: np.ndarray,
    n_single: np.ndarray,
    s: PeriodSettings,
    qs: tuple[np.ndarray | float, ...],
) -> np.ndarray:
    """``_delta_stage``'s quantiles of delta / sleeps, from the deltas sorted within pairs.

    The same selection as there, applied to the sorted deltas: where a pair has three
    one-sleep deltas only those count (sleeps = 1, values = deltas), and they are the
    pair's shortest in-run deltas, a sorted prefix, so no sort. Only the few pairs read
    as multiples of the sleep (fewer than three one-sleep deltas) are sorted here.
    """
    p = period[ids]
    ratio = sorted_d / p
    sleeps = np.maximum(1.0, np.floor(ratio + 0.4))
    in_run = ~(sorted_d > s.gap_factor * p)
    few = n_single < 3
    use = (in_run & (sleeps == 1)) | (in_run & few[ids])
    values = (sorted_d / sleeps)[use]
    groups = ids[use]
    unsorted = few[groups]
    if unsorted.any():
        values[unsorted] = sorted_within_groups(values[unsorted], groups[unsorted])
    return segment_quantiles(values, groups, n, qs, presorted=True)


def _delta_stage(
    times: np.ndarray,
    counts: np.ndarray,
    s: PeriodSettings,
    sorted_deltas: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Sleep, jitter and loss from the deltas read as multiples of a period."""
    n = counts.size
    ids_t = segment_ids(counts)
    dl = _deltas(times, ids_t)
    d, ids = dl.d, dl.ids
    if sorted_deltas is None:
        m0 = segment_median(d, ids, n)
    else:  # the caller's sort of these same deltas
        m0 = segment_median(sorted_deltas, ids, n, presorted=True)
    in_first_run = d <= s.gap_factor * m0[ids]
    # The median delta may itself be 2 or 3 sleeps when most connections went
    # unlogged: try it and its halves and thirds, keep the largest that fits as well.
    periods, fits = [], []
    first_runs = segment_count(in_first_run, ids, n)
    for divisor in (1.0, 2.0, 3.0):
        period, fit = _fit_multiples(
            dl, n, m0 / divisor, in_first_run, s.multiple_tolerance, first_runs
        )
        periods.append(period)
        fits.append(fit)
    period_c = np.vstack(periods)
    fit_c = np.vstack(fits)
    best = np.nanmax(np.where(np.isfinite(fit_c), fit_c, -1.0), axis=0)
    good = fit_c >= (best - 0.05)[None, :]
    choice = np.argmax(good, axis=0)  # the first (largest period) that fits nearly best
    period = period_c[choice, np.arange(n)]
    coverage = fit_c[choice, np.arange(n)]

    p = period[ids]
    ratio = d / p
    k = np.maximum(1.0, np.rint(ratio))
    gap = d > s.gap_factor * p
    in_run = ~gap
    near = in_run & (np.abs(ratio - k) <= s.multiple_tolerance)
    # How many sleeps a delta spans: boundaries a little above the half-way points, so
    # a wide jitter interval is not cut at 1.5 periods (only jitter plus loss is
    # truly ambiguous).
    sleeps = np.maximum(1.0, np.floor(ratio + 0.4))
    single = in_run & (sleeps == 1)
    n_single = segment_count(single, ids, n)
    use = single | (in_run & (n_single[ids] < 3))
    n_use = segment_count(use, ids, n)
    # Edges of the jitter interval from order statistics near the ends (the 2nd from
    # each end once there are 20 deltas), extrapolated as for a uniform distribution.
    tail = np.clip(2.0 / np.maximum(n_use, 1), 0.002, 0.1)
    qs = (tail, 0.5, 1.0 - tail)
    if sorted_deltas is None:
        q_lo, q50, q_hi = segment_quantiles(d / sleeps, ids, n, qs, use)
    else:
        q_lo, q50, q_hi = _one_sleep_quantiles(sorted_deltas, ids, n, period, n_single, s, qs)
    width = np.maximum(q_hi - q_lo, 0.0) / (1.0 - 2.0 * tail)
    lo = np.maximum(q_lo - tail * width, 0.0)
    hi = q_hi + tail * width
    centre = (lo + hi) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        jitter_uniform = np.where(centre > 0, (hi - lo) / (2 * centre), np.nan)
        jitter_one_sided = np.where(hi > 0, (hi - lo) / hi, np.nan)

    # Both jitters make deltas uniform on an interval, so shape cannot tell them apart.
    # Operators type round sleeps: if the upper edge is a rounder number than the
    # centre, the sleep is the upper edge (Cobalt Strike's sleep x (1 - U(0, j))).
    n_runs = segment_count(in_run, ids, n)
    edge_error = 3.0 * (hi - lo) / np.maximum(n_use, 1)
    tolerance = np.nan_to_num(np.maximum(np.maximum(edge_error, 0.002 * hi), 0.05), nan=1.0)
    edge_round = _roundness(np.nan_to_num(hi), tolerance)
    centre_round = _roundness(np.nan_to_num(centre), tolerance)
    none = jitter_uniform * 100 < s.none_jitter_pct
    one_sided = ~none & (edge_round > centre_round)
    kind = np.where(none, 0, np.where(one_sided, 2, 1))
    sleep = np.where(none, q50, np.where(one_sided, hi, centre))
    jitter = np.where(one_sided, jitter_one_sided, jitter_uniform) * 100

    multiple_fraction = segment_count(near & (k >= 2), ids, n) / np.maximum(n_runs, 1)
    active = segment_sum(np.where(in_run, d, 0.0), ids, n)
    ends = np.cumsum(counts) - 1
    starts = ends - counts + 1
    span = np.where(counts > 0, times[np.maximum(ends, 0)] - times[np.maximum(starts, 0)], 0.0)
    n_gaps = segment_count(gap, ids, n)
    compress = n_gaps <= s.max_gap_share * np.maximum(n_runs + n_gaps, 1)

    deltas_p = _deltas_pvalue(d, ids, n, in_run, lo, hi, centre, period, active, n_runs, s)
    return {
        "period": period,
        "sleep": sleep,
        "centre": centre,
        "lo": lo,
        "hi": hi,
        "jitter_pct": jitter,
        "kind": kind,
        "coverage": coverage,
        "multiple_fraction": multiple_fraction,
        "active": np.where(compress, active, span),
        "span": span,
        "n_deltas": n_runs,
        "deltas_p": deltas_p,
        "gap_index": dl.end_index[gap & compress[ids]],
    }


def _deltas_pvalue(
    d: np.ndarray,
    ids: np.ndarray,
    n: int,
    in_run: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    centre: np.ndarray,
    period: np.ndarray,
    active: np.ndarray,
    n_runs: np.ndarray,
    s: PeriodSettings,
) -> np.ndarray:
    """How surprising it is that so many deltas are k sleeps long, if times were random.

    Null: a Poisson process at the pair's active rate, so deltas are exponential with
    the mean active delta mu. A delta "fits" when it lies in the union of [k lo, k hi]
    over k (k sleeps of jitter interval [lo, hi]), below the pause threshold. The
    windows are disjoint up to k = ceil(lo / (hi - lo)) and merge into one after, so

        p0 = (sum_{k<K} (e^(-k lo/mu) - e^(-k hi/mu)) + e^(-K lo/mu) - e^(-G/mu)) / (1 - e^(-G/mu))

    with G the pause threshold. The bound ``chernoff_binomial_pvalue`` turns the
    count of fitting deltas into a p-value.

    The period and the interval are fitted to the same deltas, which flatters any
    data: five random deltas can often be read as multiples of *some* period. Two
    corrections keep the test honest on short series: the two deltas that set the
    interval's edges do not count (successes and trials minus two), and the result
    is multiplied by the number of distinct periods an interval this narrow could
    have been fitted at, 1 / (relative width) (a look-elsewhere factor). Both are
    negligible for a real beacon with dozens of deltas.
    """
    slack = np.maximum(s.min_bin_s, 0.01 * np.nan_to_num(centre))
    lo_t = np.maximum(np.nan_to_num(lo) - slack, 0.0)
    hi_t = np.nan_to_num(hi) + slack
    mu = active / np.maximum(n_runs, 1)
    pause = s.gap_factor * np.nan_to_num(period)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        merge_k = np.maximum(1.0, np.ceil(lo_t / (hi_t - lo_t)))
        last_k = np.where(lo_t > 0, np.floor(pause / np.where(lo_t > 0, lo_t, 1.0)), 0.0)
        disjoint = np.minimum(merge_k - 1, last_k)
        a = lo_t / mu
        b = hi_t / mu
        g = pause / mu

        def geometric(x: np.ndarray, terms: np.ndarray) -> np.ndarray:
            # sum_{k=1}^{terms} e^(-k x)
            return np.where(x > 0, np.exp(-x) * -np.expm1(-terms * x) / -np.expm1(-x), terms)

        p_disjoint = geometric(a, disjoint) - geometric(b, disjoint)
        p_merged = np.where(merge_k <= last_k, np.maximum(np.exp(-merge_k * a) - np.exp(-g), 0), 0)
        p0 = (p_disjoint + p_merged) / -np.expm1(-g)
        first_k = np.ceil(d / hi_t[ids])
        fits = in_run & (lo_t[ids] > 0) & (first_k * lo_t[ids] <= d)
    p0 = np.clip(np.nan_to_num(p0, nan=1.0, posinf=1.0), 0.0, 1.0)
    fitted = 2  # the deltas at the interval's edges are in it by construction
    successes = np.maximum(segment_count(fits, ids, n) - fitted, 0)
    trials = np.maximum(n_runs - fitted, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative_width = (hi_t - lo_t) / np.maximum(np.nan_to_num(centre), 1e-12)
    look_elsewhere = 1.0 / np.clip(np.nan_to_num(relative_width, nan=1.0), 0.01, 1.0)
    bound = chernoff_binomial_pvalue(successes, trials, p0)
    return np.where(trials > 0, np.minimum(1.0, look_elsewhere * bound), 1.0)


def _compressed_times(
    times: np.ndarray, counts: np.ndarray, period: np.ndarray, gap_index: np.ndarray
) -> np.ndarray:
    """Times from the pair's first, with every pause shortened to one period, so active
    stretches join in phase.

    Each time loses what the pauses before it (in its pair) were cut by. Those cuts are
    summed pair by pair, never across pairs, so a pair's result does not depend on which
    other pairs share the batch (a running sum over every pair lost microseconds).
    """
    ids_t = segment_ids(counts)
    starts = np.cumsum(counts) - counts
    relative = times - times[starts[ids_t]]
    if gap_index.size == 0:
        return relative
    gap_pair = ids_t[gap_index]
    cut = times[gap_index] - times[gap_index - 1] - period[gap_pair]
    cuts = pl.DataFrame({"pair": gap_pair, "cut": cut})
    cut_so_far = cuts.select(pl.col("cut").cum_sum().over("pair")).to_series().to_numpy()
    # The last pause at or before each time; it counts only when in the same pair.
    # (gap_index ascends without repeats: a running count of pauses, not a search.)
    marks = np.zeros(times.size, dtype=np.int64)
    marks[gap_index] = 1
    last = np.cumsum(marks) - 1
    same_pair = (last >= 0) & (gap_pair[np.maximum(last, 0)] == ids_t)
    return relative - np.where(same_pair, cut_so_far[np.maximum(last, 0)], 0.0)


# Series cells per batch of FFTs: ~2 MB per real temporary (a few complex ones of
# twice that live at once). Bigger batches were no faster and held ~250 MB more at
# 2M events, beside the renewal test's thread; each row's numbers do not depend on it.
_FFT_CELLS = 1 << 18


def _lag_pairs(
    flat: np.ndarray,
    row: np.ndarray,
    size: int,
    lag_lo: np.ndarray,
    lag_hi: np.ndarray,
    n_rows: int,
) -> np.ndarray:
    """Per row, the raw (not circular) autocorrelation of its binned counts summed over
    lags ``lag_lo .. lag_hi`` (at least 1): the number of ordered pairs of events whose
    bins lie that many bins apart.

    Counted from the events themselves (``flat`` = row x ``size`` + bin), one binary
    search per event and lag edge, rather than by an inverse FFT of a zero-padded
    transform: exact integers, and the periodogram's FFT needs no padding.
    """
    keys = np.sort(flat) if flat.size and bool(np.any(flat[1:] < flat[:-1])) else flat
    lo_keys = flat + lag_lo[row]
    hi_keys = flat + lag_hi[row]
    # A row's keys stay inside [row x size, (row + 1) x size): clip the searched range
    # there so no lag reaches the next row's events.
    row_end = (row + 1) * size
    after = np.searchsorted(keys, np.minimum(hi_keys + 1, row_end), side="left")
    first = np.searchsorted(keys, np.minimum(lo_keys, row_end), side="left")
    return np.bincount(row, weights=(after - first).astype(np.float64), minlength=n_rows)


def series_grid(
    times: np.ndarray,
    counts: np.ndarray,
    period: np.ndarray,
    gap_index: np.ndarray,
    s: PeriodSettings,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each pair's count series for the spectrum: the gap-compressed times, where each
    pair's events start, and its bins (a power of two, at least 16), their width and
    the time of the first bin's left edge.

    Bins are ``period / bins_per_period`` wide (at least ``min_bin_s``); a pair whose
    span needs more than ``max_bins`` keeps its most recent ``max_bins`` bins.
    """
    tc = _compressed_times(times, counts, np.nan_to_num(period, nan=1.0), gap_index)
    starts = np.cumsum(counts) - counts
    span_c = np.where(counts > 0, tc[np.maximum(starts + counts - 1, 0)], 0.0)
    w_target = np.maximum(s.min_bin_s, np.nan_to_num(period, nan=1.0) / s.bins_per_period)
    needed = np.floor(span_c / w_target) + 1
    max_bins = 1 << int(math.log2(s.max_bins))
    n_bins = np.where(
        needed > max_bins,
        max_bins,
        np.maximum(16, 2.0 ** np.ceil(np.log2(np.maximum(needed, 1.0)))),
    ).astype(np.int64)
    fits_all = needed <= max_bins
    width = np.where(fits_all, (span_c + w_target) / n_bins, w_target)
    origin = np.where(fits_all, 0.0, span_c + width / 2 - n_bins * width)
    return tc, starts, n_bins, width, origin


def _spectral_stage(
    times: np.ndarray,
    counts: np.ndarray,
    eligible: np.ndarray,
    stage: dict[str, np.ndarray],
    s: PeriodSettings,
) -> dict[str, np.ndarray]:
    """Fisher's g-test and the autocorrelation check, batched by series length."""
    n = counts.size
    g = np.full(n, np.nan)
    fisher_p = np.ones(n)
    fft_period = np.full(n, np.nan)
    acf_lift = np.full(n, np.nan)
    period = stage["period"]
    ok = eligible & np.isfinite(period) & (period > 0)
    if not ok.any():
        return {"g": g, "fisher_p": fisher_p, "fft_period": fft_period, "acf_lift": acf_lift}
    tc, starts, n_bins, width, origin = series_grid(times, counts, period, stage["gap_index"], s)
    k_min = max(1, math.ceil(s.min_span_periods))
    lo = np.nan_to_num(stage["lo"], nan=0.0)
    hi = np.nan_to_num(stage["hi"], nan=0.0)
    n_ordinates = np.zeros(n)

    for size in np.unique(n_bins[ok]):
        rows_all = np.flatnonzero(ok & (n_bins == size))
        chunk = max(1, _FFT_CELLS // int(size))
        for first in range(0, rows_all.size, chunk):
            rows = rows_all[first : first + chunk]
            c = counts[rows]
            offsets = np.cumsum(c) - c
            local = np.repeat(np.arange(rows.size), c)
            event = np.arange(c.sum()) - np.repeat(offsets, c) + np.repeat(starts[rows], c)
            bins = np.floor((tc[event] - origin[rows][local]) / width[rows][local])
            keep = (bins >= 0) & (bins < size)
            flat = local[keep] * size + bins[keep].astype(np.int64)
            x = np.bincount(flat, minlength=rows.size * size).reshape(rows.size, size)
            spectrum = np.fft.rfft(x.astype(np.float64), axis=1)[:, k_min : size // 2]
            band = spectrum.real**2 + spectrum.imag**2  # k = k_min .. N/2 - 1: no Nyquist
            total = band.sum(axis=1)
            peak = band.argmax(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                peak_power = band[np.arange(rows.size), peak]  # the maximum, read once
                g_rows = np.where(total > 0, peak_power / total, np.nan)
            g[rows] = g_rows
            n_ordinates[rows] = band.shape[1]
            fft_period[rows] = size * width[rows] / (peak + k_min)
            w_rows = width[rows]
            lag_lo = np.clip(np.floor(lo[rows] / w_rows) - 1, 1, size - 1).astype(np.int64)
            lag_hi = np.clip(np.ceil(hi[rows] / w_rows) + 1, 1, size - 1).astype(np.int64)
            row = local[keep]
            kept_events = np.bincount(row, minlength=rows.size)
            mass = _lag_pairs(flat, row, size, lag_lo, lag_hi, rows.size)
            # sum of squared bin counts: each event counts the events in its bin
            zero_lag = np.bincount(row, weights=x.ravel()[flat], minlength=rows.size)
            expected = (kept_events - 1) * (lag_hi - lag_lo + 1) / size
            with np.errstate(invalid="ignore", divide="ignore"):
                acf_lift[rows] = np.where(
                    (zero_lag > 0) & (expected > 0), mass / zero_lag / expected, np.nan
                )
    fisher_p[ok] = fisher_g_pvalue(g[ok], n_ordinates[ok])  # one call for every length
    return {"g": g, "fisher_p": fisher_p, "fft_period": fft_period, "acf_lift": acf_lift}


def estimate_periods(
    times_s: np.ndarray,
    counts: np.ndarray,
    settings: PeriodSettings | None = None,
    min_events: int = 3,
    workers: int = 1,
    sorted_deltas: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Period estimates for many pairs: ``times_s`` sorted within each pair, laid end to end.

    Returns one array per field of ``PeriodEstimate`` (``jitter_kind`` as an index into
    ``KINDS``). Pairs with fewer than ``min_events`` times, or spanning fewer than
    ``min_span_periods`` periods, skip the FFT and keep a p-value of 1 from it.

    With ``workers`` > 1 the pairs are split into that many runs of about equal size,
    estimated in threads (numpy and the FFTs release the GIL): no number depends on the
    other pairs of a batch, so the result is the same.

    ``sorted_deltas`` (``segments.sorted_deltas`` of the same times), when the caller
    has them, spare the median delta its sort: same numbers.
    """
    s = settings or PeriodSettings()
    times = np.asarray(times_s, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.int64)
    if workers > 1 and times.size >= _PARALLEL_MIN_TIMES:
        return _estimate_in_threads(times, counts, s, min_events, workers, sorted_deltas)
    return _estimate(times, counts, s, min_events, sorted_deltas)


_PARALLEL_MIN_TIMES = 200_000  # below this a thread costs more than it saves


def _estimate_in_threads(
    times: np.ndarray,
    counts: np.ndarray,
    s: PeriodSettings,
    min_events: int,
    workers: int,
    sorted_deltas: np.ndarray | None,
) -> dict[str, np.ndarray]:
    ends = np.cumsum(counts)
    delta_ends = np.cumsum(np.maximum(counts - 1, 0))
    targets = ends[-1] * np.arange(1, workers) / workers
    cuts = [0, *np.searchsorted(ends, targets, side="right").tolist(), counts.size]
    runs = [(a, b) for a, b in itertools.pairwise(cuts) if b > a]

    def run(bounds: tuple[int, int]) -> dict[str, np.ndarray]:
        a, b = bounds
        first = int(ends[a] - counts[a])
        part = None
        if sorted_deltas is not None:
            first_delta = int(delta_ends[a] - max(counts[a] - 1, 0))
            part = sorted_deltas[first_delta : int(delta_ends[b - 1])]
        return _estimate(times[first : int(ends[b - 1])], counts[a:b], s, min_events, part)

    with ThreadPoolExecutor(max_workers=len(runs), thread_name_prefix="periods") as pool:
        parts = list(pool.map(run, runs))
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def _estimate(
    times: np.ndarray,
    counts: np.ndarray,
    s: PeriodSettings,
    min_events: int,
    sorted_deltas: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    stage = _delta_stage(times, counts, s, sorted_deltas)
    active_span = stage["active"]
    eligible = (counts >= max(3, min_events)) & (
        active_span >= s.min_span_periods * np.nan_to_num(stage["period"], nan=np.inf)
    )
    run_fft = eligible
    if s.fft_max_jitter_pct is not None:
        run_fft = eligible & (
            np.nan_to_num(stage["jitter_pct"], nan=np.inf) <= s.fft_max_jitter_pct
        )
    spectral = _spectral_stage(times, counts, run_fft, stage, s)
    fisher_p = spectral["fisher_p"]
    deltas_p = np.where(eligible, stage["deltas_p"], 1.0)
    p_value = np.minimum(1.0, 2.0 * np.minimum(fisher_p, deltas_p))
    fft_period = spectral["fft_period"]
    harmonic = np.rint(stage["centre"] / fft_period)
    with np.errstate(invalid="ignore", divide="ignore"):
        relative = np.abs(stage["centre"] / np.maximum(harmonic, 1) - fft_period) / fft_period
        fft_agrees = (harmonic >= 1) & (harmonic <= s.bins_per_period / 2) & (relative <= 0.1)
        active_fraction = np.where(stage["span"] > 0, active_span / stage["span"], np.nan)
    return {
        "period_s": stage["sleep"],
        "p_value": p_value,
        "fisher_p": fisher_p,
        "deltas_p": deltas_p,
        "g": spectral["g"],
        "jitter_pct": stage["jitter_pct"],
        "jitter_kind": stage["kind"],
        "multiple_fraction": stage["multiple_fraction"],
        "coverage": stage["coverage"],
        "fft_period_s": fft_period,
        "fft_agrees": fft_agrees,
        "acf_lift": spectral["acf_lift"],
        "active_fraction": active_fraction,
        "active_s": active_span,
        "span_s": stage["span"],
        "n_deltas": stage["n_deltas"],
        "eligible": eligible,
    }


def estimate_period(
    timestamps_s: np.ndarray, settings: PeriodSettings | None = None
) -> PeriodEstimate:
    """The sleep, jitter, loss and significance of one pair's connection times (seconds)."""
    ts = np.unique(np.asarray(timestamps_s, dtype=np.float64))
    ts = ts - ts[0] if ts.size else ts
    r = estimate_periods(ts, np.array([ts.size]), settings)
    return PeriodEstimate(
        period_s=float(r["period_s"][0]),
        p_value=float(r["p_value"][0]),
        fisher_p=float(r["fisher_p"][0]),
        deltas_p=float(r["deltas_p"][0]),
        jitter_pct=float(r["jitter_pct"][0]),
        jitter_kind=KINDS[int(r["jitter_kind"][0])],
        multiple_fraction=float(r["multiple_fraction"][0]),
        coverage=float(r["coverage"][0]),
        fft_period_s=float(r["fft_period_s"][0]),
        fft_agrees=bool(r["fft_agrees"][0]),
        acf_lift=float(r["acf_lift"][0]),
        active_fraction=float(r["active_fraction"][0]),
        span_s=float(r["span_s"][0]),
        n_deltas=int(r["n_deltas"][0]),
    )
