"""The candidate list: a virtual table that formats only the rows on screen.

The parent sets ``frame`` (already filtered and sorted in polars) and ``sort``; the
table never reorders data itself. Scrolling 100k rows costs the same as 20, because
``render_line`` slices the frame for the visible window. Every cell is a
``rich.text.Text`` built from ``sanitize.visible`` text: telemetry never reaches a
markup parser or the terminal raw.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from rich.console import Console
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from detectors.base import schema as S
from tui.lazy import no_rows
from tui.view import (
    C_MARK,
    GAP,
    Column,
    Measured,
    find_row,
    fit_columns,
    key_of,
    measure_columns,
    score_band,
)

if TYPE_CHECKING:
    import polars as pl
else:
    from tui.lazy import polars as pl

MARKED = ("suspicious", "escalate", "benign")


class CandidateTable(ScrollView, can_focus=True):
    """One row per merged candidate; posts what the cursor is on, never fetches data."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor(-1)", "Up", show=False),
        Binding("down,j", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home,g", "jump(0)", "First row", show=False),
        Binding("end,G", "jump(-1)", "Last row", show=False),
        Binding("left", "scroll_columns(-8)", "Scroll left", show=False),
        Binding("right", "scroll_columns(8)", "Scroll right", show=False),
        Binding("enter", "select", "Open detail", show=False),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "candidate-table--header",
        "candidate-table--header-sorted",
        "candidate-table--odd",
        "candidate-table--cursor",
        "candidate-table--score-high",
        "candidate-table--score-mid",
        "candidate-table--score-low",
        "candidate-table--allowed",
        "candidate-table--empty",
        "candidate-table--mark-suspicious",
        "candidate-table--mark-escalate",
        "candidate-table--mark-benign",
    }

    DEFAULT_CSS = """
    CandidateTable {
        height: 1fr;
        background: $surface;
        color: $foreground;
    }
    CandidateTable > .candidate-table--header {
        background: $panel;
        color: $foreground;
        text-style: bold;
    }
    CandidateTable > .candidate-table--header-sorted {
        color: $accent;
        text-style: bold;
    }
    CandidateTable > .candidate-table--odd {
        background: $boost;
    }
    CandidateTable > .candidate-table--cursor {
        background: $block-cursor-blurred-background;
        color: $block-cursor-blurred-foreground;
        text-style: $block-cursor-blurred-text-style;
    }
    CandidateTable:focus > .candidate-table--cursor {
        background: $block-cursor-background;
        color: $block-cursor-foreground;
        text-style: $block-cursor-text-style;
    }
    CandidateTable > .candidate-table--score-high {
        color: $error;
        text-style: bold;
    }
    CandidateTable > .candidate-table--score-mid {
        color: $warning;
    }
    CandidateTable > .candidate-table--score-low {
        color: $text-muted;
    }
    CandidateTable > .candidate-table--allowed {
        color: $text-disabled;
        text-style: italic;
    }
    CandidateTable > .candidate-table--mark-escalate {
        color: $error;
        text-style: bold reverse;
    }
    CandidateTable > .candidate-table--mark-suspicious {
        color: $warning;
        text-style: bold;
    }
    CandidateTable > .candidate-table--mark-benign {
        color: $success;
    }
    CandidateTable > .candidate-table--empty {
        color: $text-muted;
        text-style: italic;
    }
    """

    frame: reactive[pl.DataFrame] = reactive(no_rows, always_update=True, init=False)
    """The rows to show, in order (set by the parent)."""
    sort: reactive[tuple[str, bool]] = reactive(("score", True), init=False)
    """(column key, descending): drawn as an arrow in the header."""
    empty_text: reactive[str] = reactive(
        "Loading: candidates appear as each detector finishes.", init=False
    )
    cursor_row: reactive[int] = reactive(0, init=False)

    class Highlighted(Message):
        """The cursor moved to a candidate (``row`` is None when the table is empty)."""

        def __init__(self, row: dict[str, Any] | None, index: int | None) -> None:
            super().__init__()
            self.row = row
            self.index = index

    class Selected(Message):
        """Enter (or a click on the row under the cursor): the user wants the detail."""

        def __init__(self, row: dict[str, Any]) -> None:
            super().__init__()
            self.row = row

    class SortRequested(Message):
        """A header was clicked; the parent decides the new order."""

        def __init__(self, column: str) -> None:
            super().__init__()
            self.column = column

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._columns: list[Column] = []
        self._widths: list[int] = []
        self._cursor_key: tuple[Any, ...] | None = None
        self._row_cache: dict[int, dict[str, Any]] = {}
        self._announced: tuple[Any, ...] | bool | None = False
        self._user_moved = False  # the cursor follows its candidate once the user moved it
        # What the view worker measured and found for a frame (``show``), by identity:
        # a frame set directly is measured here instead.
        self._measured: tuple[pl.DataFrame, Measured] | None = None
        self._found: tuple[pl.DataFrame, tuple[Any, ...], int | None] | None = None

    # --- data in -------------------------------------------------------------------

    @property
    def followed_key(self) -> tuple[Any, ...] | None:
        """The candidate the cursor follows through a new view (None: the top row)."""
        return self._cursor_key if self._user_moved else None

    def show(
        self,
        frame: pl.DataFrame,
        measured: Measured,
        found: tuple[tuple[Any, ...], int | None] | None = None,
    ) -> None:
        """Show a view the worker prepared: its columns measured and the followed
        candidate's row found there, so no polars work runs on the event loop."""
        self._measured = (frame, measured)
        self._found = (frame, *found) if found is not None else None
        self.frame = frame

    def _row_of(self, frame: pl.DataFrame, key: tuple[Any, ...]) -> int | None:
        found = self._found
        if found is not None and found[0] is frame and found[1] == key:
            return found[2]
        return find_row(frame, key)

    def watch_frame(self, frame: pl.DataFrame) -> None:
        """Keep the cursor on its candidate; if that one left (allow-listed, filtered
        out), stay at the same height, on the candidate that took its place."""
        self._row_cache.clear()
        row = None
        # Until the user moves, the cursor stays on the top row: while results stream
        # in, the best candidate so far is what they look at, not whichever came first.
        if self._cursor_key is not None and self._user_moved:
            row = self._row_of(frame, self._cursor_key)
        target = row if row is not None else self.cursor_row
        self._layout_columns()
        self.set_reactive(CandidateTable.cursor_row, self._clamp(target))
        self._scroll_to_cursor()
        self.refresh()
        self._announce(force=True)

    def watch_sort(self) -> None:
        self.refresh()

    def watch_empty_text(self) -> None:
        self.refresh()

    def watch_cursor_row(self, old: int, new: int) -> None:
        self._user_moved = self._user_moved or new != old
        self._scroll_to_cursor()
        self.refresh()
        self._announce()

    def validate_cursor_row(self, value: int) -> int:
        return self._clamp(value)

    def _clamp(self, value: int) -> int:
        return max(0, min(value, self.frame.height - 1)) if self.frame.height else 0

    @property
    def row_count(self) -> int:
        return self.frame.height

    def row_at(self, index: int) -> dict[str, Any] | None:
        if not 0 <= index < self.frame.height:
            return None
        if index not in self._row_cache:
            if len(self._row_cache) > 4096:
                self._row_cache.clear()
            start = max(0, index - 32)
            for offset, values in enumerate(self.frame.slice(start, 96).iter_rows(named=True)):
                self._row_cache[start + offset] = values
        return self._row_cache[index]

    @property
    def current_row(self) -> dict[str, Any] | None:
        return self.row_at(self.cursor_row)

    def _announce(self, force: bool = False) -> None:
        """Post Highlighted when the candidate under the cursor changes."""
        row = self.current_row
        key = key_of(row) if row is not None else None
        if force or key != self._announced:
            self._announced = key
            self._cursor_key = key
            self.post_message(self.Highlighted(row, self.cursor_row if row else None))

    # --- geometry --------------------------------------------------------------------

    def _layout_columns(self) -> None:
        """Which columns fit and how wide (``tui.view.layout``: by priority, never
        cutting an address or a number, empty columns hidden)."""
        # The vertical scrollbar's cells are kept free whether or not it shows yet: it
        # appears once the rows arrive, and a layout made before would overflow by them.
        available = self.size.width - self.styles.scrollbar_size_vertical
        frame = self.frame
        if self._measured is None or self._measured[0] is not frame:
            self._measured = (frame, measure_columns(frame))
        shown = fit_columns(self._measured[1], available)
        self._columns = [c for c, _ in shown]
        self._widths = [w for _, w in shown]
        self.virtual_size = Size(self._total_width, self.frame.height + 1)

    @property
    def _total_width(self) -> int:
        return sum(self._widths) + GAP * (len(self._widths) - 1)

    def on_resize(self, event: events.Resize) -> None:
        self._layout_columns()
        self._scroll_to_cursor()

    @property
    def _visible_rows(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def _scroll_to_cursor(self) -> None:
        top = int(self.scroll_y)
        row = self.cursor_row
        if row < top:
            self.scroll_to(y=row, animate=False, immediate=True)
        elif row >= top + self._visible_rows:
            self.scroll_to(y=row - self._visible_rows + 1, animate=False, immediate=True)

    # --- drawing -------------------------------------------------------------------

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(f"candidate-table--{name}")

    def _line(self, cells: list[tuple[str, Style | None]], base: Style) -> Text:
        line = Text(style=base, no_wrap=True, end="")
        for index, (column, (value, style)) in enumerate(zip(self._columns, cells, strict=True)):
            width = self._widths[index]
            cell = Text(value, style=style or "", no_wrap=True, end="")
            cell.truncate(width, overflow="ellipsis")
            pad = width - cell.cell_len
            if column.right:
                line.append(" " * pad)
                line.append_text(cell)
            else:
                line.append_text(cell)
                line.append(" " * pad)
            if index < len(self._columns) - 1:
                line.append(" " * GAP)
        return line

    def _header(self) -> Text:
        key, descending = self.sort
        cells: list[tuple[str, Style | None]] = []
        for column in self._columns:
            if column.key == key:
                arrow = "▼" if descending else "▲"
                cells.append((f"{column.title}{arrow}", self._style("header-sorted")))
            else:
                cells.append((column.title, None))
        return self._line(cells, self._style("header"))

    def _row_text(self, index: int, row: dict[str, Any]) -> Text:
        base = self.rich_style
        if index % 2:
            base = base + self._style("odd")
        if row.get("allowed"):
            base = base + self._style("allowed")
        cells: list[tuple[str, Style | None]] = []
        for column in self._columns:
            text = column.cell(row)
            style = None
            if column.key == "score":
                style = self._style(f"score-{score_band(row.get(S.C_SCORE))}")
            elif column.key == "mark" and row.get(C_MARK) in MARKED:
                style = self._style(f"mark-{row.get(C_MARK)}")
            cells.append((text, style))
        line = self._line(cells, base)
        if index == self.cursor_row:
            line.stylize(self._style("cursor"))
        return line

    def _strip(self, text: Text, console: Console, width: int, style: Style) -> Strip:
        strip = Strip(list(text.render(console)), text.cell_len)
        scroll_x = int(self.scroll_x)
        return strip.crop_extend(scroll_x, scroll_x + width, style)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width or self.size.width
        console = self.app.console
        base = self.rich_style
        if y == 0:
            header_style = self._style("header")
            return self._strip(self._header(), console, width, base + header_style)
        index = int(self.scroll_y) + y - 1
        if self.frame.height == 0:
            if y == 2:
                text = Text(f"  {self.empty_text}", style=self._style("empty"), end="")
                return Strip(list(text.render(console))).crop_extend(0, width, base)
            return Strip.blank(width, base)
        row = self.row_at(index)
        if row is None:
            return Strip.blank(width, base)
        return self._strip(self._row_text(index, row), console, width, base)

    # --- input ---------------------------------------------------------------------

    def action_cursor(self, delta: int) -> None:
        self.cursor_row = self.cursor_row + delta

    def action_page(self, direction: int) -> None:
        self.cursor_row = self.cursor_row + direction * self._visible_rows

    def action_jump(self, where: int) -> None:
        self.cursor_row = self.frame.height - 1 if where < 0 else 0

    def action_scroll_columns(self, delta: int) -> None:
        self.scroll_to(x=max(0, int(self.scroll_x) + delta), animate=False)

    def action_select(self) -> None:
        row = self.current_row
        if row is not None:
            self.post_message(self.Selected(row))

    def _column_at(self, x: int) -> Column | None:
        edge = 0
        for column, width in zip(self._columns, self._widths, strict=True):
            if edge <= x < edge + width + GAP:
                return column
            edge += width + GAP
        return None

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        if offset.y == 0:
            column = self._column_at(offset.x + int(self.scroll_x))
            if column is not None and column.sort_by is not None:
                self.post_message(self.SortRequested(column.key))
            return
        index = int(self.scroll_y) + offset.y - 1
        if 0 <= index < self.frame.height:
            if index == self.cursor_row and event.chain >= 2:
                self.action_select()
            self.cursor_row = index
