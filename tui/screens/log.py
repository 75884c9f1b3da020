"""``l``: what went wrong or was skipped while loading and detecting, newest last.

An entry that sums many items up in one line (``skipped 412 files: ...``) carries them
as ``details``; they are listed below the log in a collapsible, one per line, as plain
text (file names are the adversary's too).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.content import Content
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Collapsible, Footer, Label, RichLog, Static

from detectors.base.sanitize import visible
from tui import keymap


@dataclass(frozen=True)
class LogEntry:
    level: str  # info | warning | error
    text: str
    at: str  # HH:MM:SS, local wall clock
    details: tuple[str, ...] = ()  # the items a summary line counts (skipped files)


class LogScreen(Screen[None]):
    """Errors, warnings, skips and timings; telemetry in them is shown inert."""

    KEYMAP_WHERE = "log"
    BINDINGS = keymap.bindings("log")

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "log-screen--error",
        "log-screen--warning",
        "log-screen--info",
    }

    DEFAULT_CSS = """
    LogScreen > .log-title {
        height: 1;
        width: 100%;
        background: $panel;
        color: $primary;
        text-style: bold;
        padding: 0 1;
    }
    LogScreen > RichLog {
        background: $surface;
        padding: 0 1;
    }
    LogScreen > #details {
        height: auto;
        max-height: 50%;
        background: $surface;
    }
    LogScreen > #details > Collapsible {
        padding: 0;
        border-top: none;
    }
    LogScreen > .log-screen--error { color: $error; text-style: bold; }
    LogScreen > .log-screen--warning { color: $warning; }
    LogScreen > .log-screen--info { color: $text-muted; }
    """

    entries: reactive[tuple[LogEntry, ...]] = reactive((), always_update=True, init=False)

    def compose(self) -> ComposeResult:
        yield Label("Log: loading and detector messages (Esc closes)", classes="log-title")
        yield RichLog(wrap=True, markup=False, highlight=False, id="log")
        yield VerticalScroll(id="details")
        yield Footer()

    def on_mount(self) -> None:
        self._shown = 0
        self._ready = True
        self.watch_entries(self.entries)
        self.query_one(RichLog).focus()

    def watch_entries(self, entries: tuple[LogEntry, ...]) -> None:
        if not getattr(self, "_ready", False):
            return  # on_mount shows them
        log = self.query_one(RichLog)
        if self._shown == 0 or len(entries) < self._shown:
            log.clear()  # also drops the "nothing yet" line
            self.query_one("#details").remove_children()
            self._shown = 0
        for entry in entries[self._shown :]:
            full = self.get_component_rich_style(f"log-screen--{entry.level}")
            style = Style(color=full.color, bold=full.bold)  # the log's own background
            lines = entry.text.splitlines() or [""]
            text = Text(end="")
            text.append(f"{entry.at} {entry.level.upper():7} ", style)
            text.append(visible(lines[0]))
            for extra in lines[1:]:
                text.append("\n" + " " * 17 + visible(extra))
            log.write(text)
            if entry.details:
                self._add_details(entry)
        self._shown = len(entries)
        if not entries:
            log.clear()
            log.write(Text("Nothing to report yet.", end=""))

    def _add_details(self, entry: LogEntry) -> None:
        """A collapsed list of the items the entry counts, titled by the entry itself."""
        count = len(entry.details)
        first = (entry.text.splitlines() or [""])[0]
        title = Content(f"{entry.at} {visible(first)} ({count} listed: Enter opens)")
        body = Static(
            Text("\n".join(visible(item) for item in entry.details), end=""), classes="listed"
        )
        box = Collapsible(body, title="", collapsed=True)
        box.title = title  # type: ignore[assignment]  # Content: shown as it is, no markup
        self.query_one("#details").mount(box)

    def action_close(self) -> None:
        self.dismiss(None)
