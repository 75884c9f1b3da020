"""Kusto's series functions, in numpy, as Microsoft documents them.

The seeds 000 and 001 are KQL; their detectors must compute what Kusto computes, so each
function here cites the Kusto documentation page it follows (learn.microsoft.com,
``/kusto/query/<name>``) and says where the page is silent and we had to choose.

Every function has a *ragged* twin that works on many series at once: the values of all
series concatenated in one flat array plus ``offsets`` (length = series + 1; series ``i``
is ``values[offsets[i]:offsets[i + 1]]``), so a detector scores every pair with a few
sorts instead of a Python loop per pair.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

FloatArray = np.ndarray

# --- ragged layout helpers ------------------------------------------------------------


def offsets_from_lengths(lengths: Sequence[int] | np.ndarray) -> np.ndarray:
    """``[0, l0, l0 + l1, ...]``: the offsets of series laid end to end."""
    lens = np.asarray(lengths, dtype=np.int64)
    out = np.zeros(lens.size + 1, dtype=np.int64)
    np.cumsum(lens, out=out[1:])
    return out


def flatten_lists(column: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """A polars list column as (flat float values, offsets); null lists count as empty."""
    lengths = column.list.len().fill_null(0).to_numpy().astype(np.int64)
    flat = column.explode(empty_as_null=False, keep_nulls=False)
    values = flat.cast(pl.Float64).to_numpy(allow_copy=True).astype(np.float64, copy=False)
    return values, offsets_from_lengths(lengths)


def segment_ids(offsets: np.ndarray) -> np.ndarray:
    """For each flat position, the index of the series it belongs to."""
    offsets = np.asarray(offsets, dtype=np.int64)
    return np.repeat(np.arange(offsets.size - 1), np.diff(offsets))


def _usable(values: np.ndarray, ignore_val: float | None) -> np.ndarray:
    """Finite values that are not the series' "missing" marker (Kusto's ignore_val)."""
    ok = np.isfinite(values)
    if ignore_val is not None:
        ok &= values != ignore_val
    return ok


def _sorted_usable(
    values: np.ndarray, offsets: np.ndarray, ignore_val: float | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Usable values sorted within each series, their new offsets, and per-series counts."""
    seg = segment_ids(offsets)
    ok = _usable(values, ignore_val)
    kept_values = values[ok]
    kept_seg = seg[ok]
    order = np.lexsort((kept_values, kept_seg))
    counts = np.bincount(kept_seg, minlength=offsets.size - 1).astype(np.int64)
    return kept_values[order], offsets_from_lengths(counts), counts


# --- percentiles ----------------------------------------------------------------------


def nearest_rank_index(p: float, n: np.ndarray | int) -> np.ndarray:
    """0-based position of the nearest-rank ``p``-th percentile in ``n`` sorted values.

    Rank = ceil(p/100 * n), at least 1 (so p = 0 is the minimum). ``p * n`` is formed
    before dividing by 100 so that whole ranks (p = 10, n = 30 -> 3) stay exact.
    """
    n_arr = np.asarray(n, dtype=np.float64)
    rank = np.ceil((float(p) * n_arr) / 100.0)
    return np.clip(rank, 1, np.maximum(n_arr, 1)).astype(np.int64) - 1


def percentiles_ragged(
    values: np.ndarray,
    offsets: np.ndarray,
    ps: Sequence[float],
    ignore_val: float | None = None,
) -> np.ndarray:
    """Nearest-rank percentiles of every series: shape (series, len(ps)); NaN if empty."""
    values = np.asarray(values, dtype=np.float64)
    offsets = np.asarray(offsets, dtype=np.int64)
    sorted_vals, starts, counts = _sorted_usable(values, offsets, ignore_val)
    out = np.full((counts.size, len(ps)), np.nan)
    has = counts > 0
    for j, p in enumerate(ps):
        _check_percentile(p)
        idx = starts[:-1][has] + nearest_rank_index(p, counts[has])
        out[has, j] = sorted_vals[idx]
    return out


def percentiles(values: Sequence[float] | np.ndarray, ps: Sequence[float]) -> np.ndarray:
    """Kusto's ``percentiles()``: the nearest-rank percentile, an element of the data.

    Follows "percentile(), percentiles() (aggregation function)": *the P-th percentile
    (0 < P <= 100) of a list of ordered values is the smallest value in the list such
    that P percent of the data is less or equal to it*; the 0-th is the minimum.
    Kusto *estimates* it with T-Digest (rank error at most 1 %); we return the exact
    nearest-rank value that the estimate approximates.
    Nulls and NaN are ignored, as Kusto's aggregations ignore nulls.
    """
    arr = np.asarray(values, dtype=np.float64)
    return percentiles_ragged(arr, np.array([0, arr.size]), ps)[0]


