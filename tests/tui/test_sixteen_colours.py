"""The 16-colour theme on a 16-colour terminal: nothing that informs is bright black
(SGR 90, near-invisible on common palettes), and the SAMPLE DATA badge sets both of its
colours so it reads on dark and light palettes alike."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console
from tui_fixtures import make_app, settle

from detectors.base.config import Config

SGR = re.compile(r"\x1b\[([0-9;]*)m([^\x1b]*)")


def _screen_ansi(app) -> str:
    """The screen as a 16-colour terminal receives it."""
    buffer = io.StringIO()
    console = Console(file=buffer, color_system="standard", force_terminal=True, width=200)
    for strip in app.screen._compositor.render_strips():
        for segment in strip:
            console.print(segment.text, style=segment.style, end="")
        console.print()
    return buffer.getvalue()


def _texts_with(ansi: str, code: str) -> list[str]:
    return [
        text.strip()
        for codes, text in SGR.findall(ansi)
        if code in codes.split(";") and text.strip()
    ]


@pytest.mark.parametrize("keys", [(), ("z",), ("question_mark",), ("m",), ("s",)])
async def test_no_bright_black_text_on_any_screen(tmp_path, keys):
    app = make_app(tmp_path, config=Config(path=tmp_path / "c.toml", theme="beacon-ansi"))
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(app, pilot)
        for key in keys:
            await pilot.press(key)
            await pilot.pause()
        ansi = _screen_ansi(app)
        assert _texts_with(ansi, "90") == []  # bright black foreground
        assert _texts_with(ansi, "100") == []  # bright black background
        assert "candidates" in ansi or keys  # the check looked at a real screen


async def test_sample_badge_is_black_on_yellow(tmp_path):
    app = make_app(tmp_path, config=Config(path=tmp_path / "c.toml", theme="beacon-ansi"))
    app.sample = True
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(app, pilot)
        ansi = _screen_ansi(app)
        [codes] = [c for c, text in SGR.findall(ansi) if "SAMPLE DATA" in text]
        assert {"30", "43"} <= set(codes.split(";"))  # black on yellow, bold
