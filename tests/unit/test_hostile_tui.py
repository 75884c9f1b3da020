"""The TUI, end to end on a hostile Defender export, shows telemetry as inert text.

Unlike tests/tui (fake detectors on a synthetic frame), this opens the real app on a
real file through the real loader and every built-in detector, walks the cursor over
every candidate so each one's detail is drawn, opens the log, and reads back every
segment every visible widget renders: no raw control, bidi or zero-width character,
no ``@click`` action from markup, and the literal markup text is there. A click on the
``[@click=app.quit]`` cell must not quit. (A Pilot test; it lives in tests/unit because
that is where this suite's files go: move it to tests/tui freely.)
"""

from __future__ import annotations

import time
from pathlib import Path

from test_hostile_output import HOSTILE, hostile_csv, unsafe_characters
from textual.geometry import Region
from textual.widgets import Input, RichLog

from detectors.base.config import Config
from tui.app import BeaconTriageApp
from tui.screens.log import LogScreen
from tui.widgets.candidate_table import CandidateTable

SIZE = (220, 50)
HOSTILE_NAME = "notes\x1b]0;pwned\x07\u202e.txt"  # a file name is telemetry too


def drawn(app: BeaconTriageApp) -> tuple[str, list[dict]]:
    """Everything the visible widgets of the current screen render, and any click actions."""
    texts: list[str] = []
    actions: list[dict] = []
    for widget in app.screen.walk_children(with_self=True):
        if not widget.display or not widget.size.area:
            continue
        for strip in widget.render_lines(Region(0, 0, widget.size.width, widget.size.height)):
            for segment in strip:
                texts.append(segment.text)
                if segment.style is not None and segment.style.meta.get("@click"):
                    actions.append(dict(segment.style.meta))
    return "".join(texts), actions


def squeezed(text: str) -> str:
    """Without spaces: the log wraps long paths, padding each line with blanks."""
    return text.replace(" ", "")


def log_lines(app: BeaconTriageApp) -> int:
    """Lines the log screen holds (0 until it is open and has written its entries)."""
    if not isinstance(app.screen, LogScreen):
        return 0
    return len(app.screen.query_one(RichLog).lines)


async def wait_until(pilot, condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the app did not get there in time"
        await pilot.pause(0.05)


def finished(app: BeaconTriageApp, candidates: int) -> bool:
    return (
        app.main_screen.header.status == "ready"
        and app.candidates.height == candidates
        and not any(w.is_running for w in app.workers)
    )


def make_app(tmp_path: Path, paths: list[str]) -> BeaconTriageApp:
    # a config file in tmp: the test never reads or writes the developer's own
    config = Config(path=tmp_path / "config.toml", theme="beacon-dark")
    return BeaconTriageApp(paths, config=config, allowlist_path=tmp_path / "allow.toml")


async def test_every_hostile_candidate_is_drawn_inert_and_clicking_markup_does_nothing(tmp_path):
    folder = tmp_path / "export"
    folder.mkdir()
    hostile_csv(folder / "events.csv")
    (folder / HOSTILE_NAME).write_text("just some notes, no columns\n", encoding="utf-8")
    app = make_app(tmp_path, [str(folder)])
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: finished(app, len(HOSTILE)))
        await pilot.pause(0.2)
        text, actions = drawn(app)
        assert unsafe_characters(text) == set() and actions == []
        assert "[bold red]x[/]" in text  # shown literally, not applied
        assert "[@click=app.quit]q.exe" in text
        assert "gpj.\\u202eexe" in text and "t\\x1b]0;owned\\x07.exe" in text
        table = app.main_screen.query_one(CandidateTable)
        table.focus()
        # draw the detail of the top rows (ANSI, formulas, @click), the last (zero-width)
        # and, filtered to it, the bidi override: each detail costs ~0.3 s to draw
        for keys in (["down"], ["down"], ["down"], ["G"]):
            await pilot.press(*keys)
            await pilot.pause(0.05)
            text, actions = drawn(app)
            assert unsafe_characters(text) == set() and actions == []
        await pilot.press("slash")
        app.main_screen.query_one("#filter-input", Input).value = "gpj"  # pasted
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.main_screen.view.height == 1)
        await pilot.pause(0.05)
        text, actions = drawn(app)
        assert unsafe_characters(text) == set() and actions == []
        assert "gpj.\\u202eexe" in text
        await pilot.press("escape")
        quit_row = next(
            i for i, p in enumerate(app.main_screen.view["process"]) if p.startswith("[@click")
        )
        await pilot.click(CandidateTable, offset=(30, quit_row + 1))
        await pilot.pause(0.1)
        assert app.is_running
        await pilot.press("l")  # the log names the skipped hostile file
        shown = "notes\\x1b]0;pwned\\x07\\u202e.txt"
        await wait_until(pilot, lambda: log_lines(app) > 0 and shown in squeezed(drawn(app)[0]))
        text, actions = drawn(app)
        assert unsafe_characters(text) == set() and actions == []
        assert app.is_running


async def test_a_load_error_naming_a_hostile_file_is_inert_in_the_log(tmp_path):
    missing = tmp_path / f"[@click=app.quit]{HOSTILE_NAME}"
    app = make_app(tmp_path, [str(missing)])
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.main_screen.header.status.startswith("load failed"))
        await pilot.pause(0.2)
        text, actions = drawn(app)
        assert unsafe_characters(text) == set() and actions == []
        await pilot.press("l")
        shown = "[@click=app.quit]notes\\x1b]0;pwned\\x07\\u202e.txt"  # "[": matches no file
        await wait_until(pilot, lambda: log_lines(app) > 0 and shown in squeezed(drawn(app)[0]))
        text, actions = drawn(app)
        assert unsafe_characters(text) == set() and actions == []
        assert app.is_running


async def test_a_load_error_naming_a_hostile_file_is_inert_in_the_notification(
    tmp_path, monkeypatch
):
    # Toasts are drawn unreliably in a headless test, so this checks what the app hands
    # to notify(): with markup=False, Textual draws exactly that text.
    told: list[str] = []
    original = BeaconTriageApp.notify

    def spy(self, message, *args, **kwargs):
        told.append(str(message))
        return original(self, message, *args, **kwargs)

    monkeypatch.setattr(BeaconTriageApp, "notify", spy)
    app = make_app(tmp_path, [str(tmp_path / HOSTILE_NAME)])
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await wait_until(pilot, lambda: app.main_screen.header.status.startswith("load failed"))
        await wait_until(pilot, lambda: bool(told))
    assert [unsafe_characters(message) for message in told] == [set()]