def _check_percentile(p: float) -> None:
    if not 0.0 <= float(p) <= 100.0:
        raise ValueError(f"percentile {p} is outside 0..100")


# --- series_stats ---------------------------------------------------------------------

STAT_NAMES = ("min", "min_idx", "max", "max_idx", "avg", "stdev", "variance")


def series_stats_ragged(values: np.ndarray, offsets: np.ndarray) -> dict[str, np.ndarray]:
    """``series_stats`` of every series; positions are 0-based within each series.

    Empty series, and series holding a non-finite value (Kusto's default
    ``ignore_nonfinite=false`` gives null), give NaN and -1 positions; a one-value
    series has NaN stdev and variance (the sample variance of one value is undefined).
    """
    values = np.asarray(values, dtype=np.float64)
    offsets = np.asarray(offsets, dtype=np.int64)
    n_series = offsets.size - 1
    seg = segment_ids(offsets)
    pos = np.arange(values.size) - offsets[seg]
    counts = np.diff(offsets)
    nonfinite = np.bincount(seg, weights=~np.isfinite(values), minlength=n_series)
    has = (counts > 0) & (nonfinite == 0)
    out: dict[str, np.ndarray] = {
        "min": np.full(n_series, np.nan),
        "min_idx": np.full(n_series, -1, dtype=np.int64),
        "max": np.full(n_series, np.nan),
        "max_idx": np.full(n_series, -1, dtype=np.int64),
    }
    # Sorting by (series, value, position) puts each series' minimum, first occurrence
    # first; sorting by (series, -value, position) does the same for the maximum.
    heads = offsets[:-1][has]
    by_min = np.lexsort((pos, values, seg))
    out["min"][has] = values[by_min[heads]]
    out["min_idx"][has] = pos[by_min[heads]]
    by_max = np.lexsort((pos, -values, seg))
    out["max"][has] = values[by_max[heads]]
    out["max_idx"][has] = pos[by_max[heads]]

    out.update(_moments(values, seg, counts, has))
    return out


def _moments(
    values: np.ndarray, seg: np.ndarray, counts: np.ndarray, has: np.ndarray
) -> dict[str, np.ndarray]:
    n_series = counts.size
    with np.errstate(invalid="ignore", divide="ignore"):
        avg = np.bincount(seg, weights=values, minlength=n_series) / counts
        dev = values - avg[seg]
        squares = np.bincount(seg, weights=dev * dev, minlength=n_series)
        variance = np.where(has & (counts > 1), squares / np.maximum(counts - 1, 1), np.nan)
    return {"avg": np.where(has, avg, np.nan), "stdev": np.sqrt(variance), "variance": variance}


def series_moments_ragged(values: np.ndarray, offsets: np.ndarray) -> dict[str, np.ndarray]:
    """The ``avg``, ``stdev`` and ``variance`` of ``series_stats_ragged``, same numbers.

    For callers that need no min/max positions: those cost two sorts of every value.
    """
    values = np.asarray(values, dtype=np.float64)
    offsets = np.asarray(offsets, dtype=np.int64)
    seg = segment_ids(offsets)
    counts = np.diff(offsets)
    nonfinite = np.bincount(seg, weights=~np.isfinite(values), minlength=counts.size)
    return _moments(values, seg, counts, (counts > 0) & (nonfinite == 0))


def series_stats(x: Sequence[float] | np.ndarray) -> dict[str, float | int]:
    """Kusto's ``series_stats()``: min, min_idx, max, max_idx, avg, stdev, variance.

    Follows "series_stats()": positions are the *first* position of the min/max;
    ``variance`` and ``stdev`` are the *sample* statistics (divide by n - 1). The
    documented example [23, 46, 23, 87, 4, 8, 3, 75, 2, 56, 13, 75, 32, 16, 29] gives
    min 2 at 8, max 87 at 3, avg 32.8, stdev 28.5036338535483, variance 812.457142857143.
    """
    arr = np.asarray(x, dtype=np.float64)
    stats = series_stats_ragged(arr, np.array([0, arr.size]))
    return {
        name: (int(stats[name][0]) if name.endswith("_idx") else float(stats[name][0]))
        for name in STAT_NAMES
    }


# --- series_outliers ------------------------------------------------------------------

