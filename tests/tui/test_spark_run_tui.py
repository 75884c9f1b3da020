"""`beacon-triage --engine spark PATHS`: the run loop with the Spark strategy in the load
worker, Spark's stage progress on the load line, then triage as for a saved run.

Spark itself (a JVM start, ~20 s on the CI machine, and the run) is faked at the seam
``EngineRun`` takes: a strategy plus the context that watches its stages. The Spark
strategy's own results are compared with the local engine's in ``test_spark_engine``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import tui_fixtures as syn
from tui_fixtures import settle

from detectors.base import schema as S
from detectors.base.config import Config
from detectors.base.progress import Progress
from detectors.run.loop import run_all
from detectors.run.memory import InMemory
from detectors.run.saved import candidate_events
from tui.app import BeaconTriageApp
from tui.pipeline import LOAD, EngineRun

SIZE = (110, 32)
STAGE_LINE = "spark: stage 7: 3/8 tasks"


async def test_a_spark_run_shows_its_stage_progress_then_its_candidates(tmp_path):
    context = syn.dataset()
    config = Config(path=Path(tmp_path) / "config.toml", theme="beacon-dark")
    want = run_all(syn.dataset(), config).candidates
    assert want.height >= 1
    release = threading.Event()
    asked: list[tuple[list[str], str | None]] = []

    def strategy_of(paths: Sequence[str], source_format: str | None, progress: Progress):
        asked.append((list(paths), source_format))

        @contextmanager
        def watching() -> Iterator[None]:
            progress.callback("spark", 3 / 8, "stage 7: 3/8 tasks")  # as stage_progress does
            release.wait(10)
            yield

        return InMemory.of(context), watching()

    engine_run = EngineRun(config, strategy_of)
    app = BeaconTriageApp(
        ["s3a://lake/conn/"],
        config=config,
        allowlist_path=tmp_path / "allow.toml",
        saved=engine_run.saved,
        loader=engine_run,
    )

    def shown() -> bool:
        screen = app.main_screen
        return screen.header.status == "spark run" and screen.detail is not None

    async with app.run_test(size=SIZE) as pilot:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the worker waits: no settle() until released
            stage = app.stages.get(LOAD)
            if stage is not None and stage.message == STAGE_LINE:
                break
            await pilot.pause(0.05)
        stage = app.stages.get(LOAD)
        assert stage is not None and stage.message == STAGE_LINE
        assert stage.fraction == 3 / 8
        release.set()
        await settle(app, pilot, until=shown)
        assert asked == [(["s3a://lake/conn/"], None)]  # the URI reaches the strategy as is
        got = app.main_screen.view.select(S.CANDIDATE_KEY).sort(S.CANDIDATE_KEY)
        assert got.equals(want.select(S.CANDIDATE_KEY).sort(S.CANDIDATE_KEY))
        # the charts' rows: every event of each candidate's pair, as a saved run holds
        assert app.dataset is not None
        assert app.dataset.events.equals(candidate_events(context.events, want))
        assert any("a Spark run" in e.text for e in app.log_entries)
        assert any("synthetic warning line" in e.text for e in app.log_entries)
        await pilot.press("r")  # new parameters do not re-run the engine: the list stays
        await settle(app, pilot, until=shown)
        assert len(asked) == 1
        assert app.main_screen.view.height == want.height
