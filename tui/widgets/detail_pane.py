"""The selected candidate in depth: two charts on the left, the facts on the right.

The parent sets ``detail`` (computed off the UI thread); this pane hands each child its
part. It can be maximised (Enter on the table) on small terminals. The charts are made
with the first detail: plotext is imported then, not before the first paint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive

from tui.widgets.candidate_facts import CandidateFacts

if TYPE_CHECKING:
    from detectors.rank.enrichment import CandidateDetail
    from tui.widgets.interval_chart import IntervalChart
    from tui.widgets.timeline_chart import TimelineChart


class DetailPane(Horizontal):
    """Charts and facts for one candidate."""

    ALLOW_MAXIMIZE = True

    DEFAULT_CSS = """
    DetailPane {
        height: 1fr;
        min-height: 8;
        border-top: solid $primary;
        background: $surface;
    }
    DetailPane > #charts {
        width: 1fr;
    }
    DetailPane > CandidateFacts {
        width: 1fr;
    }
    """

    detail: reactive[CandidateDetail | None] = reactive(None, always_update=True, init=False)

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._charts: tuple[IntervalChart, TimelineChart] | None = None

    def compose(self) -> ComposeResult:
        yield Vertical(id="charts")
        yield CandidateFacts(id="facts-pane")

    def watch_detail(self, detail: CandidateDetail | None) -> None:
        self.query_one(CandidateFacts).detail = detail
        # No candidate (nothing matches the filter): no empty charts claiming "fewer
        # than two connection times" beside "select a candidate".
        self.query_one("#charts", Vertical).display = detail is not None
        if detail is None:
            return
        from tui.widgets.interval_chart import IntervalChart, IntervalSeries
        from tui.widgets.timeline_chart import TimelineChart, TimelineSeries

        median, sleep = detail.stats.median_s, detail.sleep_s
        interval_series = IntervalSeries(detail.deltas, median, sleep)
        timeline_series = TimelineSeries(detail.times, *detail.window)
        if self._charts is None:  # the first detail: the charts draw it once mounted
            charts = (IntervalChart(id="interval-chart"), TimelineChart(id="timeline-chart"))
            charts[0].set_reactive(IntervalChart.series, interval_series)
            charts[1].set_reactive(TimelineChart.series, timeline_series)
            self._charts = charts
            self.query_one("#charts", Vertical).mount(*charts)
            return
        self._charts[0].series = interval_series
        self._charts[1].series = timeline_series
