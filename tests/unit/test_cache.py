"""The load cache: hits, misses when the file changes, LRU eviction, damaged entries."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal

from detectors.base import schema as S
from detectors.base.config import CacheSettings
from detectors.base.config import cache_settings_from_table as settings_from_table
from detectors.base.errors import InputError
from detectors.load import load_paths
from detectors.load.cache import (
    WRITE_IN_BACKGROUND,
    WRITE_LATER,
    LoadCache,
    finish_writes,
)
from detectors.load.mde import load_mde
from tui.cli import cli

FIXTURE = Path(__file__).parent.parent / "data" / "load" / "mde_network.csv"
FMT = "mde-csv"


class CountingLoader:
    """Loads the fixture and counts how often the real loader ran."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return load_mde(self.path, "csv")


def cache_in(tmp_path: Path, **kw) -> LoadCache:
    settings = CacheSettings(
        directory=tmp_path / "cache", min_file_bytes=0, min_load_seconds=0.0, **kw
    )
    return LoadCache(settings)


def copy_fixture(tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copyfile(FIXTURE, target)
    return target


def test_second_load_of_an_unchanged_file_reads_the_cache(tmp_path):
    source = copy_fixture(tmp_path, "events.csv")
    cache = cache_in(tmp_path)
    loader = CountingLoader(source)
    first = cache.load(source, FMT, None, loader)
    second = cache.load(source, FMT, None, loader)
    assert loader.calls == 1
    assert_frame_equal(first.events, second.events)
    assert second.warnings == first.warnings
    assert len(cache.entries()) == 1


def test_a_changed_modification_time_misses_and_parses_again(tmp_path):
    source = copy_fixture(tmp_path, "events.csv")
    cache = cache_in(tmp_path)
    loader = CountingLoader(source)
    cache.load(source, FMT, None, loader)
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000))
    cache.load(source, FMT, None, loader)
    assert loader.calls == 2
    assert len(cache.entries()) == 2  # the stale entry stays until evicted


def test_a_background_write_serves_the_next_load_once_finished(tmp_path):
    source = copy_fixture(tmp_path, "events.csv")
    settings = CacheSettings(directory=tmp_path / "cache", min_file_bytes=0, min_load_seconds=0)
    cache = LoadCache(settings, write=WRITE_IN_BACKGROUND)
    loader = CountingLoader(source)
    first = cache.load(source, FMT, None, loader)
    finish_writes()
    assert len(cache.entries()) == 1
    second = cache.load(source, FMT, None, loader)
    assert loader.calls == 1
    assert_frame_equal(first.events, second.events)


def test_a_write_left_for_later_happens_when_finished(tmp_path):
    source = copy_fixture(tmp_path, "events.csv")
    settings = CacheSettings(directory=tmp_path / "cache", min_file_bytes=0, min_load_seconds=0)
    cache = LoadCache(settings, write=WRITE_LATER)
    loader = CountingLoader(source)
    cache.load(source, FMT, None, loader)
    assert cache.entries() == []  # nothing written while the caller works
    finish_writes()
    assert len(cache.entries()) == 1
    cache.load(source, FMT, None, loader)
    assert loader.calls == 1


def test_a_file_changed_while_it_loads_is_cached_under_its_old_identity(tmp_path):
    # the key is taken before the read: rows read from the old file must never be
    # served for the new one
    source = copy_fixture(tmp_path, "events.csv")
    cache = cache_in(tmp_path)

    def load_then_touch():
        loaded = load_mde(source, "csv")
        stat = source.stat()
        os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000))
        return loaded

    cache.load(source, FMT, None, load_then_touch)
    loader = CountingLoader(source)
    cache.load(source, FMT, None, loader)
    assert loader.calls == 1


def test_another_format_or_mapping_is_another_entry(tmp_path):
    source = copy_fixture(tmp_path, "events.csv")
    cache = cache_in(tmp_path)
    keys = {
        cache.key(source, FMT, None),
        cache.key(source, "csv-mapped", {"timestamp": "Timestamp", "remote_ip": "RemoteIP"}),
        cache.key(source, "csv-mapped", {"timestamp": "Timestamp", "remote_ip": "LocalIP"}),
    }
    assert len(keys) == 3


