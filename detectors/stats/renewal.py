"""Sleeps that survive implant jitter: a scan test on the deltas of a renewal process.

Cobalt Strike, Sliver, Mythic and Havoc draw every sleep independently: uniform on
``[S(1-j), S]`` (one-sided) or ``[S(1-j/2), S(1+j/2)]`` (symmetric). Connection times
are then a *renewal process* (Cox & Lewis 1966, "The Statistical Analysis of Series of
Events", ch. 4): the deltas are i.i.d. and, at 50 % jitter, spread over a factor of two,
which smears the periodogram's peak. The deltas themselves still crowd into one narrow
band, while Poisson arrivals (exponential deltas, coefficient of variation 1) spread
over every scale. This module tests for that crowding directly.

**The statistic (a scan on the log scale).** For each fraction ``f`` in
``RenewalSettings.fractions`` the *shorth* (Andrews et al. 1972; Rousseeuw 1984's
least-median window) of the deltas is found on the log scale: the window
``[lo, c lo]`` with the smallest ratio ``c`` holding ``h = ceil(f n)`` of the ``n``
deltas. A window holding half the deltas finds the sleep even when up to half of them
are 2x or 3x the sleep (unlogged connections) or pauses (nights, weekends, a laptop
asleep), as Baywatch's robust period estimate does (Hu et al., DSN 2016); a window
holding nine tenths says most connections are one sleep apart.

**The p-value, with no tuning to data.** Under the null the deltas are i.i.d.
exponential with an unknown mean mu. Fix the grid ``x_j = r^j`` (in units of mu) with
``r = c^(1/2)``: every window ``[a, c a]`` lies inside one grid window
``[x_j, W x_j]``, ``W = r c``, so by the union bound

    P(some window of ratio c holds >= h deltas) <= sum_j P(Bin(n, p_j) >= h),
    p_j = e^(-x_j) - e^(-W x_j),

whatever mu is: the grid is fixed in units of the true mean before the data are seen,
so the bound holds for every mu and the p-value depends only on ``(n, h, c)``. This is
the discretised scan-statistic bound of Naus (1965) and Glaz, Naus & Wallenstein
("Scan Statistics", 2001, ch. 2); each binomial tail is bounded by Chernoff-Hoeffding
(``chernoff_binomial_pvalue``). Windows outside ``x`` in ``[1e-5, 40]`` are dropped:
above, each holds a delta with probability under e^-40; below, under p = 1e-5 (W - 1),
and since h >= n/2 each adds at most C(n, h) p^h <= (4p)^(n/2), under 2e-9 for n >= 4,
a geometric series in the window's position that sums to under 1e-8. The bound is
conservative, so the false-positive rate on Poisson traffic stays below the level
(measured in the tests). The fractions are Bonferroni-combined:
``p = min(1, len(fractions) x min_f p_f)``.

**The sleep (Baywatch's verification).** The most significant window gives a first
period; it is refined to the median of the deltas within ``[0.5, 1.5)`` of it,
then checked against its half and third: when more than ``submultiple_share`` of the
deltas sit near half (or a third) of it, most connections went unlogged and the
sleep is the smaller period (only a cluster of its own: deltas under 3/4 of the
period whose median is within 25 % of the sub-period, not the low tail of wide
jitter). Deltas over ``pause_factor`` sleeps are pauses: they count as neither jitter
nor loss (work-hours beacons keep their period inside the active windows).

**Figures, one name each.**
A delta is *one sleep* when it is 0.5 to 1.6 times that sleep (1.6, not 1.5, so 50 %
one-sided jitter keeps its longest sleeps), *missed* beyond, a *pause* beyond
``pause_factor``.
``sleep_s`` the centre of the jitter interval (the sleep under symmetric jitter);
``upper_s`` / ``lower_s`` the edges of the jitter interval, estimated from the extreme
one-sleep deltas without bias for a uniform distribution (``upper_s``
is the configured sleep under Cobalt Strike's one-sided jitter: data cannot tell the
two apart, both are uniform on an interval); ``spread`` = (p95 - p5) / p50 of the
one-sleep deltas (0 for a fixed sleep, 0.6 for Cobalt Strike's 50 %, 0.45 for a
symmetric 50 %); ``ci_low_s`` / ``ci_high_s`` the 95 % distribution-free interval of
the median one-sleep delta (``stats.smalln``; NaN under 6 deltas); ``n_used`` the
deltas that are one sleep; ``missed_share`` the share of in-run deltas that are 2 or
more sleeps; ``pauses`` the count of pauses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from detectors.stats.periodogram import chernoff_binomial_pvalue
from detectors.stats.segments import (
    moving_rows,
    segment_count,
    segment_ids,
    segment_median,
    segment_quantiles,
    segment_sorted,
)
from detectors.stats.smalln import median_ci


@dataclass(frozen=True)
class RenewalSettings:
    """Knobs of the renewal test (defaults documented with what they trade)."""

    fractions: tuple[float, ...] = (0.5, 0.7, 0.9)
    """Shares of the deltas a window must hold; 0.5 survives the most loss and pauses,
    0.9 has the most power on a clean beacon. Each added fraction costs a Bonferroni factor."""
    pause_factor: float = 4.0
    """A delta over this many sleeps is a pause (night, weekend), not jitter or loss."""
    submultiple_share: float = 0.15
    """Share of deltas near half (a third) of the period that makes it the sleep."""
    min_deltas: int = 4
    """Fewest positive deltas to test; fewer get p = 1 and NaN figures."""
    grid_step: float = 0.5
    """The scan grid's ratio is c^grid_step: finer adds windows, coarser widens them."""
    max_windows: int = 200
    """Cap on grid windows per test (the step widens for very narrow windows)."""


