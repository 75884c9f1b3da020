"""``s``: pick the sort column from a list (one key press, not ten presses of a cycle).

Each column sorts first in the direction an analyst wants on top (highest score, least
jitter, newest last seen); ``S`` on the table reverses. Dismisses with the column key,
or None on Esc.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from tui.view import sort_choices


class SortPickerScreen(ModalScreen[str | None]):
    """The sortable columns; Enter sorts by the highlighted one, Esc (or s) cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,s,q", "cancel", "Cancel"),
    ]

    DEFAULT_CSS = """
    SortPickerScreen {
        align: center middle;
    }
    SortPickerScreen > Vertical {
        width: 56;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: thick $primary;
        background: $surface;
        padding: 0 1;
    }
    SortPickerScreen .sort-title {
        color: $primary;
        text-style: bold;
    }
    SortPickerScreen OptionList {
        height: auto;
        max-height: 16;
        border: none;
    }
    """

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(
                Text("Sort by (Enter picks, Esc cancels, S reverses)", end=""), classes="sort-title"
            )
            yield OptionList(
                *(Option(Text(label, end=""), id=key) for key, label in sort_choices()),
                id="sort-options",
            )

    def on_mount(self) -> None:
        found = self.query(OptionList)
        if not found:  # opened while the app quits (keys typed after q): nothing to show
            return
        options = found.first()
        keys = [key for key, _ in sort_choices()]
        options.highlighted = keys.index(self.current) if self.current in keys else 0
        options.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