def test_eviction_removes_least_recently_used_entries_first(tmp_path):
    cache = cache_in(tmp_path)
    sources = {name: copy_fixture(tmp_path, f"{name}.csv") for name in "abc"}
    for source in sources.values():
        cache.load(source, FMT, None, CountingLoader(source))
    entry_of = {name: cache.root / cache.key(p, FMT, None) for name, p in sources.items()}
    # last use: b oldest, then c, then a
    for name, when in {"b": 1_000, "c": 2_000, "a": 3_000}.items():
        os.utime(entry_of[name], ns=(when, when))
    sizes = {e.path: e.size for e in cache.entries()}
    assert [e.path for e in cache.entries()] == [entry_of["b"], entry_of["c"], entry_of["a"]]
    # room for everything but one entry: only the least recently used (b) goes
    bound = sum(sizes.values()) - sizes[entry_of["b"]]
    assert cache_in(tmp_path, max_bytes=bound).evict() == [entry_of["b"]]
    # room for a alone: c goes next, a stays
    assert cache_in(tmp_path, max_bytes=sizes[entry_of["a"]]).evict() == [entry_of["c"]]
    assert [e.path for e in cache.entries()] == [entry_of["a"]]


def test_a_hit_makes_the_entry_most_recently_used(tmp_path):
    cache = cache_in(tmp_path)
    old = copy_fixture(tmp_path, "old.csv")
    new = copy_fixture(tmp_path, "new.csv")
    cache.load(old, FMT, None, CountingLoader(old))
    cache.load(new, FMT, None, CountingLoader(new))
    os.utime(cache.root / cache.key(old, FMT, None), ns=(1, 1))
    os.utime(cache.root / cache.key(new, FMT, None), ns=(2, 2))
    cache.load(old, FMT, None, CountingLoader(old))  # a hit
    assert cache.entries()[-1].path.name == cache.key(old, FMT, None)


def test_an_entry_bigger_than_the_bound_is_not_written(tmp_path):
    source = copy_fixture(tmp_path, "events.csv")
    cache = cache_in(tmp_path, max_bytes=100)
    loader = CountingLoader(source)
    cache.load(source, FMT, None, loader)
    cache.load(source, FMT, None, loader)
    assert loader.calls == 2
    assert cache.entries() == []


