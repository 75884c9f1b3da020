"""Invariants of the whole engine (every detector plus the merge) under harmless changes.

* the order of the rows and how they are split across files do not matter;
* shifting every timestamp by whole weeks shifts first/last seen by exactly that and
  changes nothing else (weeks keep the hour of day and the weekday, which schedule
  evidence reads; bucket and hour boundaries are relative to the data);
* an allow-list only ever hides candidates: it never adds one or changes another.

The dataset is fixed (a Defender CSV, built once) and Hypothesis draws the change, so
each example costs one engine run (~0.1 s): the engine properties run 15 examples
each to keep the file near 5 s; the allow-list property is cheap and runs 100.
"""

from __future__ import annotations

import csv
import json
import random
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from detectors.base import schema as S
from detectors.base.config import Config
from detectors.curate.allowlist import C_ALLOWED, AllowList
from detectors.load import load_paths
from detectors.pairs.context import PairContext
from detectors.run.loop import run_all

UTC = timezone.utc
START = datetime(2026, 11, 18, tzinfo=UTC)  # a Wednesday
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
    "AdditionalFields",
]
SEEN = [S.C_FIRST_SEEN, S.C_LAST_SEEN]


def _row(ts: datetime, device: str, process: str, ip: str, port: int, **kw: object) -> list:
    return [
        ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        f"id-{device}",
        device,
        kw.get("action", "ConnectionSuccess"),
        ip,
        port,
        kw.get("url", ""),
        kw.get("local_port", 50000),
        process,
        kw.get("extra", ""),
    ]


def base_rows() -> list[list]:
    """Two beacons, an hourly aggregated-report beacon, a browser, and internal noise."""
    rng = np.random.default_rng(7)
    rows = []
    for i in range(150):  # 60 s sleep, 0-2 s jitter, the last 2.5 h of the data
        ts = START + timedelta(hours=45.5, seconds=60 * i + int(rng.integers(0, 3)))
        rows.append(
            _row(ts, "ws-1", "a.exe", "45.77.1.2", 443, url="c2.example.net", local_port=50000 + i)
        )
    for i in range(120):  # 300 s sleep, ±2 s
        ts = START + timedelta(hours=38, seconds=300 * i + int(rng.integers(-2, 3)))
        rows.append(_row(ts, "ws-2", "b.exe", "45.77.1.3", 8443, local_port=40000 + i))
    for i in range(48):  # hourly aggregated reports, 58-62 connections each
        ts = START + timedelta(hours=i, minutes=59)
        extra = json.dumps({"uniqueEventsAggregated": int(rng.integers(58, 63))})
        rows.append(
            _row(ts, "ws-4", "updater.exe", "45.77.1.9", 443,
                 action="ConnectionSuccessAggregatedReport", extra=extra)
        )  # fmt: skip
    for i, offset in enumerate(np.sort(rng.uniform(0, 48 * 3600, 80))):
        ts = START + timedelta(seconds=float(np.round(offset, 3)))
        rows.append(_row(ts, "ws-3", "chrome.exe", "151.101.1.69", 443, local_port=30000 + i))
    for i in range(20):
        ts = START + timedelta(minutes=7 * i)
        rows.append(_row(ts, "ws-3", "svchost.exe", "10.0.0.53", 53, local_port=20000 + i))
    return rows


def write_csv(path: Path, rows: list[list]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


def candidates_of(paths: list[Path]) -> pl.DataFrame:
    return run_all(PairContext.of(load_paths(paths)), Config()).candidates


def assert_same_candidates(left: pl.DataFrame, right: pl.DataFrame) -> None:
    # floats may differ in the last bits when the same numbers are summed in another order
    assert_frame_equal(left, right, check_exact=False, rel_tol=1e-9, abs_tol=1e-9)


@pytest.fixture(scope="module")
def rows() -> list[list]:
    return base_rows()


@pytest.fixture(scope="module")
def baseline(rows, tmp_path_factory) -> pl.DataFrame:
    path = write_csv(tmp_path_factory.mktemp("baseline") / "events.csv", rows)
    return candidates_of([path])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("variants")


def test_the_baseline_has_candidates_from_several_detectors(baseline):
    # the properties below mean something only if detectors fire on this data
    found = {tuple(k) for k in baseline.select(S.C_DEVICE, S.C_REMOTE_IP).rows()}
    assert {("ws-1", "45.77.1.2"), ("ws-2", "45.77.1.3"), ("ws-4", "45.77.1.9")} <= found
    detectors = {d for ds in baseline.get_column(S.C_DETECTORS).to_list() for d in ds}
    assert {"intervals", "aggregated"} <= detectors and len(detectors) >= 3


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), cut=st.floats(0.0, 1.0))
def test_row_order_and_file_split_do_not_change_candidates(rows, baseline, workdir, seed, cut):
    shuffled = list(rows)
    random.Random(seed).shuffle(shuffled)
    at = int(cut * len(shuffled))
    first = write_csv(workdir / "part1.csv", shuffled[:at])
    second = write_csv(workdir / "part2.csv", shuffled[at:])
    parts = [p for p, chunk in ((first, shuffled[:at]), (second, shuffled[at:])) if chunk]
    assert_same_candidates(candidates_of(parts), baseline)


