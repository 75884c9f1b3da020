"""The triage screen: which candidates, how periodic, to what, and why suspicious.

The app sets the data (``candidates``, ``context``, ``stages``, ``header``); this screen
owns the view of it: filters and sort (polars, in a worker), the cursor and the
detail of the highlighted candidate (computed in a worker, then handed to the pane).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import ComposeResult
from textual.css.query import NoMatches
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer
from textual.worker import get_current_worker

from detectors.base import schema as S
from tui import keymap
from tui.lazy import NO_ROWS, no_rows
from tui.stages import Stage
from tui.view import (
    MARK_FILTERS,
    SCORE_STEP,
    Measured,
    ViewSpec,
    apply_view,
    choose_sort,
    cycle,
    detectors_in,
    find_row,
    key_of,
    measure_columns,
    sort_by,
)
from tui.widgets.candidate_facts import CandidateFacts
from tui.widgets.candidate_table import CandidateTable
from tui.widgets.detail_pane import DetailPane
from tui.widgets.filter_bar import FilterBar
from tui.widgets.run_progress import RunProgress
from tui.widgets.status_header import HeaderInfo, StatusHeader

if TYPE_CHECKING:
    import polars as pl

    from detectors.rank.enrichment import CandidateDetail, DestinationIndex
else:
    from tui.lazy import polars as pl


def _unless_closing(method: Callable[..., None]) -> Callable[..., None]:
    """Skip an update that arrives while the screen's widgets are being torn down
    (quitting while a worker's last message is still in flight)."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            method(self, *args, **kwargs)
        except NoMatches:
            if self.is_attached and self.children:  # not a teardown: a real bug
                raise

    return wrapper


@dataclass(frozen=True)
class DetailContext:
    """What the detail needs besides the row: the chart pair index and destinations."""

    pairs: pl.DataFrame
    index: DestinationIndex
    # Input opened as partitions: one candidate's pair index, read on demand.
    fetch: Callable[[Mapping[str, Any]], pl.DataFrame] | None = None

    def pairs_for(self, row: Mapping[str, Any]) -> pl.DataFrame:
        return self.fetch(row) if self.fetch is not None else self.pairs


class ViewReady(Message):
    """The filtered, sorted candidates (from the view worker), with their columns
    measured and the row of the candidate the cursor follows (``found``: its key and
    row, None when it left the view), so showing them runs no polars."""

    def __init__(
        self,
        view: pl.DataFrame,
        measured: Measured,
        found: tuple[tuple[Any, ...], int | None] | None,
    ) -> None:
        super().__init__()
        self.view = view
        self.measured = measured
        self.found = found


class DetailReady(Message):
    """The highlighted candidate's detail (from the detail worker)."""

    def __init__(self, detail: CandidateDetail) -> None:
        super().__init__()
        self.detail = detail


class MainScreen(Screen[None]):
    """Header, progress, filter line, candidate table, detail pane, footer."""

    KEYMAP_WHERE = "main"
    BINDINGS = keymap.bindings("main")

    class MarkRequested(Message):
        """``!`` ``e`` ``b`` ``u``: mark the highlighted candidate (the app saves it)."""

        def __init__(self, row: dict[str, Any], mark: str) -> None:
            super().__init__()
            self.row = row
            self.mark = mark

    class NoteRequested(Message):
        """``m``: open the mark and note editor for the highlighted candidate."""

        def __init__(self, row: dict[str, Any]) -> None:
            super().__init__()
            self.row = row

    class AllowRequested(Message):
        """``A``: allow-list the highlighted candidate."""

        def __init__(self, row: dict[str, Any]) -> None:
            super().__init__()
            self.row = row

    class ExportRequested(Message):
        """``E``: export; ``view`` is the list as shown (filtered and sorted)."""

        def __init__(self, view: pl.DataFrame) -> None:
            super().__init__()
            self.view = view

    DEFAULT_CSS = """
    MainScreen {
        layout: vertical;
    }
    MainScreen > CandidateTable {
        height: 2fr;
        min-height: 13;  /* a header and 12 rows even at 80x24 */
    }
    MainScreen > DetailPane {
        height: 3fr;
    }
    """

    candidates: reactive[pl.DataFrame] = reactive(no_rows, always_update=True, init=False)
    context: reactive[DetailContext | None] = reactive(None, always_update=True, init=False)
    stages: reactive[tuple[Stage, ...]] = reactive((), always_update=True, init=False)
    header: reactive[HeaderInfo] = reactive(HeaderInfo, always_update=True, init=False)
    spec: reactive[ViewSpec] = reactive(ViewSpec, init=False)

    def __init__(self, clock: Any = None) -> None:
        super().__init__()
        self._clock = clock
        self.view: pl.DataFrame = NO_ROWS
        self.detail: CandidateDetail | None = None
        self._row: dict[str, Any] | None = None
        self._ready = False  # the app may hand data over before the widgets exist

    def compose(self) -> ComposeResult:
        yield StatusHeader(id="header")
        if self._clock is not None:
            yield RunProgress(self._clock, id="progress")
        else:
            yield RunProgress(id="progress")
        yield FilterBar(id="filter")
        yield CandidateTable(id="candidates")
        yield DetailPane(id="detail")
        yield Footer()

    def on_mount(self) -> None:
        self._ready = True
        self.query_one(CandidateTable).focus()
        self.watch_spec(self.spec)
        self.watch_stages(self.stages)
        self._show_header()

    # --- data from the app -------------------------------------------------------------

    @_unless_closing
    def watch_candidates(self) -> None:
        if self._ready:
            self._refresh_view()

    @_unless_closing
    def watch_spec(self, spec: ViewSpec) -> None:
        if not self._ready:
            return
        self.query_one(FilterBar).summary = spec.describe()
        self.query_one(CandidateTable).sort = (spec.sort, spec.descending)
        self._refresh_view()

    @_unless_closing
    def watch_stages(self, stages: tuple[Stage, ...]) -> None:
        if self._ready:
            self.query_one(RunProgress).stages = stages

    @_unless_closing
    def watch_header(self, header: HeaderInfo) -> None:
        if self._ready:
            self._show_header()

    @_unless_closing
    def watch_context(self) -> None:
        if self._ready:
            self._describe(self._row)

    @_unless_closing
    def _show_header(self) -> None:
        shown = self.view.height if self.candidates.height else None
        self.query_one(StatusHeader).info = replace(
            self.header, shown=shown, allowed_shown=self.spec.show_allowed
        )
        self.query_one(CandidateTable).empty_text = self._empty_text()

    # --- the view: filter + sort off the UI thread --------------------------------------

    def _refresh_view(self) -> None:
        followed = self.query_one(CandidateTable).followed_key
        self._compute_view(self.candidates, self.spec, followed)

    @work(thread=True, exclusive=True, group="view", exit_on_error=False)
    def _compute_view(
        self, candidates: pl.DataFrame, spec: ViewSpec, followed: tuple[Any, ...] | None
    ) -> None:
        view = apply_view(candidates, spec)
        measured = measure_columns(view)
        found = (followed, find_row(view, followed)) if followed is not None else None
        if not get_current_worker().is_cancelled:
            self.post_message(ViewReady(view, measured, found))

    @_unless_closing
    @on(ViewReady)
    def _show_view(self, event: ViewReady) -> None:
        self.view = event.view
        self.query_one(CandidateTable).show(event.view, event.measured, event.found)
        self._show_header()

    def _empty_text(self) -> str:
        """What an empty table says: never "no candidates" while detectors still run."""
        if self.candidates.height:
            return "No candidate matches the filters (x clears them)."
        if self.header.status == "loading":
            return "Loading the input: candidates appear as each detector finishes."
        if self.header.status != "ready":
            return "Detectors running: candidates appear as each one finishes."
        return "No candidates: nothing looked like a beacon (p: parameters, r: run again)."

    # --- the detail -----------------------------------------------------------------------

    @on(CandidateTable.Highlighted)
    def _highlighted(self, event: CandidateTable.Highlighted) -> None:
        self._row = event.row
        self._describe(event.row)

    @_unless_closing
    def _describe(self, row: dict[str, Any] | None) -> None:
        context = self.context
        if row is None or context is None:
            self.detail = None
            self.query_one(DetailPane).detail = None
            return
        self._compute_detail(row, context, self.candidates)

    @work(thread=True, exclusive=True, group="detail", exit_on_error=False)
    def _compute_detail(
        self, row: dict[str, Any], context: DetailContext, candidates: pl.DataFrame
    ) -> None:
        from detectors.rank.enrichment import describe_candidate

        detail = describe_candidate(row, context.pairs_for(row), context.index, candidates)
        if not get_current_worker().is_cancelled:
            self.post_message(DetailReady(detail))

    @_unless_closing
    @on(DetailReady)
    def _show_detail(self, event: DetailReady) -> None:
        self.detail = event.detail
        self.query_one(DetailPane).detail = event.detail

    @on(CandidateTable.Selected)
    def _selected(self, event: CandidateTable.Selected) -> None:
        self.action_zoom_detail()

    @on(CandidateTable.SortRequested)
    def _sort_requested(self, event: CandidateTable.SortRequested) -> None:
        self.spec = sort_by(self.spec, event.column)

    @on(FilterBar.QueryChanged)
    def _query_changed(self, event: FilterBar.QueryChanged) -> None:
        self.spec = self.spec.with_(text=event.text)

    @on(FilterBar.Done)
    def _filter_done(self, event: FilterBar.Done) -> None:
        self.query_one(CandidateTable).focus()

    # --- actions (keys in tui/keymap.py) ---------------------------------------------------

    def action_focus_filter(self) -> None:
        self.query_one(FilterBar).focus_input()

    def action_back(self) -> None:
        """Esc: one step back. Zoom -> list; facts or filter -> table; else clear the filter."""
        table = self.query_one(CandidateTable)
        if self.maximized is not None:
            self.minimize()
        elif self.focused is not table:
            table.focus()
        elif self.spec.text:
            self.query_one(FilterBar).action_clear()

    def action_pick_sort(self) -> None:
        from tui.screens.sort_picker import SortPickerScreen

        def picked(key: str | None) -> None:
            if key is not None:
                self.spec = choose_sort(self.spec, key)

        self.app.push_screen(SortPickerScreen(self.spec.sort), picked)

    def action_next_match(self) -> None:
        self._step_match(1)

    def action_previous_match(self) -> None:
        self._step_match(-1)

    def _step_match(self, step: int) -> None:
        """``n``/``N`` as in less: the next candidate matching the filter, wrapping at the
        ends. The filter already hides the rest, so every row shown is a match."""
        if not self.spec.text.strip():
            self.notify("No filter to match: type one with /.", markup=False)
            return
        table = self.query_one(CandidateTable)
        if table.row_count:
            table.cursor_row = (table.cursor_row + step) % table.row_count
        table.focus()

    async def action_quit(self) -> None:
        await self.app.run_action("quit")

    def action_reverse_sort(self) -> None:
        self.spec = self.spec.with_(descending=not self.spec.descending)

    def action_next_detector(self) -> None:
        options: list[str | None] = [None, *detectors_in(self.candidates)]
        self.spec = self.spec.with_(detector=cycle(options, self.spec.detector))

    def action_score_up(self) -> None:
        self.spec = self.spec.with_(min_score=min(1.0, round(self.spec.min_score + SCORE_STEP, 1)))

    def action_score_down(self) -> None:
        self.spec = self.spec.with_(min_score=max(0.0, round(self.spec.min_score - SCORE_STEP, 1)))

    def action_toggle_allowed(self) -> None:
        self.spec = self.spec.with_(show_allowed=not self.spec.show_allowed)

    def action_next_mark(self) -> None:
        self.spec = self.spec.with_(mark=cycle(list(MARK_FILTERS), self.spec.mark))

    def action_campaign(self) -> None:
        """``C``: the highlighted candidate's campaign group (every candidate to its
        address or registered domain); pressed again, every candidate again."""
        if self.spec.destination is not None:
            self.spec = self.spec.with_(destination=None)
            return
        row = self._current()
        if row is None:
            return
        ip, domain = row.get(S.C_REMOTE_IP), row.get(S.C_DOMAIN)
        detail = self.detail
        if detail is not None and key_of(detail.row) == key_of(row):
            ip, domain = detail.destination.ip, detail.destination.domain or domain
        self.spec = self.spec.with_(destination=(ip, domain))

    def action_reset_filters(self) -> None:
        if self.spec.text:
            self.query_one(FilterBar).action_clear()
        self.spec = ViewSpec(sort=self.spec.sort, descending=self.spec.descending)

    def action_zoom_detail(self) -> None:
        """``z`` / Enter toggle the zoom; the same key un-zooms."""
        if self.maximized is not None:
            self.minimize()
        else:
            self.maximize(self.query_one(DetailPane), container=False)

    def watch_maximized(self, maximized: Widget | None) -> None:
        """Focus follows the zoom, whichever key or click changed it: the facts while
        zoomed (so keys reach this screen, never the hidden filter box), the table after."""
        if maximized is None:
            self.query_one(CandidateTable).focus()
        else:
            self.query_one(CandidateFacts).focus()

    def action_focus_facts(self) -> None:
        self.query_one(CandidateFacts).focus()

    def _current(self) -> dict[str, Any] | None:
        row = self.query_one(CandidateTable).current_row
        if row is None:
            self.notify("No candidate is selected.", severity="warning", markup=False)
        return row

    def action_mark(self, mark: str) -> None:
        row = self._current()
        if row is not None:
            self.post_message(self.MarkRequested(row, mark))

    def action_edit_note(self) -> None:
        row = self._current()
        if row is not None:
            self.post_message(self.NoteRequested(row))

    def action_allow_candidate(self) -> None:
        row = self._current()
        if row is not None:
            self.post_message(self.AllowRequested(row))

    def action_export(self) -> None:
        self.post_message(self.ExportRequested(self.view))

    def detector_names(self) -> list[str]:
        return detectors_in(self.candidates)

    def set_detector_filter(self, name: str | None) -> None:
        self.spec = self.spec.with_(detector=name)
