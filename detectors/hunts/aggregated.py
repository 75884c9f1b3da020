"""Detector ``aggregated`` (seed 000): beacons from Defender's hourly aggregated reports.

``*AggregatedReport`` rows summarise about an hour of connections in
``uniqueEventsAggregated`` (our ``connections`` column); they have no per-connection
times, so only counts can show a beacon: a steady number of connections every hour.
Per (device, process, remote IP) we take the hourly counts, run Kusto's
``series_decompose_anomalies(counts, 1.5, -1)`` (seasonality auto-detected, trend
``avg``, ctukey fences; see ``detectors.stats.kusto``) and keep series with at least
``min_inliers_per_day`` non-anomalous hours per day of lookback and a mean above
``min_mean_count`` (45/h is roughly a 1-minute sleep with some jitter).

As the seed: the series holds only the hours that have reports, sorted (missing hours
are not filled with zeros, so a beacon that sleeps through the night is not punished
for it; Kusto's docs call such irregular series meaningless for period detection, and
so does the seed's use of them); remote port is not part of the key. Where we differ:
- two reports in the same hour (two ports, or success + failed) are summed into one
  hourly count; the seed listed one element per row, counting such an hour twice;
- rows with no ``uniqueEventsAggregated`` are skipped (the seed's ``toint`` of a
  missing field is null, which its lists drop as well);
- "lookback" is the input's span in whole days unless set (files have no "now").

Score: the seed sorts by mean hourly count, descending; we map it to 0..1 as
``1 - min_mean_count / mean``, the share of the mean above the threshold.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import polars as pl

from detectors.base import schema as S
from detectors.base.errors import InputError
from detectors.base.netclass import public_mask
from detectors.base.progress import Progress
from detectors.hunts.spec import register, register_stages
from detectors.pairs.context import PairContext
from detectors.pairs.index import lists_from_lengths
from detectors.pairs.population import DEVICE_KEY
from detectors.stats.kusto import series_decompose_anomalies

NAME = "aggregated"
SUMMARY = "Steady hourly connection counts in Defender aggregated reports (seed 000)"

E_FIRST_CONNECTION = "first_connection"  # first hour bin, as the seed's FirstConnection
E_LAST_CONNECTION = "last_connection"
E_HOURS = "hours"  # number of bins with reports
E_INLIERS = "inliers"
E_OUTLIERS = "outliers"
E_AVG_COUNT = "avg_count"

OUTPUT_SCHEMA: dict[str, pl.DataType] = {
    **S.CANDIDATE_BASE_SCHEMA,
    E_FIRST_CONNECTION: pl.Datetime("us", "UTC"),
    E_LAST_CONNECTION: pl.Datetime("us", "UTC"),
    E_HOURS: pl.Int64(),
    E_INLIERS: pl.Int64(),
    E_OUTLIERS: pl.Int64(),
    E_AVG_COUNT: pl.Float64(),
}

SECONDS_PER_DAY = 86_400.0
_BIN_PATTERN = re.compile(r"^(\d+(ns|us|ms|s|m|h|d|w))+$")

# internal columns
_BIN = "_bin"
_COUNT = "_count"
_BINS = "_bins"
_COUNTS = "_counts"


@dataclass(frozen=True)
class AggregatedParams:
    """The seed's thresholds; each ``doc`` says what moving it trades."""

    lookback_days: float | None = field(
        default=None,
        metadata={
            "doc": "Days before the last event to analyse (none = the input's span, "
            "rounded up; the seed used 3). Sets the inlier requirement too."
        },
    )
    min_inliers_per_day: int = field(
        default=4,
        metadata={
            "doc": "Non-anomalous hours needed per day of lookback. Lower finds beacons "
            "active a few hours a day; higher wants all-day regularity, fewer results."
        },
    )
    min_mean_count: float = field(
        default=45.0,
        metadata={
            "doc": "Mean connections per hour must be ABOVE this (45 ~ a 1-minute sleep). "
            "Lower finds slower beacons, and far more chatty software."
        },
    )
    anomaly_threshold: float = field(
        default=1.5,
        metadata={
            "doc": "Tukey fence (ctukey score) beyond which an hour is an anomaly. Higher "
            "counts more hours as inliers: more, less regular results."
        },
    )
    bin: str = field(
        default="1h",
        metadata={
            "doc": "Time bin for the counts (polars duration, e.g. 1h, 30m). Defender "
            "reports are hourly; smaller bins only split reports apart."
        },
    )
    public_only: bool = field(
        default=True,
        metadata={
            "doc": "Only public remote addresses (the seed dropped private IPv4). Off to "
            "hunt internal beacons, with much more noise."
        },
    )

    def __post_init__(self) -> None:
        where = f"[detectors.{NAME}]"
        if self.lookback_days is not None and not self.lookback_days > 0:
            raise InputError(f"{where} lookback_days must be positive")
        if self.min_inliers_per_day < 0:
            raise InputError(f"{where} min_inliers_per_day must not be negative")
        if not self.anomaly_threshold > 0:
            raise InputError(f"{where} anomaly_threshold must be positive")
        if not _BIN_PATTERN.match(self.bin):
            raise InputError(f"{where} bin '{self.bin}' is not a duration like 1h or 30m")


