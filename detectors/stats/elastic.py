"""The statistics of Elastic's network beaconing framework, vectorised over groups.

Source: elastic/integrations, ``packages/beaconing/elasticsearch/transform/
pivot_transform/transform.yml`` (the pivot transform's painless ``reduce_script``,
package 1.3.x). That script works on one (host, process) at a time; here every function
takes a ``(groups × buckets)`` matrix, one row per group, so thousands of groups cost
one numpy call. A 1-D vector is treated as a single group.

Conventions taken from the script:

* Buckets run *backwards in time*: bucket 0 is the newest (``(now - t) // length``).
  Zero means "nothing in this bucket", for counts and for mean bytes alike.
* The *active span* of a row is ``[a, b)``: ``a`` the first non-empty bucket, ``b`` one
  past the last. The periodicity test runs on that span only.
* "Truncation" keeps the values between two order statistics of the non-zero values:
  with ``n`` of them sorted ascending, the bounds are the values at index
  ``min(floor(q·n + 0.5), n − 1)`` for ``q`` = ``truncate_at`` (0.1 and 0.8), and every
  non-zero value ``lo ≤ v ≤ hi`` is kept (ties at a bound are all kept).
* Moments are population moments (divide by the number kept).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# ``periodic_score`` keeps, per row, a few bucket-length arrays (the aligned counts and
# their running sums) and per-jitter block sums; rows are processed in chunks of about
# this many elements so memory stays bounded whatever the number of groups.
_CHUNK_ELEMENTS = 4_000_000


class TruncatedStats(NamedTuple):
    """Per-row truncated moments: what Elastic's variation tests compare."""

    mean: FloatArray
    std: FloatArray
    lower_value: FloatArray  # the lower order statistic (inf when the row is empty)
    upper_value: FloatArray
    kept: IntArray  # how many values lay between the bounds


def _rows(values: npt.ArrayLike) -> FloatArray:
    matrix = np.asarray(values, dtype=np.float64)
    if matrix.ndim == 1:
        return matrix[np.newaxis, :]
    if matrix.ndim != 2:
        raise ValueError("expected a vector or a (groups × buckets) matrix")
    return matrix


def _order_statistic_index(fraction: float, n: IntArray) -> IntArray:
    """Elastic's index ``min((int)(q·n + 0.5), n − 1)``, clipped at 0 for empty rows."""
    index = np.floor(fraction * n.astype(np.float64) + 0.5).astype(np.int64)
    return np.clip(np.minimum(index, n - 1), 0, None)


def truncated_stats(
    values: npt.ArrayLike, lower: float = 0.1, upper: float = 0.8
) -> TruncatedStats:
    """Mean and population standard deviation of each row's truncated non-zero values.

    Follows the script's ``percentiles`` (order statistics of the non-zero values) then
    ``mean``/``variance`` over values inside the bounds. Rows with no non-zero value get
    NaN moments and ``kept == 0``. Assumes non-negative data (counts and byte means).
    """
    matrix = _rows(values)
    present = matrix != 0
    n = present.sum(axis=1).astype(np.int64)
    ordered = np.sort(np.where(present, matrix, np.inf), axis=1)
    if matrix.shape[1] == 0:
        empty = np.full(matrix.shape[0], np.nan)
        return TruncatedStats(empty, empty.copy(), empty.copy(), empty.copy(), n)
    lo_index = _order_statistic_index(lower, n)
    hi_index = _order_statistic_index(upper, n)
    lo = np.take_along_axis(ordered, lo_index[:, None], axis=1)[:, 0]
    hi = np.take_along_axis(ordered, hi_index[:, None], axis=1)[:, 0]
    keep = present & (matrix >= lo[:, None]) & (matrix <= hi[:, None])
    kept = keep.sum(axis=1).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(keep, matrix, 0.0).sum(axis=1) / kept
        deviation = np.where(keep, matrix - mean[:, None], 0.0)
        variance = (deviation * deviation).sum(axis=1) / kept
    return TruncatedStats(mean, np.sqrt(variance), lo, hi, kept)


