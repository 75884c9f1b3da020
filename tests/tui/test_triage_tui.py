"""Triage marks and notes from the TUI: single keys, the note editor, the header counts,
and the marks coming back on a new app over new data."""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl
import tui_fixtures as syn
from tui_fixtures import make_app, settle

from detectors.base import schema as S
from detectors.base.config import Config
from detectors.pairs.context import PairContext
from tui.screens.triage_note import TriageNoteScreen
from tui.widgets.candidate_facts import CandidateFacts
from tui.widgets.candidate_table import CandidateTable
from tui.widgets.status_header import StatusHeader

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SIZE = (120, 36)
NOTE = "60s C2; ask IR"


def _app(tmp_path: Path, **kwargs):
    config = Config(path=tmp_path / "config.toml", theme="beacon-dark")
    return make_app(tmp_path, config=config, allowlist_path=tmp_path / "allow.toml", **kwargs)


def _marks(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return tomllib.loads(path.read_text(encoding="utf-8")).get("triage", [])


def _mark_of(app, device: str) -> str:
    frame = app.main_screen.candidates.filter(pl.col(S.C_DEVICE) == device)
    return frame["mark"].item()


async def _select(app, pilot, device: str) -> None:
    await pilot.press("home")
    for _ in range(app.main_screen.view[S.C_DEVICE].to_list().index(device)):
        await pilot.press("down")
    await settle(app, pilot, lambda: app.main_screen.detail.row[S.C_DEVICE] == device)


async def test_mark_and_note_are_saved_counted_and_back_in_a_new_app(tmp_path):
    triage = tmp_path / "triage.toml"  # beside the allow-list
    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert app.main_screen.header.marks == ()
        await _select(app, pilot, "ws-beacon")
        await pilot.press("e")
        await settle(app, pilot, lambda: app.main_screen.header.marks == (("escalate", 1),))
        assert "E1" in app.main_screen.query_one(StatusHeader).render().plain
        [saved] = _marks(triage)
        assert (saved["device"], saved["process"], saved["remote_ip"], saved["remote_port"]) == (
            "ws-beacon",
            "beacon.exe",
            syn.BEACON_IP,
            443,
        )
        assert saved["mark"] == "escalate" and "note" not in saved

        await pilot.press("m")
        await pilot.pause()
        assert isinstance(app.screen, TriageNoteScreen)
        await pilot.press(*NOTE)
        await pilot.press("ctrl+s")
        await settle(app, pilot, lambda: _marks(triage) and _marks(triage)[0].get("note"))
        [saved] = _marks(triage)
        assert saved["note"] == NOTE and saved["mark"] == "escalate"
        await settle(
            app, pilot, lambda: f"note {NOTE}" in app.main_screen.query_one(CandidateFacts).plain
        )

        await _select(app, pilot, "ws-human")
        await pilot.press("exclamation_mark")
        await settle(
            app, pilot, lambda: app.main_screen.header.marks == (("suspicious", 1), ("escalate", 1))
        )
        table = app.main_screen.query_one(CandidateTable)
        letters = {
            r[S.C_DEVICE]: table.render_line(i + 1).text[:1]
            for i, r in enumerate(app.main_screen.view.iter_rows(named=True))
        }
        assert letters == {"ws-beacon": "E", "ws-human": "S", syn.HOSTILE_DEVICE: " "}

    # A new app over new data (the human's traffic gone, a day later): the marks follow
    # the candidates, not the rows of the first run.
    later = (
        syn.events()
        .filter(pl.col(S.DEVICE_NAME) != "ws-human")
        .with_columns(pl.col(S.TIMESTAMP) + pl.duration(days=1))
    )
    again = _app(tmp_path, loader=syn.loader_for(PairContext(events=later, files=["day2.csv"])))
    async with again.run_test(size=SIZE) as pilot:
        await settle(again, pilot)
        assert again.main_screen.header.marks == (("escalate", 1),)
        assert _mark_of(again, "ws-beacon") == "escalate"
        beacon = again.main_screen.candidates.filter(pl.col(S.C_DEVICE) == "ws-beacon")
        assert beacon["note"].item() == NOTE
        assert _mark_of(again, syn.HOSTILE_DEVICE) == "unreviewed"


async def test_each_mark_key_sets_its_mark_and_u_clears_it_from_the_file(tmp_path):
    triage = tmp_path / "triage.toml"
    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await _select(app, pilot, syn.HOSTILE_DEVICE)
        for key, mark in (("exclamation_mark", "suspicious"), ("b", "benign"), ("e", "escalate")):
            await pilot.press(key)
            await settle(app, pilot, lambda m=mark: _mark_of(app, syn.HOSTILE_DEVICE) == m)
            assert [t["mark"] for t in _marks(triage)] == [mark]  # one table, re-marked
            assert _marks(triage)[0]["device"] == syn.HOSTILE_DEVICE  # stored as it is
        await pilot.press("M", "M", "M", "M")  # mark filter: all → ... → escalate
        await settle(app, pilot, lambda: app.main_screen.spec.mark == "escalate")
        assert app.main_screen.view[S.C_DEVICE].to_list() == [syn.HOSTILE_DEVICE]
        await pilot.press("u")  # unreviewed with no note: the table goes
        await settle(app, pilot, lambda: _mark_of(app, syn.HOSTILE_DEVICE) == "unreviewed")
        assert _marks(triage) == []
        assert app.main_screen.header.marks == ()
        assert app.main_screen.view.height == 0  # the escalate filter now matches nothing
