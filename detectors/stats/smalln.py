"""A confidence interval for the sleep that is honest with 7 to 42 connections.

A 4-hourly or daily implant over a week leaves 7-42 connections. A p-value alone then
ranks it under chatty benign software that polls every minute (more connections, a
smaller p-value, whatever the timing). What a few connections *can* give is how tightly
they pin the sleep: the distribution-free confidence interval for the median of the
one-sleep deltas from their order statistics (Conover, "Practical Nonparametric
Statistics", 3rd ed. 1999, sec. 3.2; Hollander, Wolfe & Chicken 2014, sec. 3.6):

    [x_(l), x_(m+1-l)],  l = the largest l with P(Bin(m, 1/2) <= l - 1) <= alpha / 2,

exact coverage >= 1 - alpha for any continuous distribution of the deltas, so it holds
for uniform jitter, one-sided jitter and fixed sleeps alike. With m = 6 deltas the 95 %
interval is the whole range [x_(1), x_(6)] (P(Bin(6, 1/2) = 0) = 1/64); under 6 there
is none (NaN). ``relative_width`` = (high - low) / median is the scale-free figure: 0.1
says the sleep is known to +-5 %, whatever the count. From m = 1,000 the normal
approximation l = floor(m/2 - z sqrt(m)/2) is used (the table would be long and the two
agree there to one order statistic).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from detectors.stats.segments import segment_count, segment_quantiles

_EXACT_MAX = 1000


@lru_cache(maxsize=8)
def _rank_table(alpha: float) -> np.ndarray:
    """l(m) for m = 0 .. _EXACT_MAX (0 where no interval reaches the level)."""
    table = np.zeros(_EXACT_MAX + 1, dtype=np.int64)
    log_factorial = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, _EXACT_MAX + 1)))])
    for m in range(1, _EXACT_MAX + 1):
        k = np.arange(m + 1)
        log_pmf = log_factorial[m] - log_factorial[k] - log_factorial[m - k] - m * math.log(2.0)
        cdf = np.cumsum(np.exp(log_pmf))
        # l - 1 = the largest j with P(X <= j) <= alpha / 2.
        ok = np.flatnonzero(cdf <= alpha / 2 + 1e-15)
        table[m] = int(ok[-1]) + 1 if ok.size else 0
    return table


def median_ci_ranks(m: np.ndarray, alpha: float = 0.05) -> np.ndarray:
    """The lower rank l (1-based) of the order-statistic interval per count m (0: none)."""
    m = np.asarray(m, dtype=np.int64)
    table = _rank_table(alpha)
    exact = table[np.clip(m, 0, _EXACT_MAX)]
    z = _normal_quantile(1 - alpha / 2)
    approx = np.floor(m / 2 - z * np.sqrt(np.maximum(m, 0)) / 2).astype(np.int64)
    return np.where(m <= _EXACT_MAX, exact, np.maximum(approx, 1))


def _normal_quantile(p: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(p)


def median_ci(
    values: np.ndarray,
    ids: np.ndarray,
    n: int,
    mask: np.ndarray | None = None,
    alpha: float = 0.05,
    presorted: bool = False,
) -> dict[str, np.ndarray]:
    """Per group: ``low``, ``median``, ``high`` (the 1 - alpha interval) and
    ``relative_width`` = (high - low) / median; NaN where the group is too small.
    ``presorted`` as for ``segment_quantiles``."""
    if mask is None:
        mask = np.ones(values.size, dtype=bool)
    m = segment_count(mask, ids, n)
    rank = median_ci_ranks(m, alpha)
    has = rank >= 1
    # Order statistic l of m values is the quantile (l - 1) / (m - 1) with numpy's
    # linear method (exactly on a sample point).
    q_low = np.where(has, (rank - 1) / np.maximum(m - 1, 1), 0.0)
    low, median, high = segment_quantiles(
        values, ids, n, (q_low, 0.5, 1.0 - q_low), mask, presorted
    )
    low = np.where(has, low, np.nan)
    high = np.where(has, high, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        relative = (high - low) / median
    return {"low": low, "median": median, "high": high, "relative_width": relative}