def truncate(values: npt.ArrayLike, lower: float = 0.1, upper: float = 0.8) -> FloatArray:
    """The values of one vector that Elastic's tests keep, in their original order.

    Example (worked in the tests): ten non-zero values 1..10 → bounds at indices
    floor(0.1·10 + 0.5) = 1 and floor(0.8·10 + 0.5) = 8, i.e. values 2 and 9 → 2..9 kept.
    """
    vector = np.asarray(values, dtype=np.float64)
    if vector.ndim != 1:
        raise ValueError("truncate takes one vector")
    stats = truncated_stats(vector, lower, upper)
    keep = (vector != 0) & (vector >= stats.lower_value[0]) & (vector <= stats.upper_value[0])
    return vector[keep]


def _ratio(stats: TruncatedStats) -> FloatArray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return stats.std / np.abs(stats.mean)


def coefficient_of_variation(
    values: npt.ArrayLike, lower: float = 0.1, upper: float = 0.8
) -> FloatArray:
    """Truncated standard deviation / |truncated mean| per row (NaN for an empty row).

    Elastic applies it to the mean source and destination bytes per bucket and flags
    "low variation" when ``std <= max_beaconing_bytes_cov · |mean|`` (see
    ``low_variation``, which keeps that multiplied form).
    """
    return _ratio(truncated_stats(values, lower, upper))


def relative_variance(counts: npt.ArrayLike, lower: float = 0.1, upper: float = 0.8) -> FloatArray:
    """Elastic's "relative variance" of bucket counts: truncated std / |truncated mean|.

    The script's comment speaks of variance/mean (a Poisson process has variance equal
    to its mean), but the test it runs is ``sqrt(var) <= max_beaconing_count_rv · |mean|``,
    i.e. a coefficient of variation of the counts. We follow the code, because the
    published default (0.1) was chosen against it; so this equals
    ``coefficient_of_variation`` applied to counts.
    """
    return _ratio(truncated_stats(counts, lower, upper))


def low_variation(stats: TruncatedStats, max_ratio: float) -> npt.NDArray[np.bool_]:
    """Elastic's test ``std <= max_ratio · |mean|`` (False where nothing was kept)."""
    return (stats.kept > 0) & (stats.std <= max_ratio * np.abs(stats.mean))


def active_span(counts: npt.ArrayLike) -> tuple[IntArray, IntArray]:
    """``(a, b)`` per row: first non-empty bucket and one past the last (0, 0 if empty)."""
    matrix = _rows(counts)
    present = matrix > 0
    width = matrix.shape[1]
    has_any = present.any(axis=1)
    first = np.where(has_any, np.argmax(present, axis=1), 0).astype(np.int64)
    stop = np.where(has_any, width - np.argmax(present[:, ::-1], axis=1), 0).astype(np.int64)
    return first, stop


class _LagSums(NamedTuple):
    """Per-segment sums for one period: x = later block, y = earlier block (± jitter)."""

    x_var: FloatArray  # (rows, segments)
    y_var: FloatArray  # (rows, 2J+1, segments)
    xy_cov: FloatArray  # (rows, 2J+1, segments)


class _Aligned(NamedTuple):
    """Rows shifted so their active span starts at column 0 (zeros after the span)."""

    values: FloatArray  # (rows, width)
    cumulative: FloatArray  # (rows, width + 1): running sums of the values
    cumulative_sq: FloatArray  # (rows, width + 1): running sums of their squares
    span: IntArray

    def head(self, count: int) -> _Aligned:
        """The first ``count`` rows, as views (no copy)."""
        return _Aligned(
            self.values[:count],
            self.cumulative[:count],
            self.cumulative_sq[:count],
            self.span[:count],
        )


def _align(matrix: FloatArray, first: IntArray, span: IntArray) -> _Aligned:
    """Every segment the script reads lies inside the span, so width is enough."""
    rows, width = matrix.shape
    padded = np.zeros((rows, 2 * width))
    padded[:, :width] = matrix
    columns = first[:, None] + np.arange(width)[None, :]
    values = np.take_along_axis(padded, columns, axis=1)
    cumulative = np.zeros((rows, width + 1))
    np.cumsum(values, axis=1, out=cumulative[:, 1:])
    cumulative_sq = np.zeros((rows, width + 1))
    np.cumsum(values * values, axis=1, out=cumulative_sq[:, 1:])
    return _Aligned(values, cumulative, cumulative_sq, span)