@register(NAME, SUMMARY, AggregatedParams)
def run(dataset: PairContext, params: AggregatedParams, progress: Progress) -> pl.DataFrame:
    """Candidates ordered by mean hourly count, descending (as the seed sorts)."""
    progress.report(NAME, 0.0, "selecting aggregated reports")
    rows, days = _reports_in_window(dataset, params)
    min_inliers = params.min_inliers_per_day * days
    series = hourly_series(rows, params.bin)
    # Inliers can't outnumber the hours, so cut hopeless series before decomposing.
    series = series.filter(
        (pl.col(E_AVG_COUNT) > params.min_mean_count) & (pl.col(E_HOURS) >= min_inliers)
    )
    if series.height == 0:
        return empty_output()

    progress.report(NAME, 0.2, f"decomposing {series.height} hourly series")
    inliers = _count_inliers(series.get_column(_COUNTS), params.anomaly_threshold, progress)
    series = series.with_columns(
        pl.Series(E_INLIERS, inliers, dtype=pl.Int64),
    ).with_columns((pl.col(E_HOURS) - pl.col(E_INLIERS)).alias(E_OUTLIERS))
    series = series.filter(pl.col(E_INLIERS) >= min_inliers)
    progress.report(NAME, 1.0, f"{series.height} candidates")
    return _to_output(series, params)


def empty_output() -> pl.DataFrame:
    return pl.DataFrame(schema=OUTPUT_SCHEMA)


def _reports_in_window(
    dataset: PairContext, params: AggregatedParams
) -> tuple[pl.DataFrame, float]:
    """Aggregated-report rows with a count, to public IPs, in the window; and its days.

    The window is measured on the whole input (``PairContext.everyone``), so a partition of
    a bigger input gets the same window as the input.
    """
    events = dataset.events
    population = dataset.everyone()
    if params.lookback_days is None:
        days = float(max(1, math.ceil(population.span_seconds() / SECONDS_PER_DAY)))
        recent = events
    else:
        days = params.lookback_days
        last = population.time_bounds()[1]
        lookback = timedelta(microseconds=round(days * SECONDS_PER_DAY * 1e6))
        recent = events if last is None else events.filter(pl.col(S.TIMESTAMP) >= last - lookback)
    used = [S.TIMESTAMP, S.DEVICE_NAME, S.DEVICE_ID, S.PROCESS, S.REMOTE_IP, S.REMOTE_IP_TYPE]
    rows = (
        recent.lazy()
        .filter(
            pl.col(S.ACTION).str.ends_with(S.AGGREGATED_SUFFIX).fill_null(False)
            & pl.col(S.REMOTE_IP).is_not_null()
            & pl.col(S.CONNECTIONS).is_not_null()
        )
        .select(*used, S.CONNECTIONS)  # the columns the series need, not every column
        .collect()
    )
    if params.public_only and rows.height:
        rows = rows.filter(public_mask(rows, S.REMOTE_IP, S.REMOTE_IP_TYPE))
    return rows, days


def hourly_series(rows: pl.DataFrame, bin_every: str = "1h") -> pl.DataFrame:
    """Per (device, process, remote IP): sorted bins with reports and their summed counts.

    One group-by on the key (strings: the costly part), each group's bins sorted
    inside it; reports in the same bin are then summed by one segment reduction over
    all groups (numpy). Grouping by (key, bin) first and by key again hashed every
    report's strings twice, for bins that are almost all distinct already.
    """
    device = DEVICE_KEY.alias(S.C_DEVICE)
    key = [S.C_DEVICE, S.PROCESS, S.REMOTE_IP]
    if rows.height == 0 or rows.get_column(S.TIMESTAMP).null_count():  # null: a bin of its own
        return _hourly_series_grouped(rows.lazy().with_columns(device), key, bin_every)
    ts = pl.col(S.TIMESTAMP)
    groups = (
        rows.lazy()
        .with_columns(device, ts.dt.truncate(bin_every).alias(_BIN))
        .group_by(key)
        .agg(
            pl.col(_BIN).sort().alias(_BINS),
            pl.col(S.CONNECTIONS).sort_by(_BIN).alias(_COUNTS),
            ts.min().alias(S.C_FIRST_SEEN),
            ts.max().alias(S.C_LAST_SEEN),
        )
        .sort(key, nulls_last=True)
        .collect()
    )
    lengths = groups.get_column(_BINS).list.len().to_numpy().astype(np.int64)
    starts = np.cumsum(lengths) - lengths
    bins = groups.get_column(_BINS).explode().to_physical().to_numpy()
    counts = groups.get_column(_COUNTS).explode().cast(pl.Int64).to_numpy()
    first = np.zeros(bins.size, dtype=bool)  # each (group, bin) run's first report
    first[starts] = True
    first[1:] |= bins[1:] != bins[:-1]
    runs = np.flatnonzero(first)
    hours = np.add.reduceat(first.astype(np.int64), starts)
    per_bin = np.add.reduceat(counts, runs)
    totals = np.add.reduceat(counts, starts)
    bin_dtype = groups.schema[_BINS].inner  # type: ignore[attr-defined]
    return groups.with_columns(
        lists_from_lengths(_BINS, bins[runs], hours, bin_dtype),
        lists_from_lengths(_COUNTS, per_bin, hours, pl.Int64()),
        pl.Series(S.C_CONNECTIONS, totals, dtype=pl.Int64),
        pl.Series(E_HOURS, hours, dtype=pl.Int64),
        pl.Series(E_AVG_COUNT, totals / hours, dtype=pl.Float64),
    ).select(
        *key, _BINS, _COUNTS, S.C_CONNECTIONS, S.C_FIRST_SEEN, S.C_LAST_SEEN, E_HOURS, E_AVG_COUNT
    )