KIND_CTUKEY = "ctukey"
KIND_TUKEY = "tukey"


def series_outliers_ragged(
    values: np.ndarray,
    offsets: np.ndarray,
    kind: str = KIND_CTUKEY,
    ignore_val: float | None = None,
    min_percentile: float = 10.0,
    max_percentile: float = 90.0,
) -> np.ndarray:
    """``series_outliers`` of every series at once; see ``series_outliers``."""
    values = np.asarray(values, dtype=np.float64)
    offsets = np.asarray(offsets, dtype=np.int64)
    low_p, high_p = _fence_percentiles(kind, min_percentile, max_percentile)
    bounds = percentiles_ragged(values, offsets, (low_p, high_p), ignore_val)
    seg = segment_ids(offsets)
    return _fence_scores(values, bounds[seg, 0], bounds[seg, 1], _usable(values, ignore_val))


def series_outliers(
    x: Sequence[float] | np.ndarray,
    kind: str = KIND_CTUKEY,
    ignore_val: float | None = None,
    min_percentile: float = 10.0,
    max_percentile: float = 90.0,
) -> np.ndarray:
    """Kusto's ``series_outliers()``: an anomaly score per point, by Tukey's fence test.

    Follows "series_outliers()" (*a value greater than 1.5 indicates a rise anomaly, less
    than -1.5 a decline anomaly*; ``ctukey`` uses the 10th/90th percentiles, settable in
    [2, 98]; ``tukey`` the 25th/75th) and the Kusto team's explanation of the score
    (microsoft/Kusto-Query-Language issue #136: Tukey's fence test with the 10th/90th
    percentiles in place of the quartiles, so a series that is constant except for its
    outliers still has a usable range). With ``lo``/``hi`` those percentiles::

        score = (x - hi) / (hi - lo)   if x > hi
                (x - lo) / (hi - lo)   if x < lo
                0                      otherwise (and for null, NaN and ignore_val)

    so ``|score| > k`` is exactly "outside Tukey's fence with factor k" (1.5: outlier,
    3: far out, as seed 001's comments say). The docs do not say how the percentiles are
    computed; we use nearest-rank, Kusto's documented definition for ``percentile()``.
    When ``hi == lo`` a value beyond them scores +-inf (it is infinitely many spreads
    out). A 2018 version of the page gave an example output for
    [30,28,5,27,31,38,29,80,25,37,30] that no single pair of percentiles reproduces
    (checked against all 13 numpy percentile definitions); the current page dropped it.
    """
    arr = np.asarray(x, dtype=np.float64)
    return series_outliers_ragged(
        arr, np.array([0, arr.size]), kind, ignore_val, min_percentile, max_percentile
    )


def _fence_percentiles(
    kind: str, min_percentile: float, max_percentile: float
) -> tuple[float, float]:
    if kind == KIND_TUKEY:
        return 25.0, 75.0
    if kind != KIND_CTUKEY:
        raise ValueError(f"unknown outlier kind '{kind}' (expected ctukey or tukey)")
    for p in (min_percentile, max_percentile):
        if not 2.0 <= p <= 98.0:
            raise ValueError(f"ctukey percentile {p} is outside [2, 98]")
    if min_percentile >= max_percentile:
        raise ValueError("ctukey min_percentile must be below max_percentile")
    return float(min_percentile), float(max_percentile)


# --- series_periods_detect ------------------------------------------------------------

MIN_PERIOD_POINTS = 4  # "The algorithm can detect periods containing at least 4 points"


def autocorrelation(x: np.ndarray) -> np.ndarray:
    """The standard (biased) sample autocorrelation r(L) for L = 0..n-1, r(0) = 1.

    r(L) = sum_{t} (x_t - m)(x_{t+L} - m) / sum_t (x_t - m)^2; a constant series has
    r = 0 at every lag > 0 (nothing repeats that is not also flat).
    """
    centered = np.asarray(x, dtype=np.float64) - float(np.mean(x))
    n = centered.size
    denom = float(np.dot(centered, centered))
    if n == 0 or denom == 0.0:
        out = np.zeros(n)
        if n:
            out[0] = 1.0
        return out
    full = np.correlate(centered, centered, mode="full")[n - 1 :]
    return full / denom


