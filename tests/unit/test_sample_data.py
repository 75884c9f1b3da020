"""The sample-data generator and the shipped sample (read with polars directly, no loaders).

Expected counts are computed here from the ground truth's schedule (sleep, jitter kind,
active window, loss), independently of the generator's code.
"""

from __future__ import annotations

import gzip
import io
import ipaddress
import math
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from sample_data import generate as gen
from sample_data.clock import work_spans
from sample_data.defender import kusto_times
from sample_data.periodic import periodic_times
from sample_data.programs import BEACON, Program
from sample_data.world import Destination

SHIPPED = Path(__file__).resolve().parents[2] / "sample_data"
DEFENDER_HEADER = (
    "Timestamp,DeviceId,DeviceName,ActionType,RemoteIP,RemotePort,RemoteUrl,LocalIP,LocalPort,"
    "Protocol,RemoteIPType,InitiatingProcessFileName,InitiatingProcessAccountDomain,"
    "InitiatingProcessAccountName,InitiatingProcessVersionInfoCompanyName,AdditionalFields"
)
CONN_FIELDS = [
    "ts",
    "uid",
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "proto",
    "service",
    "duration",
    "orig_bytes",
    "resp_bytes",
    "conn_state",
    "local_orig",
    "local_resp",
    "missed_bytes",
    "history",
    "orig_pkts",
    "orig_ip_bytes",
    "resp_pkts",
    "resp_ip_bytes",
    "tunnel_parents",
]
BEACON_NAMES = [
    "a_rundll32_60s",
    "b_powershell_300s",
    "c_renamed_5s",
    "d_msiexec_lossy",
    "e_cobaltstrike_120s",
    "f_explorer_2h",
    "g_mshta_workhours",
    "h_regsvr32_rawip",
    "i_spoolsv_aggregated",
    "j_tailspin_new_dest",
    "k_msbuild_proxy",
]
WORK_FROM_H, WORK_TO_H = 9, 17
AGGREGATED = "AggregatedReport"


