"""The main screen, pixel for pixel, at three sizes in two themes, on data that never changes.

The candidate list is fixed (the scorer is replaced by a frame written out below), so
a change in scoring does not move these pictures; only a change in the screen does.
Update after an intended change with ``pytest tests/snapshots --snapshot-update``.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tui"))

import tui_fixtures as syn

from detectors.base import schema as S
from detectors.base.config import Config

UTC = timezone.utc
SIZES = ((80, 24), (120, 40), (200, 50))
EVIDENCE = pl.List(pl.Struct({"name": pl.String, "value": pl.String, "points": pl.Float64}))


def fixed_candidates(outcomes, dataset, config) -> pl.DataFrame:
    """The merged list as the scorer would hand it, for the three synthetic pairs."""
    return pl.DataFrame(
        {
            S.C_DEVICE: ["ws-beacon", syn.HOSTILE_DEVICE, "ws-human"],
            S.C_PROCESS: ["beacon.exe", syn.HOSTILE_PROCESS, "chrome.exe"],
            S.C_REMOTE_IP: [syn.BEACON_IP, syn.BEACON_IP, syn.HUMAN_IP],
            S.C_REMOTE_PORT: [443, 8443, 443],
            S.C_SCORE: [0.86, 0.55, 0.12],
            S.C_DETECTORS: [["fake_periodic", "intervals"], ["fake_periodic"], ["fake_periodic"]],
            S.C_CONNECTIONS: [288, 144, 40],
            S.C_FIRST_SEEN: [datetime(2026, 11, 20, 0, 0, tzinfo=UTC)] * 3,
            S.C_LAST_SEEN: [datetime(2026, 11, 20, 23, 55, tzinfo=UTC)] * 3,
            S.C_DOMAIN: ["updates-example.net", "example.org", None],
            S.C_INTERVAL: [303.0, 600.0, 1460.0],
            "period_s": [300.0, None, None],
            S.C_JITTER: [2.6, 0.0, 105.5],
            S.C_EVIDENCE: [
                [
                    {"name": "timing", "value": "periodicity score 0.95", "points": 0.6},
                    {"name": "rare destination IP", "value": "2 of 3 devices", "points": 0.15},
                    {"name": "LOLBin", "value": "beacon.exe", "points": 0.11},
                ],
                [{"name": "timing", "value": "fake score 0.55", "points": 0.55}],
                [{"name": "timing", "value": "fake score 0.12", "points": 0.12}],
            ],
        },
        schema_overrides={S.C_REMOTE_PORT: pl.Int32, S.C_EVIDENCE: EVIDENCE},
    )


def _app(tmp_path, monkeypatch, theme: str):
    syn.register_fake(monkeypatch)
    monkeypatch.setattr("detectors.run.outcome.merge", fixed_candidates)
    config = Config(path=tmp_path / "config.toml", theme=theme)
    return syn.make_app(tmp_path, config=config)


async def _settled(pilot) -> None:
    await syn.settle(pilot.app, pilot)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("theme", ["beacon-dark", "beacon-ansi"])
def test_main_screen_snapshot(snap_compare, tmp_path, monkeypatch, theme, size):
    """The three widths an analyst meets (a laptop split, a laptop, a wide screen), in
    the default theme and the 16-colour one: which columns show, that the footer keeps
    ? Help, that no address is cut."""
    app = _app(tmp_path, monkeypatch, theme)
    assert snap_compare(app, terminal_size=size, run_before=_settled)
