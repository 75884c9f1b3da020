"""The command palette (Ctrl+P): every action in the key table, every theme, every
detector filter, by name. Built from tui/keymap.py so nothing is reachable only by key.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

from tui import keymap

Command = tuple[str, str, Callable[[], Any]]


class TriageCommands(Provider):
    """Actions of the current screen and the app, themes and detector filters."""

    def _commands(self) -> list[Command]:
        screen = self.screen
        app: Any = self.app
        found: list[Command] = []
        main: Any = getattr(app, "main_screen", None)
        for key in keymap.KEYS:
            if not key.palette:
                continue
            if key.where == "app":
                target: Any = app
            elif key.where == getattr(screen, "KEYMAP_WHERE", None):
                target = screen  # the screen under the palette owns these keys
            else:
                continue
            title = f"{key.short}: {key.description} ({key.label})"
            found.append((title, "", partial(target.run_action, key.action)))
        for name in getattr(app, "theme_names", lambda: [])():
            found.append(
                (f"Theme: {name}", "Switch theme (remembered)", partial(app.set_theme, name))
            )
        if main is not None and screen is main:
            triage: Any = main
            for name in [None, *triage.detector_names()]:
                label = name or "all detectors"
                found.append(
                    (
                        f"Show: {label}",
                        "Only candidates this detector found",
                        partial(triage.set_detector_filter, name),
                    )
                )
        return found

    async def discover(self) -> Hits:
        for title, help_text, callback in self._commands():
            yield DiscoveryHit(title, callback, help=help_text or None)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text or None)
