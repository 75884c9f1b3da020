"""The state of one long step (loading, a detector, the merge), for the progress panel."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

RUNNING = "running"
DONE = "done"
FAILED = "failed"
SKIPPED = "skipped"
CANCELLED = "cancelled"


@dataclass(frozen=True)
class Stage:
    """One row of the progress panel: label, fraction 0..1, last message, timing."""

    key: str
    label: str
    started: float
    fraction: float = 0.0
    message: str = ""
    status: str = RUNNING
    finished: float | None = None

    def with_(self, **changes: Any) -> Stage:
        return replace(self, **changes)

    @property
    def active(self) -> bool:
        return self.status == RUNNING

    def elapsed(self, now: float) -> float:
        return (self.finished if self.finished is not None else now) - self.started