def series_periods_detect(
    y: Sequence[float] | np.ndarray,
    min_period: float,
    max_period: float,
    num_periods: int,
) -> tuple[np.ndarray, np.ndarray]:
    """An approximation of Kusto's ``series_periods_detect()``: (periods, scores).

    The page ("series_periods_detect()") documents the contract, not the algorithm:
    periods of 4 points up to half the series, at most ``num_periods``, ordered by a
    0..1 significance score, zero-padded. We approximate it the way period detectors
    usually work (e.g. Baywatch, Vlachos et al. 2005): candidate frequencies are the
    peaks of the periodogram of the mean-removed series; each is refined to the whole
    lag with the highest autocorrelation inside that frequency bin's period interval;
    the score is that autocorrelation (clipped to 0..1). On the page's 60-point example
    this finds period 14 (Kusto: 14) with score 0.74 (Kusto: 0.84).
    """
    arr = np.asarray(y, dtype=np.float64)
    n = arr.size
    periods = np.zeros(num_periods)
    scores = np.zeros(num_periods)
    lo = max(float(min_period), float(MIN_PERIOD_POINTS))
    hi = min(float(max_period), n / 2.0)
    if num_periods <= 0 or n < 2 * MIN_PERIOD_POINTS or lo > hi:
        return periods, scores
    centered = arr - arr.mean()
    power = np.abs(np.fft.rfft(centered)) ** 2
    acf = autocorrelation(arr)
    found: dict[int, float] = {}
    for k in np.argsort(power[1:], kind="stable")[::-1] + 1:
        if power[k] <= 0.0 or not _is_local_peak(power, k):
            continue
        lag_lo = max(lo, n / (k + 1.0))
        lag_hi = min(hi, n / (k - 1.0) if k > 1 else float(n))
        lags = np.arange(math.ceil(lag_lo), math.floor(lag_hi) + 1)
        if lags.size == 0:
            continue
        best = int(lags[np.argmax(acf[lags])])
        score = float(np.clip(acf[best], 0.0, 1.0))
        if score > 0.0 and best not in found:
            found[best] = score
    ranked = sorted(found.items(), key=lambda item: (-item[1], item[0]))[:num_periods]
    for i, (period, score) in enumerate(ranked):
        periods[i] = period
        scores[i] = score
    return periods, scores


def _is_local_peak(power: np.ndarray, k: int) -> bool:
    left = power[k - 1] if k - 1 >= 1 else -np.inf
    right = power[k + 1] if k + 1 < power.size else -np.inf
    return bool(power[k] >= left and power[k] >= right)


# --- series_decompose -----------------------------------------------------------------

TREND_AVG = "avg"
TREND_LINEFIT = "linefit"
TREND_NONE = "none"


@dataclass(frozen=True)
class Decomposition:
    """``series_decompose`` output; ``period`` is the seasonality used (0 = none)."""

    baseline: np.ndarray
    seasonal: np.ndarray
    trend: np.ndarray
    residual: np.ndarray
    period: int


def series_decompose(
    y: Sequence[float] | np.ndarray,
    seasonality: int = -1,
    trend: str = TREND_AVG,
    test_points: int = 0,
    seasonality_threshold: float = 0.6,
) -> Decomposition:
    """Kusto's ``series_decompose()``: baseline = seasonal + trend, residual = y - baseline.

    Follows "series_decompose()": (1) the seasonal component is *the median of the
    series points in the same phase* (0 when there is no period); (2) it is subtracted
    from y; (3) the trend is extracted from that deseasonal series: ``avg`` (the
    default) its average, ``linefit`` a least-squares line, ``none`` zero; (4) baseline
    = seasonal + trend; (5) residual = y - baseline. ``seasonality`` -1 detects the
    period with ``series_periods_detect`` (ours: 4 points to half the series) and keeps
    it only when its score reaches ``seasonality_threshold`` (0.6); 0 means none. The
    last ``test_points`` points are left out of learning (medians, average, line fit)
    and get extrapolated components, as for forecasting.
    """
    arr = np.asarray(y, dtype=np.float64)
    n = arr.size
    if trend not in (TREND_AVG, TREND_LINEFIT, TREND_NONE):
        raise ValueError(f"unknown trend '{trend}' (expected avg, linefit or none)")
    if not 0 <= test_points < max(n, 1):
        raise ValueError(f"test_points {test_points} must be in [0, {max(n - 1, 0)}]")
    train = arr[: n - test_points]
    period = _seasonal_period(train, seasonality, seasonality_threshold)

    seasonal = np.zeros(n)
    if period > 0:
        phase = np.arange(n) % period
        train_phase = phase[: train.size]
        medians = np.array(
            [
                np.median(train[train_phase == p]) if np.any(train_phase == p) else 0.0
                for p in range(period)
            ]
        )
        seasonal = medians[phase]

    deseasonal = arr - seasonal
    t = np.arange(n, dtype=np.float64)
    m = train.size
    if trend == TREND_AVG and m:
        trend_part = np.full(n, float(np.mean(deseasonal[:m])))
    elif trend == TREND_LINEFIT and m:
        trend_part = _line_fit(t[:m], deseasonal[:m], t)
    else:
        trend_part = np.zeros(n)

    baseline = seasonal + trend_part
    return Decomposition(baseline, seasonal, trend_part, arr - baseline, period)


