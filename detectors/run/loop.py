"""The one run loop: a strategy builds the PairContext, the hunts run, the hits merge.

The CLI's ``detect``, ``eval`` and the TUI all run through here, so they share one
error policy (``outcome.guarded``) and one merge. A strategy turns a source into a
PairContext and runs hunts on it: in memory (``memory.InMemory``), device partitions
on disk for input bigger than memory (``partitioned.Partitioned``); a distributed
strategy fits the same seam. Hunts, ranking and curation never know which one ran.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from detectors.base.config import Config
from detectors.base.progress import NULL_PROGRESS, Progress
from detectors.hunts.registry import all_detectors
from detectors.load.cache import WRITE_LATER
from detectors.pairs.context import PairContext
from detectors.pairs.network import place_context
from detectors.run import partition_write, partitioned
from detectors.run.memory import InMemory
from detectors.run.outcome import DetectorOutcome, RunResult, merge


class Strategy(Protocol):
    """How a source becomes a PairContext and how hunts run on it."""

    def context(self, config: Config, progress: Progress) -> PairContext: ...

    def hunts(
        self, context: PairContext, config: Config, names: Sequence[str], progress: Progress
    ) -> Iterator[DetectorOutcome]: ...

    def close(self) -> None: ...


def choose_strategy(
    paths: Sequence[str],
    config: Config,
    source_format: str | None = None,
    use_cache: bool = True,
    cache_write: str = WRITE_LATER,
    recursive: bool = True,
) -> Strategy:
    """Partitions on disk when the input holds more than ``[engine] max_events_in_memory``
    events; in memory otherwise (``cache_write``: see ``InMemory``). ``use_cache`` also
    lets a partitioned run reuse the partitions of the last run on the same files."""
    count = partition_write.wanted(paths, config)
    if count is not None:
        reuse = use_cache and config.cache_settings().enabled
        return partitioned.Partitioned(paths, source_format, count=count, reuse=reuse)
    return InMemory(paths, source_format, use_cache, cache_write=cache_write, recursive=recursive)


def prepare(strategy: Strategy, config: Config, progress: Progress = NULL_PROGRESS) -> PairContext:
    """The strategy's context, placed in the network (direction, internal and monitored
    hosts, proxies re-keyed) before any pair is built. The CLI's run and the TUI's load
    both start here, so both hunt the same pairs."""
    context = strategy.context(config, progress)
    place_context(context, config.network_settings())
    if context.reload_loaded is not None:  # new settings read the files again
        context.release_loaded()
    return context


def run(
    strategy: Strategy,
    config: Config,
    names: Sequence[str] | None = None,
    progress: Progress = NULL_PROGRESS,
    on_outcome: Callable[[DetectorOutcome], None] = lambda outcome: None,
) -> RunResult:
    """Build the context, run the named hunts (default: all), merge their hits.

    ``on_outcome`` hears each hunt as it finishes (the TUI merges as results come).
    Outcomes are kept in the order the hunts were named. The run places its context
    once: the events as loaded are let go (``PairContext.release_loaded``).
    """
    try:
        context = prepare(strategy, config, progress)
        context.release_loaded()  # one run, one placement: no copy kept to re-place
        # Asked after the load: the CLI imports the hunts in a thread meanwhile
        # (``registry.import_in_background``), and asking first waited for that import.
        chosen = list(names) if names else list(all_detectors())
        progress.report("detect", 0.0, f"running {', '.join(chosen)}")
        done: dict[str, DetectorOutcome] = {}
        for outcome in strategy.hunts(context, config, chosen, progress):
            done[outcome.name] = outcome
            on_outcome(outcome)
            progress.report("detect", len(done) / len(chosen), f"{outcome.name} done")
        result = RunResult({name: done[name] for name in chosen}, context=context)
        context.drop_indexes()  # the merge needs no pair index: not under its peak
        progress.report("merge", 0.0, "merging candidates")
        result.candidates = merge(result.outcomes, context, config)
        progress.report("merge", 1.0, f"{result.candidates.height} candidates")
        return result
    finally:
        strategy.close()


def run_all(
    context: PairContext,
    config: Config,
    names: Sequence[str] | None = None,
    progress: Progress = NULL_PROGRESS,
    workers: int | None = None,
) -> RunResult:
    """``run`` over a context already built (evaluation and tests)."""
    return run(InMemory.of(context, workers), config, names, progress)