def _segment_counts(span: IntArray, period: int, jitter: int) -> IntArray:
    """Blocks per row: starts ``J, J + p, …`` up to ``span − 2p`` (the script's ``b_``)."""
    reach = span - 2 * period - jitter
    return np.where(reach >= 0, reach // period + 1, 0)


def _script_mean(rows_: _Aligned, period: int, jitter: int) -> FloatArray:
    """The script's mean for one period: over ``[J + p, J + p·floor((span − 2p + 1 − J)/p))``,
    0 when that range is empty."""
    span = rows_.span
    rows = span.size
    blocks = (span - 2 * period + 1 - jitter) // period
    start = jitter + period
    stop = np.maximum(jitter + period * blocks, start)
    row_index = np.arange(rows)
    total = rows_.cumulative[row_index, stop] - rows_.cumulative[row_index, start]
    length = stop - start
    return np.divide(total, length, out=np.zeros(rows), where=length > 0)


def _lag_totals(rows_: _Aligned, period: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Without jitter there is nothing to choose per block, so only totals matter:
    ``(Σ(x − m)², Σ(y − m)², Σ(x − m)(y − m))`` over every block, from running sums
    plus one pass for the lagged products."""
    span = rows_.span
    rows = span.size
    covered = _segment_counts(span, period, 0) * period  # buckets in x (and in y)
    m = _script_mean(rows_, period, 0)
    row_index = np.arange(rows)

    def range_sums(start: IntArray | int, stop: IntArray) -> tuple[FloatArray, FloatArray]:
        return (
            rows_.cumulative[row_index, stop] - rows_.cumulative[row_index, start],
            rows_.cumulative_sq[row_index, stop] - rows_.cumulative_sq[row_index, start],
        )

    x_sum, x_sq = range_sums(period, period + covered)
    y_sum, y_sq = range_sums(0, covered)
    width = int(covered.max())
    inside = np.arange(width)[None, :] < covered[:, None]
    products = rows_.values[:, period : period + width] * rows_.values[:, :width]
    xy = np.where(inside, products, 0.0).sum(axis=1)
    n_m2 = covered * m * m
    x_var = np.maximum(x_sq - 2.0 * m * x_sum + n_m2, 0.0)
    y_var = np.maximum(y_sq - 2.0 * m * y_sum + n_m2, 0.0)
    return x_var, y_var, xy - m * (x_sum + y_sum) + n_m2


def _lag_sums(rows_: _Aligned, period: int, jitter: int) -> _LagSums:
    """The script's per-period inner loop for every row at once.

    Rows start at their active span (``a`` = 0) and hold zeros past it. Segments start
    at ``i = J, J + p, …, ≤ span − 2p``; for each, x is ``[i + p, i + 2p)`` and y is
    ``[i − d, i + p − d)`` for every jitter ``d`` in ``−J..J``. Deviations are taken from
    the mean of ``[J + p, J + p·floor((span − 2p + 1 − J) / p))`` (0 when that range is
    empty), exactly the range the script averages. Consecutive segments tile one
    contiguous range, so each block is a reshaped slice (no gather). Per-block sums are
    needed here because the jitter is chosen block by block.
    """
    span = rows_.span
    rows = span.size
    segments = _segment_counts(span, period, jitter)
    n_seg = int(segments.max()) if rows else 0
    lags = 2 * jitter + 1
    if n_seg == 0:
        return _LagSums(np.zeros((rows, 0)), np.zeros((rows, lags, 0)), np.zeros((rows, lags, 0)))

    mean = _script_mean(rows_, period, jitter)

    # Centred sums from raw ones: Σ(x − m)² = Σx² − 2mΣx + p·m² and
    # Σ(x − m)(y − m) = Σxy − mΣx − mΣy + p·m². Block sums of x and x² come from running
    # sums; only Σxy needs a pass over the buckets, one per jitter.
    valid = (np.arange(n_seg)[None, :] < segments[:, None]).astype(np.float64)
    m = mean[:, None]
    pm2 = period * m * m
    block = n_seg * period
    steps = period * np.arange(n_seg + 1)

    def block_sums(begin: int) -> tuple[FloatArray, FloatArray]:
        edges = begin + steps
        return (
            np.diff(rows_.cumulative[:, edges], axis=1),
            np.diff(rows_.cumulative_sq[:, edges], axis=1),
        )

    x_sum, x_sq = block_sums(jitter + period)
    x_var = np.maximum(x_sq - 2.0 * m * x_sum + pm2, 0.0) * valid
    x = rows_.values[:, jitter + period : jitter + period + block].reshape(rows, n_seg, period)
    y_var = np.empty((rows, lags, n_seg))
    xy_cov = np.empty((rows, lags, n_seg))
    for slot, shift in enumerate(range(-jitter, jitter + 1)):
        begin = jitter - shift
        y_sum, y_sq = block_sums(begin)
        y = rows_.values[:, begin : begin + block].reshape(rows, n_seg, period)
        products = np.einsum("rsp,rsp->rs", x, y)
        y_var[:, slot, :] = np.maximum(y_sq - 2.0 * m * y_sum + pm2, 0.0) * valid
        xy_cov[:, slot, :] = (products - m * (x_sum + y_sum) + pm2) * valid
    return _LagSums(x_var, y_var, xy_cov)


def _normalised(xy: FloatArray, x_var: FloatArray, y_var: FloatArray) -> FloatArray:
    """``xy / sqrt(x_var · y_var)``, and 1.0 where the denominator is 0 (as the script)."""
    z = np.sqrt(x_var * y_var)
    return np.where(z == 0.0, 1.0, xy / np.where(z == 0.0, 1.0, z))


def _pick(values: FloatArray, index: IntArray) -> FloatArray:
    """``values[row, index[row, s], s]`` summed over segments s."""
    if values.shape[1] == 1:  # no jitter: nothing to choose
        return values[:, 0, :].sum(axis=1)
    return np.take_along_axis(values, index[:, None, :], axis=1)[:, 0, :].sum(axis=1)


def autocovariance(signal: npt.ArrayLike, lag: int) -> float:
    """Elastic's normalised autocovariance of an active span at one lag, without jitter.

    ``signal`` is the span from the first to the last non-empty bucket. Blocks of ``lag``
    buckets starting at 0, lag, 2·lag, … (while start ≤ len − 2·lag) are compared with
    the following block: Σ(x − m)(y − m) / sqrt(Σ(x − m)² · Σ(y − m)²) over all blocks,
    with ``m`` the mean the script uses (see ``_lag_sums``) and 1.0 for a zero
    denominator. This is the value ``periodic_score`` starts from for period ``lag``
    before averaging in the multiples of the period.
    """
    vector = np.asarray(signal, dtype=np.float64)
    if vector.ndim != 1 or lag < 1 or vector.size < 2 * lag:
        raise ValueError("autocovariance needs a vector at least twice as long as the lag")
    row = vector[np.newaxis, :]
    aligned = _align(row, np.zeros(1, dtype=np.int64), np.array([vector.size], dtype=np.int64))
    sums = _lag_sums(aligned, lag, 0)
    xy = sums.xy_cov[:, 0, :].sum(axis=1)
    value = _normalised(xy, sums.x_var.sum(axis=1), sums.y_var[:, 0, :].sum(axis=1))
    return float(value[0])


def _jitter_buckets(max_jitter: float, period: int) -> int:
    """The script's ``(int)(max_jitter · period)``."""
    return int(max_jitter * period)


def periodic_score(
    counts: npt.ArrayLike, min_number_periods: int = 6, max_jitter: float = 0.0
) -> tuple[FloatArray, IntArray]:
    """Best averaged autocovariance of each row's bucket counts, and its period in buckets.

    Candidate periods run from 2 buckets up to ``span // min_number_periods``. For each
    period p (ascending) and each block, the jitter d in ``±floor(max_jitter·p)`` with the
    highest normalised autocovariance is chosen (the script's greedy choice); the sums of
    the chosen blocks give p's autocovariance. Every period q with ``2 ≤ q < p // 2`` that
    divides p also receives p's block sums (jitter chosen within ``±floor(max_jitter·q)``
    by the largest raw covariance), and q's score becomes the running average of its
    normalised value after each such p: "a signal periodic with period q has high
    autocovariance at every multiple of q", which keeps smooth signals from scoring high
    at short lags. The best period is the first one reaching the maximum.

    Returns ``(score, period)``; rows whose span allows no period ≥ 2 get NaN and 0.
    """
    matrix = _rows(counts)
    if not 0.0 <= max_jitter <= 1.0:
        raise ValueError("max_jitter is a fraction of the period, between 0 and 1")
    if min_number_periods < 1:
        raise ValueError("min_number_periods must be at least 1")
    rows, width = matrix.shape
    score = np.full(rows, np.nan)
    best = np.zeros(rows, dtype=np.int64)
    first, stop = active_span(matrix)
    span = stop - first
    max_period = span // min_number_periods
    todo = np.nonzero(max_period >= 2)[0]
    # Longest candidate lists first: the rows still active at period p are then a prefix.
    todo = todo[np.argsort(-max_period[todo], kind="stable")]
    if todo.size == 0:
        return score, best
    widest = int(max_period[todo[0]])
    per_row = (2 * _jitter_buckets(max_jitter, widest) + 6) * max(width, 1)
    chunk = max(1, _CHUNK_ELEMENTS // per_row)
    for begin in range(0, todo.size, chunk):
        part = todo[begin : begin + chunk]
        aligned = _align(matrix[part], first[part], span[part])
        score[part], best[part] = _periodic_rows(aligned, max_period[part], max_jitter)
    return score, best


def _periodic_rows(
    aligned: _Aligned, max_period: IntArray, max_jitter: float
) -> tuple[FloatArray, IntArray]:
    """``periodic_score`` for aligned rows sorted by max period (descending), all ≥ 2."""
    rows = aligned.span.size
    top = int(max_period[0])
    acc_x = np.zeros((rows, top + 1))
    acc_y = np.zeros((rows, top + 1))
    acc_xy = np.zeros((rows, top + 1))
    averaged = np.full((rows, top + 1), -np.inf)
    seen = np.zeros((rows, top + 1))
    for period in range(2, top + 1):
        n_active = int(np.count_nonzero(max_period >= period))
        act = slice(0, n_active)
        jitter = _jitter_buckets(max_jitter, period)
        divisors = [q for q in range(2, period // 2) if period % q == 0]
        head = aligned.head(n_active)
        if jitter == 0:  # every reach is 0 too: one choice, the same for all
            x_total, y_total, xy_total = _lag_totals(head, period)
            acc_x[act, period] += x_total
            acc_y[act, period] += y_total
            acc_xy[act, period] += xy_total
            for q in divisors:
                acc_x[act, q] += x_total
                acc_y[act, q] += y_total
                acc_xy[act, q] += xy_total
        else:
            sums = _lag_sums(head, period, jitter)
            x_total = sums.x_var.sum(axis=1)
            ratios = _normalised(sums.xy_cov, sums.x_var[:, None, :], sums.y_var)
            chosen = np.argmax(ratios, axis=1)
            acc_x[act, period] += x_total
            acc_y[act, period] += _pick(sums.y_var, chosen)
            acc_xy[act, period] += _pick(sums.xy_cov, chosen)
            for q in divisors:
                reach = _jitter_buckets(max_jitter, q)
                window = sums.xy_cov[:, jitter - reach : jitter + reach + 1, :]
                picked = np.argmax(window, axis=1) + (jitter - reach)
                acc_x[act, q] += x_total
                acc_y[act, q] += _pick(sums.y_var, picked)
                acc_xy[act, q] += _pick(sums.xy_cov, picked)

        averaged[act, period] = _normalised(
            acc_xy[act, period], acc_x[act, period], acc_y[act, period]
        )
        seen[act, period] = 1.0
        for q in divisors:
            n = seen[act, q] + 1.0
            value = _normalised(acc_xy[act, q], acc_x[act, q], acc_y[act, q])
            seen[act, q] = n
            averaged[act, q] = ((n - 1.0) * averaged[act, q] + value) / n
    candidates = averaged[:, 2:]
    index = np.argmax(candidates, axis=1)
    return candidates[np.arange(rows), index], (index + 2).astype(np.int64)
