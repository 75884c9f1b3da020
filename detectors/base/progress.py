"""Progress reporting and cancellation shared by loaders and detectors.

The engine knows nothing of screens: it calls a plain callback, and the TUI (from a
worker thread) or the CLI (a stderr line) decides how to show it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from detectors.base.errors import Cancelled

ProgressCallback = Callable[[str, float, str], None]
"""``callback(stage, fraction 0..1, message)``."""


def _ignore(stage: str, fraction: float, message: str) -> None:
    return None


@dataclass
class Progress:
    """A progress sink plus a cancel flag, passed down every long-running call."""

    callback: ProgressCallback = _ignore
    cancel_event: threading.Event = field(default_factory=threading.Event)

    def report(self, stage: str, fraction: float, message: str = "") -> None:
        """Report how far a stage is, and stop here if the run was cancelled."""
        self.check()
        self.callback(stage, max(0.0, min(1.0, fraction)), message)

    def check(self) -> None:
        """Raise ``Cancelled`` if the caller asked to stop."""
        if self.cancel_event.is_set():
            raise Cancelled()

    def cancel(self) -> None:
        self.cancel_event.set()


NULL_PROGRESS = Progress()