_DATE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}")


def _shift_dates(text: str, delta: timedelta) -> str:
    def move(match: re.Match[str]) -> str:
        return (datetime.strptime(match.group(0), "%Y-%m-%d %H:%M") + delta).strftime(
            "%Y-%m-%d %H:%M"
        )

    return _DATE.sub(move, text)


def _shifted(rows: list[list], delta: timedelta) -> list[list]:
    out = []
    for row in rows:
        moment = datetime.strptime(row[0], "%Y-%m-%dT%H:%M:%S.%fZ") + delta
        out.append([moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), *row[1:]])
    return out


@settings(max_examples=15, deadline=None)
@given(weeks=st.integers(-2800, 3800))  # 1973 .. 2099: the data stays inside 1970-2099
def test_shifting_by_whole_weeks_shifts_only_first_and_last_seen(rows, baseline, workdir, weeks):
    delta = timedelta(weeks=weeks)
    path = write_csv(workdir / "shifted.csv", _shifted(rows, delta))
    moved = candidates_of([path])
    assert_same_candidates(moved.drop(*SEEN, S.C_EVIDENCE), baseline.drop(*SEEN, S.C_EVIDENCE))
    for column in SEEN:
        assert moved.get_column(column).to_list() == [
            t + delta for t in baseline.get_column(column).to_list()
        ]
    # evidence may quote a date ("first seen 2026-11-19 14:00"): that date moves too
    pairs = zip(moved[S.C_EVIDENCE].to_list(), baseline[S.C_EVIDENCE].to_list(), strict=True)
    for got, want in pairs:
        assert [(e["name"], e["points"]) for e in got] == [(e["name"], e["points"]) for e in want]
        assert [e["value"] for e in got] == [_shift_dates(e["value"], delta) for e in want]


# --- the allow-list ---------------------------------------------------------------------------

_TEXT = st.sampled_from(
    ["ws-1", "WS-2", "ws-3", "a.exe", "B.EXE", "chrome.exe", "x", "[bold]y", "e\u202ez"]
)
_ENTRY = st.fixed_dictionaries(
    {},
    optional={
        "device": _TEXT,
        "process": _TEXT,
        "remote_ip": st.sampled_from(
            ["45.77.1.2", "45.77.1.0/24", "45.0.0.0/8", "151.101.1.69", "::ffff:45.77.1.3", "::/0"]
        ),
        "remote_port": st.sampled_from([443, 8443, 80]),
        "domain": st.sampled_from(["c2.example.net", "*.example.net", "example.org"]),
        "detector": st.sampled_from(["intervals", "aggregated", "buckets", "periodicity"]),
        "enabled": st.booleans(),
    },
).filter(lambda entry: set(entry) - {"enabled"})


def write_allowlist(path: Path, entries: list[dict]) -> Path:
    tables = []
    for entry in entries:
        lines = ["[[allow]]", 'reason = "test"']
        for key, value in entry.items():
            text = json.dumps(value) if not isinstance(value, bool) else str(value).lower()
            lines.append(f"{key} = {text}")
        tables.append("\n".join(lines))
    path.write_text("\n\n".join(tables) + "\n", encoding="utf-8")
    return path


@settings(max_examples=100, deadline=None)
@given(entries=st.lists(_ENTRY, max_size=4))
def test_an_allowlist_only_ever_hides_candidates(baseline, workdir, entries):
    allow = AllowList.load(write_allowlist(workdir / "allow.toml", entries))
    flagged = allow.flag(baseline)
    assert flagged.height == baseline.height
    assert_frame_equal(flagged.select(baseline.columns), baseline)  # nothing else changed
    kept = flagged.filter(~pl.col(C_ALLOWED)).select(baseline.columns)
    key_rows = baseline.select(S.CANDIDATE_KEY).rows()
    kept_keys = kept.select(S.CANDIDATE_KEY).rows()
    assert set(kept_keys) <= set(key_rows)
    assert kept_keys == [k for k in key_rows if k in set(kept_keys)]  # order kept too


def test_an_allowlist_entry_for_a_candidate_hides_it(baseline, workdir):
    # the property above would also pass if flag() hid nothing: check it can hide
    entry = {"device": "ws-1", "process": "a.exe", "remote_ip": "45.77.1.2", "remote_port": 443}
    allow = AllowList.load(write_allowlist(workdir / "one.toml", [entry]))
    flagged = allow.flag(baseline)
    hidden = flagged.filter(pl.col(C_ALLOWED)).select(S.C_DEVICE, S.C_REMOTE_IP).rows()
    assert hidden == [("ws-1", "45.77.1.2")]
