"""The TUI opens input bigger than memory through the run loop's partitioned strategy."""

from __future__ import annotations

import json
from pathlib import Path

import tui_fixtures as syn

from detectors.base import schema as S
from detectors.base.config import read_config
from detectors.run.partitioned import Partitioned
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
    kept = tmp_path / "xdg" / "beacon-triage" / "partitions"
    # one complete set kept for the next run on the same files; no scratch left behind
    assert [p.name[:4] for p in kept.iterdir()] == ["set-"]


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
