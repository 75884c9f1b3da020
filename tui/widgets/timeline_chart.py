"""Connections per time bucket across the data's whole window.

Shows when a candidate started and stopped, gaps (the C2 was down, the laptop
asleep), and whether it beacons around the clock or only in office hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, ClassVar

from textual import events
from textual.reactive import reactive
from textual_plotext import PlotextPlot

from tui import format as F
from tui.chart_data import plot_colour, step_outline, ticks, timeline_bins

if TYPE_CHECKING:
    import numpy as np
else:
    from tui.lazy import numpy as np


@dataclass(frozen=True)
class TimelineSeries:
    times: np.ndarray  # datetime64[us]
    start: datetime | None
    end: datetime | None


class TimelineChart(PlotextPlot):
    """The parent sets ``series``; redraws on change, resize and theme switch."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {"timeline-chart--bars", "timeline-chart--axes"}

    DEFAULT_CSS = """
    TimelineChart {
        height: 1fr;
        min-height: 5;
        background: $surface;
        color: $foreground;
    }
    TimelineChart > .timeline-chart--bars { color: $accent; }
    TimelineChart > .timeline-chart--axes { color: $text-muted; }
    """

    series: reactive[TimelineSeries | None] = reactive(None, always_update=True, init=False)

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.set_reactive(PlotextPlot.theme, "clear")

    def on_mount(self) -> None:
        super().on_mount()
        self.app.theme_changed_signal.subscribe(self, lambda _: self.call_after_refresh(self.draw))
        self.draw()

    def watch_series(self) -> None:
        self.draw()

    def on_resize(self, event: events.Resize) -> None:
        self.draw()

    def draw(self) -> None:
        if not self.is_mounted:
            return
        plt = self.plt
        plt.clear_figure()
        plt.frame(False)
        plt.ticks_color(plot_colour(self.get_component_rich_style("timeline-chart--axes")))
        series = self.series
        if series is None or series.times.size == 0:
            plt.title("timeline: no connection times")
            self.refresh()
            return
        width = max(8, self.size.width - 8)
        bins = timeline_bins(series.times, series.start, series.end, max(6, min(96, width // 2)))
        colour = plot_colour(self.get_component_rich_style("timeline-chart--bars"))
        xs, ys = step_outline(bins)
        plt.plot(xs, ys, color=colour, fillx=True, marker="hd")
        top = int(bins.counts.max()) if bins.counts.size else 1
        origin = series.start or _first(series.times)
        # Labels must never touch: plotext draws colliding ones in hash order.
        positions = ticks(bins.low, bins.high, max(2, min(6, self.size.width // 20)))
        labels = [(origin + timedelta(hours=p)).strftime("%m-%d %H:%M") for p in positions]
        plt.xticks(positions, labels)
        plt.yticks([0, top] if top > 0 else [0])
        plt.xlim(bins.low, bins.high)
        plt.ylim(0, max(top, 1))  # bars stand on zero, whatever the smallest count
        per_bar = F.seconds(bins.high * 3600 / max(1, bins.centres.size))
        plt.title(f"connections over the data window (UTC, {per_bar} per bar)")
        self.refresh()


def _first(times: np.ndarray) -> datetime:
    return datetime.fromisoformat(str(times.min().astype("datetime64[s]")))
