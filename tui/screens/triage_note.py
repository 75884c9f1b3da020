"""``m`` on a candidate: its triage mark and a free-text note.

The single keys on the table (``!`` ``e`` ``b`` ``u``) set a mark at once; this editor
is for the note (several lines are fine) and the mark together. Ctrl+S saves, Esc
leaves everything as it was. Dismisses with a ``NoteEdit`` or None.

Focus starts in the note (typing is what the editor is for) and the title says how to
reach the marks. A mark changes only with Enter or a click: a space typed while the
marks have focus is a stray key, not a decision, so it only says how to pick.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Label, RadioButton, RadioSet, Static, TextArea

from detectors.base.sanitize import visible
from tui import keymap

# The marks in the order the editor lists them (detectors.curate.triage.MARKS holds the same).
MARK_CHOICES = ("suspicious", "escalate", "benign", "unreviewed")
# The letter the table's M column shows for each mark (tui.view), so the buttons read the
# same without colour.
MARK_SYMBOLS = {"suspicious": "S", "escalate": "E", "benign": "B", "unreviewed": "·"}
FOCUS_ORDER = "focus: note ⇄ Tab ⇄ mark (←→ moves, Enter sets) · Ctrl+S saves · Esc cancels"


class MarkChoices(RadioSet):
    """The four marks; Enter sets the highlighted one, Space only explains that."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "explain", "How to pick", show=False),
    ]

    def action_explain(self) -> None:
        self.notify("Enter sets the highlighted mark (←→ moves).", markup=False)


@dataclass(frozen=True)
class NoteEdit:
    mark: str
    note: str


def shown_note(note: str | None) -> str:
    """A note as the editor shows it: line breaks kept, hidden characters made visible."""
    if not note:
        return ""
    return "\n".join(visible(line, limit=None) for line in note.split("\n"))


class TriageNoteScreen(ModalScreen[NoteEdit | None]):
    """The candidate, the four marks, the note."""

    KEYMAP_WHERE = "note"
    BINDINGS = keymap.bindings("note")

    DEFAULT_CSS = """
    TriageNoteScreen {
        align: center middle;
    }
    TriageNoteScreen > Vertical {
        width: 90;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: thick $primary;
        background: $surface;
        padding: 0 1;
    }
    TriageNoteScreen .note-title {
        width: 100%;
        color: $primary;
        text-style: bold;
    }
    TriageNoteScreen .note-subject {
        width: 100%;
        margin-bottom: 1;
    }
    TriageNoteScreen RadioSet {
        layout: horizontal;
        width: 100%;
        height: auto;
        border: none;
        padding: 0;
        background: $surface;
    }
    TriageNoteScreen RadioSet > RadioButton {
        width: auto;
        margin-right: 1;
    }
    TriageNoteScreen RadioSet > RadioButton.-on {
        text-style: bold reverse;
    }
    TriageNoteScreen .note-focus {
        width: 100%;
        color: $foreground;
    }
    TriageNoteScreen TextArea {
        height: 8;
        min-height: 3;
        margin-top: 1;
    }
    """

    def __init__(self, subject: str, mark: str | None, note: str | None) -> None:
        """``subject`` is printable text (already sanitized)."""
        super().__init__()
        self.subject = subject
        self.mark = mark if mark in MARK_CHOICES else "unreviewed"
        self.note = shown_note(note)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text("Mark and note", end=""), classes="note-title")
            yield Static(Text(FOCUS_ORDER, end=""), classes="note-focus")
            yield Static(Text(self.subject, end=""), classes="note-subject")
            with MarkChoices(id="note-mark"):
                for mark in MARK_CHOICES:
                    label = f"{MARK_SYMBOLS[mark]} {mark}"
                    yield RadioButton(label, value=mark == self.mark, id=f"mark-{mark}")
            yield TextArea(self.note, id="note-text", soft_wrap=True, show_line_numbers=False)
        yield Footer()

    def on_mount(self) -> None:
        area = self.query_one(TextArea)
        area.focus()
        area.move_cursor(area.document.end)

    def chosen_mark(self) -> str:
        pressed = self.query_one(RadioSet).pressed_button
        if pressed is None or pressed.id is None:
            return self.mark
        return pressed.id.removeprefix("mark-")

    def action_save(self) -> None:
        note = self.query_one(TextArea).text.strip()
        self.dismiss(NoteEdit(self.chosen_mark(), note))

    def action_cancel(self) -> None:
        self.dismiss(None)
