"""Detector ``intervals`` (seed 001): each filter's boundary and each seed-bug fix."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

import polars as pl
import pytest

from detectors.base import schema as S
from detectors.base.errors import Cancelled, InputError
from detectors.base.progress import Progress
from detectors.hunts.intervals import (
    E_DOMAINS,
    E_MEAN,
    E_OUTLIERS,
    E_P5,
    E_P95,
    OUTPUT_SCHEMA,
    IntervalParams,
    run,
    sleep_window,
)
from detectors.hunts.registry import get
from detectors.pairs.context import PairContext

T0 = datetime(2024, 3, 1, tzinfo=timezone.utc)
STEADY = [60.0] * 8 + [62.0] * 8  # 17 times; mean 61, no outliers, jitter ~1.7 %


def pair_rows(
    deltas: list[float],
    *,
    device: str = "pc1",
    ip: str = "8.8.8.8",
    port: int = 443,
    process: str | None = "beacon.exe",
    action: str = S.ACTION_SUCCESS,
    url: str | None = None,
    start: datetime = T0,
    device_id: str | None = "auto",
) -> list[dict]:
    """One event at ``start`` and one after each delta (exact to the microsecond)."""
    times = [start]
    for delta in deltas:
        times.append(times[-1] + timedelta(microseconds=round(delta * 1_000_000)))
    return [
        {
            S.TIMESTAMP: t,
            S.DEVICE_ID: f"{device}-id" if device_id == "auto" else device_id,
            S.DEVICE_NAME: device,
            S.ACCOUNT: "corp\\bob",
            S.PROCESS: process,
            S.ACTION: action,
            S.REMOTE_IP: ip,
            S.REMOTE_PORT: port,
            S.REMOTE_URL: url,
            S.CONNECTIONS: 1,
        }
        for t in times
    ]


def detect(rows: list[dict], names: pl.DataFrame | None = None, **params) -> pl.DataFrame:
    events = S.conform(pl.DataFrame(rows), "test.csv").collect()
    dataset = PairContext(events=events)
    if names is not None:
        dataset.names = names
    return run(dataset, IntervalParams(**params), Progress())


def ips(out: pl.DataFrame) -> list[str]:
    return sorted(out.get_column(S.C_REMOTE_IP).to_list())


# --- output shape ---------------------------------------------------------------------


def test_output_starts_with_candidate_base_columns():
    out = detect(pair_rows(STEADY))
    assert out.columns[: len(S.CANDIDATE_BASE_SCHEMA)] == list(S.CANDIDATE_BASE_SCHEMA)
    assert out.schema == pl.Schema(OUTPUT_SCHEMA)
    row = out.row(0, named=True)
    assert row[S.C_DETECTOR] == "intervals"
    assert row[S.C_DEVICE] == "pc1"
    assert row[S.C_CONNECTIONS] == 17
    assert row[S.C_FIRST_SEEN] == T0
    assert row[S.C_LAST_SEEN] == T0 + timedelta(seconds=8 * 60 + 8 * 62)  # 976 s
    assert row["duration_s"] == 976.0
    assert row["count"] == 17
    assert row[S.C_ACCOUNT] == "corp\\bob"
    assert row["device_id"] == "pc1-id"


def test_nothing_qualifying_returns_empty_frame_with_schema():
    out = detect(pair_rows([60.0] * 3))
    assert out.height == 0
    assert out.schema == pl.Schema(OUTPUT_SCHEMA)


def test_empty_input_returns_empty_frame_with_schema():
    out = run(PairContext(), IntervalParams(), Progress())
    assert out.height == 0 and out.schema == pl.Schema(OUTPUT_SCHEMA)


def test_device_falls_back_to_device_id_when_name_missing():
    rows = pair_rows(STEADY)
    for row in rows:
        row[S.DEVICE_NAME] = None
    assert detect(rows).get_column(S.C_DEVICE).to_list() == ["pc1-id"]


def test_registered_with_its_params():
    spec = get("intervals")
    assert spec.params_type is IntervalParams and spec.run is run


# --- seed bug fixes -------------------------------------------------------------------


def test_connection_request_events_are_included_by_default():
    # The seed's "CsonnectionRequest" typo dropped these.
    out = detect(pair_rows(STEADY, action=S.ACTION_REQUEST))
    assert ips(out) == ["8.8.8.8"]


def test_connection_failed_needs_the_actions_parameter():
    rows = pair_rows(STEADY, action=S.ACTION_FAILED)
    assert detect(rows).height == 0
    actions = (S.ACTION_SUCCESS, S.ACTION_REQUEST, S.ACTION_FAILED)
    assert ips(detect(rows, actions=actions)) == ["8.8.8.8"]


def test_subsecond_deltas_keep_their_precision():
    # Alternating 1.2 s / 1.4 s; the seed's whole-second deltas made them 1 s / 1 s.
    # mean 1.3; deviations +-0.1 -> 16 * 0.01 / 15 -> stdev 0.1032796; jitter 7.94458 %.
    row = detect(pair_rows([1.2, 1.4] * 8)).row(0, named=True)
    assert row[E_P5] == 1.2
    assert row[S.C_INTERVAL] == 1.2  # nearest rank: ceil(0.5 * 16) = 8th of 8 x 1.2
    assert row[E_P95] == 1.4
    assert row[E_MEAN] == pytest.approx(1.3)
    assert row["stdev_s"] == pytest.approx((0.16 / 15) ** 0.5)
    assert row[S.C_JITTER] == pytest.approx((0.16 / 15) ** 0.5 / 1.3 * 100)


# Deltas for the outlier filter (n = 50): P10 rank ceil(5) = 5, P90 rank ceil(45) = 45.
# With 23 x 58 and 23 x 62 as the body, P10 = 58, P90 = 62, spread 4, so a delta of 80
# scores (80 - 62) / 4 = 4.5, 48 scores (48 - 58) / 4 = -2.5 and 50.4 scores -1.9.
BODY = [58.0, 62.0] * 23


def test_three_outliers_are_tolerated_four_are_not():
    three = pair_rows([*BODY, 62.0, 80.0, 80.0, 80.0], ip="1.1.1.1")
    four = pair_rows(BODY + [80.0] * 4, ip="2.2.2.2")
    out = detect(three + four)
    assert ips(out) == ["1.1.1.1"]
    assert out.get_column(E_OUTLIERS).to_list() == [3]


def test_negative_outliers_are_judged_by_outlier_threshold():
    # Four dips scoring -2.5: beyond -2 (our fix) but not beyond -3 (the seed's
    # -OutlierCountMax), so the seed kept this pair.
    assert detect(pair_rows(BODY + [48.0] * 4)).height == 0


def test_dips_inside_the_outlier_threshold_are_kept():
    out = detect(pair_rows(BODY + [50.4] * 4))  # each scores -1.9
    assert out.get_column(E_OUTLIERS).to_list() == [0]


# --- filter boundaries ----------------------------------------------------------------


def test_pair_needs_more_than_total_events_min_distinct_times():
    fifteen = pair_rows([60.0] * 14, ip="1.1.1.1")  # 15 times: not > 15
    sixteen = pair_rows([60.0] * 15, ip="2.2.2.2")  # 16 times
    assert ips(detect(fifteen + sixteen)) == ["2.2.2.2"]


def test_duplicate_timestamps_count_once():
    rows = pair_rows([60.0] * 14)
    rows.append(dict(rows[3]))  # same time again: still 15 distinct times
    assert detect(rows).height == 0


# 16 deltas: six 6s, six 2s, 7, 3, 3, 3 -> mean 64 / 16 = 4; squared deviations
# 6*4 + 6*4 + 9 + 3*1 = 60 -> sample variance 60 / 15 = 4 -> stdev 2 -> jitter 50 % exactly.
JITTER_50 = [6.0] * 6 + [2.0] * 6 + [7.0, 3.0, 3.0, 3.0]
# The same deviations scaled by 0.998 (mean still 4): stdev 1.996 -> jitter 49.9 %.
JITTER_49_9 = [5.996] * 6 + [2.004] * 6 + [6.994, 3.002, 3.002, 3.002]


def test_jitter_exactly_at_threshold_is_excluded():
    assert detect(pair_rows(JITTER_50)).height == 0
    assert detect(pair_rows(JITTER_50), jitter_threshold=50.0001).height == 1


def test_jitter_just_below_threshold_is_included():
    out = detect(pair_rows(JITTER_49_9))
    assert out.get_column(S.C_JITTER).to_list() == [pytest.approx(49.9)]


def test_ten_devices_on_one_destination_pass_eleven_do_not():
    ten = [r for i in range(10) for r in pair_rows(STEADY, device=f"a{i}", ip="1.1.1.1")]
    eleven = [r for i in range(11) for r in pair_rows(STEADY, device=f"b{i}", ip="2.2.2.2")]
    out = detect(ten + eleven)
    assert ips(out) == ["1.1.1.1"] * 10


def test_prevalence_counts_only_jitter_passing_pairs():
    # 10 steady devices plus 5 jittery ones to the same destination: the jittery ones
    # are not beacon candidates, so the destination is seen from 10 devices, not 15.
    steady = [r for i in range(10) for r in pair_rows(STEADY, device=f"a{i}")]
    noisy = [r for i in range(5) for r in pair_rows([1.0, 200.0] * 8, device=f"n{i}")]
    assert detect(steady + noisy).height == 10


def test_private_and_loopback_addresses_are_excluded():
    rows = pair_rows(STEADY, ip="10.0.0.5") + pair_rows(STEADY, ip="127.0.0.1")
    assert detect(rows).height == 0
    assert sorted(ips(detect(rows, public_only=False))) == ["10.0.0.5", "127.0.0.1"]


def test_sleep_window_helper_matches_the_seed_example():
    # "at least 900 s sleep with 25 % jitter": 900 -+ 225.
    assert sleep_window(900, 25) == (675.0, 1125.0)


def test_mean_delta_must_lie_in_the_sleep_window():
    rows = pair_rows(STEADY)  # mean 61
    day = 24.0  # a day's window, so the event cap (window / min) stays out of the way
    assert detect(rows, lookback_hours=day, time_delta_min_s=61.0).height == 1
    assert detect(rows, lookback_hours=day, time_delta_min_s=61.5).height == 0
    assert detect(rows, time_delta_max_s=61.0).height == 1
    assert detect(rows, time_delta_max_s=60.5).height == 0


def test_lookback_hours_limits_the_window_to_the_end_of_the_input():
    old = pair_rows(STEADY, ip="1.1.1.1")
    new = pair_rows(STEADY, ip="2.2.2.2", start=T0 + timedelta(days=2))
    assert ips(detect(old + new)) == ["1.1.1.1", "2.2.2.2"]
    assert ips(detect(old + new, lookback_hours=24.0)) == ["2.2.2.2"]


def test_event_cap_is_window_over_time_delta_min():
    # 17 times over 976 s: the cap is floor(976 / 60) = 16 events, and 17 is not < 16.
    assert detect(pair_rows(STEADY), time_delta_min_s=60.0).height == 0


# --- domains and score ----------------------------------------------------------------


def test_domains_are_registered_domains_of_every_name_seen_for_the_ip():
    beacon = pair_rows(STEADY, url="a.b.example.co.uk")
    other_device = pair_rows([5.0], device="pc9", url="https://www.evil.com/x")  # not a pair
    names = pl.DataFrame(
        {
            S.NAME_IP: ["8.8.8.8", "9.9.9.9"],
            S.NAME: ["cdn.evil.com", "other.org"],
            S.NAME_SOURCE: ["dns", "dns"],
        }
    )
    out = detect(beacon + other_device, names=names)
    assert out.get_column(E_DOMAINS).to_list() == [["evil.com", "example.co.uk"]]


def test_pair_without_names_has_empty_domain_list():
    assert detect(pair_rows(STEADY)).get_column(E_DOMAINS).to_list() == [[]]


def test_score_orders_by_jitter_then_mean_delta():
    slow = pair_rows([60.0] * 16, ip="1.1.1.1")  # jitter 0, mean 60
    fast = pair_rows([30.0] * 16, ip="2.2.2.2")  # jitter 0, mean 30
    jittery = pair_rows(JITTER_49_9, ip="3.3.3.3")  # jitter 49.9
    out = detect(slow + fast + jittery)
    assert out.get_column(S.C_REMOTE_IP).to_list() == ["2.2.2.2", "1.1.1.1", "3.3.3.3"]
    scores = out.get_column(S.C_SCORE).to_list()
    assert scores[0] == pytest.approx(1 - 1e-6 * 30 / 31, abs=1e-15)
    assert scores[1] == pytest.approx(1 - 1e-6 * 60 / 61, abs=1e-15)
    assert scores[2] == pytest.approx(1 - 49.9 / 50, abs=1e-6)  # 0.002


# --- params and progress --------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"jitter_threshold": 0.0},
        {"actions": ()},
        {"time_delta_min_s": -1.0},
        {"time_delta_min_s": 10.0, "time_delta_max_s": 5.0},
        {"lookback_hours": 0.0},
        {"compromised_device_count_max": 0},
    ],
)
def test_invalid_params_raise_input_error(change):
    with pytest.raises(InputError):
        dataclasses.replace(IntervalParams(), **change)


def test_cancelled_run_stops():
    progress = Progress()
    progress.cancel()
    events = S.conform(pl.DataFrame(pair_rows(STEADY)), "t").collect()
    with pytest.raises(Cancelled):
        run(PairContext(events=events), IntervalParams(), progress)


def test_delta_percentiles_by_hand_and_as_the_general_ragged_function():
    import numpy as np

    from detectors.hunts.intervals import delta_percentiles
    from detectors.stats.kusto import percentiles_ragged

    # Pair 0: 10 deltas 1..10 out of order; pair 1: none; pair 2: one delta, 7.5.
    values = np.array([10.0, 3.0, 1.0, 9.0, 2.0, 8.0, 4.0, 7.0, 5.0, 6.0, 7.5])
    offsets = np.array([0, 10, 10, 11])
    got = delta_percentiles(values, offsets)
    # Nearest rank ceil(p/100 * 10): 5 -> 1st, 25 -> 3rd, 50 -> 5th, 75 -> 8th, 95 -> 10th.
    assert got[0].tolist() == [1.0, 3.0, 5.0, 8.0, 10.0]
    assert np.isnan(got[1]).all()
    assert got[2].tolist() == [7.5] * 5
    # Many pairs with ties and empty ones: the same as the general function.
    rng = np.random.default_rng(9)
    lengths = rng.integers(0, 40, 500)
    values = rng.integers(1, 30, int(lengths.sum())).astype(np.float64) / 4
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    want = percentiles_ragged(values, offsets, (5.0, 25.0, 50.0, 75.0, 95.0))
    assert np.array_equal(delta_percentiles(values, offsets), want, equal_nan=True)
