"""``?``: every key, from the one key table (tui/keymap.py)."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from tui import keymap

WHERE = {
    "main": "candidates",
    "app": "anywhere",
    "params": "parameters",
    "log": "log, help",
    "allowlist": "allow-list",
    "entry": "entry editor",
    "note": "note editor",
    "export": "export",
    "confirm": "questions",
}


def help_rows() -> list[tuple[str, str, str]]:
    """(where, key, what it does) for every binding, Textual's own keys last."""
    rows = [(WHERE.get(k.where, k.where), k.label, k.description) for k in keymap.KEYS]
    rows += [("anywhere", key, text) for key, text in keymap.BUILTIN_KEYS]
    return rows


def help_table(rows: list[tuple[str, str, str]]) -> Table:
    """The keys as a rich table whose last column wraps (never cut at any width)."""
    table = Table(box=None, expand=True, show_edge=False, pad_edge=False)
    where_width = max(len(w) for w, _, _ in rows)
    key_width = max(len(k) for _, k, _ in rows)
    table.add_column("where", no_wrap=True, style="bold", width=where_width)
    table.add_column("key", no_wrap=True, width=key_width)
    table.add_column("what it does", overflow="fold", ratio=1)
    for where, key, text in rows:
        table.add_row(Text(where), Text(key), Text(text))
    return table


class HelpScreen(ModalScreen[None]):
    """A table of keys that wraps its descriptions; Esc, q or ? closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *keymap.bindings("log"),
        ("question_mark", "close", "Close"),
    ]

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
    }
    HelpScreen > Vertical {
        width: 110;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: thick $primary;
        background: $surface;
        padding: 0 1;
    }
    HelpScreen .help-title {
        text-style: bold;
        color: $primary;
        width: 100%;
        content-align: center middle;
    }
    HelpScreen VerticalScroll {
        height: auto;
        max-height: 100%;
    }
    """

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("beacon-triage keys (Esc closes)", classes="help-title")
            with VerticalScroll(id="help-scroll"):
                yield Static(help_table(help_rows()), id="help-table")

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()

    def action_close(self) -> None:
        self.dismiss(None)
