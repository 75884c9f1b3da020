"""A question with a few answers: delete this entry? whose version of the file wins?

Dismisses with the chosen answer's value, or None on Esc. Nothing destructive happens
without an explicit answer; the question and the answers are plain text, so a file
path or a reason copied from telemetry is shown as the characters it is.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from detectors.base.sanitize import visible
from tui import keymap
from tui.format import inert_lines


class ConfirmScreen(ModalScreen[str | None]):
    """``choices`` are (value, label); ``default`` is the answer focused first."""

    KEYMAP_WHERE = "confirm"
    BINDINGS = keymap.bindings("confirm")

    DEFAULT_CSS = """
    ConfirmScreen {
        align: center middle;
    }
    ConfirmScreen > Vertical {
        width: 76;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: thick $warning;
        background: $surface;
        padding: 0 1;
    }
    ConfirmScreen .confirm-title {
        width: 100%;
        color: $warning;
        text-style: bold;
    }
    ConfirmScreen .confirm-message {
        width: 100%;
        height: auto;
        max-height: 12;
        margin: 1 0;
        color: $foreground;
    }
    ConfirmScreen Horizontal {
        height: auto;
        width: 100%;
        align-horizontal: center;
    }
    ConfirmScreen Button {
        margin: 0 1;
        min-width: 10;
    }
    """

    def __init__(
        self,
        title: str,
        message: str,
        choices: Sequence[tuple[str, str]],
        *,
        default: int = 0,
    ) -> None:
        super().__init__()
        self.title_text = title
        self.message = message
        self.choices = list(choices)
        self.default = default

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(inert_lines(self.title_text), end=""), classes="confirm-title")
            yield Static(Text(inert_lines(self.message), end=""), classes="confirm-message")
            with Horizontal():
                for index, (_, label) in enumerate(self.choices):
                    yield Button(Text(visible(label), end=""), id=f"choice-{index}", compact=True)

    def on_mount(self) -> None:
        buttons = list(self.query(Button))
        if buttons:
            buttons[min(self.default, len(buttons) - 1)].focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        index = int((event.button.id or "choice-0").removeprefix("choice-"))
        self.dismiss(self.choices[index][0])

    def action_focus_previous(self) -> None:
        self.focus_previous()

    def action_focus_next(self) -> None:
        self.focus_next()

    def action_cancel(self) -> None:
        self.dismiss(None)
