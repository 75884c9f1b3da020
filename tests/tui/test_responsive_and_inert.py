"""The UI stays live while a detector grinds, quits at once, and shows hostile text inert."""

from __future__ import annotations

import time

import polars as pl
import tui_fixtures as syn
from tui_fixtures import make_app, register_fake, settle

from detectors.base.progress import Progress
from tui import stages as ST
from tui.widgets.candidate_facts import CandidateFacts
from tui.widgets.candidate_table import CandidateTable
from tui.widgets.run_progress import RunProgress, StageRow

SIZE = (180, 40)
SLOW = "slow_detector"
STARTED: dict[str, float] = {}


def slow_detector(data, params, progress: Progress) -> pl.DataFrame:
    """Grinds for up to 20 s, checking for cancellation every 20 ms, finds nothing."""
    STARTED["at"] = time.monotonic()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        progress.report("grind", 0.5, "thinking hard")  # raises Cancelled once cancelled
        time.sleep(0.02)
    return pl.DataFrame()


def _running(app, name: str) -> bool:
    return any(w.name == f"detector:{name}" and w.is_running for w in app.workers)


async def _wait_for(pilot, condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await pilot.pause(0.02)


async def test_keys_are_handled_while_a_slow_detector_runs(tmp_path, monkeypatch):
    register_fake(monkeypatch, SLOW, slow_detector)
    app = make_app(tmp_path, detectors=("fake_periodic", SLOW))
    async with app.run_test(size=SIZE) as pilot:
        screen = app.main_screen
        await _wait_for(pilot, lambda: screen.view.height == 3 and screen.detail is not None)
        assert _running(app, SLOW)
        assert screen.header.status == f"1/2 done · running {SLOW}"
        rows = screen.query_one(RunProgress).query(StageRow)
        assert [r.stage.label for r in rows] == [SLOW]  # the finished ones are hidden
        pressed = time.monotonic()
        await pilot.press("S")  # reverse the sort while the detector still grinds
        await _wait_for(pilot, lambda: not screen.spec.descending and screen.view.height == 3)
        assert time.monotonic() - pressed < 5
        scores = screen.view["score"].to_list()
        assert scores == sorted(scores)
        assert _running(app, SLOW)  # the key was handled during the run, not after it
        await pilot.press("c")  # cancel the run
        await _wait_for(pilot, lambda: not _running(app, SLOW), timeout=5)
        assert app.stages[f"detector:{SLOW}"].status == ST.CANCELLED
        assert screen.header.status == "cancelled"


async def test_rerun_cancels_the_stale_run_and_ignores_its_results(tmp_path, monkeypatch):
    register_fake(monkeypatch, SLOW, slow_detector)
    app = make_app(tmp_path, detectors=("fake_periodic", SLOW))
    async with app.run_test(size=SIZE) as pilot:
        await _wait_for(pilot, lambda: _running(app, SLOW) and app.main_screen.view.height)
        first_run = app.pipeline.run_id
        await pilot.press("r")
        await _wait_for(pilot, lambda: app.pipeline.run_id == first_run + 1)
        await _wait_for(pilot, lambda: _running(app, SLOW))
        await pilot.press("c")
        await _wait_for(pilot, lambda: not _running(app, SLOW), timeout=5)


async def test_ctrl_q_quits_at_once_while_a_detector_runs(tmp_path, monkeypatch):
    register_fake(monkeypatch, SLOW, slow_detector)
    app = make_app(tmp_path, detectors=(SLOW,))
    async with app.run_test(size=SIZE) as pilot:
        await _wait_for(pilot, lambda: _running(app, SLOW))
        pressed = time.monotonic()
        await pilot.press("ctrl+q")
        await pilot.pause()
    # The slow detector would run 20 s; quitting cancelled it at its next checkpoint.
    assert time.monotonic() - pressed < 3
    assert not app.is_running
    progress = app.pipeline._progress[f"detector:{SLOW}"]
    assert progress.cancel_event.is_set()


async def test_hostile_telemetry_is_shown_as_text_never_as_markup_or_escapes(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("slash", *"evil", "enter")
        await settle(app, pilot, lambda: app.main_screen.detail.row["device"] == syn.HOSTILE_DEVICE)
        table = app.main_screen.query_one(CandidateTable)
        line = table.render_line(1)
        assert syn.HOSTILE_DEVICE in line.text  # "[bold]" printed, not applied
        assert syn.HOSTILE_PROCESS in line.text  # "[@click=app.quit]" printed, not a link
        for segment in line:
            assert "\x1b" not in segment.text and "\u202e" not in segment.text
            assert not (segment.style and segment.style.meta.get("@click"))
        facts = app.main_screen.query_one(CandidateFacts).plain
        # sanitize.visible: ESC and the right-to-left override become visible escapes.
        assert "evil\\x1b[31mred\\u202etxt.example.org" in facts
        assert syn.HOSTILE_DEVICE in facts and syn.HOSTILE_PROCESS in facts
        await pilot.click(CandidateTable, offset=(40, 1))  # on the "[@click=...]" cell
        await pilot.pause()
        assert app.is_running
