"""Detector ``intervals`` (seed 001): beacons from the time between a pair's connections.

Per (device, account, process, remote IP, port), from the shared pair index: the
distinct connection times, the deltas between them, their nearest-rank percentiles,
mean, sample stdev and jitter = stdev / mean * 100. A pair is a candidate when it has
more than ``total_events_min`` distinct times, jitter below ``jitter_threshold``, at
most ``compromised_device_count_max`` devices showing the same (process, IP, port)
among those jitter-passing candidates (the seed's ``BeaconCandidates``), a mean delta
inside the optional sleep window, and at most ``outlier_count_max`` deltas outside
Kusto's ``series_outliers`` fence (|score| > ``outlier_threshold_max``). Remote names
seen anywhere in the input are reduced to registered domains for the analyst.

Fixed seed bugs (see /work/shared/seeds/README.md):
- action types are a parameter, default ConnectionSuccess + ConnectionRequest (the KQL's
  typos "CsonnectionRequest"/"CsonnectionFailed" silently dropped them);
- the negative outlier side is compared with ``-outlier_threshold_max`` (the KQL used
  ``-OutlierCountMax``, so decline outliers between -3 and -2 were never counted);
- deltas keep microsecond precision (the KQL's ``datetime_diff('second', ...)`` turned
  1.2 s / 1.4 s sleeps into 1 s / 1 s, and 1-5 s beacons into jitter);
- duration is last - first (the KQL's ``mv-apply`` dropped the last time from it).

Known limits, as the seed says: sleeps of hours to a day give few deltas in a day's
window, and unlogged connections turn one delta into 2x or 3x the sleep (Defender does
not log every connection), which raises jitter and outliers.

Score (until the scoring issue lands): the seed orders by jitter, then mean delta,
ascending; we map that to 0..1 as ``1 - jitter / jitter_threshold`` minus a tie-break
below 1e-6 that grows with the mean delta.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import polars as pl

from detectors.base import schema as S
from detectors.base.domains import registered_domains
from detectors.base.errors import InputError
from detectors.base.progress import Progress
from detectors.hunts.spec import register, register_stages
from detectors.pairs.context import PairContext
from detectors.pairs.index import P_ACTIONS, P_CONNECTIONS, P_COUNT, P_DELTAS, P_FIRST, P_LAST, P_TS
from detectors.pairs.population import DEVICE_KEY
from detectors.pairs.table import build_pair_index, empty_index
from detectors.stats.kusto import (
    flatten_lists,
    nearest_rank_index,
    segment_ids,
    series_moments_ragged,
    series_outliers_ragged,
)
from detectors.stats.segments import sorted_within_groups

NAME = "intervals"
SUMMARY = "Regular time between connections: low jitter, few outliers, few devices (seed 001)"

# Evidence columns, after the candidate base columns.
E_COUNT = "count"  # distinct connection times
E_DURATION = "duration_s"
E_P5 = "p5_s"
E_P25 = "p25_s"
E_P75 = "p75_s"
E_P95 = "p95_s"
E_MEAN = "mean_s"
E_STDEV = "stdev_s"
E_SLEEP_MIN = "sleep_min_s"
E_SLEEP_MAX = "sleep_max_s"
E_OUTLIERS = "outliers"
E_DOMAINS = "domains"
E_DEVICE_ID = "device_id"

DELTA_PERCENTILES = (5.0, 25.0, 50.0, 75.0, 95.0)
PERCENTILE_COLUMNS = (E_P5, E_P25, S.C_INTERVAL, E_P75, E_P95)  # p50 is the median interval

OUTPUT_SCHEMA: dict[str, pl.DataType] = {
    **S.CANDIDATE_BASE_SCHEMA,
    S.C_ACCOUNT: pl.String(),
    E_COUNT: pl.Int64(),
    E_DURATION: pl.Float64(),
    E_P5: pl.Float64(),
    E_P25: pl.Float64(),
    S.C_INTERVAL: pl.Float64(),
    E_P75: pl.Float64(),
    E_P95: pl.Float64(),
    E_MEAN: pl.Float64(),
    E_STDEV: pl.Float64(),
    S.C_JITTER: pl.Float64(),
    E_SLEEP_MIN: pl.Float64(),
    E_SLEEP_MAX: pl.Float64(),
    E_OUTLIERS: pl.Int64(),
    E_DOMAINS: pl.List(pl.String()),
    E_DEVICE_ID: pl.String(),
}

TIE_BREAK = 1e-6  # below any jitter difference an analyst would read


@dataclass(frozen=True)
class IntervalParams:
    """The seed's thresholds; each ``doc`` says what moving it trades."""

    lookback_hours: float | None = field(
        default=None,
        metadata={
            "doc": "Hours before the last event to analyse (none = the whole input; the "
            "seed used 24). Longer windows catch slower beacons but mix in more noise."
        },
    )
    actions: tuple[str, ...] = field(
        default=(S.ACTION_SUCCESS, S.ACTION_REQUEST),
        metadata={
            "doc": "Action types that count as connections. Adding ConnectionFailed "
            "finds beacons whose server is down, at the cost of more retry noise."
        },
    )
    total_events_min: int = field(
        default=15,
        metadata={
            "doc": "A pair needs MORE than this many distinct connection times. Lower "
            "finds short-lived beacons; higher gives steadier statistics, fewer results."
        },
    )
    time_delta_min_s: float = field(
        default=0.001,
        metadata={
            "doc": "Shortest mean sleep (s) to report; also caps the connection count at "
            "window / this. Raise it to ignore fast chatter (see sleep_window)."
        },
    )
    time_delta_max_s: float | None = field(
        default=None,
        metadata={
            "doc": "Longest mean sleep (s) to report (none = no limit). Set with "
            "time_delta_min_s to hunt one sleep/jitter profile; fewer results."
        },
    )
    jitter_threshold: float = field(
        default=50.0,
        metadata={
            "doc": "Keep pairs with jitter (stdev/mean of the deltas, %) strictly below "
            "this. Smaller = tighter beacons only, fewer false positives."
        },
    )
    outlier_threshold_max: float = field(
        default=2.0,
        metadata={
            "doc": "A delta is an outlier when its ctukey score is beyond +-this (1.5 "
            "outlier, 3 far out). Higher tolerates more irregular deltas."
        },
    )
    outlier_count_max: int = field(
        default=3,
        metadata={
            "doc": "Drop a pair with more outlier deltas than this. Higher keeps beacons "
            "with missed or delayed check-ins, and more noise."
        },
    )
    compromised_device_count_max: int = field(
        default=10,
        metadata={
            "doc": "Drop a (process, IP, port) that MORE than this many devices reach "
            "beacon-like. Higher keeps wide campaigns, and common updaters too."
        },
    )
    public_only: bool = field(
        default=True,
        metadata={
            "doc": "Only public remote addresses (private, loopback, link-local, reserved "
            "excluded). Off to hunt internal C2 / lateral beacons, with much more noise."
        },
    )

    def __post_init__(self) -> None:
        where = f"[detectors.{NAME}]"
        if self.lookback_hours is not None and not self.lookback_hours > 0:
            raise InputError(f"{where} lookback_hours must be positive")
        if not self.actions:
            raise InputError(f"{where} actions must name at least one action type")
        if self.total_events_min < 1:
            raise InputError(f"{where} total_events_min must be at least 1")
        if self.time_delta_min_s < 0:
            raise InputError(f"{where} time_delta_min_s must not be negative")
        if self.time_delta_max_s is not None and self.time_delta_max_s < self.time_delta_min_s:
            raise InputError(f"{where} time_delta_max_s must not be below time_delta_min_s")
        if not self.jitter_threshold > 0:
            raise InputError(f"{where} jitter_threshold must be positive")
        if not self.outlier_threshold_max > 0:
            raise InputError(f"{where} outlier_threshold_max must be positive")
        if self.outlier_count_max < 0:
            raise InputError(f"{where} outlier_count_max must not be negative")
        if self.compromised_device_count_max < 1:
            raise InputError(f"{where} compromised_device_count_max must be at least 1")


