"""Bins for the detail charts, computed in numpy so plotext only draws a few dozen bars.

A pair can have 100k connections; plotext's own ``hist`` loops in Python, so the
charts get pre-binned data from here. No Textual here (tested without an app).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from rich.color import ColorType
from rich.style import Style

if TYPE_CHECKING:
    import numpy as np
else:
    from tui.lazy import numpy as np

PlotColour = int | tuple[int, int, int] | str
_TAILS_FROM = 100  # intervals needed before the 1% tails are cut from the histogram


@dataclass(frozen=True)
class Bins:
    """Bar centres, heights and the range shown; ``hidden`` values fell outside it."""

    centres: np.ndarray
    counts: np.ndarray
    low: float
    high: float
    hidden: int

    def bin_of(self, value: float | None) -> int | None:
        """Index of the bar holding ``value`` (None when it is off the chart)."""
        if value is None or self.centres.size == 0 or not self.low <= value <= self.high:
            return None
        width = (self.high - self.low) / self.centres.size
        if width <= 0:
            return 0
        return min(int((value - self.low) / width), self.centres.size - 1)


def interval_bins(deltas: np.ndarray, bins: int) -> Bins:
    """Histogram of intervals between the 1st and 99th percentiles (from 100 intervals).

    One 10-hour gap among 60-second beacons would squash every bar into one; cutting
    the 1% tails keeps the shape of the sleep visible, and ``hidden`` says how many
    intervals are beyond the edges.
    """
    values = np.asarray(deltas, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        empty = np.array([], dtype=np.float64)
        return Bins(empty, empty, 0.0, 0.0, 0)
    if values.size >= _TAILS_FROM:
        low, high = (float(v) for v in np.percentile(values, [1, 99]))
    else:  # too few intervals for a 1% tail to mean anything
        low, high = float(values.min()), float(values.max())
    if high - low < 1e-6:  # a perfect beacon: one bar, centred, with a little margin
        margin = max(abs(low) * 0.05, 0.5)
        low, high = max(0.0, low - margin), high + margin
    counts, edges = np.histogram(values, bins=max(1, bins), range=(low, high))
    inside = int(counts.sum())
    centres = (edges[:-1] + edges[1:]) / 2
    return Bins(centres, counts, low, high, int(values.size) - inside)


def timeline_bins(
    times: np.ndarray, start: datetime | None, end: datetime | None, bins: int
) -> Bins:
    """Connections per time bucket over the data's whole window (hours from its start).

    Using the window of all the data, not of this pair, shows when the beaconing began
    and stopped relative to everything else that was logged.
    """
    stamps = np.asarray(times, dtype="datetime64[us]").astype(np.int64)
    if start is None or end is None:
        if stamps.size == 0:
            empty = np.array([], dtype=np.float64)
            return Bins(empty, empty, 0.0, 0.0, 0)
        first, last = int(stamps.min()), int(stamps.max())
    else:
        first = int(np.datetime64(start.replace(tzinfo=None), "us").astype(np.int64))
        last = int(np.datetime64(end.replace(tzinfo=None), "us").astype(np.int64))
    hours = (stamps - first) / 3.6e9
    span = max((last - first) / 3.6e9, 1e-6)
    counts, edges = np.histogram(hours, bins=max(1, bins), range=(0.0, span))
    centres = (edges[:-1] + edges[1:]) / 2
    return Bins(centres, counts, 0.0, span, int(hours.size - counts.sum()))


def step_outline(bins: Bins) -> tuple[list[float], list[float]]:
    """The histogram as a filled step line: plotext draws that crisply at any width,
    where its bar charts alias when a bar is narrower than two cells."""
    if bins.centres.size == 0:
        return [], []
    width = (bins.high - bins.low) / bins.centres.size
    xs: list[float] = []
    ys: list[float] = []
    for index, count in enumerate(bins.counts.tolist()):
        left = bins.low + index * width
        xs += [left, left + width]
        ys += [float(count), float(count)]
    return xs, ys


def plot_colour(style: Style) -> PlotColour:
    """A theme colour (from the widget's CSS) in the form plotext understands.

    ANSI colours stay palette numbers (so the 16-colour theme follows the terminal's
    palette); true colours go as RGB triplets; no colour means the terminal default.
    """
    colour = style.color
    if colour is None or colour.type == ColorType.DEFAULT:
        return "default"
    if colour.type in (ColorType.STANDARD, ColorType.EIGHT_BIT) and colour.number is not None:
        return int(colour.number)
    red, green, blue = colour.get_truecolor()
    return (red, green, blue)


def ticks(low: float, high: float, count: int) -> list[float]:
    """``count`` evenly spaced tick positions from ``low`` to ``high``."""
    if count < 2 or high <= low:
        return [low]
    return [float(v) for v in np.linspace(low, high, count)]
