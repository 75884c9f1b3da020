"""How numbers, durations and times read on screen: short, aligned, unit-bearing.

Pure functions (no Textual) so the tests format expected values the same way.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

from detectors.base.sanitize import visible

DASH = "–"


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def seconds(value: float | None) -> str:
    """A duration for a human: 0.25s, 42.0s, 5m 00s, 2h 05m, 3d 04h."""
    if _missing(value):
        return DASH
    assert value is not None
    v = float(value)
    if v < 10:
        return f"{v:.2f}s"
    if v < 60:
        return f"{v:.1f}s"
    whole = round(v)
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h {whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d {whole % 86400 // 3600:02d}h"


def score(value: float | None) -> str:
    return DASH if _missing(value) else f"{float(value):.2f}"  # type: ignore[arg-type]


def percent(value: float | None) -> str:
    return DASH if _missing(value) else f"{float(value):.1f}%"  # type: ignore[arg-type]


def count(value: int | None) -> str:
    return DASH if value is None else f"{int(value):,}"


def number(value: object) -> str:
    """An evidence value: floats to 3 significant decimals, the rest as text."""
    if _missing(value):
        return DASH
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, (list, tuple)):
        return ", ".join(number(v) for v in value)
    return str(value)


def _utc(value: datetime) -> datetime:
    return value.astimezone(timezone.utc) if value.tzinfo else value


def when(value: datetime | None) -> str:
    """A timestamp in a table cell: UTC, month-day and minute (11-20 13:05); the detail
    pane has the year and seconds."""
    if value is None:
        return DASH
    return _utc(value).strftime("%m-%d %H:%M")


def when_exact(value: datetime | None) -> str:
    """A timestamp in the detail pane: UTC, to the second, marked Z."""
    if value is None:
        return DASH
    return _utc(value).strftime("%Y-%m-%d %H:%M:%SZ")


def inert_lines(text: str) -> str:
    """Text for a notification or a message box: line breaks kept, every other control or
    bidi character shown as a visible escape (error messages may quote telemetry)."""
    return "\n".join(visible(line, limit=None) for line in str(text).split("\n"))
