"""``E``: write the current view (CSV, JSON) or a Markdown report of the escalations.

The path starts as a dated file name in the current directory; the format follows the
file's extension (choosing a format swaps the extension). An existing file is only
replaced after a yes. The app writes the file (atomically, in a worker) with
``detectors.report.export``. Dismisses with an ``ExportRequest`` or None.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Label, RadioButton, RadioSet, Static

from detectors.base.errors import InputError
from detectors.base.sanitize import visible
from tui import keymap
from tui.screens.confirm import ConfirmScreen

SUFFIXES = {"csv": ".csv", "json": ".json", "markdown": ".md"}
STEMS = {"csv": "beacon-candidates", "json": "beacon-candidates", "markdown": "beacon-escalated"}


@dataclass(frozen=True)
class ExportRequest:
    path: Path
    fmt: str  # csv | json | markdown (detectors.report.export.FORMATS)


def default_path(fmt: str, directory: Path, now: datetime) -> Path:
    """``beacon-candidates-20261120-130500.csv`` in ``directory``: sorts by time and never
    clashes with an earlier export."""
    return directory / f"{STEMS[fmt]}-{now:%Y%m%d-%H%M%S}{SUFFIXES[fmt]}"


def resolve(text: str, directory: Path) -> tuple[Path, str]:
    """The file to write and its format; InputError says what is wrong with the path."""
    from detectors.report.export import format_for

    if not text.strip():
        raise InputError("give a file name ending in .csv, .json or .md")
    path = Path(text.strip()).expanduser()
    if not path.is_absolute():
        path = directory / path
    fmt = format_for(path)
    if path.is_dir():
        raise InputError("is a directory", file=str(path))
    if not path.parent.is_dir():
        raise InputError("no such directory", file=str(path.parent))
    return path, fmt


class ExportScreen(ModalScreen[ExportRequest | None]):
    """Format choice, path, and the first problem with the path."""

    KEYMAP_WHERE = "export"
    BINDINGS = keymap.bindings("export")

    DEFAULT_CSS = """
    ExportScreen {
        align: center middle;
    }
    ExportScreen > Vertical {
        width: 96;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: thick $primary;
        background: $surface;
        padding: 0 1;
    }
    ExportScreen .export-title {
        width: 100%;
        color: $primary;
        text-style: bold;
    }
    ExportScreen RadioSet {
        width: 100%;
        height: auto;
        border: none;
        padding: 0;
        margin: 1 0;
        background: $surface;
    }
    ExportScreen Input {
        width: 100%;
    }
    ExportScreen #export-error {
        height: auto;
        color: $error;
        text-style: bold;
    }
    """

    def __init__(
        self, view_rows: int, escalated: int, directory: Path, now: datetime, fmt: str = "csv"
    ) -> None:
        super().__init__()
        self.view_rows = view_rows
        self.escalated = escalated
        self.directory = directory
        self.now = now
        self.fmt = fmt

    def _labels(self) -> dict[str, str]:
        rows = f"{self.view_rows:,} row{'s' if self.view_rows != 1 else ''}"
        return {
            "csv": f"CSV of the current view ({rows}, filtered and sorted as shown)",
            "json": f"JSON of the current view ({rows})",
            "markdown": f"Markdown report of the escalated candidates ({self.escalated:,})",
        }

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text("Export (Enter writes, Esc cancels)", end=""), classes="export-title")
            with RadioSet(id="export-format"):
                for fmt, label in self._labels().items():
                    yield RadioButton(label, value=fmt == self.fmt, id=f"format-{fmt}")
            yield Label(Text("File (relative to the current directory):", end=""))
            path = default_path(self.fmt, self.directory, self.now)
            yield Input(str(path), id="export-path")
            yield Static(id="export-error")
        yield Footer()

    def on_mount(self) -> None:
        box = self.query_one("#export-path", Input)
        box.focus()
        box.cursor_position = len(box.value)

    @on(RadioSet.Changed)
    def _format_chosen(self, event: RadioSet.Changed) -> None:
        event.stop()
        fmt = (event.pressed.id or "format-csv").removeprefix("format-")
        box = self.query_one("#export-path", Input)
        current = Path(box.value.strip() or default_path(fmt, self.directory, self.now).name)
        if current.name.startswith(tuple(STEMS.values())):
            current = current.with_name(default_path(fmt, self.directory, self.now).name)
        box.value = str(current.with_suffix(SUFFIXES[fmt]))
        self.fmt = fmt
        box.focus()  # Enter now writes

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_save()

    def action_save(self) -> None:
        error = self.query_one("#export-error", Static)
        try:
            path, fmt = resolve(self.query_one("#export-path", Input).value, self.directory)
        except InputError as exc:
            error.update(Text(visible(exc), end=""))
            return
        error.update("")
        request = ExportRequest(path, fmt)
        if not path.exists():
            self.dismiss(request)
            return

        def answered(choice: str | None) -> None:
            if choice == "overwrite":
                self.dismiss(request)

        self.app.push_screen(
            ConfirmScreen(
                "Replace the file?",
                f"{path} exists. Replace it with this export?",
                [("overwrite", "Replace it"), ("cancel", "Keep it")],
                default=1,
            ),
            answered,
        )

    def action_cancel(self) -> None:
        self.dismiss(None)