def sleep_window(target_sleep_s: float, jitter_pct: float) -> tuple[float, float]:
    """(min, max) mean sleep for a beacon profile, as the seed's "How to use" computes.

    A 900 s sleep with 25 % jitter gives (675, 1125): use them as ``time_delta_min_s``
    and ``time_delta_max_s``, and ``jitter_pct`` as the jitter threshold.
    """
    spread = target_sleep_s * jitter_pct / 100.0
    return target_sleep_s - spread, target_sleep_s + spread


@register(NAME, SUMMARY, IntervalParams, cost=2, sorts_connections=True)
def run(dataset: PairContext, params: IntervalParams, progress: Progress) -> pl.DataFrame:
    """Candidates ordered as the seed orders them: jitter, then mean delta, ascending."""
    return finish([regular_pairs(dataset, params, progress)], dataset, params, progress)


def regular_pairs(dataset: PairContext, params: IntervalParams, progress: Progress) -> pl.DataFrame:
    """Stage one, on one device partition: pairs with enough times and low jitter.

    Everything per pair happens here; what needs every device (the prevalence of a
    destination among these pairs) waits for ``finish``.
    """
    progress.report(NAME, 0.0, "indexing pairs")
    pairs, window_s = _pairs_in_window(dataset, params)
    max_events = _max_events(window_s, params.time_delta_min_s)
    count = pl.col(P_COUNT)
    pairs = pairs.filter((count > params.total_events_min) & (count < max_events))
    progress.report(NAME, 0.3, f"delta statistics for {pairs.height} pairs")
    pairs = with_delta_stats(pairs)
    # the times themselves are not needed again (deltas are): less to keep per partition
    return pairs.filter(pl.col(S.C_JITTER) < params.jitter_threshold).drop(P_TS, P_ACTIONS)


