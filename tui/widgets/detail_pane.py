"""The selected candidate in depth: two charts on the left, the facts on the right.

The parent sets ``detail`` (computed off the UI thread); this pane hands each child its
part. It can be maximised (Enter on the table) on small terminals.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive

from tui.widgets.candidate_facts import CandidateFacts
from tui.widgets.interval_chart import IntervalChart, IntervalSeries
from tui.widgets.timeline_chart import TimelineChart, TimelineSeries

if TYPE_CHECKING:
    from detectors.rank.enrichment import CandidateDetail


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

    def compose(self) -> ComposeResult:
        with Vertical(id="charts"):
            yield IntervalChart(id="interval-chart")
            yield TimelineChart(id="timeline-chart")
        yield CandidateFacts(id="facts-pane")

    def watch_detail(self, detail: CandidateDetail | None) -> None:
        intervals = self.query_one(IntervalChart)
        timeline = self.query_one(TimelineChart)
        facts = self.query_one(CandidateFacts)
        if detail is None:
            intervals.series = None
            timeline.series = None
        else:
            intervals.series = IntervalSeries(detail.deltas, detail.stats.median_s, detail.sleep_s)
            start, end = detail.window
            timeline.series = TimelineSeries(detail.times, start, end)
        facts.detail = detail
