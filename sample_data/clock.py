"""Simulated time: seconds after the start (midnight UTC), and the office's rhythm."""

from __future__ import annotations

import numpy as np

from .world import START, START_WEEKDAY, WORK_HOURS

HOUR = 3600.0
DAY = 86400.0
START_NS = int(START.timestamp()) * 1_000_000_000


def to_ns(t_s: np.ndarray) -> np.ndarray:
    """Seconds after the start to epoch nanoseconds, floored to Defender's 100 ns tick."""
    ns = START_NS + np.floor(np.asarray(t_s) * 1e9).astype(np.int64)
    return ns - ns % 100


def _day_hour(t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    day = np.floor(t_s / DAY).astype(np.int64)
    return day, (t_s - day * DAY) / HOUR


def in_work_hours(t_s: np.ndarray) -> np.ndarray:
    """09:00-17:00 UTC on weekdays."""
    day, hour = _day_hour(t_s)
    weekday = (START_WEEKDAY + day) % 7
    return (weekday < 5) & (hour >= WORK_HOURS[0]) & (hour < WORK_HOURS[1])


def weekend_daytime(t_s: np.ndarray) -> np.ndarray:
    day, hour = _day_hour(t_s)
    return ((START_WEEKDAY + day) % 7 >= 5) & (hour >= 10) & (hour < 22)


def work_spans(window: tuple[float, float]) -> list[tuple[float, float]]:
    """The work-hours stretch of each weekday inside ``window``.

    A work-hours program starts with the working day, so its calls are simulated day by
    day rather than filtered out of a round-the-clock loop.
    """
    spans = []
    for day in range(int(window[0] // DAY), int(np.ceil(window[1] / DAY))):
        if (START_WEEKDAY + day) % 7 < 5:
            lo = max(window[0], day * DAY + WORK_HOURS[0] * HOUR)
            hi = min(window[1], day * DAY + WORK_HOURS[1] * HOUR)
            if hi > lo:
                spans.append((lo, hi))
    return spans