def finish(
    parts: list[pl.DataFrame], dataset: PairContext, params: IntervalParams, progress: Progress
) -> pl.DataFrame:
    """Stage two, over every partition's regular pairs: prevalence, sleep, outliers."""
    pairs = pl.concat(parts, how="vertical") if len(parts) > 1 else parts[0]
    if pairs.height == 0:
        return empty_output()
    progress.report(NAME, 0.5, "prevalence across devices")
    pairs = _within_prevalence(pairs, params.compromised_device_count_max)
    pairs = _within_sleep_window(pairs, params)
    if pairs.height == 0:
        return empty_output()

    progress.report(NAME, 0.6, f"outlier deltas for {pairs.height} pairs")
    pairs = pairs.with_columns(
        pl.Series(E_OUTLIERS, count_outliers(pairs.get_column(P_DELTAS), params))
    ).filter(pl.col(E_OUTLIERS) <= params.outlier_count_max)
    if pairs.height == 0:
        return empty_output()

    progress.report(NAME, 0.8, "domains for remote addresses")
    pairs = _with_domains(pairs, dataset)
    progress.report(NAME, 1.0, f"{pairs.height} candidates")
    return _to_output(pairs, params)


def empty_output() -> pl.DataFrame:
    return pl.DataFrame(schema=OUTPUT_SCHEMA)


