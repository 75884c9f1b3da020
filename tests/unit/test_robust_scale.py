"""Large, odd and messy inputs give correct results without hanging.

Sizes are chosen to stay within a few seconds each on CI's two cores: 200,000 devices
(one event each, plus a beacon) and one pair with 1,000,000 events run through every
detector and the merge in memory (about 4 s each on the reference machine); loader
paths use a 1 MB URL and a few hundred rows. A watchdog dumps every stack and ends the
run if anything hangs. Durations are not asserted (the style guide keeps benchmarks out
of the unit suite).
"""

from __future__ import annotations

import csv
import faulthandler
import json
import random
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from detectors.base import schema as S
from detectors.base.config import Config
from detectors.load import load_paths
from detectors.pairs.context import PairContext
from detectors.run.headless import detect
from detectors.run.loop import run_all

UTC = timezone.utc
START = datetime(2026, 11, 20, tzinfo=UTC)
HEADER = [
    "Timestamp",
    "DeviceId",
    "DeviceName",
    "ActionType",
    "RemoteIP",
    "RemotePort",
    "RemoteUrl",
    "LocalPort",
    "InitiatingProcessFileName",
]


@pytest.fixture(autouse=True)
def hang_watchdog() -> Iterator[None]:
    faulthandler.dump_traceback_later(120, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture(autouse=True)
def no_user_config(tmp_path, monkeypatch):
    monkeypatch.setattr("detectors.base.config.default_config_path", lambda: tmp_path / "none.toml")


def beacon_rows(
    start: datetime, device: str, ip: str, count: int = 40, url: str = ""
) -> list[list[object]]:
    """A 60 s beacon with ±1 s jitter (odd connections 1 s late), as Defender CSV rows."""
    rows: list[list[object]] = []
    for i in range(count):
        ts = start + timedelta(seconds=i * 60 + (i % 2))
        rows.append(
            [
                ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                f"id-{device}",
                device,
                "ConnectionSuccess",
                ip,
                443,
                url,
                50000 + i,
                "rundll32.exe",
            ]
        )
    return rows


def write_csv(path: Path, rows: list[list[object]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


def events_frame(
    micros: np.ndarray, devices: pl.Series | str, process: str, ip: str
) -> pl.DataFrame:
    """Canonical events from epoch microseconds, built column-wise (no per-row Python)."""
    n = len(micros)
    device = devices if isinstance(devices, pl.Series) else pl.repeat(devices, n, eager=True)
    frame = pl.DataFrame(
        {
            S.TIMESTAMP: pl.Series(micros, dtype=pl.Int64)
            .cast(pl.Datetime("us"))
            .dt.replace_time_zone("UTC"),
            S.DEVICE_ID: device,
            S.DEVICE_NAME: device,
            S.PROCESS: pl.repeat(process, n, eager=True),
            S.ACTION: pl.repeat(S.ACTION_SUCCESS, n, eager=True),
            S.REMOTE_IP: pl.repeat(ip, n, eager=True),
            S.REMOTE_PORT: pl.repeat(443, n, eager=True, dtype=pl.Int32),
            S.CONNECTIONS: pl.repeat(1, n, eager=True, dtype=pl.Int64),
        }
    )
    return S.conform(frame, "generated").collect()


def micros(moment: datetime) -> int:
    return int((moment - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * 1_000_000


def candidate_json(paths: list[Path]) -> list[dict]:
    return json.loads(detect([str(p) for p in paths], fmt="json"))


# --- big ---------------------------------------------------------------------------------------


def test_a_megabyte_url_is_kept_exactly_and_shown_cut(tmp_path):
    url = "c2.example.org/" + "A" * (1 << 20)
    rows = beacon_rows(START, "ws-1", "45.77.1.2")
    rows[0][6] = url  # one connection carries the megabyte
    path = write_csv(tmp_path / "events.csv", rows)
    records = candidate_json([path])
    assert len(records) == 1 and records[0]["connections"] == 40
    assert url in records[0]["names"]  # the name seen for the IP, byte for byte
    table = detect([str(path)], fmt="table")
    assert max(len(line) for line in table.splitlines()) < 200


def test_two_hundred_thousand_devices_one_beacon():
    devices = 200_000
    rng = np.random.default_rng(3)
    background = events_frame(
        micros(START) + rng.integers(0, 86_400 * 10**6, devices),
        pl.Series([f"ws-{d}" for d in range(devices)]),
        "svchost.exe",
        "52.1.2.3",
    )
    # the beacon: 40 connections, 60 s apart, odd ones 1 s late
    offsets = np.arange(40) * 60 + np.arange(40) % 2
    beacon = events_frame(micros(START) + offsets * 10**6, "ws-beacon", "rundll32.exe", "45.77.1.2")
    result = run_all(PairContext(events=pl.concat([background, beacon])), Config())
    assert [o.error for o in result.outcomes.values()] == [None] * len(result.outcomes)
    top = result.candidates.row(0, named=True)
    assert (top[S.C_DEVICE], top[S.C_REMOTE_IP], top[S.C_CONNECTIONS]) == (
        "ws-beacon",
        "45.77.1.2",
        40,
    )
    assert top[S.C_FIRST_SEEN] == START
    assert top[S.C_LAST_SEEN] == START + timedelta(seconds=39 * 60 + 1)
    # one event per background device is no pair with an interval: nothing else qualifies
    # for a timing detector
    assert result.candidates.get_column(S.C_DEVICE).to_list() == ["ws-beacon"]


def test_one_device_with_a_million_events_unsorted():
    n = 1_000_000
    wiggle = np.array([0, 200_000, -200_000, 100_000, -100_000])  # µs, repeating every 5
    stamps = micros(START) + np.arange(n, dtype=np.int64) * 1_000_000 + wiggle[np.arange(n) % 5]
    np.random.default_rng(5).shuffle(stamps)
    result = run_all(
        PairContext(events=events_frame(stamps, "ws-1", "beacon.exe", "45.77.1.2")), Config()
    )
    assert [o.error for o in result.outcomes.values()] == [None] * len(result.outcomes)
    assert result.candidates.height == 1
    top = result.candidates.row(0, named=True)
    assert top[S.C_CONNECTIONS] == n
    assert "intervals" in top[S.C_DETECTORS]
    assert top[S.C_FIRST_SEEN] == START  # k = 0: no wiggle
    # k = 999,999 ≡ 4 (mod 5): 999,999 s - 0.1 s after the start
    assert top[S.C_LAST_SEEN] == START + timedelta(seconds=999_999, microseconds=-100_000)
    # deltas repeat 1.2, 0.6, 1.3, 0.8, 1.1 s: the median is 1.1 s
    assert top[S.C_INTERVAL] == pytest.approx(1.1)


# --- odd ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "start", [datetime(1970, 1, 1, tzinfo=UTC), datetime(2099, 12, 31, 23, 0, tzinfo=UTC)]
)
def test_beacons_in_1970_and_2099_keep_their_dates(tmp_path, start):
    path = write_csv(tmp_path / "events.csv", beacon_rows(start, "ws-1", "45.77.1.2"))
    records = candidate_json([path])
    assert len(records) == 1
    first = start.isoformat().replace("+00:00", "Z")
    last = (start + timedelta(seconds=39 * 60 + 1)).isoformat().replace("+00:00", "Z")
    assert (records[0]["first_seen"], records[0]["last_seen"]) == (first, last)


def test_ipv6_beacon_is_found_with_its_canonical_address(tmp_path):
    rows = beacon_rows(START, "ws-1", "2A00:1450:4001:081C:0000:0000:0000:200E")
    records = candidate_json([write_csv(tmp_path / "events.csv", rows)])
    assert [(r["remote_ip"], r["connections"]) for r in records] == [
        ("2a00:1450:4001:81c::200e", 40)
    ]


def test_ipv4_mapped_rows_join_their_ipv4_pair(tmp_path):
    rows = beacon_rows(START, "ws-1", "45.77.1.2")
    for row in rows[::2]:
        row[4] = "::ffff:45.77.1.2"  # Defender's FourToSixMapping spelling
    records = candidate_json([write_csv(tmp_path / "events.csv", rows)])
    assert [(r["remote_ip"], r["connections"]) for r in records] == [("45.77.1.2", 40)]


def test_duplicated_shuffled_rows_give_the_same_candidates(tmp_path):
    rows = beacon_rows(START, "ws-1", "45.77.1.2") + beacon_rows(START, "ws-2", "45.77.1.3")
    clean = write_csv(tmp_path / "clean.csv", rows)
    messy_rows = rows + rows[:30]  # 30 exact repeats, as an overlapping export has
    random.Random(11).shuffle(messy_rows)
    messy = write_csv(tmp_path / "messy.csv", messy_rows)
    assert candidate_json([messy]) == candidate_json([clean])
    assert load_paths([messy]).warnings == [
        "30 duplicate event rows dropped (identical in every field)"
    ]


def test_the_same_export_saved_twice_counts_once(tmp_path):
    rows = beacon_rows(START, "ws-1", "45.77.1.2")
    first = write_csv(tmp_path / "a.csv", rows)
    second = write_csv(tmp_path / "b.csv", rows)
    assert candidate_json([first, second]) == candidate_json([first])
