"""``?``: every key, from the one key table (tui/keymap.py)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label

from tui import keymap

WHERE = {
    "main": "candidate list",
    "app": "anywhere",
    "params": "parameters",
    "log": "log, help",
    "allowlist": "allow-list",
    "entry": "allow-list entry editor",
    "note": "mark and note editor",
    "export": "export",
    "confirm": "questions",
}


def help_rows() -> list[tuple[str, str, str]]:
    """(where, key, what it does) for every binding, Textual's own keys last."""
    rows = [(WHERE.get(k.where, k.where), k.label, k.description) for k in keymap.KEYS]
    rows += [("anywhere", key, text) for key, text in keymap.BUILTIN_KEYS]
    return rows


class HelpScreen(ModalScreen[None]):
    """A table of keys; Esc, q or ? closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *keymap.bindings("log"),
        ("question_mark", "close", "Close"),
    ]

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
    }
    HelpScreen > Vertical {
        width: 96;
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
    HelpScreen DataTable {
        height: auto;
        max-height: 40;
    }
    """

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("beacon-triage keys (Esc closes)", classes="help-title")
            yield DataTable(cursor_type="row", zebra_stripes=True, id="help-table")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("where", "key", "what it does")
        for where, key, text in help_rows():
            table.add_row(Text(where, end=""), Text(key, end=""), Text(text, end=""))
        table.focus()

    def action_close(self) -> None:
        self.dismiss(None)
