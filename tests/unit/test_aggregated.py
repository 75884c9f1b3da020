"""Detector ``aggregated`` (seed 000): hourly series, inlier and mean thresholds."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from detectors.base import schema as S
from detectors.base.errors import InputError
from detectors.base.progress import Progress
from detectors.hunts.aggregated import (
    E_AVG_COUNT,
    E_FIRST_CONNECTION,
    E_HOURS,
    E_INLIERS,
    E_LAST_CONNECTION,
    E_OUTLIERS,
    OUTPUT_SCHEMA,
    AggregatedParams,
    run,
)
from detectors.hunts.registry import get
from detectors.pairs.context import PairContext

T0 = datetime(2024, 3, 1, tzinfo=timezone.utc)


def report_rows(
    counts: list[int],
    *,
    device: str = "pc1",
    ip: str = "8.8.8.8",
    port: int = 443,
    action: str = S.ACTION_SUCCESS_AGG,
    minute: int = 10,
    first_hour: int = 0,
) -> list[dict]:
    """One aggregated report per hour, ``minute`` past the hour, with the given counts."""
    return [
        {
            S.TIMESTAMP: T0 + timedelta(hours=first_hour + h, minutes=minute),
            S.DEVICE_ID: f"{device}-id",
            S.DEVICE_NAME: device,
            S.PROCESS: "beacon.exe",
            S.ACTION: action,
            S.REMOTE_IP: ip,
            S.REMOTE_PORT: port,
            S.CONNECTIONS: count,
        }
        for h, count in enumerate(counts)
    ]


def detect(rows: list[dict], **params) -> pl.DataFrame:
    events = S.conform(pl.DataFrame(rows), "test.csv").collect()
    return run(PairContext(events=events), AggregatedParams(**params), Progress())


def test_steady_hourly_beacon_is_reported_with_evidence():
    # 72 hours of 60 connections: span 71 h -> 3 days -> needs 4 * 3 = 12 inliers.
    # Residuals are all 0, so no hour is an anomaly; score 1 - 45/60 = 0.25.
    out = detect(report_rows([60] * 72))
    assert out.columns[: len(S.CANDIDATE_BASE_SCHEMA)] == list(S.CANDIDATE_BASE_SCHEMA)
    assert out.schema == pl.Schema(OUTPUT_SCHEMA)
    row = out.row(0, named=True)
    assert row[S.C_DETECTOR] == "aggregated"
    assert (row[S.C_DEVICE], row[S.C_PROCESS], row[S.C_REMOTE_IP]) == (
        "pc1",
        "beacon.exe",
        "8.8.8.8",
    )
    assert row[S.C_REMOTE_PORT] is None
    assert row[S.C_CONNECTIONS] == 4320
    assert row[S.C_SCORE] == 0.25
    assert row[S.C_FIRST_SEEN] == T0 + timedelta(minutes=10)
    assert row[S.C_LAST_SEEN] == T0 + timedelta(hours=71, minutes=10)
    assert row[E_FIRST_CONNECTION] == T0  # the hour bin, as the seed's FirstConnection
    assert row[E_LAST_CONNECTION] == T0 + timedelta(hours=71)
    assert (row[E_HOURS], row[E_INLIERS], row[E_OUTLIERS]) == (72, 72, 0)
    assert row[E_AVG_COUNT] == 60.0


def test_mean_count_must_be_strictly_above_threshold():
    at = report_rows([45] * 12, ip="1.1.1.1")
    above = report_rows([46] * 12, ip="2.2.2.2")
    out = detect(at + above)
    assert out.get_column(S.C_REMOTE_IP).to_list() == ["2.2.2.2"]
    assert out.get_column(S.C_SCORE).to_list() == [pytest.approx(1 - 45 / 46)]


def test_inliers_must_reach_four_per_lookback_day():
    # lookback 3 days -> 12 inliers needed.
    twelve = report_rows([60] * 12, ip="1.1.1.1")
    eleven = report_rows([60] * 11, ip="2.2.2.2")
    out = detect(twelve + eleven, lookback_days=3.0)
    assert out.get_column(S.C_REMOTE_IP).to_list() == ["1.1.1.1"]


def test_anomalous_hours_are_counted_as_outliers():
    # 59/61 alternating with spikes of 200 at hours 3 and 16 (n = 20): mean 1480/20 = 74.
    # No period of 4+ points -> residual = count - 74: -15 (x9), -13 (x9), 126 (x2).
    # P10 rank 2 -> -15, P90 rank 18 -> -13, spread 2; a spike scores 139 / 2 = 69.5.
    counts = [59, 61] * 10
    counts[3] = 200
    counts[16] = 200
    row = detect(report_rows(counts), lookback_days=1.0).row(0, named=True)
    assert (row[E_HOURS], row[E_INLIERS], row[E_OUTLIERS]) == (20, 18, 2)
    assert row[E_AVG_COUNT] == 74.0


def test_spikes_can_push_inliers_below_the_requirement():
    # Same series, but a 5-day lookback needs 20 inliers and only 18 hours are normal.
    counts = [59, 61] * 10
    counts[3] = 200
    counts[16] = 200
    assert detect(report_rows(counts), lookback_days=5.0).height == 0


def test_reports_in_the_same_hour_are_summed():
    # Two ports to the same IP, 30 each per hour -> one hourly count of 60.
    rows = report_rows([30] * 12, port=443) + report_rows([30] * 12, port=80, minute=40)
    row = detect(rows, lookback_days=3.0).row(0, named=True)
    assert (row[E_HOURS], row[E_AVG_COUNT], row[S.C_CONNECTIONS]) == (12, 60.0, 720)


def test_missing_hours_are_not_filled():
    # Hours 0..5 and 20..25: 12 bins; zeros for hours 6..19 would make the mean 30.
    rows = report_rows([60] * 6) + report_rows([60] * 6, first_hour=20)
    row = detect(rows, lookback_days=3.0).row(0, named=True)
    assert (row[E_HOURS], row[E_AVG_COUNT]) == (12, 60.0)


def test_default_lookback_is_the_input_span_in_days_rounded_up():
    # A plain connection at hour 25 makes the span 25 h -> 2 days -> 8 inliers needed.
    late = {
        S.TIMESTAMP: T0 + timedelta(hours=25),
        S.DEVICE_NAME: "pc7",
        S.ACTION: S.ACTION_SUCCESS,
        S.REMOTE_IP: "9.9.9.9",
        S.CONNECTIONS: 1,
    }
    assert detect([*report_rows([60] * 7), late]).height == 0
    assert detect([*report_rows([60] * 8), late]).height == 1


def test_only_aggregated_reports_to_public_addresses_count():
    plain = report_rows([60] * 12, ip="1.1.1.1", action=S.ACTION_SUCCESS)
    private = report_rows([60] * 12, ip="192.168.1.9")
    failed = report_rows([60] * 12, ip="3.3.3.3", action=S.ACTION_FAILED_AGG)
    out = detect(plain + private + failed, lookback_days=3.0)
    assert out.get_column(S.C_REMOTE_IP).to_list() == ["3.3.3.3"]


def test_candidates_are_ordered_by_mean_count_descending():
    rows = report_rows([50] * 12, ip="1.1.1.1") + report_rows([90] * 12, ip="2.2.2.2")
    out = detect(rows, lookback_days=3.0)
    assert out.get_column(S.C_REMOTE_IP).to_list() == ["2.2.2.2", "1.1.1.1"]
    assert out.get_column(S.C_SCORE).to_list() == [0.5, pytest.approx(0.1)]  # 1 - 45/x


def test_nothing_qualifying_returns_empty_frame_with_schema():
    out = detect(report_rows([10] * 12))
    assert out.height == 0 and out.schema == pl.Schema(OUTPUT_SCHEMA)
    empty = run(PairContext(), AggregatedParams(), Progress())
    assert empty.height == 0 and empty.schema == pl.Schema(OUTPUT_SCHEMA)


def test_registered_with_its_params():
    spec = get("aggregated")
    assert spec.params_type is AggregatedParams and spec.run is run


@pytest.mark.parametrize(
    "change",
    [{"bin": "hourly"}, {"lookback_days": 0.0}, {"anomaly_threshold": 0.0}],
)
def test_invalid_params_raise_input_error(change):
    with pytest.raises(InputError):
        dataclasses.replace(AggregatedParams(), **change)


def _random_reports(n: int, seed: int, with_null_time: bool = False) -> pl.DataFrame:
    """Reports of a few keys (null device names and processes too) over a few hours,
    often two in one hour, in no order."""
    rng = np.random.default_rng(seed)
    minutes = rng.integers(0, 60 * 30, n)
    times = [T0 + timedelta(minutes=int(m), seconds=7) for m in minutes]
    if with_null_time:
        times[3] = None
    frame = pl.DataFrame(
        {
            S.TIMESTAMP: times,
            S.DEVICE_NAME: [["pc1", "pc2", None][i] for i in rng.integers(0, 3, n)],
            S.DEVICE_ID: [["d1", "d2"][i] for i in rng.integers(0, 2, n)],
            S.PROCESS: [["a.exe", None][i] for i in rng.integers(0, 2, n)],
            S.REMOTE_IP: [["8.8.8.8", "1.1.1.1"][i] for i in rng.integers(0, 2, n)],
            S.CONNECTIONS: rng.integers(1, 90, n),
        },
        schema_overrides={S.TIMESTAMP: pl.Datetime("us", "UTC")},
    )
    return frame.cast({S.CONNECTIONS: S.EVENT_SCHEMA[S.CONNECTIONS]})


@pytest.mark.parametrize("bin_every", ["1h", "20m"])
def test_hourly_series_in_one_group_by_equals_the_two_group_bys(bin_every):
    from detectors.hunts.aggregated import _hourly_series_grouped, hourly_series

    rows = _random_reports(3000, seed=4)
    device = pl.coalesce(pl.col(S.DEVICE_NAME), pl.col(S.DEVICE_ID)).alias(S.C_DEVICE)
    want = _hourly_series_grouped(
        rows.lazy().with_columns(device), [S.C_DEVICE, S.PROCESS, S.REMOTE_IP], bin_every
    )
    got = hourly_series(rows, bin_every)
    # devices pc1, pc2, d1, d2 (the name, else the id) x 2 processes (one null) x 2 IPs
    assert want.height == 16
    assert got.get_column(E_HOURS).sum() < 3000  # reports shared bins: sums happened
    assert_frame_equal(got, want)


def test_hourly_series_with_a_report_without_time_keeps_its_null_bin():
    from detectors.hunts.aggregated import hourly_series

    rows = _random_reports(40, seed=2, with_null_time=True)
    series = hourly_series(rows)
    assert series.get_column("_bins").explode().null_count() == 1
    assert series.get_column(S.C_CONNECTIONS).sum() == rows.get_column(S.CONNECTIONS).sum()
