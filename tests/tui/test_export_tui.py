"""Export from the TUI: the filtered view as CSV, a Markdown report of escalations only."""

from __future__ import annotations

import csv
from pathlib import Path

import tui_fixtures as syn
from textual.widgets import Input
from tui_fixtures import make_app, settle

from detectors.base import schema as S
from detectors.base.config import Config
from tui.screens.confirm import ConfirmScreen
from tui.screens.export import ExportScreen

SIZE = (120, 36)


def _app(tmp_path: Path):
    config = Config(path=tmp_path / "config.toml", theme="beacon-dark")
    return make_app(tmp_path, config=config, allowlist_path=tmp_path / "allow.toml")


async def _export(app, pilot, path: Path) -> None:
    await pilot.press("E")
    await pilot.pause()
    assert isinstance(app.screen, ExportScreen)
    app.screen.query_one("#export-path", Input).value = str(path)
    await pilot.press("enter")


async def test_csv_export_writes_the_filtered_sorted_view(tmp_path):
    out = tmp_path / "view.csv"
    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("slash", *"45.77", "enter")  # 2 of the 3 candidates
        await pilot.press("s", "down", "enter")  # the picker: score, then device (A→Z)
        await settle(app, pilot, lambda: app.main_screen.view.height == 2)
        shown = app.main_screen.view[S.C_DEVICE].to_list()
        assert shown == sorted([syn.HOSTILE_DEVICE, "ws-beacon"], key=str.lower)
        await _export(app, pilot, out)
        await settle(app, pilot, lambda: out.exists())
        with out.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert len(rows) == 2  # the filtered view, not the 3 candidates
        assert [r[S.C_DEVICE] for r in rows] == shown  # in the order shown
        assert "_haystack" not in rows[0]
        assert app.log_entries[-1].text == f"exported 2 rows to {out}"

        before = out.read_bytes()
        await pilot.press("escape", "x")  # all 3 now; exporting again asks before replacing
        await settle(app, pilot, lambda: app.main_screen.view.height == 3)
        await _export(app, pilot, out)
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("enter")  # "Keep it" has the focus
        await pilot.pause()
        assert isinstance(app.screen, ExportScreen)
        await pilot.press("escape")
        await settle(app, pilot)
        assert out.read_bytes() == before


async def test_markdown_report_lists_only_the_escalated_candidates(tmp_path):
    out = tmp_path / "report.md"
    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        view = app.main_screen.view[S.C_DEVICE].to_list()
        await pilot.press("home", *["down"] * view.index("ws-beacon"), "e")
        await settle(app, pilot, lambda: app.main_screen.header.marks == (("escalate", 1),))
        await pilot.press("home", *["down"] * view.index("ws-human"), "exclamation_mark")
        await settle(app, pilot, lambda: len(app.main_screen.header.marks) == 2)
        await pilot.press("slash", *"hum", "enter")  # the filter must not hide escalations
        await settle(app, pilot, lambda: app.main_screen.view.height == 1)
        await pilot.press("E")
        await pilot.pause()
        await pilot.click("#format-markdown", offset=(3, 0))
        await pilot.pause()
        box = app.screen.query_one("#export-path", Input)
        assert box.value.endswith(".md")  # the format swapped the extension
        box.value = str(out)
        await pilot.press("enter")
        await settle(app, pilot, lambda: out.exists())
        report = out.read_text(encoding="utf-8")
        assert report.count("\n## ") == 1
        assert "## 1. `ws-beacon` / `beacon.exe` → `45.77.10.20:443`" in report
        assert "chrome.exe" not in report and "x.exe" not in report
        assert "1 candidate(s)" in report
