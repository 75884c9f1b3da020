"""A second partitioned run on the same files reuses the first run's partitions."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from detectors.run import partition_store as PS
from detectors.run import partitioned as P
from detectors.run.headless import detect

HEADER = (
    "Timestamp,DeviceId,DeviceName,ActionType,RemoteIP,RemotePort,LocalIP,InitiatingProcessFileName"
)


def events_csv(path: Path, rows: int = 60, minutes: int = 5) -> Path:
    """Two devices, one calling 8.8.8.8:443 every ``minutes`` minutes."""
    lines = [HEADER]
    for i in range(rows):
        device = f"ws-{i % 2}"
        stamp = f"2026-11-20T{(i * minutes) // 60 % 24:02d}:{(i * minutes) % 60:02d}:00.0000000Z"
        lines.append(f"{stamp},id-{device},{device},ConnectionSuccess,8.8.8.8,443,10.0.0.1,a.exe")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def setup(tmp_path, monkeypatch):
    """An input over the in-memory limit, the cache in tmp, and a count of writes."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    config = tmp_path / "small.toml"
    config.write_text("[engine]\nmax_events_in_memory = 10\npartition_events = 20\n")
    writes: list[int] = []
    real = P.write_partitions
    monkeypatch.setattr(P, "write_partitions", lambda *a, **k: writes.append(1) or real(*a, **k))
    source = events_csv(tmp_path / "events.csv")
    root = tmp_path / "xdg" / "beacon-triage" / "partitions"
    return source, str(config), writes, root


def run(source: Path, config: str, **options) -> str:
    return detect([str(source)], config_path=config, fmt="json", **options)


def test_a_second_run_reuses_the_partitions_and_answers_the_same(setup):
    source, config, writes, root = setup
    first = run(source, config)
    assert writes == [1]
    assert run(source, config) == first
    assert writes == [1]  # not partitioned again
    (kept,) = root.iterdir()
    assert kept.name.startswith("set-")
    # the set is the incident's traffic: folders 0700, files 0600
    for folder, _, names in os.walk(kept):
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
        for name in names:
            assert stat.S_IMODE(os.stat(Path(folder) / name).st_mode) == 0o600
    assert len(names) >= 1


def test_a_changed_file_is_partitioned_again(setup):
    source, config, writes, root = setup
    first = run(source, config)
    events_csv(source, rows=80)  # other rows: size and mtime change
    second = run(source, config)
    assert writes == [1, 1]
    assert second != first  # the new rows were read, not the old partitions
    assert len(list(root.iterdir())) == 2  # both sets kept (KEEP_SETS = 2)
    os.utime(source, ns=(1, 1))  # touched only: still another key
    run(source, config)
    assert writes == [1, 1, 1]
    assert len(list(root.iterdir())) == PS.KEEP_SETS  # the least recently used went


def test_no_cache_neither_reuses_nor_keeps(setup):
    source, config, writes, root = setup
    run(source, config, use_cache=False)
    run(source, config, use_cache=False)
    assert writes == [1, 1]
    assert list(root.iterdir()) == []  # the scratch partitions were removed


def test_a_file_changed_while_partitioned_is_not_kept(setup, monkeypatch):
    source, config, writes, root = setup
    real = P.write_partitions

    def changing(*args, **kwargs):
        parts = real(*args, **kwargs)
        events_csv(source, rows=70)  # the export grew while it was read
        return parts

    monkeypatch.setattr(P, "write_partitions", changing)
    run(source, config)
    assert list(root.iterdir()) == []
    monkeypatch.setattr(P, "write_partitions", real)
    writes.clear()
    run(source, config)
    assert writes == [1]  # partitioned again: nothing was served from the mixed read


def test_the_key_names_every_input_fact(tmp_path):
    source = events_csv(tmp_path / "events.csv")
    key = PS.set_key([source], 2, None, None)
    assert key is not None and len(key) == 32
    assert PS.set_key([source], 2, None, None) == key
    assert PS.set_key([source], 3, None, None) != key
    assert PS.set_key([source], 2, "mde-csv", None) != key
    assert PS.set_key([source], 2, None, {"Timestamp": "time"}) != key
    placed = PS.set_key([source], 2, None, None, {"internal": ["10.0.0.0/8"]})
    assert placed not in (None, key)
    assert PS.set_key([source], 2, None, None, {"internal": ["10.0.0.0/16"]}) != placed
    assert PS.set_key([tmp_path / "missing.csv"], 2, None, None) is None


def test_reused_partitions_keep_every_side_table(tmp_path, monkeypatch):
    """A reused set answers with the same side tables as the run that wrote it: the DNS
    queries the dns_beacons hunt needs included, not only names, app and DeviceInfo."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    zeek = Path(__file__).resolve().parents[2] / "sample_data" / "implants" / "zeek"
    config = tmp_path / "small.toml"
    config.write_text("[engine]\nmax_events_in_memory = 10\n")
    first = detect([str(zeek)], config_path=str(config), fmt="json", detector_names=["dns_beacons"])
    again = detect([str(zeek)], config_path=str(config), fmt="json", detector_names=["dns_beacons"])
    assert first != "[]\n" and first.count('"dns_beacons"') >= 1
    assert again == first
