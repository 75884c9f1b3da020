"""The log screen lists the files a folder held that were not read, collapsed, as text."""

from __future__ import annotations

from pathlib import Path

import tui_fixtures as syn
from textual.widgets import Collapsible, Static

from detectors.base.config import Config
from detectors.load import load_paths
from tui.pipeline import default_loader
from tui.screens.log import LogScreen

CONN = (
    "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n"
    "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tconn_state\n"
    "#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\n"
    + "".join(
        f"{1700000000 + i}\tC{i}\t10.0.0.5\t{40000 + i}\t203.0.113.5\t443\ttcp\tSF\n"
        for i in range(3)
    )
)
WEIRD = "#separator \\x09\n#path\tweird\n#fields\tts\tname\n1700000000\tx\n"

HOSTILE = "notes[@click=app.quit]\x1b[31m.txt"  # a name that is markup and an ANSI escape


def _folder(root: Path) -> Path:
    folder = root / "capture"
    folder.mkdir()
    (folder / "conn.log").write_text(CONN)
    (folder / "README").write_text("Sensor logs.\n")
    (folder / "weird.log").write_text(WEIRD)
    (folder / HOSTILE).write_text("just words, no telemetry\n")
    return folder


def test_the_loaded_input_keeps_every_skipped_file_with_its_group(tmp_path):
    folder = _folder(tmp_path)
    loaded = load_paths([folder], cache=False)
    assert sorted(loaded.skipped) == sorted(
        [
            (str(folder / "README"), "README"),
            (str(folder / "weird.log"), "Zeek weird logs"),
            (str(folder / HOSTILE), "in no supported format"),
        ]
    )
    assert loaded.warnings[0].startswith("skipped 3 files: ")


async def test_the_log_screen_lists_them_in_a_collapsible_as_plain_text(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    folder = _folder(tmp_path)
    app = syn.make_app(
        tmp_path, loader=default_loader, config=Config(path=tmp_path / "config.toml")
    )
    app.paths = [str(folder)]
    async with app.run_test(size=(120, 40)) as pilot:
        await syn.settle(app, pilot, timeout=60.0)
        await pilot.press("l")
        await pilot.pause()
        assert isinstance(app.screen, LogScreen)
        boxes = list(app.screen.query(Collapsible))
        assert len(boxes) == 1
        box = boxes[0]
        assert box.collapsed is True
        title = str(box.title)
        assert "skipped 3 files: 1 README, 1 Zeek weird log, 1 in no supported format" in title
        assert "(3 listed: Enter opens)" in title
        assert "(notes[@click=app.quit]\\x1b[31m.txt)" in title  # the summary's example, inert
        body = box.query_one(".listed", Static)
        lines = str(body.render()).splitlines()
        hostile_shown = str(folder / "notes[@click=app.quit]\\x1b[31m.txt")
        assert sorted(lines) == sorted(
            [
                f"{folder / 'README'}  (README)",
                f"{folder / 'weird.log'}  (Zeek weird logs)",
                f"{hostile_shown}  (in no supported format)",
            ]
        )
        box.query_one("CollapsibleTitle").focus()
        await pilot.press("enter")
        await pilot.pause()
        assert box.collapsed is False
        assert isinstance(app.screen, LogScreen)  # the click= markup did nothing
