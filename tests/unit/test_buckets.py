"""Detector ``buckets`` (seed 003, Elastic's beaconing framework): gates, each test at
its threshold, skipped bytes tests, the two grouping levels and the known-benign file."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from detectors.base import schema as S
from detectors.base.errors import Cancelled, InputError
from detectors.base.progress import Progress
from detectors.hunts import buckets as B
from detectors.hunts.registry import get
from detectors.pairs.context import PairContext
from detectors.stats import elastic

END = datetime(2024, 3, 1, 6, 0, tzinfo=timezone.utc)
BASE = B.BucketParams(window_end=END, known_benign_file="")
NO_PERIODIC = dataclasses.replace(BASE, min_beaconing_count_autocovariance=2.0)


def at(bucket: int, offset_s: float = 30.0) -> datetime:
    """A time inside ``bucket`` (0 = the newest minute before END)."""
    return END - timedelta(seconds=bucket * 60 + offset_s)


def events_in(
    counts: dict[int, int] | Sequence[int],
    *,
    device: str = "pc1",
    process: str | None = "beacon.exe",
    ip: str = "8.8.8.8",
    port: int = 443,
    action: str | None = S.ACTION_SUCCESS,
    bytes_out: Callable[[int], int | None] = lambda bucket: None,
    bytes_in: Callable[[int], int | None] = lambda bucket: None,
    url: str | None = None,
) -> list[dict]:
    """Rows giving each bucket its count of connections (bytes as functions of bucket)."""
    pairs = counts.items() if isinstance(counts, dict) else enumerate(counts)
    rows = []
    for bucket, count in pairs:
        for k in range(count):
            rows.append(
                {
                    S.TIMESTAMP: at(bucket, 1.0 + k * 50.0 / max(count, 1)),
                    S.DEVICE_NAME: device,
                    S.DEVICE_ID: device,
                    S.PROCESS: process,
                    S.REMOTE_IP: ip,
                    S.REMOTE_PORT: port,
                    S.ACTION: action,
                    S.BYTES_OUT: bytes_out(bucket),
                    S.BYTES_IN: bytes_in(bucket),
                    S.REMOTE_URL: url,
                }
            )
    return rows


def dataset(rows: list[dict], names: pl.DataFrame | None = None) -> PairContext:
    schema = {k: v for k, v in S.EVENT_SCHEMA.items() if k != S.SOURCE_FILE}
    frame = pl.DataFrame(rows, schema={k: schema[k] for k in rows[0]}) if rows else None
    events = S.conform(frame if frame is not None else S.empty_events(), "test.csv").collect()
    if names is None:
        return PairContext(events=events)
    return PairContext(events=events, names=names)


def detect(rows: list[dict], params: B.BucketParams = BASE, **kwargs) -> pl.DataFrame:
    return B.run(dataset(rows, **kwargs), params, Progress())


# --- window and event selection --------------------------------------------------------


def test_bucket_index_counts_back_from_window_end():
    offsets = [0.0, 59.999999, 60.0, 21599.999999, 21600.0, -1.0]
    frame = pl.DataFrame(
        {S.TIMESTAMP: [END - timedelta(seconds=s) for s in offsets]},
        schema={S.TIMESTAMP: pl.Datetime("us", "UTC")},
    )
    out = B.bucket_events(frame, END, BASE)
    # floor(age / 60 s): 0, 0, 1, 359; age 21600 s is bucket 360 (outside), -1 s is future.
    assert out.get_column("_bucket").to_list() == [0, 0, 1, 359]


def test_connection_rows_keep_chosen_defender_actions_and_every_foreign_action():
    actions = [
        S.ACTION_SUCCESS,
        S.ACTION_REQUEST,
        S.ACTION_FAILED,
        S.ACTION_INBOUND,
        S.ACTION_LISTENING,
        S.ACTION_SUCCESS_AGG,
        "SF",
        "REJ",
        None,
    ]
    rows = [{S.TIMESTAMP: END, S.REMOTE_IP: "8.8.8.8", S.ACTION: a} for a in actions]
    rows.append({S.TIMESTAMP: END, S.REMOTE_IP: "10.1.2.3", S.ACTION: "SF"})  # private
    events = dataset(rows).events
    kept = B.connection_rows(events, (S.ACTION_SUCCESS, S.ACTION_REQUEST))
    assert kept.get_column(S.ACTION).to_list() == [
        S.ACTION_SUCCESS,
        S.ACTION_REQUEST,
        "SF",
        "REJ",
        None,
    ]


def test_window_end_defaults_to_the_last_event():
    # 14 connections a minute apart, the last at END; one more 6 h before that is outside.
    rows = events_in(dict.fromkeys(range(14), 1))
    rows[0][S.TIMESTAMP] = END  # the newest event defines the window end
    rows += events_in({360: 1})
    out = detect(rows, dataclasses.replace(BASE, window_end=None))
    assert out.get_column(S.C_CONNECTIONS).to_list() == [14]


def test_window_end_accepts_iso_text():
    rows = events_in(dict.fromkeys(range(12), 1))
    out = detect(rows, dataclasses.replace(BASE, window_end="2024-03-01T06:00:00Z"))
    assert out.height == 1


# --- the script's gates ----------------------------------------------------------------


def test_group_needs_a_span_of_two_shortest_periods():
    # Span 11 buckets (< 2 * 6) is never tested; span 12 is.
    assert detect(events_in(dict.fromkeys(range(11), 1))).height == 0
    assert detect(events_in(dict.fromkeys(range(12), 1))).height == 1


def test_group_needs_min_number_periods_plus_one_non_empty_buckets():
    # min_not_empty 0 lets the count test run on any group and min_beaconing_count 1
    # admits six connections, so only the non-empty gate decides.
    params = dataclasses.replace(BASE, min_not_empty=0.0, min_beaconing_count=1)
    six = {0: 1, 2: 1, 4: 1, 6: 1, 8: 1, 11: 1}
    seven = {**six, 10: 1}
    assert detect(events_in(six), params).height == 0
    out = detect(events_in(seven), params)
    # 7 non-empty of a 12-bucket span, one connection each: count RV 0 -> passes.
    assert out.get_column(B.E_NOT_EMPTY).to_list() == [7 / 12]


def test_min_beaconing_count_skips_sparse_groups():
    rows = events_in(dict.fromkeys(range(12), 1))  # 12 connections
    assert detect(rows, dataclasses.replace(BASE, min_beaconing_count=12)).height == 1
    assert detect(rows, dataclasses.replace(BASE, min_beaconing_count=13)).height == 0


# --- count test -----------------------------------------------------------------------


def test_count_test_passes_exactly_at_max_relative_variance():
    # 9 and 11 connections in alternate buckets: truncated mean 10, std 1 -> 0.1.
    rows = events_in([9, 11] * 10)
    out = detect(rows, NO_PERIODIC)
    assert out.get_column(B.E_COUNT_RV).to_list() == [0.1]
    assert out.get_column(B.E_COUNT_TEST).to_list() == [True]
    assert out.get_column(S.C_SCORE).to_list() == [1.0]  # timing 1 of 1 (no bytes)
    stricter = dataclasses.replace(NO_PERIODIC, max_beaconing_count_rv=0.0999)
    assert detect(rows, stricter).height == 0


def test_count_test_runs_only_above_min_not_empty_of_the_span():
    # Span 20 buckets (0..19). floor(0.5 * 20) = 10: 10 non-empty buckets are not enough.
    ten = dict.fromkeys([0, 2, 4, 6, 8, 10, 12, 14, 16, 19], 3)
    eleven = {**ten, 18: 3}
    window = B.bucket_events(dataset(events_in(ten)).events, END, NO_PERIODIC)
    keys = [S.DEVICE_NAME, S.PROCESS, S.REMOTE_IP, S.REMOTE_PORT]
    tested = B.group_tests(window, keys, NO_PERIODIC, Progress())
    assert tested.get_column(B.E_COUNT_RV).to_list() == [None]
    assert tested.get_column(B.E_COUNT_TEST).to_list() == [False]
    out = detect(events_in(eleven), NO_PERIODIC)
    assert out.get_column(B.E_COUNT_RV).to_list() == [0.0]
    assert out.get_column(B.E_NOT_EMPTY).to_list() == [11 / 20]


# --- periodic test --------------------------------------------------------------------


def test_periodic_test_passes_exactly_at_min_autocovariance():
    # One connection every 5 buckets over 0..100 with three beats lost.
    beats = [b for b in range(0, 101, 5) if b not in (25, 60, 85)]
    counts = np.zeros(360)
    counts[beats] = 1.0
    want, period = elastic.periodic_score(counts)
    assert 0.7 < want[0] < 1.0
    rows = events_in(dict.fromkeys(beats, 1))
    at_min = dataclasses.replace(BASE, min_beaconing_count_autocovariance=float(want[0]))
    out = detect(rows, at_min)
    assert out.get_column(B.E_AUTOCOV).to_list() == [want[0]]
    assert out.get_column(B.E_PERIOD).to_list() == [period[0] * 60.0]
    assert out.get_column(B.E_PERIODIC_TEST).to_list() == [True]
    assert out.get_column(B.E_COUNT_TEST).to_list() == [False]  # 18 of 101 buckets
    above = dataclasses.replace(
        BASE, min_beaconing_count_autocovariance=float(np.nextafter(want[0], 2.0))
    )
    assert detect(rows, above).height == 0


# --- bytes tests ----------------------------------------------------------------------


def alternating_95_105(bucket: int) -> int:
    return 95 if bucket % 2 else 105


def test_bytes_cov_passes_exactly_at_max():
    # Mean bytes out per bucket 95/105 alternating: mean 100, std 5 -> CoV 0.05.
    # Bytes in constant -> CoV 0. One connection per bucket -> count RV 0.
    rows = events_in([1] * 20, bytes_out=alternating_95_105, bytes_in=lambda b: 1000)
    out = detect(rows)
    assert out.get_column(B.E_BYTES_OUT_COV).to_list() == [0.05]
    assert out.get_column(B.E_BYTES_IN_COV).to_list() == [0.0]
    assert out.get_column(B.E_SCORE).to_list() == [3]
    assert out.get_column(S.C_SCORE).to_list() == [1.0]
    stricter = detect(rows, dataclasses.replace(BASE, max_beaconing_bytes_cov=0.0499))
    assert stricter.get_column(B.E_BYTES_OUT_TEST).to_list() == [False]
    assert stricter.get_column(B.E_BYTES_IN_TEST).to_list() == [True]
    assert stricter.get_column(S.C_SCORE).to_list() == [2 / 3]


def test_bytes_tests_are_skipped_not_failed_without_byte_counts():
    out = detect(events_in([1] * 20))  # Defender: no bytes at all
    assert out.get_column(B.E_BYTES_OUT_TEST).to_list() == [None]
    assert out.get_column(B.E_BYTES_IN_TEST).to_list() == [None]
    assert out.get_column(B.E_SKIPPED).to_list() == [["bytes_out", "bytes_in"]]
    assert out.get_column(B.E_MAX_SCORE).to_list() == [1]
    assert out.get_column(S.C_SCORE).to_list() == [1.0]


def test_one_direction_of_bytes_gives_a_score_out_of_two():
    out = detect(events_in([1] * 20, bytes_out=lambda b: 300))
    assert out.get_column(B.E_SKIPPED).to_list() == [["bytes_in"]]
    assert out.get_column(B.E_MAX_SCORE).to_list() == [2]
    assert out.get_column(S.C_SCORE).to_list() == [1.0]  # timing + bytes out, of 2


def test_zero_bytes_fail_the_bytes_test_as_in_elastic():
    # Bytes reported but all 0 (e.g. Zeek S0): no non-zero bucket, the test cannot run
    # and fails, as the script's does; it is not "skipped".
    out = detect(events_in([1] * 20, bytes_out=lambda b: 0, bytes_in=lambda b: 0))
    assert out.get_column(B.E_BYTES_OUT_TEST).to_list() == [False]
    assert out.get_column(B.E_BYTES_OUT_COV).to_list() == [None]
    assert out.get_column(B.E_MAX_SCORE).to_list() == [3]
    assert out.get_column(S.C_SCORE).to_list() == [1 / 3]


def test_bytes_test_needs_more_than_min_number_periods_non_zero_buckets():
    # 20 buckets of one connection; 300 bytes out in the first k buckets, 0 elsewhere.
    def first(k: int) -> Callable[[int], int]:
        return lambda bucket: 300 if bucket < k else 0

    six = detect(events_in([1] * 20, bytes_out=first(6)))
    seven = detect(events_in([1] * 20, bytes_out=first(7)))
    assert six.get_column(B.E_BYTES_OUT_TEST).to_list() == [False]
    assert six.get_column(B.E_BYTES_OUT_COV).to_list() == [None]
    assert seven.get_column(B.E_BYTES_OUT_TEST).to_list() == [True]
    assert seven.get_column(B.E_BYTES_OUT_COV).to_list() == [0.0]


# --- grouping levels ------------------------------------------------------------------


def test_destination_rows_carry_the_host_process_result():
    out = detect(events_in([1] * 20))
    assert out.get_column(B.E_LEVEL).to_list() == [B.LEVEL_DESTINATION]
    assert out.get_column(B.E_HP_SCORE).to_list() == [1]
    assert out.get_column(B.E_HP_DESTINATIONS).to_list() == [1]
    assert out.get_column(S.C_DETECTOR).to_list() == ["buckets"]


def test_host_process_beacon_over_rotating_addresses_reports_top_destinations():
    # One connection a minute for 6 h, each to the next of 100 addresses: the process
    # beacons (count RV 0) but no address has 7 non-empty buckets. Addresses 1..60 get
    # 4 connections, 61..100 get 3; top 3 by count, then by address text.
    rows = []
    for bucket in range(360):
        rows += events_in({bucket: 1}, ip=f"9.9.9.{bucket % 100 + 1}")
    params = dataclasses.replace(BASE, number_destination_ips=3)
    out = detect(rows, params)
    assert out.get_column(S.C_REMOTE_IP).to_list() == ["9.9.9.1", "9.9.9.10", "9.9.9.11"]
    assert out.get_column(B.E_LEVEL).to_list() == [B.LEVEL_HOST_PROCESS] * 3
    assert out.get_column(S.C_CONNECTIONS).to_list() == [4, 4, 4]
    assert out.get_column(B.E_HP_DESTINATIONS).to_list() == [100] * 3
    assert out.get_column(B.E_COUNT_TEST).to_list() == [True] * 3


def test_group_by_process_off_tests_device_and_destination_together():
    # a.exe in buckets 0..5 and b.exe in 6..13: neither passes the gates alone, together
    # they cover 14 consecutive buckets. The row names the commoner process, b.exe.
    rows = events_in(dict.fromkeys(range(6), 1), process="a.exe")
    rows += events_in(dict.fromkeys(range(6, 14), 1), process="b.exe")
    assert detect(rows).height == 0
    out = detect(rows, dataclasses.replace(BASE, group_by_process=False))
    assert out.get_column(S.C_PROCESS).to_list() == ["b.exe"]
    assert out.get_column(S.C_CONNECTIONS).to_list() == [14]


def test_zeek_rows_without_process_are_tested_by_originating_ip():
    rows = events_in(
        [1] * 20, device="10.0.0.5", process=None, action="SF", bytes_out=lambda b: 120
    )
    out = detect(rows)
    assert out.select(S.C_DEVICE, S.C_PROCESS).rows() == [("10.0.0.5", None)]


# --- known-benign filters -------------------------------------------------------------


def test_known_benign_processes_match_case_insensitively():
    rows = events_in([1] * 20, process="CHROME.EXE")
    assert detect(rows, dataclasses.replace(BASE, known_benign_file=None)).height == 0
    assert detect(rows, BASE).height == 1  # "" turns the filters off


def test_microsoft_blocks_are_ignored_only_for_microsoft_processes():
    rows = events_in([1] * 20, process="lsass.exe", ip="20.40.0.1")
    rows += events_in([1] * 20, process="implant.exe", ip="20.40.0.1")
    out = detect(rows, dataclasses.replace(BASE, known_benign_file=None))
    assert out.get_column(S.C_PROCESS).to_list() == ["implant.exe"]


def test_domain_filter_needs_every_name_of_the_address_to_be_benign(tmp_path: Path):
    file = tmp_path / "benign.toml"
    file.write_text('[domains]\nnames = ["example.com"]\n', encoding="utf-8")
    rows = events_in([1] * 20, ip="8.8.8.8", url="https://www.example.com/poll")
    rows += events_in([1] * 20, ip="9.9.9.9", url="example.com")
    rows += events_in([1] * 20, ip="1.1.1.1", url="badexample.com")
    names = pl.DataFrame(
        {S.NAME_IP: ["9.9.9.9"], S.NAME: ["c2.evil.net"], S.NAME_SOURCE: ["dns"]},
        schema=S.NAMES_SCHEMA,
    )
    params = dataclasses.replace(BASE, known_benign_file=str(file))
    out = detect(rows, params, names=names)
    assert sorted(out.get_column(S.C_REMOTE_IP).to_list()) == ["1.1.1.1", "9.9.9.9"]


def test_shipped_known_benign_file_holds_elastics_lists():
    benign = B.load_known_benign(None)
    assert len(benign.processes) == 125  # the transform's must_not process names
    assert {"svchost.exe", "chrome.exe", "zoom.us"} <= benign.processes
    (microsoft,) = benign.networks
    assert len(microsoft.networks) == 32  # Elastic's Microsoft blocks, duplicates removed
    assert microsoft.processes is not None and "outlook.exe" in microsoft.processes
    assert benign.domains == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[processes]\nnamez = ["a"]\n', "unknown key processes.namez"),
        ('[[networks]]\ncidrs = ["10.0.0.0/33"]\n', "'10.0.0.0/33' is not a CIDR block"),
        ("[domains]\nnames = 3\n", "domains.names must be a list of strings"),
        ("[processes\n", "not valid TOML"),
    ],
)
def test_known_benign_file_errors_name_the_file_and_key(tmp_path: Path, text, message):
    file = tmp_path / "bad.toml"
    file.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as caught:
        B.load_known_benign(str(file))
    assert message in str(caught.value)
    assert caught.value.file == str(file)


def test_missing_known_benign_file_is_an_input_error(tmp_path: Path):
    with pytest.raises(InputError):
        B.load_known_benign(str(tmp_path / "absent.toml"))


# --- contract -------------------------------------------------------------------------


def test_output_has_the_documented_schema_even_when_empty():
    assert detect([]).schema == B.OUTPUT_SCHEMA
    assert detect(events_in([1] * 20)).schema == B.OUTPUT_SCHEMA


def test_buckets_is_registered_with_elastics_defaults():
    spec = get("buckets")
    assert spec.params_type is B.BucketParams
    params = B.BucketParams()
    assert (params.time_bucket_length, params.number_buckets_in_range) == (60.0, 360)
    assert params.truncate_at == (0.1, 0.8)
    assert all(f.metadata.get("doc") for f in dataclasses.fields(B.BucketParams))


@pytest.mark.parametrize(
    "change",
    [{"max_jitter": 1.5}, {"truncate_at": (0.9, 0.1)}, {"time_bucket_length": 0.0}],
)
def test_invalid_parameters_are_input_errors(change):
    with pytest.raises(InputError):
        detect(events_in([1] * 20), dataclasses.replace(BASE, **change))


def test_cancel_stops_the_run():
    progress = Progress()
    progress.cancel()
    with pytest.raises(Cancelled):
        B.run(dataset(events_in([1] * 20)), BASE, progress)


def test_nan_free_scores_lie_between_zero_and_one():
    rng = np.random.default_rng(5)
    rows = []
    for pair in range(30):
        counts = rng.poisson(rng.uniform(0.2, 3.0), 360).tolist()
        rows += events_in(counts, ip=f"8.8.{pair}.1", bytes_out=lambda b, p=pair: 100 + (b * p) % 7)
    out = detect(rows)
    scores = out.get_column(S.C_SCORE).to_list()
    assert out.height > 0 and all(0.0 < s <= 1.0 and not math.isnan(s) for s in scores)
