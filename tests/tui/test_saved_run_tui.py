"""`open DIR` on a saved run: its candidates as ranked, charts from its events, no re-run."""

from __future__ import annotations

from pathlib import Path

import tui_fixtures as syn
from tui_fixtures import settle

from detectors.base import schema as S
from detectors.base.config import Config
from detectors.run.loop import run_all
from detectors.run.saved import load_run, save_run
from tui.app import BeaconTriageApp
from tui.widgets.status_header import StatusHeader

SIZE = (110, 32)


async def test_saved_run_opens_with_its_candidates_and_a_chart(tmp_path):
    context = syn.dataset()
    result = run_all(context, Config(), ["intervals"])
    assert result.candidates.height >= 1
    save_run(tmp_path / "run", result.candidates, context, engine="local")
    saved = load_run(tmp_path / "run")
    saved.info["folder"] = str(tmp_path / "run")
    config = Config(path=Path(tmp_path) / "config.toml", theme="beacon-dark")
    app = BeaconTriageApp([], config=config, allowlist_path=tmp_path / "allow.toml", saved=saved)

    def shown() -> bool:
        screen = app.main_screen
        return screen.header.status == "saved run" and screen.detail is not None

    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot, until=shown)
        header = app.main_screen.query_one(StatusHeader).info
        assert header.status == "saved run"
        assert header.sample is False
        assert header.candidates == result.candidates.height
        assert header.events == saved.dataset.events.height
        keys = app.main_screen.view.select(S.CANDIDATE_KEY)
        assert keys.sort(S.CANDIDATE_KEY).equals(
            result.candidates.select(S.CANDIDATE_KEY).sort(S.CANDIDATE_KEY)
        )
        assert app.main_screen.detail is not None
        await pilot.press("slash", *"zzz-no-such-thing", "enter")  # search works as on a run
        await settle(app, pilot, until=lambda: app.main_screen.view.height == 0)
        await pilot.press("x")
        await settle(app, pilot, until=shown)
        await pilot.press("r")  # a saved run is not re-run: the list stays
        await settle(app, pilot, until=shown)
        assert app.main_screen.view.height == result.candidates.height
