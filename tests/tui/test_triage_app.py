"""The triage app driven with Pilot on deterministic data: load, sort, filter, detail."""

from __future__ import annotations

import itertools
import statistics
from datetime import timedelta

import numpy as np
import polars as pl
import pytest
import tui_fixtures as syn
from tui_fixtures import make_app, settle

from detectors.base import schema as S
from detectors.load.sample import SAMPLE_EVENTS, sample_dir
from tui import format as F
from tui.screens.help import HelpScreen, help_rows
from tui.screens.log import LogScreen
from tui.screens.sort_picker import SortPickerScreen
from tui.widgets.candidate_facts import CandidateFacts
from tui.widgets.candidate_table import CandidateTable
from tui.widgets.status_header import StatusHeader

SIZE = (110, 32)


def _table(app) -> CandidateTable:
    return app.main_screen.query_one(CandidateTable)


async def test_synthetic_data_loads_into_header_table_and_detail(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        header = app.main_screen.query_one(StatusHeader).info
        # 288 beacon + 40 human + 144 hostile rows; fake_periodic keeps all 3 pairs.
        assert header.events == 472
        assert header.candidates == 3
        assert header.status == "ready"
        assert header.sample is False
        assert _table(app).row_count == 3


async def test_sort_by_score_descending_then_reversed(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        scores = app.main_screen.view[S.C_SCORE].to_list()
        assert scores == sorted(scores, reverse=True)
        await pilot.press("S")  # reverse
        await settle(app, pilot)
        assert app.main_screen.view[S.C_SCORE].to_list() == sorted(scores)
        await pilot.press("s")  # the picker opens on the current column (score)
        await pilot.pause()
        assert isinstance(app.screen, SortPickerScreen)
        await pilot.press("down", "down", "enter")  # M, score, device, process
        await settle(app, pilot)
        assert app.main_screen.spec.sort == "process"
        processes = app.main_screen.view[S.C_PROCESS].to_list()
        assert processes == sorted(processes, key=str.lower)
        assert app.main_screen.spec.descending is False
        await pilot.press("s", "escape")  # Esc cancels: the sort stays
        await settle(app, pilot)
        assert app.screen is app.main_screen
        assert app.main_screen.spec.sort == "process"


async def test_header_click_sorts_by_that_column(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        table = _table(app)
        at = [c.key for c in table._columns].index("conns")
        conns_x = sum(table._widths[:at]) + at  # widths plus one-cell gaps
        await pilot.click(CandidateTable, offset=(conns_x + 1, 0))
        await settle(app, pilot)
        assert app.main_screen.spec.sort == "conns"
        assert app.main_screen.view[S.C_CONNECTIONS].to_list() == [288, 144, 40]


async def test_filter_is_incremental_case_insensitive_substring(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("slash", "B", "E", "A", "C")
        await settle(app, pilot)
        assert app.main_screen.view[S.C_DEVICE].to_list() == ["ws-beacon"]
        await pilot.press("ctrl+u", "1", "5", "1")  # an IP prefix matches the human pair
        await settle(app, pilot)
        assert app.main_screen.view[S.C_DEVICE].to_list() == ["ws-human"]
        await pilot.press("escape")  # clears the box and returns to the table
        await settle(app, pilot)
        assert app.main_screen.view.height == 3
        assert isinstance(app.focused, CandidateTable)


async def test_keys_typed_in_one_burst_after_slash_land_in_the_filter(tmp_path):
    from textual import events

    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        for key, char in (("slash", "/"), ("e", "e"), ("v", "v"), ("i", "i"), ("l", "l")):
            app.post_message(events.Key(key, char))  # no pause: like a paste over SSH
        await settle(app, pilot)
        assert app.main_screen.spec.text == "evil"
        assert not isinstance(app.screen, LogScreen)  # "l" did not open the log


async def test_quick_filters_detector_score_and_reset(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("d")
        await settle(app, pilot)
        assert app.main_screen.spec.detector == "fake_periodic"
        assert app.main_screen.view.height == 3
        scores = app.main_screen.candidates[S.C_SCORE].to_list()
        threshold = 0.1 * sum(1 for _ in range(5))  # five presses of "+": 0.5
        await pilot.press("plus", "plus", "plus", "plus", "plus")
        await settle(app, pilot)
        assert app.main_screen.spec.min_score == pytest.approx(threshold)
        assert app.main_screen.view.height == sum(1 for s in scores if s >= threshold)
        await pilot.press("x")
        await settle(app, pilot)
        assert app.main_screen.spec.min_score == 0 and app.main_screen.spec.detector is None
        assert app.main_screen.view.height == 3


async def test_detail_pane_figures_match_an_independent_computation(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("slash", *"beac", "enter")
        await settle(app, pilot, lambda: app.main_screen.detail.row[S.C_DEVICE] == "ws-beacon")
        detail = app.main_screen.detail
        # Independently, from the raw events: distinct times of the pair, their gaps.
        events = syn.events().filter(
            (pl.col(S.DEVICE_NAME) == "ws-beacon") & (pl.col(S.REMOTE_PORT) == 443)
        )
        times = sorted(set(events[S.TIMESTAMP].to_list()))
        gaps = [(b - a) / timedelta(seconds=1) for a, b in itertools.pairwise(times)]
        # By hand: gaps cycle 306, 288, 309, 294, 303 (287 of them) -> median 303 s,
        # p5 288 s, p95 309 s, mean 300 - 6/287 s.
        cuts = statistics.quantiles(gaps, n=20, method="inclusive")  # p5 ... p95
        assert detail.times.size == len(times) == 288
        assert detail.stats.median_s == statistics.median(gaps) == 303.0
        assert detail.stats.p5_s == pytest.approx(cuts[0]) == 288.0
        assert detail.stats.p95_s == pytest.approx(cuts[-1]) == 309.0
        assert detail.stats.mean_s == pytest.approx(300 - 6 / 287)
        jitter = statistics.stdev(gaps) / statistics.mean(gaps) * 100
        assert detail.stats.jitter_pct == pytest.approx(jitter)
        dest = detail.destination
        assert dest.ip == syn.BEACON_IP and dest.ip_class == "Public"
        assert syn.BEACON_NAME in dest.names
        assert dest.devices_to_ip == 2  # ws-beacon and the hostile device
        # The other candidate to the same address is the hostile device's :8443 pair.
        assert detail.sharing[S.C_REMOTE_PORT].to_list() == [8443]
        facts = app.main_screen.query_one(CandidateFacts).plain
        for text in ("connections 288", "interval 5m 03s", "p5 4m 48s", "p50 5m 03s"):
            assert text in facts
        assert "p95 5m 09s" in facts
        # The fake hunt's jitter is the CoV of the same gaps: one figure, two places.
        assert f"jitter {F.percent(jitter)}" in facts
        assert f"CoV {F.percent(jitter)}" in facts
        assert "jitter = coefficient of variation of the deltas, stdev/mean" in facts


async def test_table_and_detail_show_the_candidates_one_jitter_and_name_its_definition(
    tmp_path, monkeypatch
):
    """A candidate whose jitter came from the periodicity hunt (9.9 %, "uniform") differs
    from the CoV of its charted gaps (2.6 %, by hand: gaps 306, 288, 309, 294, 303 have
    stdev 7.8 around 300): the table and the detail show 9.9 % as "jitter", the CoV
    only under its own name."""
    from detectors.run import outcome

    def merged(outcomes, dataset, config):
        frame = original(outcomes, dataset, config)
        beacon = pl.col(S.C_DEVICE) == "ws-beacon"
        return frame.with_columns(
            pl.when(beacon).then(9.9).otherwise(pl.col(S.C_JITTER)).alias(S.C_JITTER),
            pl.when(beacon).then(pl.lit("uniform")).alias("jitter_kind"),
            pl.when(beacon).then(300.0).alias(S.C_PERIOD),
        )

    original = outcome.merge
    monkeypatch.setattr(outcome, "merge", merged)
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("slash", *"beac", "enter")
        await settle(app, pilot, lambda: app.main_screen.detail.row[S.C_DEVICE] == "ws-beacon")
        table = _table(app)
        assert "9.9%" in table.render_line(1).text  # the table's jitter cell
        facts = app.main_screen.query_one(CandidateFacts).plain
        assert "sleep 5m 00s  jitter 9.9%" in facts  # the same figure, the same name
        assert "jitter = width of the sleep interval over its centre" in facts
        assert "CoV 2.6%" in facts  # the charted gaps' own statistic, named apart


async def test_enter_maximises_the_detail_and_escape_restores(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press("enter")
        await pilot.pause()
        assert app.main_screen.maximized is not None
        await pilot.press("escape")
        await pilot.pause()
        assert app.main_screen.maximized is None


async def test_log_screen_shows_load_warnings_and_detector_timings(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("l")
        await pilot.pause()
        assert isinstance(app.screen, LogScreen)
        texts = [e.text for e in app.screen.entries]
        shown = "\n".join(line.text for line in app.screen.query_one("#log").lines)
        assert "WARNING synthetic warning line" in shown
        assert "synthetic warning line" in texts
        assert any(t.startswith("fake_periodic: done: 3 hits") for t in texts)
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.main_screen


async def test_help_screen_lists_every_key(tmp_path):
    from tui import keymap

    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        table = app.screen.query_one("#help-table").content
        assert table.row_count == len(keymap.KEYS) + len(keymap.BUILTIN_KEYS)
        assert table.row_count == len(help_rows())
        await pilot.press("escape")


def test_help_table_wraps_long_descriptions_instead_of_cutting_them():
    from rich.console import Console

    from tui import keymap
    from tui.screens.help import help_table

    console = Console(width=76, record=True, color_system=None)
    console.print(help_table(help_rows()))
    words = console.export_text().split()
    assert "…" not in " ".join(words)
    for key in keymap.KEYS:  # every word of every description is on screen
        for word in key.description.split():
            assert word in words, (key.label, word)


async def test_command_palette_runs_an_action_by_name(tmp_path):
    from tui.screens.params import ParamsScreen

    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"Para")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert isinstance(app.screen, ParamsScreen)


async def test_load_error_is_one_line_and_the_app_keeps_running(tmp_path):
    from detectors.base.errors import InputError

    def broken(paths, **kwargs):
        raise InputError("cannot parse '2026-13-01'", file="events.csv", row=12)

    app = make_app(tmp_path, loader=broken)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot, lambda: bool(app.log_entries))
        assert app.log_entries[-1].level == "error"
        assert app.log_entries[-1].text == "events.csv: row 12: cannot parse '2026-13-01'"
        assert "load failed" in app.main_screen.query_one(StatusHeader).info.status
        assert app.is_running


@pytest.mark.skipif(
    not (sample_dir() / SAMPLE_EVENTS).exists(), reason="sample_data/ not generated yet"
)
async def test_bundled_sample_opens_with_its_marker_and_real_detectors(tmp_path):
    from detectors.base.config import Config
    from tui.app import BeaconTriageApp

    app = BeaconTriageApp([], config=Config(path=tmp_path / "config.toml", theme="beacon-dark"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot, timeout=40)
        info = app.main_screen.query_one(StatusHeader).info
        assert info.sample is True
        assert info.status == "ready"
        assert info.candidates and info.candidates > 0
        assert np.all(np.diff(app.main_screen.view[S.C_SCORE].to_numpy()) <= 0)
