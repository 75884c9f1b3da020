"""Defender DeviceInfo in CSV, API JSON, JSON Lines and Parquet → PairContext.device_info."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import polars as pl

from detectors.base import schema as S
from detectors.load import load_paths, sniff_format

DATA = Path(__file__).parent.parent / "data" / "load"
UTC = timezone.utc

EXPECTED_CSV_ROWS = [
    # .1234567Z truncated to .123456
    (datetime(2026, 11, 20, 0, 0, 0, 123456, UTC), "dev1", "ws-01", "Workstation", "Windows11"),
    (datetime(2026, 11, 20, 0, 0, 5, tzinfo=UTC), "dev3", "srv-01", "Server", "WindowsServer2022"),
]


def device_info_of(path: Path) -> pl.DataFrame:
    ds = load_paths([path], require_events=False)
    assert ds.events.height == 0
    assert ds.device_info is not None
    return ds.device_info


def test_deviceinfo_csv_is_sniffed_and_loaded() -> None:
    path = DATA / "deviceinfo.csv"
    assert sniff_format(path) == "deviceinfo"
    info = device_info_of(path)
    assert info.schema == pl.Schema(S.DEVICE_INFO_SCHEMA)
    assert info.rows() == EXPECTED_CSV_ROWS


def test_deviceinfo_api_json() -> None:
    path = DATA / "deviceinfo_api.json"
    assert sniff_format(path) == "deviceinfo"
    assert device_info_of(path).rows() == [
        (datetime(2026, 11, 20, 0, 0, 5, tzinfo=UTC), "dev3", "srv-01", "Server", "Linux")
    ]


def test_deviceinfo_jsonl_and_parquet_match_the_csv(tmp_path: Path) -> None:
    frame = pl.read_csv(DATA / "deviceinfo.csv", infer_schema=False)
    jsonl = tmp_path / "info.jsonl"
    frame.write_ndjson(jsonl)
    parquet = tmp_path / "info.parquet"
    frame.with_columns(
        pl.col("Timestamp").str.to_datetime("%Y-%m-%dT%H:%M:%S%.fZ", time_zone="UTC")
    ).write_parquet(parquet)
    for path in (jsonl, parquet):
        assert sniff_format(path) == "deviceinfo"
        assert device_info_of(path).rows() == EXPECTED_CSV_ROWS


def test_deviceinfo_without_timestamp_column_keeps_rows_with_null_time(tmp_path: Path) -> None:
    path = tmp_path / "info.csv"
    path.write_text("DeviceName,DeviceType,OSPlatform\nsrv-01,Server,Linux\n")
    assert device_info_of(path).rows() == [(None, None, "srv-01", "Server", "Linux")]


def test_deviceinfo_and_events_load_together() -> None:
    ds = load_paths([DATA / "deviceinfo.csv", DATA / "mde_network.csv"])
    assert ds.events.height == 9
    assert ds.device_info is not None and ds.device_info.height == 2


def test_no_deviceinfo_file_leaves_device_info_none() -> None:
    assert load_paths([DATA / "mde_network.csv"]).device_info is None
