"""Results stream in: each detector's candidates reach the table as it finishes, the
status names the ones still running, and an empty table never claims "no candidates"
before the last one is done (issue 18)."""

from __future__ import annotations

import threading
import time

import polars as pl
from tui_fixtures import fake_periodic, make_app, register_fake, settle

from detectors.base import schema as S
from tui.widgets.candidate_table import CandidateTable

GATE = threading.Event()


def gated_empty(data, params, progress) -> pl.DataFrame:
    """Finds nothing, and only once the test opens the gate."""
    while not GATE.wait(0.02):
        progress.report("wait", 0.5, "waiting for the test")
    return pl.DataFrame()


def gated_hits(data, params, progress) -> pl.DataFrame:
    while not GATE.wait(0.02):
        progress.report("wait", 0.5, "waiting for the test")
    return fake_periodic(data, params, progress).with_columns(
        pl.lit("late_detector").alias(S.C_DETECTOR)
    )


async def _until(pilot, condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await pilot.pause(0.02)


async def test_no_candidates_message_waits_for_the_last_detector(tmp_path, monkeypatch):
    GATE.clear()
    register_fake(monkeypatch, "fake_periodic", lambda d, p, g: pl.DataFrame())
    register_fake(monkeypatch, "gated", gated_empty)
    app = make_app(tmp_path, detectors=("fake_periodic", "gated"))
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.main_screen
        await _until(pilot, lambda: "fake_periodic" in app.outcomes and not app._merging)
        await pilot.pause(0.1)
        table = screen.query_one(CandidateTable)
        assert screen.header.status == "1/2 done · running gated"
        assert "No candidates" not in table.empty_text
        GATE.set()
        await settle(app, pilot)
        assert screen.header.status == "ready"
        assert table.empty_text.startswith("No candidates: nothing looked like a beacon")


async def test_a_late_detector_is_merged_into_the_rows_already_shown(tmp_path, monkeypatch):
    GATE.clear()
    register_fake(monkeypatch, "late_detector", gated_hits)
    app = make_app(tmp_path, detectors=("fake_periodic", "late_detector"))
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.main_screen
        await _until(pilot, lambda: screen.view.height == 3)  # the first one's rows
        assert screen.header.status == "1/2 done · running late_detector"
        GATE.set()
        await settle(app, pilot)
        detectors = screen.view.get_column(S.C_DETECTORS).to_list()
        assert all(sorted(d) == ["fake_periodic", "late_detector"] for d in detectors)
        # The user never moved: the cursor (and the detail) stay on the best row.
        table = screen.query_one(CandidateTable)
        assert table.cursor_row == 0
        assert screen.detail.row[S.C_DEVICE] == screen.view.row(0, named=True)[S.C_DEVICE]


async def test_header_counts_the_allow_listed_and_a_shows_them(tmp_path):
    from tui.widgets.status_header import StatusHeader

    allow = tmp_path / "allowlist.toml"
    allow.write_text('[[allow]]\nprocess = "chrome.exe"\nreason = "the browser"\n', "utf-8")
    app = make_app(tmp_path, allowlist_path=allow)
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(app, pilot)
        screen = app.main_screen
        header = screen.query_one(StatusHeader)
        assert screen.view.height == 2
        assert "3 candidates · 1 hidden by the allow-list (a)" in header.render().plain
        await pilot.press("a")
        await settle(app, pilot, lambda: screen.view.height == 3)
        assert "3 candidates · 1 shown (a)" in header.render().plain


async def test_log_says_skipped_once(tmp_path, monkeypatch):
    from detectors.base.errors import DetectorSkipped

    def skips(data, params, progress):
        raise DetectorSkipped("needs DNS names")

    register_fake(monkeypatch, "skipper", skips)
    app = make_app(tmp_path, detectors=("fake_periodic", "skipper"))
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(app, pilot)
        lines = [e.text for e in app.log_entries if e.text.startswith("skipper")]
        assert lines == ["skipper: skipped: needs DNS names"]
