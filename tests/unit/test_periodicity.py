"""The periodicity detector on small canonical frames."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import polars as pl
import pytest

from detectors.base import schema as S
from detectors.base.progress import Progress
from detectors.hunts.periodicity import (
    BURST_SIZE,
    JITTER_KIND,
    MISSED,
    PERIOD,
    RENEWAL_P,
    SCHEDULE,
    SCHEDULE_CONTINUOUS,
    SCHEDULE_WORKHOURS,
    SLEEP_CI_HIGH,
    SLEEP_CI_LOW,
    PeriodicityParams,
    run,
)
from detectors.hunts.registry import get, params_from_table
from detectors.pairs.context import PairContext

START = datetime(2026, 11, 18, tzinfo=timezone.utc)  # a Wednesday, 00:00 UTC
C2 = "185.141.27.66"


def _rows(device, process, ip, port, seconds, action=S.ACTION_SUCCESS, url=None):
    return [
        {
            S.TIMESTAMP: START + timedelta(seconds=float(t)),
            S.DEVICE_NAME: device,
            S.DEVICE_ID: device,
            S.PROCESS: process,
            S.ACTION: action,
            S.REMOTE_IP: ip,
            S.REMOTE_PORT: port,
            S.REMOTE_URL: url,
        }
        for t in seconds
    ]


def _dataset(*groups, names=None) -> PairContext:
    rows = [r for g in groups for r in g]
    events = S.conform(pl.DataFrame(rows), "test").collect()
    if names is None:
        return PairContext(events=events)
    return PairContext(events=events, names=pl.DataFrame(names, schema=S.NAMES_SCHEMA))


def _run(dataset, **params):
    return run(dataset, PeriodicityParams(**params), Progress())


def test_reports_a_beacon_and_not_random_traffic():
    rng = np.random.default_rng(1)
    ds = _dataset(
        _rows("ws-1", "rundll32.exe", C2, 443, np.arange(0, 6 * 3600, 60.0)),
        _rows("ws-1", "chrome.exe", "142.250.1.7", 443, np.sort(rng.uniform(0, 21600, 300))),
    )
    out = _run(ds)
    assert out.columns[:9] == list(S.CANDIDATE_BASE_SCHEMA)
    assert out.height == 1
    row = out.row(0, named=True)
    assert (row[S.C_DETECTOR], row[S.C_PROCESS], row[S.C_REMOTE_IP]) == (
        "periodicity",
        "rundll32.exe",
        C2,
    )
    assert row[PERIOD] == pytest.approx(60.0)
    assert row[JITTER_KIND] == "none"
    assert row[S.C_CONNECTIONS] == 360
    assert row[SCHEDULE] == SCHEDULE_CONTINUOUS
    # p <= 1e-10 gives full significance, zero jitter full regularity: score 1
    assert row[S.C_SCORE] == pytest.approx(1.0)


def test_failed_connections_are_beacons_too():
    ds = _dataset(_rows("ws-1", "x.exe", C2, 443, np.arange(0, 7200, 120.0), S.ACTION_FAILED))
    assert _run(ds).height == 1
    assert _run(ds, actions=(S.ACTION_SUCCESS,)).height == 0


def test_unlogged_connections_are_reported_as_missed():
    kept = np.array([i for i in range(120) if i % 4 != 1]) * 600.0
    out = _run(_dataset(_rows("ws-1", "msiexec.exe", C2, 443, kept)))
    assert out.item(0, PERIOD) == pytest.approx(600.0)
    # 90 kept of 120, 89 deltas; the 30 gaps at i = 1, 5, ..., 117 make 30 deltas of 2 sleeps
    assert out.item(0, MISSED) == pytest.approx(30 / 89)


def test_workhours_beacon_is_labelled():
    days = [d * 86400 + 9 * 3600 + np.arange(32) * 900.0 for d in range(3)]
    out = _run(_dataset(_rows("ws-1", "mshta.exe", C2, 80, np.concatenate(days))))
    assert out.item(0, SCHEDULE) == SCHEDULE_WORKHOURS
    assert out.item(0, PERIOD) == pytest.approx(900.0)


def test_private_destinations_are_skipped_unless_asked():
    ds = _dataset(_rows("ws-1", "x.exe", "10.1.2.3", 445, np.arange(0, 7200, 60.0)))
    assert _run(ds).height == 0
    assert _run(ds, public_only=False).height == 1


def test_explicit_proxy_connections_are_tested():
    times = np.arange(0, 4 * 3600, 600.0)
    named = _dataset(_rows("ws-1", "msbuild.exe", "10.0.0.8", 3128, times, url="c2.example"))
    unnamed = _dataset(_rows("ws-1", "msbuild.exe", "10.0.0.8", 3128, times))
    assert _run(named).item(0, S.C_REMOTE_IP) == "10.0.0.8"
    assert _run(unnamed).height == 0
    assert _run(named, include_proxies=False).height == 0


def test_zeek_rows_keyed_on_originating_address():
    rows = _rows("10.0.2.5", None, C2, 443, np.arange(0, 7200, 60.0), action="SF")
    out = _run(_dataset(rows))
    assert out.height == 1
    assert out.item(0, S.C_DEVICE) == "10.0.2.5"
    assert out.item(0, S.C_PROCESS) is None


def test_prevalence_filter_drops_widespread_schedules():
    times = np.arange(0, 7200, 60.0)
    groups = [_rows(f"ws-{i}", "updater.exe", C2, 443, times) for i in range(11)]
    ds = _dataset(*groups)
    assert _run(ds).height == 0
    assert _run(ds, max_devices=11).height == 11


def test_too_few_events_are_not_tested():
    ds = _dataset(_rows("ws-1", "x.exe", C2, 443, np.arange(0, 300, 60.0)))  # 5 times
    assert _run(ds).height == 0


def test_parameters_load_from_config_table():
    spec = get("periodicity")
    params = params_from_table(
        spec.params_type, {"max_jitter_pct": 40, "actions": ["ConnectionSuccess"]}
    )
    assert params.max_jitter_pct == 40.0
    assert params.actions == ("ConnectionSuccess",)


def test_median_delta_is_taken_per_pair_in_whole_microseconds():
    # pair 0: 0, 60, 180.000001 s -> deltas 60 and 120.000001 -> median 90.0000005;
    # pair 1: 10, 20, 30, 70 s -> deltas 10, 10, 40 -> median 10; pair 2: one time
    from detectors.hunts.periodicity import _median_delta_s

    epoch_us = np.array([0, 60_000_000, 180_000_001, 10_000_000, 20_000_000, 30_000_000,
                         70_000_000, 5_000_000], dtype=np.int64)  # fmt: skip
    medians = _median_delta_s(epoch_us, np.array([3, 4, 1]))
    assert medians[:2].tolist() == [90.0000005, 10.0]
    assert np.isnan(medians[2])


def test_median_delta_from_the_shared_sorted_seconds_equals_the_microsecond_sort():
    # Times in whole microseconds, up to two years from each pair's first, with ties
    # and deltas a microsecond apart: the shortcut must give the sort's medians exactly.
    from detectors.hunts.periodicity import _EXACT_US_SPAN_S, _median_delta_s
    from detectors.stats.segments import segment_ids, sorted_deltas

    rng = np.random.default_rng(4)
    counts = rng.integers(1, 40, 500)
    span_us = int(_EXACT_US_SPAN_S * 1e6) - 1
    steps = rng.choice([1, 2, 1_000_000, 3_000_001, 60_000_000, span_us // 45], counts.sum())
    ids = segment_ids(counts)
    firsts = np.cumsum(counts) - counts
    epoch_us = 1_700_000_000_000_000 + np.cumsum(steps)
    epoch_us = epoch_us - np.repeat(epoch_us[firsts] - 1_700_000_000_000_000, counts)
    epoch_us = epoch_us.astype(np.int64)
    times_s = (epoch_us - epoch_us[firsts][ids]) / 1e6
    shared = _median_delta_s(epoch_us, counts, sorted_deltas(times_s, counts), times_s.max())
    assert _EXACT_US_SPAN_S / 4 < times_s.max() < _EXACT_US_SPAN_S  # the shortcut runs
    np.testing.assert_array_equal(shared, _median_delta_s(epoch_us, counts))


def test_burst_beacon_reports_its_check_in_period_and_burst_size():
    # 3-6 connections within 10 s, every 600 s (+-5 %), for 12 hours: raw deltas are
    # mostly seconds, so the period comes from the bursts' starts.
    rng = np.random.default_rng(8)
    starts = np.cumsum(rng.uniform(570, 630, 72))
    times = np.concatenate([s + np.sort(rng.uniform(0, 10, rng.integers(3, 7))) for s in starts])
    out = _run(_dataset(_rows("ws-1", "rundll32.exe", C2, 443, np.sort(times))))
    assert out.height == 1
    assert out.item(0, PERIOD) == pytest.approx(600.0, rel=0.05)
    assert 3 <= out.item(0, BURST_SIZE) <= 6
    assert out.item(0, RENEWAL_P) < 1e-10


def test_cobalt_strike_50pct_jitter_gets_a_sleep_from_the_renewal_test():
    # 40 check-ins at sleep x (1 - U(0, 0.5)), sleep 300 s: the deltas spread over
    # [150, 300]. Uniform and one-sided jitter look alike, so the sleep is the interval's
    # centre (225 s) or its upper edge (300 s).
    rng = np.random.default_rng(3)
    times = np.cumsum(rng.uniform(150, 300, 40))
    out = _run(_dataset(_rows("ws-1", "dllhost.exe", C2, 443, times)))
    assert out.height == 1
    period = out.item(0, PERIOD)
    assert abs(period / 225 - 1) <= 0.05 or abs(period / 300 - 1) <= 0.05
    assert out.item(0, RENEWAL_P) < 1e-10
    low, high = out.item(0, SLEEP_CI_LOW), out.item(0, SLEEP_CI_HIGH)
    assert 150 <= low < high <= 300


def test_daily_check_in_over_a_week_shows_the_uncertainty_of_its_sleep():
    # Eight daily check-ins (7 deltas), +-2 % jitter: the 95 % interval of the median
    # sleep is [x_(1), x_(7)] (l = 1 for m = 7), a few percent wide.
    rng = np.random.default_rng(6)
    times = np.concatenate([[0.0], np.cumsum(rng.uniform(0.98, 1.02, 7) * 86400)])
    out = _run(_dataset(_rows("srv-1", "svchost.exe", C2, 443, times)))
    assert out.height == 1
    deltas = np.diff(times)
    assert out.item(0, SLEEP_CI_LOW) == pytest.approx(deltas.min())
    assert out.item(0, SLEEP_CI_HIGH) == pytest.approx(deltas.max())
    assert out.item(0, PERIOD) == pytest.approx(86400, rel=0.05)