def _hourly_series_grouped(rows: pl.LazyFrame, key: list[str], bin_every: str) -> pl.DataFrame:
    """``hourly_series`` by two group-bys, (key, bin) then key: for rows without a time
    (their null bin sorts first, as polars sorts), and the reference the tests use."""
    per_bin = (
        rows.with_columns(pl.col(S.TIMESTAMP).dt.truncate(bin_every).alias(_BIN))
        .group_by([*key, _BIN])
        .agg(
            pl.col(S.CONNECTIONS).sum().alias(_COUNT),
            pl.col(S.TIMESTAMP).min().alias(S.C_FIRST_SEEN),
            pl.col(S.TIMESTAMP).max().alias(S.C_LAST_SEEN),
        )
    )
    # Each series is put in bin order inside its group: sorting every (key, bin) row
    # first would cost a multi-column string sort of all reports. The counts are whole
    # numbers, so their sum and mean do not depend on the order they are added in.
    return (
        per_bin.group_by(key)
        .agg(
            pl.col(_BIN).sort().alias(_BINS),
            pl.col(_COUNT).sort_by(_BIN).alias(_COUNTS),
            pl.col(_COUNT).sum().alias(S.C_CONNECTIONS),
            pl.col(S.C_FIRST_SEEN).min(),
            pl.col(S.C_LAST_SEEN).max(),
            pl.len().cast(pl.Int64).alias(E_HOURS),
            pl.col(_COUNT).mean().alias(E_AVG_COUNT),
        )
        .sort(key, nulls_last=True)
        .collect()
    )


def _count_inliers(counts: pl.Series, threshold: float, progress: Progress) -> np.ndarray:
    """Hours not flagged by series_decompose_anomalies(counts, threshold, -1), per series.

    One numpy decomposition per series: period detection has no vectorised form, and
    the mean/hours cut above leaves only the few series that could qualify.
    """
    out = np.zeros(counts.len(), dtype=np.int64)
    for i, series in enumerate(counts.to_list()):
        if i % 256 == 0:
            progress.report(
                NAME, 0.2 + 0.8 * i / max(counts.len(), 1), f"series {i + 1} of {counts.len()}"
            )
        flags = series_decompose_anomalies(np.asarray(series, dtype=np.float64), threshold, -1)
        out[i] = int(np.count_nonzero(flags.flags == 0))
    return out


def _to_output(series: pl.DataFrame, params: AggregatedParams) -> pl.DataFrame:
    floor = max(params.min_mean_count, 1.0)
    score = (1.0 - floor / pl.col(E_AVG_COUNT)).clip(0.0, 1.0)
    order = [E_AVG_COUNT, S.C_DEVICE, S.PROCESS, S.REMOTE_IP]  # key: same ties every run
    out = series.sort(order, descending=[True, False, False, False], nulls_last=True).select(
        pl.lit(NAME).alias(S.C_DETECTOR),
        pl.col(S.C_DEVICE),
        pl.col(S.PROCESS).alias(S.C_PROCESS),
        pl.col(S.REMOTE_IP).alias(S.C_REMOTE_IP),
        pl.lit(None, dtype=pl.Int32).alias(S.C_REMOTE_PORT),
        score.alias(S.C_SCORE),
        pl.col(S.C_CONNECTIONS),
        pl.col(S.C_FIRST_SEEN),
        pl.col(S.C_LAST_SEEN),
        pl.col(_BINS).list.first().alias(E_FIRST_CONNECTION),
        pl.col(_BINS).list.last().alias(E_LAST_CONNECTION),
        pl.col(E_HOURS),
        pl.col(E_INLIERS),
        pl.col(E_OUTLIERS),
        pl.col(E_AVG_COUNT),
    )
    return out.cast(OUTPUT_SCHEMA)  # type: ignore[arg-type]


def combine(
    parts: list[pl.DataFrame], dataset: PairContext, params: AggregatedParams, progress: Progress
) -> pl.DataFrame:
    """Partitions hold whole devices, so their candidates only need the common order."""
    order = [E_AVG_COUNT, S.C_DEVICE, S.C_PROCESS, S.C_REMOTE_IP]
    return pl.concat(parts, how="vertical").sort(
        order, descending=[True, False, False, False], nulls_last=True
    )


register_stages(NAME, run, combine)