# --- readers ------------------------------------------------------------------------
def read_zeek(path: Path) -> tuple[list[str], pl.DataFrame]:
    """(header lines, body as text columns) of a Zeek TSV log, plain or gzip."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    lines = raw.decode().splitlines()
    header = [line for line in lines if line.startswith("#")]
    fields = next(h for h in header if h.startswith("#fields")).split("\t")[1:]
    body = "\n".join(line for line in lines if not line.startswith("#"))
    frame = pl.read_csv(
        io.StringIO(body),
        separator="\t",
        has_header=False,
        new_columns=fields,
        infer_schema=False,
        quote_char=None,
    )
    return header, frame


@pytest.fixture(scope="module")
def truth() -> pl.DataFrame:
    return pl.read_csv(SHIPPED / "ground_truth.csv")


@pytest.fixture(scope="module")
def events() -> pl.DataFrame:
    frame = pl.read_csv(SHIPPED / "defender_network_events.csv", infer_schema=False)
    stamp = pl.col("Timestamp").str.slice(0, 26).str.to_datetime("%Y-%m-%dT%H:%M:%S%.f")
    return frame.with_columns(stamp.alias("ts"))


@pytest.fixture(scope="module")
def conn() -> pl.DataFrame:
    return read_zeek(SHIPPED / "zeek" / "conn.log.gz")[1]


def _when(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")


def expected_calls(row: dict) -> float:
    """Calls a program makes in its window on all its devices: active time / mean sleep.

    One-sided jitter sleeps sleep*(1-U(0,j)), so its mean is sleep*(1-j/2); work-hours
    programs only count 09:00-17:00 on weekdays.
    """
    start, end = _when(row["active_from"]), _when(row["active_to"])
    mean = row["sleep_s"] * (
        1 - row["jitter_pct"] / 200 if row["jitter_kind"] == "one_sided" else 1
    )
    if row["schedule"] == "always":
        active = (end - start).total_seconds()
    else:
        active = 0.0
        day = start.replace(hour=0, minute=0, second=0)
        while day < end:
            if day.weekday() < 5:
                lo = max(start, day + timedelta(hours=WORK_FROM_H))
                hi = min(end, day + timedelta(hours=WORK_TO_H))
                active += max(0.0, (hi - lo).total_seconds())
            day += timedelta(days=1)
    return active / mean * row["devices_count"]


def tolerance(calls: float, loss: float) -> float:
    """3 % for jitter and the random first call, plus 4 sigma of the binomial loss."""
    return 0.03 * calls + 2 + 4 * math.sqrt(calls * loss * (1 - loss))


def _pair_rows(events: pl.DataFrame, row: dict) -> pl.DataFrame:
    return events.filter(
        pl.col("DeviceName").is_in(row["device"].split(";"))
        & (pl.col("InitiatingProcessFileName") == row["process"])
        & (pl.col("RemoteIP") == row["remote_ip"])
    )


# --- the shipped sample ---------------------------------------------------------------
def test_shipped_defender_csv_header_is_the_advanced_hunting_export_columns():
    with (SHIPPED / "defender_network_events.csv").open() as f:
        assert f.readline().rstrip("\n") == DEFENDER_HEADER


def test_shipped_ground_truth_has_eleven_beacons_and_eight_benign_programs(truth):
    beacons = truth.filter(pl.col("label") == BEACON).get_column("name").to_list()
    assert sorted(beacons) == BEACON_NAMES
    assert truth.filter(pl.col("label") == "benign_periodic").height == 8
    assert truth.columns[:17] == [
        "label", "name", "device", "device_ip", "process", "remote_ip", "remote_port",
        "domain", "sleep_s", "jitter_pct", "jitter_kind", "loss_pct", "schedule",
        "devices_count", "in_defender", "in_zeek", "notes",
    ]  # fmt: skip


def test_shipped_benign_programs_include_prevalent_ones_and_hard_negatives(truth):
    benign = truth.filter(pl.col("label") == "benign_periodic")
    prevalent = benign.filter(pl.col("devices_count") > 10).get_column("name").to_list()
    rare = benign.filter(pl.col("devices_count") <= 3).get_column("name").to_list()
    assert sorted(prevalent) == [
        "google_update",
        "msmpeng_cloud",
        "onedrive_sync",
        "teams_heartbeat",
    ]
    assert sorted(rare) == [
        "fabrikam_backup", "litware_monitoring", "northwind_sync", "tailspin_licence",
    ]  # fmt: skip


def test_shipped_beacon_addresses_are_global_except_the_proxy(truth):
    for row in truth.filter(pl.col("label") == BEACON).iter_rows(named=True):
        address = ipaddress.ip_address(row["remote_ip"])
        assert address.is_global == (row["name"] != "k_msbuild_proxy"), row["name"]


def test_shipped_defender_rows_of_each_beacon_match_its_schedule(truth, events):
    rows = truth.filter((pl.col("label") == BEACON) & (pl.col("defender_mode") == "rows"))
    assert rows.height == 10
    for row in rows.iter_rows(named=True):
        calls = expected_calls(row)
        loss = row["loss_pct"] / 100
        found = _pair_rows(events, row).filter(~pl.col("ActionType").str.ends_with(AGGREGATED))
        assert found.height == row["defender_rows"], row["name"]
        assert abs(found.height - calls * (1 - loss)) <= tolerance(calls, loss), row["name"]
        assert set(found.get_column("RemotePort").cast(pl.Int64)) == {row["remote_port"]}


def test_shipped_lossy_beacon_loses_about_forty_percent_in_defender_only(truth, events, conn):
    row = truth.filter(pl.col("name") == "d_msiexec_lossy").row(0, named=True)
    logged = _pair_rows(events, row).height
    wire = conn.filter(pl.col("id.resp_h") == row["remote_ip"]).height
    # 600 s for 3 days is 432 calls; Defender keeps about 60 % of them
    assert wire == row["zeek_connections"]
    assert abs(wire - 432) <= 3
    assert 0.5 < logged / wire < 0.7


def test_shipped_aggregated_beacon_meets_the_aggregated_detector_thresholds(truth, events):
    row = truth.filter(pl.col("name") == "i_spoolsv_aggregated").row(0, named=True)
    reports = _pair_rows(events, row)
    assert set(reports.get_column("ActionType")) == {"ConnectionSuccessAggregatedReport"}
    counts = (
        reports.get_column("AdditionalFields")
        .str.json_path_match("$.uniqueEventsAggregated")
        .cast(pl.Int64)
    )
    # 60 s sleep: 60 calls an hour, 72 hourly rows over 3 days (seed 000 wants >= 4 a
    # day and a mean above 45)
    assert reports.height == 72
    assert counts.mean() > 45
    assert abs(counts.sum() - expected_calls(row)) <= tolerance(expected_calls(row), 0)
    assert counts.sum() == row["defender_connections"]


def test_shipped_new_destination_appears_only_in_the_last_day_from_a_server(truth, events):
    row = truth.filter(pl.col("name") == "j_tailspin_new_dest").row(0, named=True)
    first = _pair_rows(events, row).get_column("ts").min()
    last_day = events.get_column("ts").max() - timedelta(days=1)
    assert first > last_day
    info = pl.read_csv(SHIPPED / "device_info.csv")
    kind = info.filter(pl.col("DeviceName") == row["device"]).get_column("DeviceType").unique()
    assert kind.to_list() == ["Server"]
    servers = info.filter(pl.col("DeviceType") == "Server").get_column("DeviceName").unique()
    tailspin = events.filter(
        pl.col("InitiatingProcessVersionInfoCompanyName") == "Tailspin Toys"
    ).get_column("DeviceName")
    assert servers.len() == 5
    assert tailspin.unique().to_list() == [row["device"]]


def test_shipped_work_hours_beacon_calls_only_on_weekdays_between_nine_and_five(truth, events):
    row = truth.filter(pl.col("name") == "g_mshta_workhours").row(0, named=True)
    stamps = _pair_rows(events, row).get_column("ts")
    assert stamps.len() > 0
    assert stamps.dt.hour().is_between(WORK_FROM_H, WORK_TO_H - 1).all()
    assert (stamps.dt.weekday() <= 5).all()  # polars: Monday = 1


def test_shipped_defender_values_have_the_export_formats(events):
    stamp = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$"
    assert events.get_column("Timestamp").str.contains(stamp).all()
    assert events.get_column("DeviceId").str.contains(r"^[0-9a-f]{40}$").all()
    assert set(events.get_column("RemoteIPType").drop_nulls()) == {"Public", "Private"}
    actions = set(events.get_column("ActionType"))
    assert actions == {
        "ConnectionSuccess", "ConnectionRequest", "ConnectionFailed",
        "InboundConnectionAccepted", "ListeningConnectionCreated", "DnsConnectionInspected",
        "ConnectionSuccessAggregatedReport", "ConnectionFailedAggregatedReport",
    }  # fmt: skip


def test_shipped_defender_rows_are_mostly_but_not_strictly_in_time_order(events):
    ordered = (events.get_column("ts").diff().drop_nulls() >= timedelta(0)).mean()
    assert 0.8 < ordered < 1.0


def test_shipped_zeek_logs_have_zeek_headers(conn):
    header, _ = read_zeek(SHIPPED / "zeek" / "conn.log.gz")
    assert header[:5] == [
        "#separator \\x09", "#set_separator\t,", "#empty_field\t(empty)", "#unset_field\t-",
        "#path\tconn",
    ]  # fmt: skip
    assert header[6] == "#fields\t" + "\t".join(CONN_FIELDS)
    assert header[7].split("\t")[1:4] == ["time", "string", "addr"]
    assert header[-1].startswith("#close\t")
    for name in ("dns", "http", "ssl"):
        assert read_zeek(SHIPPED / "zeek" / f"{name}.log")[0][4] == f"#path\t{name}"


def test_shipped_zeek_sees_every_call_of_the_sensor_visible_beacons(truth, conn):
    beacons = truth.filter((pl.col("label") == BEACON) & pl.col("in_zeek"))
    assert beacons.height == 10
    for row in beacons.iter_rows(named=True):
        calls = expected_calls(row)
        seen = conn.filter(
            pl.col("id.orig_h").is_in(row["device_ip"].split(";"))
            & (pl.col("id.resp_h") == row["remote_ip"])
            & (pl.col("id.resp_p") == str(row["remote_port"]))
        )
        assert seen.height == row["zeek_connections"], row["name"]
        assert abs(seen.height - calls) <= tolerance(calls, 0), row["name"]


def test_shipped_zeek_application_logs_carry_the_beacons_tells(truth):
    _, http = read_zeek(SHIPPED / "zeek" / "http.log")
    _, ssl = read_zeek(SHIPPED / "zeek" / "ssl.log")
    _, dns = read_zeek(SHIPPED / "zeek" / "dns.log")
    no_sni = ssl.filter(pl.col("id.resp_h") == "185.62.57.90")
    assert no_sni.height > 0 and (no_sni.get_column("server_name") == "-").all()
    assert "jquery-cdn.example" in set(dns.get_column("query"))
    raw_ip = http.filter(pl.col("id.resp_h") == "104.234.118.7")
    assert raw_ip.height > 0 and (raw_ip.get_column("host") == "-").all()
    assert "104.234.118.7" not in set(dns.get_column("answers"))
    rare_ua = http.filter(pl.col("id.resp_h") == "91.243.44.11").get_column("user_agent")
    users = http.filter(pl.col("user_agent") == rare_ua[0]).get_column("id.orig_h").unique()
    assert users.len() == 1
    connect = http.filter(pl.col("method") == "CONNECT").get_column("host")
    assert "graph-sync.example:443" in set(connect)
    assert (ssl.get_column("ssl_history") != "").all()
    assert (http.get_column("tags") == "(empty)").all()


def test_shipped_sample_fits_in_eight_megabytes():
    files = [p for p in SHIPPED.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")]
    scenarios = ("network", "implants")
    office = [p for p in files if not set(scenarios) & set(p.relative_to(SHIPPED).parts)]
    assert sum(p.stat().st_size for p in office) <= 8_000_000
    for scenario in scenarios:
        own = [p for p in files if scenario in p.relative_to(SHIPPED).parts]
        assert own and sum(p.stat().st_size for p in own) <= 3_000_000, scenario


# --- the generator ------------------------------------------------------------------------
def _files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_generator_writes_byte_identical_files_for_the_same_seed(tmp_path):
    first = gen.generate(tmp_path / "a", days=1, devices=10, seed=3)
    second = gen.generate(tmp_path / "b", days=1, devices=10, seed=3)
    gen.generate(tmp_path / "c", days=1, devices=10, seed=4)
    a, b, c = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert sorted(a) == [
        "defender_network_events.csv", "device_info.csv", "ground_truth.csv",
        "zeek/conn.log.gz", "zeek/dns.log", "zeek/http.log", "zeek/ssl.log",
    ]  # fmt: skip
    assert a == b
    assert first.equals(second)
    assert a["defender_network_events.csv"] != c["defender_network_events.csv"]


def test_generator_parquet_export_holds_the_csv_rows(tmp_path):
    gen.generate(tmp_path / "csv", days=1, devices=10, seed=3, zeek_logs=False)
    gen.generate(tmp_path / "pq", days=1, devices=10, seed=3, zeek_logs=False, fmt="parquet")
    text = pl.read_csv(tmp_path / "csv" / "defender_network_events.csv", infer_schema=False)
    table = pl.read_parquet(tmp_path / "pq" / "defender_network_events.parquet")
    assert table.columns == DEFENDER_HEADER.split(",")
    assert table.schema["Timestamp"] == pl.Datetime("us", "UTC")
    # the CSV's 7-digit ticks truncated to microseconds are the Parquet timestamps
    micro = table.get_column("Timestamp").dt.strftime("%Y-%m-%dT%H:%M:%S%.6f")
    assert micro.to_list() == text.get_column("Timestamp").str.slice(0, 26).to_list()
    assert table.get_column("DeviceId").to_list() == text.get_column("DeviceId").to_list()


def test_generator_scales_devices_to_reach_an_event_target(tmp_path):
    gen.generate(tmp_path, days=1, events=20_000, zeek_logs=False)
    rows = pl.read_csv(tmp_path / "defender_network_events.csv", infer_schema=False).height
    devices = pl.read_csv(tmp_path / "device_info.csv").get_column("DeviceName").n_unique()
    assert abs(rows - 20_000) <= 2_000
    assert devices > 30


def test_kusto_timestamp_has_seven_fraction_digits_truncated_to_the_tick():
    moment = datetime(2026, 11, 20, 0, 0, 0, tzinfo=timezone.utc)
    base = int(moment.timestamp()) * 1_000_000_000
    ns = pl.Series([base + 689_929_000, base + 689_929_123, base + 86_399_999_999_999])
    # 123 ns is one 100 ns tick and 23 ns dropped; the last is 23:59:59 and 9,999,999 ticks
    assert kusto_times(ns).to_list() == [
        "2026-11-20T00:00:00.6899290Z",
        "2026-11-20T00:00:00.6899291Z",
        "2026-11-20T23:59:59.9999999Z",
    ]


def _program(sleep: float, jitter: float, kind: str) -> Program:
    dest = Destination("45.0.0.1", 443, None, 1)
    return Program("t", BEACON, "x.exe", "ws:1", dest, sleep, jitter, kind)


@pytest.mark.parametrize(
    ("kind", "low", "high"),
    # uniform 20 % of 100 s: sleeps in [80, 120]; one-sided 50 %: in [50, 100]
    [("uniform", 80.0, 120.0), ("one_sided", 50.0, 100.0)],
)
def test_periodic_sleeps_stay_within_the_jitter_bounds(kind, low, high):
    jitter = 20 if kind == "uniform" else 50
    ordinal, t = periodic_times(
        np.random.default_rng(1), 3, 0.0, 86400.0, _program(100, jitter, kind)
    )
    for device in range(3):
        times = t[ordinal == device]
        gaps = np.diff(times)
        assert times[0] < 100  # the first call is within one sleep of the start
        assert gaps.min() >= low and gaps.max() <= high
        assert times[-1] < 86400 <= times[-1] + high


def test_one_sided_jitter_mean_sleep_is_three_quarters_at_fifty_percent():
    # 120 s * (1 - 0.5 / 2) = 90 s
    assert _program(120, 50, "one_sided").mean_interval_s == 90
    assert _program(120, 50, "uniform").mean_interval_s == 120


def test_work_spans_cover_nine_to_five_on_weekdays_only():
    # the scenario starts on Wednesday 2026-11-18: Wed, Thu, Fri, (Sat, Sun), Mon, Tue
    spans = work_spans((0.0, 7 * 86400.0))
    days = [int(lo // 86400) for lo, _ in spans]
    assert days == [0, 1, 2, 5, 6]
    assert all(hi - lo == 8 * 3600 for lo, hi in spans)
    assert spans[0] == (9 * 3600.0, 17 * 3600.0)


def test_cli_reports_the_files_it_wrote(tmp_path, capsys):
    assert gen.main(["--out", str(tmp_path), "--days", "1", "--devices", "10", "--no-zeek"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"MB\s+defender_network_events\.csv", out)
    assert "11 beacons, 8 benign periodic programs" in out
