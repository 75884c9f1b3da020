"""Input bigger than memory: device partitions on disk give the results of a run in memory."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from detectors.base import schema as S
from detectors.base.config import DEFAULT_PARTITION_EVENTS, engine_settings_from_table
from detectors.base.errors import InputError
from detectors.load import load_paths
from detectors.pairs.context import PairContext
from detectors.run import partition_write as W
from detectors.run import partitioned as P
from detectors.run.headless import detect
from detectors.run.loop import run, run_all
from detectors.run.setup import load_config

SAMPLE = Path(__file__).parent.parent.parent / "sample_data"
SAMPLE_PATHS = [
    SAMPLE / "defender_network_events.csv",
    SAMPLE / "device_info.csv",
    SAMPLE / "zeek",
]
HEADER = (
    "Timestamp,DeviceId,DeviceName,ActionType,RemoteIP,RemotePort,RemoteUrl,LocalIP,"
    "RemotePortUnused,InitiatingProcessFileName"
)


def placed():
    """The default settings: events placed in the network, in memory and on partitions."""
    return load_config(None)


def in_memory(paths):
    return run_all(PairContext.of(load_paths(paths, cache=None)), placed(), workers=1)


def partitioned(paths, tmp_path, count):
    parts = P.write_partitions(paths, tmp_path / "parts", count)
    result = run(P.Partitioned(parts=parts), placed())
    return result, result.context


def assert_same_results(expected, actual):
    assert expected.outcomes.keys() == actual.outcomes.keys()
    for name, outcome in expected.outcomes.items():
        other = actual.outcomes[name]
        assert (outcome.skipped, outcome.error) == (other.skipped, other.error), name
        if outcome.hits is not None:
            assert_frame_equal(outcome.hits, other.hits)
    assert_frame_equal(expected.candidates, actual.candidates)


@pytest.fixture(scope="module")
def sample_reference():
    return in_memory(SAMPLE_PATHS)


@pytest.mark.parametrize("count", [1, 4])
def test_partitions_of_the_sample_give_the_in_memory_results(sample_reference, tmp_path, count):
    # Defender CSV (streamed), DeviceInfo and Zeek logs (loaded); every detector hits.
    result, _ = partitioned(SAMPLE_PATHS, tmp_path, count)
    assert sample_reference.candidates.height > 0
    assert_same_results(sample_reference, result)


def beacon_csv(path: Path, stamps: list[str], address: str = "::ffff:8.8.8.8") -> Path:
    """One device calling ``address`` at the given timestamp texts, plus a second device."""
    rows = [HEADER]
    for i, stamp in enumerate(stamps):
        device = "ws-1" if i % 3 else "ws-2"
        rows.append(
            f"{stamp},id-{device},{device},ConnectionSuccess,{address},443,,10.0.0.1,,a.exe"
        )
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def kusto(start: datetime, seconds: float) -> str:
    return (start + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


START = datetime(2026, 11, 20, tzinfo=timezone.utc)


def test_streamed_events_normalise_mapped_addresses_like_the_loader(tmp_path, monkeypatch):
    source = beacon_csv(tmp_path / "events.csv", [kusto(START, 60 * i) for i in range(40)])
    monkeypatch.setattr(W, "load_file", None)  # streamed: the loader is never called
    parts = P.write_partitions([source], tmp_path / "parts", 2)
    events = pl.read_parquet(parts.all_files()).sort(P.INPUT_ROW).drop(P.INPUT_ROW)
    assert_frame_equal(events, load_paths([source], cache=None).events)
    assert events.get_column(S.REMOTE_IP).unique().to_list() == ["8.8.8.8"]


def test_a_file_with_a_second_timestamp_form_goes_through_the_loader(tmp_path, monkeypatch):
    # rows 30+ are "2026-11-20 00:30:00" (no T, no Z): the first rows' form misses them
    stamps = [kusto(START, 60 * i) for i in range(30)]
    stamps += [(START + timedelta(minutes=i)).strftime("%Y-%m-%d %H:%M:%S") for i in range(30, 40)]
    source = beacon_csv(tmp_path / "events.csv", stamps)
    loaded = []
    real_load_file = W.load_file
    monkeypatch.setattr(W, "load_file", lambda *a: loaded.append(a[0]) or real_load_file(*a))
    parts = P.write_partitions([source], tmp_path / "parts", 2)
    assert loaded == [source]
    events = pl.read_parquet(parts.all_files()).sort(P.INPUT_ROW).drop(P.INPUT_ROW)
    assert events.height == 40
    assert_frame_equal(events, load_paths([source], cache=None).events)


def test_an_unparsable_timestamp_is_the_loaders_one_line_error(tmp_path):
    stamps = [kusto(START, 60 * i) for i in range(5)] + ["yesterday"]
    source = beacon_csv(tmp_path / "events.csv", stamps)
    with pytest.raises(InputError, match="line 7"):  # header is line 1: 6th record, line 7
        P.write_partitions([source], tmp_path / "parts", 2)


def test_an_export_named_twice_counts_once_with_a_warning(tmp_path):
    first = beacon_csv(tmp_path / "a.csv", [kusto(START, 60 * i) for i in range(40)])
    second = tmp_path / "b.csv"
    shutil.copyfile(first, second)
    once = in_memory([first])
    result, whole = partitioned([first, second], tmp_path, 3)
    assert_same_results(once, result)
    assert "40 duplicate event rows dropped (identical in every field)" in whole.warnings


def test_estimate_reads_parquet_row_counts_exactly(tmp_path):
    path = tmp_path / "events.parquet"
    pl.DataFrame({"a": range(1234)}).write_parquet(path)
    assert W.estimate_events([path]) == 1234
    assert W.partition_count(1234, 500) == 3  # ceil(1234 / 500)


def test_detect_switches_to_partitions_above_the_configured_size(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # scratch partitions there
    source = beacon_csv(tmp_path / "events.csv", [kusto(START, 60 * i) for i in range(40)])
    small = tmp_path / "small.toml"
    small.write_text("[engine]\nmax_events_in_memory = 10\npartition_events = 20\n")
    memory = tmp_path / "memory.toml"
    memory.write_text("")
    assert W.wanted([source], load_config(small))  # ~41 lines estimated > 10
    assert not W.wanted([source], load_config(memory))
    called = []
    real = P.Partitioned.context
    monkeypatch.setattr(P.Partitioned, "context", lambda *a: called.append(1) or real(*a))
    assert detect([str(source)], config_path=str(small), fmt="json") == detect(
        [str(source)], config_path=str(memory), fmt="json", use_cache=False
    )
    assert called == [1]
    kept = list((tmp_path / "xdg" / "beacon-triage" / "partitions").iterdir())
    assert [k.name[:4] for k in kept] == ["set-"]  # kept for the next run, no scratch left


def test_engine_settings_reject_unknown_keys_and_non_counts(tmp_path):
    with pytest.raises(InputError, match="max_events"):
        engine_settings_from_table({"max_events": 5})
    with pytest.raises(InputError, match="partition_events"):
        engine_settings_from_table({"partition_events": 0})
    assert engine_settings_from_table({}).partition_events == DEFAULT_PARTITION_EVENTS


def streamed_and_loaded(tmp_path, monkeypatch, edit):
    """The 40-row beacon CSV with ``edit`` applied to its lines: the source, its streamed
    partitions (2), their events in input order, and the same file loaded in memory."""
    source = beacon_csv(tmp_path / "events.csv", [kusto(START, 60 * i) for i in range(40)])
    lines = source.read_text(encoding="utf-8").splitlines()
    edit(lines)
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.setattr(W, "load_file", None)  # streamed: the loader is never called
    parts = P.write_partitions([source], tmp_path / "parts", 2)
    events = pl.read_parquet(parts.all_files()).sort(P.INPUT_ROW).drop(P.INPUT_ROW)
    return source, parts, events, load_paths([source], cache=None)


def test_streamed_events_drop_impossible_values_like_the_loader(tmp_path, monkeypatch):
    def edit(lines):  # row 5 has no address for LocalIP, row 7 port 70000, row 9 1969
        lines[5] = lines[5].replace(",10.0.0.1,", ",not-an-ip,")
        lines[7] = lines[7].replace(",443,", ",70000,")
        lines[9] = "1969-12-31T23:00:00.0000000Z" + lines[9][len(kusto(START, 0)) :]

    source, parts, events, loaded = streamed_and_loaded(tmp_path, monkeypatch, edit)
    assert events.height == 37
    assert_frame_equal(events, loaded.events)
    expected = [
        f"{source}: 1 rows with a remote_port outside 0-65535 dropped (first in {source})",
        f"{source}: 1 rows with a local_ip that is not an IP address dropped (first in {source})",
        f"{source}: 1 rows with a timestamp before 1970 dropped (first in {source})",
    ]
    assert [w for w in parts.warnings if "dropped (first in" in w] == expected
    assert [w for w in loaded.warnings if "dropped (first in" in w] == expected


def test_streamed_events_skip_untimed_rows_and_blank_lines_like_the_loader(tmp_path, monkeypatch):
    def edit(lines):  # row 3 lost its timestamp (counted), row 6 is all empty fields (not
        # counted: the loader skips blank lines silently), row 8's address is padded
        lines[3] = lines[3][len(kusto(START, 0)) :]
        lines[6] = "," * lines[6].count(",")
        lines[8] = lines[8].replace(",::ffff:8.8.8.8,", ", 9.9.9.9 ,")

    source, parts, events, loaded = streamed_and_loaded(tmp_path, monkeypatch, edit)
    assert events.height == 38
    assert_frame_equal(events, loaded.events)
    assert sorted(events.get_column(S.REMOTE_IP).unique().to_list()) == ["8.8.8.8", "9.9.9.9"]
    assert parts.warnings == loaded.warnings == [f"{source}: 1 rows without a Timestamp skipped"]


@pytest.mark.parametrize(
    ("count", "rows"), [(1, 100_000), (34, 100_000), (68, 50_000), (1000, 10_000)]
)
def test_streamed_row_groups_are_as_large_as_the_sink_buffer_allows(count, rows):
    # 3.4M rows held open in all: 100k a partition up to 34 partitions, never under 10k
    assert W.sink_row_group(count) == rows


def test_detail_prevalence_of_partitions_is_that_of_the_whole_input(sample_reference, tmp_path):
    # The TUI's detail pane on partitions (no events in memory) counts every partition.
    from detectors.rank.enrichment import DestinationIndex
    from detectors.run.loop import prepare

    strategy = P.Partitioned(parts=P.write_partitions(SAMPLE_PATHS, tmp_path / "parts", 3))
    try:  # as the TUI holds it: open, its partitions on disk
        context = prepare(strategy, placed())
        assert context.events.is_empty()
        whole, parts = DestinationIndex(sample_reference.context), DestinationIndex(context)
    finally:
        strategy.close()
    assert whole.by_ip.height > 100
    assert_frame_equal(parts.by_ip, whole.by_ip)
    assert_frame_equal(parts.by_domain, whole.by_domain)
    assert parts.window == whole.window


def test_detail_prevalence_counts_a_renamed_device_by_name_in_memory_and_on_partitions(
    tmp_path,
):
    # One device id under two names (a renamed host) whose names hash to two partitions,
    # and a second device: by name, as the scoring counts devices, that is three devices
    # to the address (a.exe and b.exe: two processes), in memory and over partitions.
    from detectors.rank.enrichment import DestinationIndex
    from detectors.run.loop import prepare
    from detectors.run.memory import InMemory

    names = pl.DataFrame({S.DEVICE_NAME: ["ws-a", "ws-d", "ws-c"]})
    homes = names.select(W.partition_key(2)).to_series().to_list()
    assert homes[0] != homes[1]  # the two names of id-1 live in different partitions
    rows = [HEADER]
    for i in range(6):
        name, device_id = [("ws-a", "id-1"), ("ws-d", "id-1"), ("ws-c", "id-3")][i % 3]
        process = "b.exe" if name == "ws-c" else "a.exe"
        stamp = kusto(START, 60 * i)
        rows.append(
            f"{stamp},{device_id},{name},ConnectionSuccess,8.8.8.8,443,,10.0.0.1,,{process}"
        )
    export = tmp_path / "renamed.csv"
    export.write_text("\n".join(rows) + "\n", encoding="utf-8")
    whole = DestinationIndex(prepare(InMemory([str(export)], use_cache=False), placed()))
    strategy = P.Partitioned(parts=P.write_partitions([export], tmp_path / "parts", 2))
    try:
        parts = DestinationIndex(prepare(strategy, placed()))
    finally:
        strategy.close()
    for index in (whole, parts):
        dest = index.describe("8.8.8.8")
        assert (dest.devices_to_ip, dest.processes_to_ip) == (3, 2)
    assert_frame_equal(parts.by_ip, whole.by_ip)
