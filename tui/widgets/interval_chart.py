"""Histogram of one candidate's intervals, with the median and the sleep estimate marked.

A beacon is one tall narrow peak; a human is a smear. Bar and marker colours come from
this widget's CSS (theme variables), converted for plotext at draw time, so the chart
follows theme switches and stays palette-based in the 16-colour theme.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from textual import events
from textual.reactive import reactive
from textual_plotext import PlotextPlot

from tui import format as F
from tui.chart_data import interval_bins, plot_colour, step_outline, ticks

if TYPE_CHECKING:
    import numpy as np
else:
    from tui.lazy import numpy as np


@dataclass(frozen=True)
class IntervalSeries:
    deltas: np.ndarray
    median_s: float | None
    sleep_s: float | None


class IntervalChart(PlotextPlot):
    """The parent sets ``series``; the chart redraws on change, resize and theme switch."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "interval-chart--bars",
        "interval-chart--median",
        "interval-chart--sleep",
        "interval-chart--axes",
    }

    DEFAULT_CSS = """
    IntervalChart {
        height: 1fr;
        min-height: 5;
        background: $surface;
        color: $foreground;
    }
    IntervalChart > .interval-chart--bars { color: $primary; }
    IntervalChart > .interval-chart--median { color: $error; }
    IntervalChart > .interval-chart--sleep { color: $success; }
    IntervalChart > .interval-chart--axes { color: $text-muted; }
    """

    series: reactive[IntervalSeries | None] = reactive(None, always_update=True, init=False)

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.set_reactive(PlotextPlot.theme, "clear")  # backgrounds come from our CSS

    def on_mount(self) -> None:
        super().on_mount()
        self.app.theme_changed_signal.subscribe(self, lambda _: self.call_after_refresh(self.draw))
        self.draw()

    def watch_series(self) -> None:
        self.draw()

    def on_resize(self, event: events.Resize) -> None:
        self.draw()

    def _colour(self, part: str) -> int | tuple[int, int, int] | str:
        return plot_colour(self.get_component_rich_style(f"interval-chart--{part}"))

    def draw(self) -> None:
        if not self.is_mounted:
            return
        plt = self.plt
        plt.clear_figure()
        plt.frame(False)
        axes = self._colour("axes")
        plt.ticks_color(axes)
        series = self.series
        if series is None or series.deltas.size == 0:
            plt.title("intervals: fewer than two connection times")
            self.refresh()
            return
        width = max(8, self.size.width - 8)
        bins = interval_bins(series.deltas, max(6, min(40, width // 3)))
        xs, ys = step_outline(bins)
        plt.plot(xs, ys, color=self._colour("bars"), fillx=True, marker="hd")
        top = int(bins.counts.max()) if bins.counts.size else 1
        title = [f"intervals (n={series.deltas.size:,})"]
        for value, part, name in (
            (series.median_s, "median", "median"),
            (series.sleep_s, "sleep", "sleep"),
        ):
            if value is None or (name == "sleep" and value == series.median_s):
                continue
            title.append(f"{name} {F.seconds(value)}")
            if bins.low <= value <= bins.high:
                plt.plot([value, value], [0, top], color=self._colour(part), marker="│")
        if bins.hidden:
            title.append(f"{bins.hidden:,} off-chart")
        plt.title(" · ".join(title))
        # Labels must never touch: plotext draws colliding ones in hash order.
        positions = ticks(bins.low, bins.high, max(2, min(6, self.size.width // 14)))
        plt.xticks(positions, [F.seconds(p) for p in positions])
        plt.yticks([0, top // 2, top] if top > 1 else [0, top])
        plt.xlim(bins.low, bins.high)
        plt.ylim(0, max(top, 1))  # bars stand on zero, whatever the smallest count
        self.refresh()
