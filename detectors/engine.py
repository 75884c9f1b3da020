"""Run detectors over a Dataset and merge their hits: the one pipeline CLI and TUI share."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

import polars as pl

from detectors.config import Config
from detectors.dataset import Dataset
from detectors.errors import Cancelled, DetectorSkipped, InputError
from detectors.progress import NULL_PROGRESS, Progress
from detectors.registry import all_detectors, get

DEFAULT_WORKERS = min(2, os.cpu_count() or 1)


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
    # A bug in one detector must not lose the others' results; polars' PanicException
    # derives from BaseException, so it is named too.
    except (Exception, pl.exceptions.PanicException) as exc:
        outcome.error = f"{type(exc).__name__}: {exc}"
    outcome.seconds = time.perf_counter() - start
    return outcome


def merge(outcomes: dict[str, DetectorOutcome], dataset: Dataset, config: Config) -> pl.DataFrame:
    """The ranked candidate list from whichever detectors produced hits."""
    from detectors import scoring

    per_detector = {n: o.hits for n, o in outcomes.items() if o.hits is not None}
    return scoring.merge_candidates(per_detector, dataset, scoring.weights_from_config(config))


def start_order(names: Sequence[str]) -> list[str]:
    """The order two workers take detectors in: the costliest one that sorts the
    connections first (it builds the table), then those that need no table (they run
    beside the sort), then the rest; costliest first within each group.

    Started by cost alone, the two table users took both workers and one sat waiting
    for the other's sort while the table-free detectors queued behind them.
    """
    by_cost = sorted(names, key=lambda n: -get(n).cost)  # stable: ties keep their order
    sorting = [n for n in by_cost if get(n).sorts_connections]
    free = [n for n in by_cost if not get(n).sorts_connections]
    return sorting[:1] + free + sorting[1:]


def run_all(
    dataset: Dataset,
    config: Config,
    names: Sequence[str] | None = None,
    progress: Progress = NULL_PROGRESS,
    workers: int | None = None,
) -> RunResult:
    """Run the named detectors (default: all), ``workers`` at a time, then merge.

    Detectors share the dataset's indexes (built once, under its lock) and spend most
    of their time in polars and numpy, which release the GIL: two at a time keep both
    cores of a laptop busy while one of them waits on a sort. ``workers=1`` runs them
    one after another. Results are kept in the order the detectors were named.
    """
    from detectors.network import place_dataset

    place_dataset(dataset, config.network_settings())  # direction, proxies: before any pair
    chosen = list(names) if names else list(all_detectors())
    count = max(1, len(chosen))
    workers = max(1, min(workers or DEFAULT_WORKERS, count))
    result = RunResult()
    progress.report("detect", 0.0, f"running {', '.join(chosen)}")
    if workers == 1:
        for index, name in enumerate(chosen):
            progress.report("detect", index / count, f"running {name}")
            result.outcomes[name] = run_detector(dataset, config, name, progress)
    else:
        done: dict[str, DetectorOutcome] = {}
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="detector") as pool:
            futures = {
                pool.submit(run_detector, dataset, config, n, progress): n
                for n in start_order(chosen)
            }
            try:
                for future in as_completed(futures):
                    done[futures[future]] = future.result()
                    progress.report("detect", len(done) / count, f"{futures[future]} done")
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        result.outcomes = {name: done[name] for name in chosen}
    progress.report("merge", 0.0, "merging candidates")
    result.candidates = merge(result.outcomes, dataset, config)
    progress.report("merge", 1.0, f"{result.candidates.height} candidates")
    return result
