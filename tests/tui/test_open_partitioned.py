"""The TUI opens input bigger than memory through the run loop's partitioned strategy."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import tui_fixtures as syn

from detectors.base import schema as S
from detectors.base.config import read_config
from detectors.run.partitioned import Partitioned
from tui import stages as ST
from tui.pipeline import default_loader

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_EVENTS = ROOT / "sample_data" / "defender_network_events.csv"


async def test_tui_hunts_partitions_when_the_input_exceeds_memory_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # scratch partitions there
    config_file = tmp_path / "config.toml"
    config_file.write_text("[engine]\nmax_events_in_memory = 100\npartition_events = 5000\n")
    app = syn.make_app(
        tmp_path,
        detectors=("intervals",),
        loader=default_loader,
        config=read_config(config_file),
    )
    app.paths = [str(SAMPLE_EVENTS)]
    async with app.run_test(size=(160, 40)) as pilot:
        await syn.settle(app, pilot, timeout=120.0)
        assert isinstance(app.pipeline.strategy, Partitioned)
        assert app.pipeline.strategy.parts is not None
        assert app.pipeline.strategy.parts.count == 3  # ceil(14,340 events / 5,000)
        assert app.main_screen.view.height > 0  # candidates, hunted partition by partition
        # No rows in memory, yet the header counts the input: the CSV's 14,340 rows.
        assert app.main_screen.header.events == pl.read_csv(SAMPLE_EVENTS).height == 14_340
        assert app.stages["load"].message.startswith("14,340 events in ")
        # The detector's row ends done, with its hits, as a run in memory ends.
        stage = app.stages["detector:intervals"]
        hits = app.outcomes["intervals"].hits
        assert stage.status == ST.DONE and stage.fraction == 1.0
        assert hits is not None and stage.message.startswith(f"{hits.height:,} hits in ")
        # One worker hunts every detector over the partitions (one partition held at once).
        assert not [
            w for w in app.workers if w.group.startswith("detector:") and w.name != "detector:"
        ]
        # The chart reads the highlighted pair's rows from its partition on demand: the
        # same distinct times as the events read whole.
        detail = app.main_screen.detail
        assert detail is not None
        row = detail.row
        events = pl.read_csv(SAMPLE_EVENTS, infer_schema_length=0)
        mine = events.filter(
            (pl.col("DeviceName") == row[S.C_DEVICE])
            & (pl.col("InitiatingProcessFileName") == row[S.C_PROCESS])
            & (pl.col("RemoteIP") == row[S.C_REMOTE_IP])
            & (pl.col("RemotePort") == str(row[S.C_REMOTE_PORT]))
            & pl.col("ActionType").is_in(
                ["ConnectionSuccess", "ConnectionRequest", "ConnectionFailed"]
            )
        )
        assert len(detail.times) == mine.get_column("Timestamp").n_unique() > 10
    kept = tmp_path / "xdg" / "beacon-triage" / "partitions"
    sets = [p.name for p in kept.iterdir()]
    assert len(sets) == 1 and sets[0].startswith("set-")  # kept whole for the next open
    assert kept.stat().st_mode & 0o777 == 0o700  # the incident's traffic: private


async def test_tui_ranks_the_network_sample_as_detect_does(tmp_path, monkeypatch):
    """The TUI's load places events in the network (proxies re-keyed, inbound turned
    round) exactly as ``detect`` does, so both show the same top candidates."""
    from detectors.base.config import Config
    from detectors.run.headless import detect

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    zeek = str(ROOT / "sample_data" / "network" / "zeek")
    expected = json.loads(detect([zeek], fmt="json", top=4, use_cache=False))
    app = syn.make_app(
        tmp_path,
        detectors=("intervals", "periodicity", "buckets"),
        loader=default_loader,
        config=Config(path=tmp_path / "config.toml"),
    )
    app.paths = [zeek]
    async with app.run_test(size=(160, 40)) as pilot:
        await syn.settle(app, pilot, timeout=180.0)
        shown = app.main_screen.view.head(4)
        assert shown.get_column(S.C_REMOTE_IP).to_list() == [r["remote_ip"] for r in expected]
        assert shown.get_column(S.C_DEVICE).to_list() == [r["device"] for r in expected]