def deltas_from_times(times: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(deltas, deltas per pair) from times sorted within each pair, laid end to end."""
    times = np.asarray(times, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.int64)
    ids = segment_ids(counts)
    same = ids[1:] == ids[:-1]
    deltas = np.diff(times)[same]
    return deltas, np.maximum(counts - 1, 0)


# --- the null: a scan bound for exponential deltas ------------------------------------


_ONE_TOP = 1.6  # a delta up to this many median sleeps is one sleep
# (pair, window) cells per batch of the scan: ~2 MB per temporary, since the test runs
# beside the periodogram; each row's p-value does not depend on it.
_SCAN_CELLS = 250_000
_X_LO, _X_HI = 1e-5, 40.0  # the grid's range, in units of the mean delta


def scan_pvalue(
    n: np.ndarray, h: np.ndarray, c: np.ndarray, grid_step: float = 0.5, max_windows: int = 200
) -> np.ndarray:
    """Upper bound on P(some window [a, c a] holds >= h of n i.i.d. exponential deltas).

    See the module docstring: a union over the fixed grid x_j = r^j (units of the
    mean), r = c^grid_step, of Chernoff bounds on Bin(n, e^(-x_j) - e^(-r c x_j)).
    Vectorised over rows; rows with n < 1, h < 1 or a non-finite c get 1.
    """
    n = np.asarray(n, dtype=np.float64)
    h = np.asarray(h, dtype=np.float64)
    c = np.asarray(c, dtype=np.float64)
    n, h, c = np.broadcast_arrays(n, h, c)
    out = np.ones(n.shape)
    ok = (n >= 1) & (h >= 1) & np.isfinite(c) & (c >= 1.0)
    if not ok.any():
        return out
    x_lo, x_hi = _X_LO, _X_HI
    span = math.log(x_hi / x_lo)
    c = np.where(ok, c, 2.0)  # placeholder for rows that are not tested
    log_r = np.maximum(grid_step * np.log(np.maximum(c, 1.0)), span / max_windows)
    wide = c * np.exp(log_r)
    # The most likely grid window holds a delta with probability at most
    # p* = W^(-1/(W-1)) (1 - 1/W) (at x = ln W / (W - 1)); when that is already h/n
    # or more, the bound is 1 and the grid need not be walked.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        peak = np.where(wide > 1, wide ** (-1.0 / (wide - 1.0)) * (1.0 - 1.0 / wide), 0.0)
    ok &= peak < h / np.maximum(n, 1)
    rows = np.flatnonzero(ok)
    j = np.arange(max_windows + 1, dtype=np.float64)
    result = np.ones(rows.size)
    chunk = max(1, _SCAN_CELLS // j.size)
    for first in range(0, rows.size, chunk):
        sel = rows[first : first + chunk]
        log_x = math.log(x_lo) + log_r[sel, None] * j[None, :]
        inside = log_x <= math.log(x_hi)
        x = np.exp(np.minimum(log_x, math.log(x_hi)))
        p = np.exp(-x) - np.exp(-wide[sel, None] * x)
        tails = chernoff_binomial_pvalue(h[sel, None], n[sel, None], p)
        result[first : first + chunk] = np.where(inside, tails, 0.0).sum(axis=1)
    out[rows] = np.minimum(result, 1.0)
    return out


def _near_peak_terms(
    n: np.ndarray, h: np.ndarray, c: np.ndarray, grid_step: float, max_windows: int
) -> np.ndarray:
    """The sum of ``scan_pvalue``'s terms for the two grid windows around the likeliest
    one: a lower bound on the whole sum (every term is non-negative), at 2 windows' cost.

    ``renewal_test`` uses it to settle pairs whose p-value will be 1 anyway (most
    pairs, on real traffic) without walking the other 199 windows.
    """
    n = np.asarray(n, dtype=np.float64)
    h = np.asarray(h, dtype=np.float64)
    c = np.asarray(c, dtype=np.float64)
    if n.size == 0:
        return np.zeros(0)
    span = math.log(_X_HI / _X_LO)
    c = np.where(np.isfinite(c) & (c >= 1.0), c, 2.0)
    log_r = np.maximum(grid_step * np.log(np.maximum(c, 1.0)), span / max_windows)
    wide = c * np.exp(log_r)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # The window [x, W x] most likely to hold a delta starts at ln W / (W - 1).
        x_peak = np.log(wide) / (wide - 1.0)
        j_peak = np.floor((np.log(x_peak) - math.log(_X_LO)) / log_r)
    j_peak = np.clip(np.nan_to_num(j_peak, nan=0.0), 0, max_windows - 1)
    total = np.zeros(n.shape)
    for step in (0.0, 1.0):
        log_x = math.log(_X_LO) + log_r * (j_peak + step)
        x = np.exp(np.minimum(log_x, math.log(_X_HI)))
        p = np.exp(-x) - np.exp(-wide * x)
        term = chernoff_binomial_pvalue(h, n, p)
        total += np.where(log_x <= math.log(_X_HI), term, 0.0)
    return total


def _peak_tail(
    n: np.ndarray, h: np.ndarray, c: np.ndarray, grid_step: float, max_windows: int
) -> np.ndarray:
    """The Chernoff tail of the likeliest grid window alone: a cheap score that ranks the
    fractions as the full bound does (the sum over windows scales it by a near-constant)."""
    span = math.log(_X_HI / _X_LO)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        finite_c = np.where(np.isfinite(c), np.maximum(c, 1.0), 2.0)
        log_r = np.maximum(grid_step * np.log(finite_c), span / max_windows)
        wide = finite_c * np.exp(log_r)
        peak = np.where(wide > 1, wide ** (-1.0 / (wide - 1.0)) * (1.0 - 1.0 / wide), 0.0)
    out = chernoff_binomial_pvalue(h, n, np.where(np.isfinite(c), peak, 1.0))
    return np.where(np.isfinite(c), out, np.inf)


# --- the shorth on the log scale -------------------------------------------------------


def segment_shorth(
    sorted_values: np.ndarray, counts: np.ndarray, h: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per group, the window of ``h[g]`` consecutive sorted values with the least ratio.

    ``sorted_values`` are positive and sorted within each group (groups end to end,
    ``counts[g]`` values each). Returns (start index into ``sorted_values``, ratio
    hi/lo); groups with fewer than ``h`` values get index -1 and ratio inf.

    A group has ``counts - h + 1`` windows, starting at its first ``counts - h + 1``
    values: they are laid out from those counts, not found among every value.
    """
    counts = np.asarray(counts, dtype=np.int64)
    n = counts.size
    h = np.broadcast_to(np.asarray(h, dtype=np.int64), (n,))
    windows = np.where(h >= 1, np.maximum(counts - h + 1, 0), 0)
    best_index = np.full(n, -1, dtype=np.int64)
    best_ratio = np.full(n, np.inf)
    groups = np.flatnonzero(windows)
    if groups.size == 0:
        return best_index, best_ratio
    per_group = windows[groups]
    run_start = np.cumsum(per_group) - per_group  # each group's first window
    run_of = np.repeat(np.arange(groups.size), per_group)
    where = (
        np.arange(int(per_group.sum()))
        - run_start[run_of]
        + (np.cumsum(counts) - counts)[groups][run_of]
    )
    top = where + (h[groups] - 1)[run_of]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = sorted_values[top] / sorted_values[where]
    ratio = np.where(np.isfinite(ratio), ratio, np.inf)
    least = np.minimum.reduceat(ratio, run_start)
    first = np.flatnonzero(ratio == least[run_of])
    first = first[np.r_[True, run_of[first][1:] != run_of[first][:-1]]]  # earliest per group
    best_index[groups[run_of[first]]] = where[first]
    best_ratio[groups[run_of[first]]] = ratio[first]
    return best_index, best_ratio


# --- the test --------------------------------------------------------------------------


def _refined_period(d: np.ndarray, ids: np.ndarray, n: int, period: np.ndarray) -> np.ndarray:
    """Up to five times: the median of each pair's deltas within [0.5, 1.5) of its period.

    ``d`` sorted within each pair. A pair whose period a pass leaves unchanged (or NaN)
    has converged: later passes would compute the same. Once under half the deltas
    belong to pairs still moving, a pass reads only theirs (a pair's deltas stay
    sorted), so the result is what five passes over everything give.
    """
    moving = np.isfinite(period)
    rows: np.ndarray | None = None
    for _ in range(5):
        rows = moving_rows(moving, ids, rows)
        d_m, ids_m = (d, ids) if rows is None else (d[rows], ids[rows])
        ratio_d = d_m / period[ids_m]
        one = (ratio_d >= 0.5) & (ratio_d < 1.5)
        refined = segment_median(d_m, ids_m, n, one, presorted=True)
        new = np.where(moving & np.isfinite(refined), refined, period)
        moving &= new != period
        period = new
        if not moving.any():
            break
    return period


def renewal_test(
    deltas: np.ndarray,
    counts: np.ndarray,
    settings: RenewalSettings | None = None,
    presorted: bool = False,
) -> dict[str, np.ndarray]:
    """The renewal test for many pairs: ``deltas`` laid end to end, ``counts`` per pair.

    ``presorted``: the deltas are already sorted within each pair (no sort here).
    Deltas that are not positive (duplicate times) are left out. Returns arrays per
    pair: ``p_value``, ``sleep_s``, ``lower_s``, ``upper_s``, ``spread``, ``ci_low_s``,
    ``ci_high_s``, ``n_used``,
    ``missed_share``, ``pauses``, ``n_deltas`` (positive deltas tested) and
    ``window_ratio`` (c of the most significant window). See the module docstring.
    """
    s = settings or RenewalSettings()
    deltas = np.asarray(deltas, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.int64)
    n = counts.size
    ids_all = segment_ids(counts)
    positive = deltas > 0
    d = deltas[positive]
    ids = ids_all[positive]
    m = np.bincount(ids, minlength=n)[:n].astype(np.int64)
    if d.size == 0:
        d = np.zeros(0)
    if not presorted:
        order = segment_sorted(d, ids)
        d = d[order]  # sorted within each pair from here on; the pairs stay in order
        ids = ids[order]
    testable = m >= s.min_deltas

    # The shorth of each fraction. Only the fraction whose likeliest grid window gives
    # the smallest single binomial tail gets the full scan bound: choosing it from the
    # data is covered, because its bound is at least the least of the three bounds,
    # which the Bonferroni factor already pays for.
    best_score = np.full(n, np.inf)
    best_h = np.zeros(n, dtype=np.int64)
    best_index = np.full(n, -1, dtype=np.int64)
    best_c = np.full(n, np.nan)
    for fraction in s.fractions:
        h = np.maximum(3, np.ceil(fraction * m)).astype(np.int64)
        index, ratio = segment_shorth(d, m, h)
        score = np.where(
            testable & (index >= 0), _peak_tail(m, h, ratio, s.grid_step, s.max_windows), np.inf
        )
        better = score <= best_score  # ties: the larger window
        best_score = np.where(better, score, best_score)
        best_h = np.where(better, h, best_h)
        best_index = np.where(better, index, best_index)
        best_c = np.where(better, ratio, best_c)
    chosen = best_index >= 0
    best_p = np.ones(n)
    # Pairs whose bound is already 1 / len(fractions) from the two windows nearest its
    # peak get p = 1 whatever the rest of the grid adds, so the full scan is skipped;
    # the margin covers rounding (the skipped pairs' p-value is exactly what the full
    # scan gives: 1).
    near = _near_peak_terms(m[chosen], best_h[chosen], best_c[chosen], s.grid_step, s.max_windows)
    scan = np.flatnonzero(chosen)[len(s.fractions) * near < 1.0 + 1e-6]
    best_p[scan] = scan_pvalue(m[scan], best_h[scan], best_c[scan], s.grid_step, s.max_windows)
    p_value = np.minimum(1.0, len(s.fractions) * best_p)
    safe = np.maximum(best_index, 0)
    best_lo = np.where(chosen, d[safe], np.nan)
    best_hi = np.where(chosen, d[np.minimum(safe + best_h - 1, max(d.size - 1, 0))], np.nan)

    # A first period: the median of the deltas inside the best window, refined over the
    # deltas within [0.5, 1.5) of it.
    inside = (d >= best_lo[ids]) & (d <= best_hi[ids])
    period = segment_median(d, ids, n, inside, presorted=True)
    period = _refined_period(d, ids, n, period)

    # Baywatch-style verification: is a half or a third of it the real sleep?
    for divisor in (2.0, 3.0):
        sub = period / divisor
        ratio_d = d / sub[ids]
        below = (ratio_d >= 0.5) & (ratio_d < 1.5) & (d < 0.75 * period[ids])
        share = segment_count(below, ids, n) / np.maximum(m, 1)
        sub_median = segment_median(d, ids, n, below, presorted=True)
        # A cluster of its own near the sub-period, not the low tail of a wide one.
        centred = np.abs(sub_median / sub - 1.0) <= 0.25
        take = (share > s.submultiple_share) & np.isfinite(sub_median) & centred
        period = np.where(take, sub_median, period)

    ratio_d = d / period[ids]
    pause = ratio_d > s.pause_factor
    # One sleep: [0.5, 1.6) x the median. The top reaches 1.6 so that 50 % one-sided
    # jitter (deltas on [S/2, S], median rarely under 0.65 S) keeps its longest sleeps.
    one = (ratio_d >= 0.5) & (ratio_d < _ONE_TOP)
    multiple = ~pause & (ratio_d >= _ONE_TOP)
    n_used = segment_count(one, ids, n)
    in_run = segment_count(~pause, ids, n)
    # The jitter interval's edges, unbiased for a uniform interval [a, b] from the
    # extreme one-sleep deltas (the minimum-variance unbiased estimators):
    # E[min] = a + w / (m + 1), E[max] = b - w / (m + 1).
    lo_k, hi_k, q05, q50, q95 = segment_quantiles(
        d, ids, n, (0.0, 1.0, 0.05, 0.5, 0.95), one, presorted=True
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        width = (hi_k - lo_k) * (n_used + 1) / np.maximum(n_used - 1, 1)
        lower = np.maximum(lo_k - width / (n_used + 1), 0.0)
        upper = hi_k + width / (n_used + 1)
        spread = (q95 - q05) / q50
    centre = (lower + upper) / 2
    ci = median_ci(d, ids, n, one, presorted=True)
    nan = ~testable | (n_used < 2)
    return {
        "p_value": np.where(testable, p_value, 1.0),
        "sleep_s": np.where(nan, np.nan, centre),
        "lower_s": np.where(nan, np.nan, lower),
        "upper_s": np.where(nan, np.nan, upper),
        "spread": np.where(nan, np.nan, spread),
        "ci_low_s": np.where(nan, np.nan, ci["low"]),
        "ci_high_s": np.where(nan, np.nan, ci["high"]),
        "n_used": n_used,
        "missed_share": segment_count(multiple, ids, n) / np.maximum(in_run, 1),
        "pauses": segment_count(pause, ids, n),
        "n_deltas": m,
        "window_ratio": best_c,
    }