def _pairs_in_window(dataset: PairContext, params: IntervalParams) -> tuple[pl.DataFrame, float]:
    """The pair index for the window, and the window's length in seconds.

    The window ends at the last event of the whole input (files have no "now"); with no
    lookback it is the whole input and the shared, cached pair index is reused.
    """
    population = dataset.everyone()
    if params.lookback_hours is None:
        window_s = population.span_seconds()
        busy = params.total_events_min + 1  # the only pairs run() keeps
        if params.public_only:
            return dataset.pairs(params.actions, min_count=busy), window_s
        table = dataset.connection_table()
        return table.index(params.actions, public_only=False, min_count=busy), window_s
    last = population.time_bounds()[1]
    if last is None:
        return empty_index(), 0.0
    since = last - timedelta(microseconds=round(params.lookback_hours * 3600e6))
    recent = dataset.events.filter(pl.col(S.TIMESTAMP) >= since)
    window_s = params.lookback_hours * 3600.0
    return build_pair_index(recent, params.actions, params.public_only), window_s


def _max_events(window_s: float, time_delta_min_s: float) -> float:
    """The seed's TotalEventsThresholdMax = toint(window / TimeDeltaThresholdMin)."""
    if time_delta_min_s <= 0:
        return math.inf
    return float(math.floor(window_s / time_delta_min_s))


def with_delta_stats(pairs: pl.DataFrame) -> pl.DataFrame:
    """Add duration, delta percentiles, mean, sample stdev, jitter and sleep bounds.

    All pairs at once: the deltas are flattened with offsets and every statistic is a
    segment reduction (no loop per pair).
    """
    values, offsets = flatten_lists(pairs.get_column(P_DELTAS))
    stats = series_moments_ragged(values, offsets)
    pcts = delta_percentiles(values, offsets)
    mean = stats["avg"]
    stdev = stats["stdev"]
    with np.errstate(invalid="ignore", divide="ignore"):
        jitter = stdev / mean * 100.0
    columns = [pl.Series(name, pcts[:, j]) for j, name in enumerate(PERCENTILE_COLUMNS)]
    columns += [
        pl.Series(E_MEAN, mean),
        pl.Series(E_STDEV, stdev),
        pl.Series(S.C_JITTER, jitter),
        pl.Series(E_SLEEP_MIN, mean - stdev),
        pl.Series(E_SLEEP_MAX, mean + stdev),
    ]
    duration = (pl.col(P_LAST) - pl.col(P_FIRST)).dt.total_microseconds() / 1e6
    return pairs.with_columns(columns).with_columns(duration.alias(E_DURATION))