def _seasonal_period(train: np.ndarray, seasonality: int, threshold: float) -> int:
    if seasonality == 0:
        return 0
    if seasonality > 0:
        return int(seasonality)
    if seasonality != -1:
        raise ValueError(f"seasonality {seasonality} must be -1 (detect), 0 or a period")
    periods, scores = series_periods_detect(train, 0.0, train.size / 2.0, 1)
    if periods[0] > 0 and scores[0] >= threshold:
        return int(periods[0])
    return 0


def _line_fit(t_train: np.ndarray, y_train: np.ndarray, t_all: np.ndarray) -> np.ndarray:
    """Least-squares line through (t, y), evaluated at every t; one point is a constant."""
    if t_train.size < 2:
        return np.full(t_all.size, float(y_train.mean()))
    t_mean = t_train.mean()
    y_mean = y_train.mean()
    sxx = float(np.sum((t_train - t_mean) ** 2))
    slope = float(np.sum((t_train - t_mean) * (y_train - y_mean))) / sxx
    return y_mean + slope * (t_all - t_mean)


# --- series_decompose_anomalies -------------------------------------------------------


@dataclass(frozen=True)
class Anomalies:
    """``series_decompose_anomalies`` output: ad_flag (+1/-1/0), ad_score and baseline."""

    flags: np.ndarray
    score: np.ndarray
    baseline: np.ndarray
    period: int


def series_decompose_anomalies(
    y: Sequence[float] | np.ndarray,
    threshold: float = 1.5,
    seasonality: int = -1,
    trend: str = TREND_AVG,
    test_points: int = 0,
    ad_method: str = KIND_CTUKEY,
    seasonality_threshold: float = 0.6,
) -> Anomalies:
    """Kusto's ``series_decompose_anomalies()``: Tukey's fence test on the residual.

    Follows "series_decompose_anomalies()": (1) ``series_decompose`` with the same
    parameters gives the baseline and residual; (2) ``series_outliers`` on the residual
    with ``ad_method`` (ctukey: 10th-90th percentiles, the default) gives ad_score;
    (3) ad_flag is +1 where ad_score > threshold, -1 where < -threshold, else 0 (a
    score exactly at the threshold is not an anomaly). Defaults are Kusto's, so the
    seed's ``series_decompose_anomalies(counts, 1.5, -1)`` is this call with
    ``threshold=1.5``. With ``test_points``, the percentiles are learned on the
    training residuals only and every point is scored against them.
    """
    parts = series_decompose(y, seasonality, trend, test_points, seasonality_threshold)
    residual = parts.residual
    n_train = residual.size - test_points
    low_p, high_p = _fence_percentiles(ad_method, 10.0, 90.0)
    lo, hi = percentiles(residual[:n_train], (low_p, high_p))
    score = _fence_scores(residual, lo, hi, np.isfinite(residual))
    flags = np.where(score > threshold, 1, np.where(score < -threshold, -1, 0)).astype(np.int8)
    return Anomalies(flags, score, parts.baseline, parts.period)


def _fence_scores(
    values: np.ndarray, low: np.ndarray | float, high: np.ndarray | float, usable: np.ndarray
) -> np.ndarray:
    """(x - high)/(high - low) above ``high``, (x - low)/(high - low) below ``low``, else 0.

    A zero spread puts the fence on the percentile itself, so a value past it is
    infinitely far out: x/0 with x > 0 is +inf in IEEE arithmetic, which is what we want.
    NaN bounds (an empty series) compare false and leave every score 0.
    """
    low_b = np.broadcast_to(np.asarray(low, dtype=np.float64), values.shape)
    high_b = np.broadcast_to(np.asarray(high, dtype=np.float64), values.shape)
    score = np.zeros(values.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        above = usable & (values > high_b)
        below = usable & (values < low_b)
        spread = high_b - low_b
        score[above] = (values[above] - high_b[above]) / spread[above]
        score[below] = (values[below] - low_b[below]) / spread[below]
    return score
