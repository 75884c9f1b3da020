"""What a run produces, and the one error policy every strategy applies to a hunt.

A hunt that is skipped or fails is recorded and the run goes on: one hunt's bug must
never lose the others' results. A user mistake (``InputError``) and a cancel stop the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import polars as pl

from detectors.base.config import Config
from detectors.base.errors import Cancelled, DetectorSkipped, InputError
from detectors.base.progress import NULL_PROGRESS, Progress
from detectors.hunts.registry import get, params_for
from detectors.pairs.context import PairContext

T = TypeVar("T")


@dataclass
class DetectorOutcome:
    """One detector's result: its hits, or why it did not run, and how long it took."""

    name: str
    hits: pl.DataFrame | None = None
    skipped: str | None = None
    error: str | None = None
    seconds: float = 0.0


@dataclass
class RunResult:
    """Every hunt's outcome, the merged candidates, and the context they were ranked on
    (the one ``--explain`` and the TUI's detail pane ask about)."""

    outcomes: dict[str, DetectorOutcome] = field(default_factory=dict)
    candidates: pl.DataFrame = field(default_factory=pl.DataFrame)
    context: PairContext | None = None

    def per_detector(self) -> dict[str, pl.DataFrame]:
        return {n: o.hits for n, o in self.outcomes.items() if o.hits is not None}

    def notes(self) -> list[str]:
        """One line for each detector that was skipped or failed."""
        lines = []
        for o in self.outcomes.values():
            if o.skipped:
                lines.append(f"detector {o.name} skipped: {o.skipped}")
            if o.error:
                lines.append(f"detector {o.name} failed: {o.error}")
        return lines


def guarded(outcome: DetectorOutcome, step: Callable[[], T]) -> T | None:
    """Run one step of a hunt under the run's error policy, timing it into ``outcome``.

    A skip or an internal failure is recorded on the outcome and ``None`` returned; a
    user mistake in the parameters (``InputError``) and a cancel propagate. polars'
    PanicException derives from BaseException, so it is named too.
    """
    start = time.perf_counter()
    try:
        return step()
    except (Cancelled, InputError):
        raise
    except DetectorSkipped as exc:
        outcome.skipped = str(exc)
    except (Exception, pl.exceptions.PanicException) as exc:
        outcome.error = f"{type(exc).__name__}: {exc}"
    finally:
        outcome.seconds += time.perf_counter() - start
    return None


def run_detector(
    context: PairContext, config: Config, name: str, progress: Progress = NULL_PROGRESS
) -> DetectorOutcome:
    """Run one hunt on a whole context under the run's error policy."""
    spec = get(name)
    params = params_for(config, name)
    outcome = DetectorOutcome(name)
    outcome.hits = guarded(outcome, lambda: spec.run(context, params, progress))
    return outcome


def merge(
    outcomes: dict[str, DetectorOutcome], context: PairContext, config: Config
) -> pl.DataFrame:
    """The ranked candidate list from whichever detectors produced hits."""
    from detectors.rank import scoring

    per_detector = {n: o.hits for n, o in outcomes.items() if o.hits is not None}
    return scoring.merge_candidates(per_detector, context, scoring.weights_from_config(config))
