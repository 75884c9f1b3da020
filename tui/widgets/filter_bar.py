"""The filter line: an incremental search box plus a summary of the quick filters.

Typing posts ``QueryChanged`` on every keystroke (the parent filters in polars);
Enter or Escape posts ``Done`` so the parent can hand focus back to the table.
The parent sets ``summary`` to describe the quick filters and the sort.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Input, Label


class FilterBar(Horizontal):
    """``/`` search over device, process, IP and domain, case-insensitive."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "clear", "Clear filter", show=False),
    ]

    DEFAULT_CSS = """
    FilterBar {
        height: 1;
        background: $panel;
    }
    FilterBar > .filter-prompt {
        width: 3;
        color: $accent;
        text-style: bold;
        padding: 0 1;
    }
    FilterBar > Input {
        width: 1fr;
        max-width: 60;
        height: 1;
        border: none;
        padding: 0;
        background: $surface;
    }
    FilterBar > Input:focus {
        border: none;
        background: $boost;
    }
    FilterBar > .filter-summary {
        width: 2fr;
        color: $text-muted;
        padding: 0 1;
        text-align: right;
    }
    """

    summary: reactive[str] = reactive("", init=False)

    class QueryChanged(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class Done(Message):
        """The user finished typing (Enter) or cleared the box (Escape)."""

    def compose(self) -> ComposeResult:
        yield Label("/", classes="filter-prompt")
        yield Input(placeholder="filter device, process, IP, domain", id="filter-input")
        yield Label(classes="filter-summary")

    def watch_summary(self, summary: str) -> None:
        self.query_one(".filter-summary", Label).update(Text(summary, end="", no_wrap=True))

    @property
    def text(self) -> str:
        return self.query_one(Input).value

    def focus_input(self) -> None:
        # Synchronously: keys typed right after "/" (or pasted) must land in the box.
        self.screen.set_focus(self.query_one(Input))

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.QueryChanged(event.value))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(self.Done())

    def action_clear(self) -> None:
        self.query_one(Input).value = ""
        self.post_message(self.Done())
