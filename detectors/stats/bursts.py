"""Bursts: k connections within seconds, every N minutes, are one beacon of burst size k.

An implant that opens several connections per check-in (a staged download, a task
result posted after the poll, an HTTP client that retries) shows a delta histogram
with two modes: seconds inside a burst and the sleep between bursts. Per-delta tests
then see a median of a few seconds and huge "jitter". Clustering the times first
(single-linkage on the time line: a delta short enough joins the next connection to
the current burst) turns each burst into one check-in; the period tests
(``stats.renewal``, the periodogram) then run on the bursts' start times. Interactive
sessions (a person clicking through a site) are bursts too, but their starts are not
periodic, so the period test on the starts tells the two apart.

A delta joins a burst when it is at most ``max_gap_s`` **and** at most
``relative_gap`` of the pair's 90th-percentile delta: a beacon whose sleep is itself
a few seconds (all deltas alike) is not folded into one endless burst.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detectors.stats.segments import segment_count, segment_ids, segment_quantiles


@dataclass(frozen=True)
class BurstSettings:
    """How close connections must be to count as one burst."""

    max_gap_s: float = 30.0
    """Longest delta inside a burst; longer finds slower multi-step check-ins and
    merges fast beacons' connections."""
    relative_gap: float = 0.2
    """A delta inside a burst is also at most this share of the pair's 90th-percentile
    delta, so pairs whose deltas are all short stay unclustered."""


def burst_clusters(
    times: np.ndarray,
    counts: np.ndarray,
    settings: BurstSettings | None = None,
    sorted_deltas: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Bursts of many pairs: ``times`` sorted within each pair, laid end to end.

    Returns per burst: ``starts`` (time of its first connection, bursts of all pairs
    end to end), ``sizes`` (connections in it); per pair: ``bursts`` (how many, the
    ``counts`` of ``starts``), ``burst_size`` (median size), ``burst_share`` (share of
    the pair's connections in bursts of two or more) and ``max_gap_s`` (the gap
    threshold used, NaN for a pair with one time). ``sorted_deltas``: the pairs'
    deltas already sorted (``segments.sorted_deltas``), when the caller has them.
    """
    s = settings or BurstSettings()
    times = np.asarray(times, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.int64)
    n = counts.size
    ids_t = segment_ids(counts)
    same = ids_t[1:] == ids_t[:-1]
    d = np.diff(times)[same]
    d_ids = ids_t[1:][same]
    if sorted_deltas is None:
        q90 = segment_quantiles(d, d_ids, n, (0.9,))[0]
    else:  # the caller's sort of these same deltas
        q90 = segment_quantiles(sorted_deltas, d_ids, n, (0.9,), presorted=True)[0]
    threshold = np.minimum(s.max_gap_s, s.relative_gap * q90)
    joins = np.zeros(times.size, dtype=bool)  # True: this time joins the previous burst
    end_index = np.arange(1, times.size)[same]
    joins[end_index] = d <= np.nan_to_num(threshold, nan=-1.0)[d_ids]
    starts_mask = ~joins
    burst_id = np.cumsum(starts_mask) - 1
    sizes = np.bincount(burst_id, minlength=int(starts_mask.sum())) if times.size else np.zeros(0)
    burst_pair = ids_t[starts_mask]
    bursts = np.bincount(burst_pair, minlength=n)[:n].astype(np.int64)
    in_multi = sizes[burst_id] >= 2 if times.size else np.zeros(0, dtype=bool)
    share = segment_count(in_multi, ids_t, n) / np.maximum(counts, 1)
    # Sorted, a pair's sizes start with its single connections (size 1). When both
    # order statistics the median interpolates between lie among them, it is 1: only
    # pairs with at least half their bursts of two or more need their sizes sorted.
    singles = np.bincount(burst_pair[sizes == 1], minlength=n)[:n]
    upper = np.ceil((bursts - 1) * 0.5)  # the higher of the two (segment_quantiles)
    size_median = np.where(bursts > 0, 1.0, np.nan)
    unsettled = (bursts > 0) & (upper >= singles)
    if unsettled.any():
        pick = unsettled[burst_pair]
        medians = segment_quantiles(sizes[pick].astype(np.float64), burst_pair[pick], n, (0.5,))
        size_median[unsettled] = medians[0][unsettled]
    return {
        "starts": times[starts_mask],
        "sizes": sizes.astype(np.int64),
        "bursts": bursts,
        "burst_size": size_median,
        "burst_share": share,
        "max_gap_s": threshold,
    }
