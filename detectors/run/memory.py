"""The in-memory strategy: load every file into one PairContext, hunts two at a time."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from functools import partial

from detectors.base.config import DEFAULT_WORKERS, Config
from detectors.base.progress import Progress
from detectors.hunts.registry import get
from detectors.load import load_paths
from detectors.load.cache import WRITE_LATER, LoadCache
from detectors.pairs.context import PairContext
from detectors.run.outcome import DetectorOutcome, run_detector


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


@dataclass
class InMemory:
    """Files loaded whole (through the load cache when ``use_cache``)."""

    paths: Sequence[str]
    source_format: str | None = None
    use_cache: bool = True
    workers: int | None = None
    context_given: PairContext | None = None
    recursive: bool = True  # folders walked into their sub-folders
    # When the cache's copy is written: after the answer (the CLI calls
    # ``cache.finish_writes``), or in the background (the TUI, which stays open).
    cache_write: str = WRITE_LATER

    @classmethod
    def of(cls, context: PairContext, workers: int | None = None) -> InMemory:
        """A strategy over a context already built (evaluation, tests, the TUI's rerun)."""
        return cls(paths=(), context_given=context, workers=workers)

    def context(self, config: Config, progress: Progress) -> PairContext:
        if self.context_given is not None:
            return self.context_given
        settings = config.cache_settings()
        use_cache = self.use_cache and settings.enabled
        cache = LoadCache(settings, write=self.cache_write) if use_cache else None
        read = partial(
            load_paths,
            self.paths,
            source_format=self.source_format,
            mapping=config.mapping,
            cache=cache,
            recursive=self.recursive,
        )
        context = PairContext.of(read(progress=progress))
        # new [network] settings place the files' events again: read them again then
        # (the load cache makes that cheap) rather than keep a copy all along
        context.reload_loaded = lambda: read().events
        return context

    def hunts(
        self, context: PairContext, config: Config, names: Sequence[str], progress: Progress
    ) -> Iterator[DetectorOutcome]:
        """Each hunt's outcome as it finishes.

        Hunts share the context's indexes (built once, under its lock) and spend most of
        their time in polars and numpy, which release the GIL: two at a time keep both
        cores of a laptop busy while one of them waits on a sort. ``workers=1`` runs them
        one after another.
        """
        workers = max(1, min(self.workers or DEFAULT_WORKERS, len(names)))
        if workers == 1:
            for name in names:
                yield run_detector(context, config, name, progress)
            return
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="detector") as pool:
            futures = {
                pool.submit(run_detector, context, config, n, progress): n
                for n in start_order(names)
            }
            try:
                for future in as_completed(futures):
                    yield future.result()
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise

    def close(self) -> None:
        """Nothing to clean up: the loaded frames go with the context."""