def delta_percentiles(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """``DELTA_PERCENTILES`` of every pair's deltas (nearest rank): (pairs, 5), NaN if none.

    What ``kusto.percentiles_ragged`` returns, for a quarter of its time: polars sorts
    each pair's deltas in parallel where the general function lexsorts them all at
    once. Its filter of non-finite values has nothing to drop here: deltas are
    differences of whole microseconds.
    """
    counts = np.diff(offsets)
    out = np.full((counts.size, len(DELTA_PERCENTILES)), np.nan)
    has = counts > 0
    if not has.any():
        return out
    ordered = sorted_within_groups(values, segment_ids(offsets))
    for j, p in enumerate(DELTA_PERCENTILES):
        out[has, j] = ordered[offsets[:-1][has] + nearest_rank_index(p, counts[has])]
    return out


def count_outliers(deltas: pl.Series, params: IntervalParams) -> np.ndarray:
    """Per pair, how many deltas have a ctukey score beyond +-outlier_threshold_max."""
    values, offsets = flatten_lists(deltas)
    score = series_outliers_ragged(values, offsets)
    limit = params.outlier_threshold_max
    is_outlier = (score > limit) | (score < -limit)
    counts = np.bincount(segment_ids(offsets), weights=is_outlier, minlength=offsets.size - 1)
    return counts.astype(np.int64)


def _device_identity() -> pl.Expr:
    return pl.coalesce(pl.col(S.DEVICE_ID), pl.col(S.DEVICE_NAME))


def _within_prevalence(pairs: pl.DataFrame, max_devices: int) -> pl.DataFrame:
    """Drop (process, IP, port) seen from more than ``max_devices`` devices.

    Counted over the jitter-passing candidates, as the seed counts over BeaconCandidates:
    a destination many devices reach *beacon-like* is an updater, not a compromise.
    """
    key = [S.PROCESS, S.REMOTE_IP, S.REMOTE_PORT]
    devices = _device_identity().n_unique().over(key)
    return pairs.filter(devices <= max_devices)


def _within_sleep_window(pairs: pl.DataFrame, params: IntervalParams) -> pl.DataFrame:
    """Keep pairs whose mean delta lies in [time_delta_min_s, time_delta_max_s].

    The seed only used TimeDeltaThresholdMin for the event cap and tells the user to
    filter results by the sleep window; the mean delta is the beacon's sleep estimate.
    """
    keep = pl.col(E_MEAN) >= params.time_delta_min_s
    if params.time_delta_max_s is not None:
        keep = keep & (pl.col(E_MEAN) <= params.time_delta_max_s)
    return pairs.filter(keep)


def _with_domains(pairs: pl.DataFrame, dataset: PairContext) -> pl.DataFrame:
    """Registered domains of every name seen for the remote IP anywhere in the input."""
    ips = pairs.get_column(S.REMOTE_IP).unique()
    names = (
        dataset.names_by_ip()
        .filter(pl.col(S.NAME_IP).is_in(ips.implode()))
        .explode("names", empty_as_null=False, keep_nulls=False)
    )
    names = names.with_columns(registered_domains(names.get_column("names")).alias("domain"))
    domains = (
        names.drop_nulls("domain")
        .group_by(S.NAME_IP)
        .agg(pl.col("domain").unique().sort().alias(E_DOMAINS))
        .rename({S.NAME_IP: S.REMOTE_IP})
    )
    joined = pairs.join(domains, on=S.REMOTE_IP, how="left")
    return joined.with_columns(pl.col(E_DOMAINS).fill_null(pl.lit([], dtype=pl.List(pl.String))))


def _to_output(pairs: pl.DataFrame, params: IntervalParams) -> pl.DataFrame:
    mean = pl.col(E_MEAN)
    score = (
        1.0 - pl.col(S.C_JITTER) / params.jitter_threshold - TIE_BREAK * mean / (1.0 + mean)
    ).clip(0.0, 1.0)
    # The seed's order, then the pair key so that ties come out the same every run.
    order = [S.C_JITTER, E_MEAN, S.DEVICE_NAME, S.DEVICE_ID, S.ACCOUNT, S.PROCESS]
    out = pairs.sort([*order, S.REMOTE_IP, S.REMOTE_PORT], nulls_last=True).select(
        pl.lit(NAME).alias(S.C_DETECTOR),
        DEVICE_KEY.alias(S.C_DEVICE),
        pl.col(S.PROCESS).alias(S.C_PROCESS),
        pl.col(S.REMOTE_IP).alias(S.C_REMOTE_IP),
        pl.col(S.REMOTE_PORT).alias(S.C_REMOTE_PORT),
        score.alias(S.C_SCORE),
        pl.col(P_CONNECTIONS).alias(S.C_CONNECTIONS),
        pl.col(P_FIRST).alias(S.C_FIRST_SEEN),
        pl.col(P_LAST).alias(S.C_LAST_SEEN),
        pl.col(S.ACCOUNT).alias(S.C_ACCOUNT),
        pl.col(P_COUNT).alias(E_COUNT),
        pl.col(E_DURATION),
        *[pl.col(name) for name in PERCENTILE_COLUMNS],
        pl.col(E_MEAN),
        pl.col(E_STDEV),
        pl.col(S.C_JITTER),
        pl.col(E_SLEEP_MIN),
        pl.col(E_SLEEP_MAX),
        pl.col(E_OUTLIERS),
        pl.col(E_DOMAINS),
        pl.col(S.DEVICE_ID).alias(E_DEVICE_ID),
    )
    return out.cast(OUTPUT_SCHEMA)  # type: ignore[arg-type]


register_stages(NAME, regular_pairs, finish)
