"""Run detectors over a Dataset and merge their hits: the one pipeline CLI and TUI share."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import polars as pl

from detectors.config import Config
from detectors.dataset import Dataset
from detectors.errors import Cancelled, DetectorSkipped, InputError
from detectors.progress import NULL_PROGRESS, Progress
from detectors.registry import all_detectors, get


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
    outcomes: dict[str, DetectorOutcome] = field(default_factory=dict)
    candidates: pl.DataFrame = field(default_factory=pl.DataFrame)

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


def run_detector(
    dataset: Dataset, config: Config, name: str, progress: Progress = NULL_PROGRESS
) -> DetectorOutcome:
    """Run one detector; a skip or an internal failure is recorded, never raised.

    A user mistake in its parameters (``InputError``) and a cancel still propagate.
    """
    spec = get(name)
    params = config.detector_params(name)
    start = time.perf_counter()
    outcome = DetectorOutcome(name)
    try:
        outcome.hits = spec.run(dataset, params, progress)
    except (Cancelled, InputError):
        raise
    except DetectorSkipped as exc:
        outcome.skipped = str(exc)
    except Exception as exc:  # a bug in one detector must not lose the others' results
        outcome.error = f"{type(exc).__name__}: {exc}"
    outcome.seconds = time.perf_counter() - start
    return outcome


def merge(outcomes: dict[str, DetectorOutcome], dataset: Dataset, config: Config) -> pl.DataFrame:
    """The ranked candidate list from whichever detectors produced hits."""
    from detectors import scoring

    per_detector = {n: o.hits for n, o in outcomes.items() if o.hits is not None}
    return scoring.merge_candidates(per_detector, dataset, scoring.weights_from_config(config))


def run_all(
    dataset: Dataset,
    config: Config,
    names: Sequence[str] | None = None,
    progress: Progress = NULL_PROGRESS,
) -> RunResult:
    """Run the named detectors (default: all) one after another, then merge."""
    chosen = list(names) if names else list(all_detectors())
    result = RunResult()
    for index, name in enumerate(chosen):
        progress.report("detect", index / max(1, len(chosen)), f"running {name}")
        result.outcomes[name] = run_detector(dataset, config, name, progress)
    progress.report("merge", 0.0, "merging candidates")
    result.candidates = merge(result.outcomes, dataset, config)
    progress.report("merge", 1.0, f"{result.candidates.height} candidates")
    return result