@pytest.mark.parametrize("damage", ["flip", "truncate", "meta", "missing"])
def test_a_damaged_entry_is_ignored_and_rebuilt(tmp_path, damage):
    source = copy_fixture(tmp_path, "events.csv")
    cache = cache_in(tmp_path)
    loader = CountingLoader(source)
    expected = cache.load(source, FMT, None, loader).events
    entry = cache.root / cache.key(source, FMT, None)
    part = entry / "events.parquet"
    data = bytearray(part.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x01
        part.write_bytes(bytes(data))
    elif damage == "truncate":
        part.write_bytes(bytes(data[: len(data) // 2]))
    elif damage == "meta":
        (entry / "meta.json").write_text("{not json", encoding="utf-8")
    else:
        part.unlink()
    again = cache.load(source, FMT, None, loader)
    assert loader.calls == 2
    assert_frame_equal(again.events, expected)
    # the rebuilt entry serves the next load
    cache.load(source, FMT, None, loader)
    assert loader.calls == 2


def test_files_below_the_minimum_size_are_not_cached(tmp_path):
    source = copy_fixture(tmp_path, "events.csv")
    cache = LoadCache(
        CacheSettings(directory=tmp_path / "cache", min_file_bytes=1 << 20, min_load_seconds=0)
    )
    loader = CountingLoader(source)
    cache.load(source, FMT, None, loader)
    cache.load(source, FMT, None, loader)
    assert loader.calls == 2
    assert cache.entries() == []


def test_files_that_load_quickly_are_not_cached(tmp_path):
    # the fixture loads in milliseconds: under an hour's minimum it is never copied
    source = copy_fixture(tmp_path, "events.csv")
    cache = LoadCache(
        CacheSettings(directory=tmp_path / "cache", min_file_bytes=0, min_load_seconds=3600)
    )
    loader = CountingLoader(source)
    cache.load(source, FMT, None, loader)
    cache.load(source, FMT, None, loader)
    assert loader.calls == 2
    assert cache.entries() == []


def test_a_cache_hit_names_the_path_given_this_time(tmp_path):
    source = copy_fixture(tmp_path, "events.csv")
    cache = cache_in(tmp_path)
    cache.load(source, FMT, None, CountingLoader(source))
    relative = Path(os.path.relpath(source))
    hit = cache.load(relative, FMT, None, CountingLoader(relative))
    assert hit.events.get_column(S.SOURCE_FILE).unique().to_list() == [str(relative)]


def test_load_paths_uses_the_cache_it_is_given_and_none_when_off(tmp_path):
    source = copy_fixture(tmp_path, "events.csv")
    cache = cache_in(tmp_path)
    fresh = load_paths([source], cache=None)
    assert cache.entries() == []
    load_paths([source], cache=cache)
    cached = load_paths([source], cache=cache)
    assert len(cache.entries()) == 1
    assert_frame_equal(cached.events, fresh.events)


def test_detect_no_cache_writes_no_entry(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    source = copy_fixture(tmp_path, "events.csv")
    config = tmp_path / "config.toml"
    config.write_text("[cache]\nmin_file_mb = 0\nmin_load_s = 0\n", encoding="utf-8")
    entries = tmp_path / "xdg" / "beacon-triage" / "loads"
    runner = CliRunner()
    args = ["detect", str(source), "--config", str(config), "--quiet", "--format", "json"]
    assert runner.invoke(cli, [*args, "--no-cache"]).exit_code == 0
    assert not entries.exists() or not any(entries.iterdir())
    assert runner.invoke(cli, args).exit_code == 0
    assert len(list(entries.iterdir())) == 1


def test_cache_settings_read_megabytes_and_reject_unknown_keys():
    table = {"max_mb": 1.5, "min_file_mb": 0, "min_load_s": 2, "enabled": False}
    settings = settings_from_table(table)
    assert (
        settings.max_bytes,
        settings.min_file_bytes,
        settings.min_load_seconds,
        settings.enabled,
    ) == (
        1_572_864,  # 1.5 x 1,048,576
        0,
        2.0,
        False,
    )
    with pytest.raises(InputError, match="max_gb"):
        settings_from_table({"max_gb": 2})
    with pytest.raises(InputError, match="max_mb"):
        settings_from_table({"max_mb": -1})


def test_cached_frames_keep_the_canonical_schema(tmp_path):
    source = copy_fixture(tmp_path, "events.csv")
    cache = cache_in(tmp_path)
    cache.load(source, FMT, None, CountingLoader(source))
    hit = cache.fetch(source, FMT, None)
    assert hit is not None and hit.events is not None
    assert dict(hit.events.schema) == S.EVENT_SCHEMA
    assert isinstance(hit.events, pl.DataFrame)


def test_a_write_left_half_done_by_a_killed_process_is_removed_later(tmp_path):
    cache = cache_in(tmp_path)
    cache.root.mkdir(parents=True)
    stale = cache.root / ".tmp-dead-1234"
    fresh = cache.root / ".tmp-writing-5678"
    for folder in (stale, fresh):
        folder.mkdir()
        (folder / "events.parquet").write_bytes(b"half")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    cache.evict()
    assert not stale.exists()  # older than STALE_TMP_S (1 h)
    assert fresh.exists()  # may be another process writing right now


def test_parquet_inputs_are_read_directly_never_copied(tmp_path):
    source = tmp_path / "events.parquet"
    pl.read_csv(FIXTURE, infer_schema=False).write_parquet(source)
    cache = cache_in(tmp_path)
    first = load_paths([source], cache=cache)
    second = load_paths([source], cache=cache)
    assert cache.entries() == []
    assert first.events.height == second.events.height > 0
