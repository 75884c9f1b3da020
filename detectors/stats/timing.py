"""One timing verdict per pair: bursts folded into check-ins, then the renewal test.

The glue between ``stats.bursts`` and ``stats.renewal`` for the hunts: a pair whose
connections mostly come in bursts (``min_burst_share`` of them in bursts of two or
more) is tested on its bursts' start times, every other pair on its connection times.
Vectorised over pairs: the two kinds of deltas are laid end to end and re-sorted by
pair once, no loop per pair.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from detectors.stats.bursts import BurstSettings, burst_clusters
from detectors.stats.renewal import RenewalSettings, deltas_from_times, renewal_test
from detectors.stats.segments import segment_ids, sorted_within_groups


@dataclass(frozen=True)
class TimingSettings:
    """Settings of the burst step and the renewal test."""

    renewal: RenewalSettings = field(default_factory=RenewalSettings)
    bursts: BurstSettings = field(default_factory=BurstSettings)
    min_burst_share: float = 0.5
    """Share of a pair's connections in bursts that makes it a burst beacon."""


def timing_estimates(
    times_s: np.ndarray,
    counts: np.ndarray,
    settings: TimingSettings | None = None,
    sorted_deltas: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """``renewal_test``'s figures per pair, plus ``burst_size`` (1 when not bursty),
    ``bursty`` and ``jitter_pct`` (half the jitter interval over its centre, in %:
    the periodicity hunt's uniform-jitter definition).

    ``sorted_deltas`` (``segments.sorted_deltas`` of the same times), when the caller
    has them, spare the bursts and the renewal test their own sorts: same numbers."""
    s = settings or TimingSettings()
    times = np.asarray(times_s, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.int64)
    b = burst_clusters(times, counts, s.bursts, sorted_deltas)
    bursty = (
        (b["burst_share"] >= s.min_burst_share)
        & (np.nan_to_num(b["burst_size"]) >= 2)
        & (b["bursts"] > s.renewal.min_deltas)
    )
    raw_d, raw_c = deltas_from_times(times, counts)
    start_d, start_c = deltas_from_times(b["starts"], b["bursts"])
    raw_ids = segment_ids(raw_c)
    start_ids = segment_ids(start_c)
    keep_raw = ~bursty[raw_ids]
    keep_start = bursty[start_ids]
    if sorted_deltas is not None:
        # Each pair's deltas sorted: its raw ones from the caller, its bursts' starts
        # (few pairs) sorted here; the renewal test then needs no sort of its own.
        raw_d = sorted_deltas
        start_d = start_d[keep_start]
        start_d = sorted_within_groups(start_d, start_ids[keep_start]) if start_d.size else start_d
    else:
        start_d = start_d[keep_start]
    ids = np.concatenate([raw_ids[keep_raw], start_ids[keep_start]])
    d = np.concatenate([raw_d[keep_raw], start_d])
    order = np.argsort(ids, kind="stable")
    c = np.where(bursty, start_c, raw_c)
    result = renewal_test(d[order], c, s.renewal, presorted=sorted_deltas is not None)
    with np.errstate(invalid="ignore", divide="ignore"):
        jitter = (result["upper_s"] - result["lower_s"]) / (result["upper_s"] + result["lower_s"])
    result["jitter_pct"] = jitter * 100
    result["burst_size"] = np.where(bursty, b["burst_size"], 1.0)
    result["bursty"] = bursty
    return result
