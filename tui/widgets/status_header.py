"""The top line: what is open, how big it is, how far the run is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from detectors.base.sanitize import visible
from tui import format as F


@dataclass(frozen=True)
class HeaderInfo:
    """Everything the header shows; the app replaces it whole when something changes."""

    source: str = ""
    sample: bool = False
    events: int | None = None
    candidates: int | None = None
    shown: int | None = None
    status: str = "starting"
    marks: tuple[tuple[str, int], ...] = ()  # (mark, count) for the marks in use
    unsaved: tuple[str, ...] = ()  # files with edits not on disk yet (allow-list, triage)
    allowed: int = 0  # candidates an allow-list entry matches
    allowed_shown: bool = False  # ``a`` shows them (the table hides them by default)


MARK_LETTERS = {"suspicious": "S", "escalate": "E", "benign": "B"}


class StatusHeader(Widget):
    """Title, file names or the SAMPLE DATA marker, counts, triage marks and the run status."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "status-header--title",
        "status-header--sample",
        "status-header--status",
        "status-header--marks",
        "status-header--unsaved",
    }

    DEFAULT_CSS = """
    StatusHeader {
        height: 1;
        background: $panel;
        color: $foreground;
    }
    StatusHeader > .status-header--title {
        color: $primary;
        text-style: bold;
    }
    StatusHeader > .status-header--sample {
        background: $warning;
        color: $background;
        text-style: bold;
    }
    StatusHeader > .status-header--status {
        color: $accent;
    }
    StatusHeader > .status-header--marks {
        color: $secondary;
        text-style: bold;
    }
    StatusHeader > .status-header--unsaved {
        background: $error;
        color: $background;
        text-style: bold;
    }
    """

    info: reactive[HeaderInfo] = reactive(HeaderInfo, layout=False)

    def render(self) -> Text:
        info = self.info
        left = Text(no_wrap=True, overflow="ellipsis", end="")
        left.append(" beacon-triage ", self.get_component_rich_style("status-header--title"))
        if info.sample:
            left.append(" SAMPLE DATA ", self.get_component_rich_style("status-header--sample"))
            left.append(" ")
        left.append(visible(info.source))
        right = Text(no_wrap=True, end="")
        parts = []
        if info.events is not None:
            parts.append(f"{F.count(info.events)} events")
        if info.candidates is not None:
            shown = info.shown if info.shown is not None else info.candidates
            if shown != info.candidates and not (
                not info.allowed_shown and shown == info.candidates - info.allowed
            ):
                parts.append(f"{F.count(shown)}/{F.count(info.candidates)} candidates")
            else:
                parts.append(f"{F.count(info.candidates)} candidates")
        if info.allowed:
            verb = "shown" if info.allowed_shown else "hidden by the allow-list"
            parts.append(f"{F.count(info.allowed)} {verb} (a)")
        right.append(" · ".join(parts))
        if parts:
            right.append(" · ")
        marks = " ".join(f"{MARK_LETTERS.get(m, m[:1].upper())}{n}" for m, n in info.marks)
        if marks:
            right.append(marks, self.get_component_rich_style("status-header--marks"))
            right.append(" · ")
        if info.unsaved:
            unsaved = f" UNSAVED {'+'.join(info.unsaved)} "
            right.append(unsaved, self.get_component_rich_style("status-header--unsaved"))
            right.append(" ")
        right.append(info.status, self.get_component_rich_style("status-header--status"))
        right.append(" ")
        width = self.size.width
        room = max(0, width - right.cell_len - 1)
        left.truncate(room, overflow="ellipsis")
        gap = max(1, width - left.cell_len - right.cell_len)
        return Text.assemble(left, " " * gap, right, no_wrap=True, end="")
