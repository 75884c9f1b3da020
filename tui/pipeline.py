"""The engine, run in Textual thread workers: load → indexes → detectors → merges.

Each detector runs in its own worker with its own ``Progress``, so one slow detector
never holds back the others' results: every finished detector triggers a re-merge and
the best candidates appear as soon as anything has found them. A new run cancels the
stale one (its ``Progress`` raises ``Cancelled`` at the detector's next checkpoint) and
stale results are recognised by their ``run_id`` and dropped. A merge's result is then
decorated with the allow-list and the triage marks, the same step an analyst's edit
re-runs on its own. Workers only ever post
messages (``post_message`` is thread-safe); they never touch widgets.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.app import App
from textual.worker import get_current_worker

from detectors.base import schema as S
from detectors.base.config import Config
from detectors.base.errors import Cancelled, InputError
from detectors.base.progress import Progress
from tui import stages as ST
from tui.messages import (
    CandidatesDecorated,
    CandidatesMerged,
    DatasetLoaded,
    DetectorFailed,
    DetectorFinished,
    Exported,
    IndexReady,
    LoadFailed,
    Note,
    StageChanged,
)
from tui.view import pair_protocols, prepare, with_protocol

if TYPE_CHECKING:
    import polars as pl

    from detectors.base.config import CacheSettings
    from detectors.curate.allowlist import AllowList
    from detectors.curate.decorate import Parts
    from detectors.curate.triage import TriageStore
    from detectors.pairs.context import PairContext
    from detectors.rank.enrichment import GeoLookup
    from detectors.run.loop import Strategy
    from detectors.run.outcome import DetectorOutcome
else:
    from tui.lazy import polars as pl

Loader = Callable[..., "PairContext"]
LOAD = "load"
INDEX = "index"
MERGE = "merge"
DECORATE = "decorate"
EXPORT = "export"
DEFAULT_CHART_ACTIONS = (S.ACTION_SUCCESS, S.ACTION_REQUEST, S.ACTION_FAILED)
_REPORT_EVERY = 0.1  # seconds between progress messages from one step


def event_count(dataset: PairContext, ask: bool = True) -> int | None:
    """The input's events: the rows in memory, or for input opened as partitions (no
    rows in memory) the population's count from the Parquet footers, asked once.
    ``ask=False`` (the UI thread, which must not wait for a disk): only a count already
    known, else None."""
    population = dataset.population
    if population is not None and population.pieces is not None:  # on disk
        return population.event_count() if ask else population.known_event_count()
    return dataset.events.height


def detector_key(name: str) -> str:
    return f"detector:{name}"


def default_loader(paths: Sequence[str], **kwargs: Any) -> PairContext:
    """Stands for "the run loop's own strategy" (``Pipeline._load_job``); called directly
    it loads in memory."""
    from detectors.load import load_paths
    from detectors.pairs.context import PairContext

    return PairContext.of(load_paths(paths, **kwargs))


StrategyOf = Callable[
    [Sequence[str], "str | None", Progress], "tuple[Strategy, AbstractContextManager[object]]"
]


class EngineRun:
    """A run on another engine (Spark) for the TUI, as the load worker's loader.

    The run loop runs the strategy whole (``loop.run``: context, hunts, merge), with the
    engine's progress on the load line; the app then triages the result as it does a
    run saved by ``detect --save-run``: ``saved`` is filled with the ranked candidates and
    a dataset of their own pairs' events (the charts' connection times). The hunt is the
    engine's; the parameter screen does not re-run it.
    """

    def __init__(self, config: Config, strategy_of: StrategyOf) -> None:
        from detectors.run.saved import SavedRun

        self.config = config
        self.strategy_of = strategy_of
        note = "a Spark run: candidates as ranked there; new parameters do not re-run it"
        info: dict[str, object] = {"engine": "spark", "status": "spark run", "note": note}
        self.saved = SavedRun(pl.DataFrame(), _empty_context(), info)

    def __call__(
        self,
        paths: Sequence[str],
        source_format: str | None = None,
        progress: Progress | None = None,
        **_: Any,
    ) -> PairContext:
        from detectors.pairs.context import PairContext
        from detectors.run.loop import run
        from detectors.run.saved import candidate_events

        progress = progress or Progress()
        strategy, watching = self.strategy_of(paths, source_format, progress)
        try:
            with watching:
                result = run(strategy, self.config, progress=progress)
        except InputError:
            if progress.cancel_event.is_set():  # the engine's jobs were cancelled under it
                raise Cancelled() from None
            raise
        context = result.context
        assert context is not None
        self.saved.candidates = result.candidates
        self.saved.dataset = PairContext(
            events=candidate_events(context.events, result.candidates),
            names=context.names,
            app=context.app,
            device_info=context.device_info,
            files=list(context.files),
            warnings=[*context.warnings, *result.notes()],
        )
        return self.saved.dataset


def _empty_context() -> PairContext:
    from detectors.base.schema import empty_events
    from detectors.pairs.context import PairContext

    return PairContext(events=empty_events())


def spark_strategy(master: str | None, conf: Sequence[str], log: str) -> StrategyOf:
    """The Spark strategy for ``EngineRun``: a session whose JVM writes to ``log`` (not
    to the terminal the TUI draws on), its stages' progress reported while it runs."""

    def make(
        paths: Sequence[str], source_format: str | None, progress: Progress
    ) -> tuple[Strategy, AbstractContextManager[object]]:
        from detectors.run.spark import SparkStrategy
        from detectors.run.spark.session import parse_conf, spark_session, stage_progress

        settings = {**parse_conf(conf), "spark.ui.showConsoleProgress": "false"}
        progress.report("load", 0.0, f"starting Spark ({master or 'local[2]'}; log: {log})")
        session = spark_session(master, settings, log=log)
        strategy = SparkStrategy(list(paths), source_format, master, tuple(conf), spark=session)
        return strategy, stage_progress(session, progress)

    return make


def chart_actions(config: Config) -> tuple[str, ...]:
    """Action types the charts use: the intervals detector's, so the numbers agree."""
    from detectors.hunts.registry import params_for

    try:
        actions = getattr(params_for(config, "intervals"), "actions", None)
    except InputError:
        actions = None
    return tuple(actions) if actions else DEFAULT_CHART_ACTIONS


class Pipeline:
    """Starts and cancels the background steps of one app; reports with messages."""

    def __init__(self, app: App[Any], clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.clock = clock
        self.run_id = 0
        self.strategy: Strategy | None = None  # how the open data was loaded and is hunted
        self._progress: dict[str, Progress] = {}
        self._lock = threading.Lock()
        self._place_lock = threading.Lock()
        self._protocol_cache: tuple[PairContext, pl.DataFrame] | None = None
        self._geo_cache: tuple[Path | None, GeoLookup | None] | None = None
        # ``(settings,)``: the load cache every load uses (``cache.configure``), set by
        # ``run_app`` from [cache] and --no-cache; None leaves it as configured.
        self.cache_settings: tuple[CacheSettings | None] | None = None

    # --- plumbing ------------------------------------------------------------------

    def _post(self, message: Any) -> None:
        self.app.post_message(message)

    def _stage(self, key: str, fraction: float, text: str, status: str = ST.RUNNING) -> None:
        self._post(StageChanged(key, fraction, text, status))

    def _new_progress(self, key: str) -> Progress:
        """A fresh Progress for a step, cancelling the one it replaces."""
        last = [0.0]

        def report(stage: str, fraction: float, message: str) -> None:
            now = self.clock()
            if now - last[0] < _REPORT_EVERY and fraction < 1.0:
                return
            last[0] = now
            self._stage(key, fraction, f"{stage}: {message}" if message else stage)

        progress = Progress(report)
        with self._lock:
            stale = self._progress.get(key)
            self._progress[key] = progress
        if stale is not None:
            stale.cancel()
        return progress

    def _is_current(self, key: str, progress: Progress) -> bool:
        """False once a newer run of the same step replaced this one."""
        with self._lock:
            return self._progress.get(key) is progress

    def _start(self, key: str, job: Callable[[], None]) -> None:
        self.app.run_worker(
            job, name=key, group=key, thread=True, exclusive=True, exit_on_error=False
        )

    def cancel(self, prefix: str = "") -> int:
        """Cancel every running step whose key starts with ``prefix``; returns how many."""
        with self._lock:
            chosen = [p for k, p in self._progress.items() if k.startswith(prefix)]
        for progress in chosen:
            progress.cancel()
        for worker in self.app.workers:
            if worker.group.startswith(prefix):
                worker.cancel()
        return len(chosen)

    # --- load --------------------------------------------------------------------------

    def load(
        self, paths: Sequence[str], source_format: str | None, config: Config, loader: Loader
    ) -> None:
        progress = self._new_progress(LOAD)
        self._stage(LOAD, 0.0, "opening files")
        self._start(LOAD, partial(self._load_job, paths, source_format, config, loader, progress))

    def _load_job(
        self,
        paths: Sequence[str],
        source_format: str | None,
        config: Config,
        loader: Loader,
        progress: Progress,
    ) -> None:
        from detectors.base import domains

        domains.prepare_in_background()  # parsed while the files load
        from detectors.load import cache
        from detectors.load.cache import WRITE_IN_BACKGROUND
        from detectors.run.loop import choose_strategy
        from detectors.run.loop import prepare as placed_context
        from detectors.run.memory import InMemory

        if self.cache_settings is not None:
            cache.configure(self.cache_settings[0])
        started = self.clock()
        try:
            if loader is default_loader:  # the run loop's choice: in memory or partitions
                strategy = choose_strategy(
                    list(paths), config, source_format, cache_write=WRITE_IN_BACKGROUND
                )
                dataset = placed_context(strategy, config, progress)
            else:  # a loader handed in (tests): its data, hunted in memory
                dataset = loader(
                    list(paths),
                    source_format=source_format,
                    mapping=config.mapping,
                    progress=progress,
                )
                strategy = InMemory.of(dataset)
                dataset = placed_context(strategy, config, progress)
        except Cancelled:
            if self._is_current(LOAD, progress):
                self._stage(LOAD, 0.0, "cancelled", ST.CANCELLED)
            return
        except InputError as exc:
            self._stage(LOAD, 0.0, str(exc), ST.FAILED)
            self._post(LoadFailed(str(exc)))
            return
        except Exception as exc:  # a loader bug: say so, keep the app alive
            self._post(Note("error", "".join(traceback.format_exception(exc)).rstrip()))
            self._stage(LOAD, 0.0, str(exc), ST.FAILED)
            self._post(LoadFailed(f"internal error while loading: {type(exc).__name__}: {exc}"))
            return
        self.close()
        self.strategy = strategy
        seconds = self.clock() - started
        self._stage(LOAD, 1.0, f"{event_count(dataset):,} events in {seconds:.1f}s", ST.DONE)
        self._post(DatasetLoaded(dataset))

    def close(self) -> None:
        """Release what the open data's strategy holds (partitions on disk)."""
        if self.strategy is not None:
            self.strategy.close()
            self.strategy = None

    # --- indexes for the detail pane ------------------------------------------------------

    def build_indexes(self, dataset: PairContext, config: Config) -> None:
        self._stage(INDEX, 0.0, "indexing destinations")
        self._start(INDEX, partial(self._index_job, dataset, config))

    def _index_job(self, dataset: PairContext, config: Config) -> None:
        from detectors.rank.enrichment import DestinationIndex

        try:
            pairs = dataset.pairs(chart_actions(config))
            index = DestinationIndex(dataset, config.mmdb)
        except Exception as exc:
            self._post(Note("error", f"cannot build the detail indexes: {exc}"))
            self._stage(INDEX, 0.0, str(exc), ST.FAILED)
            return
        self._stage(INDEX, 1.0, "ready", ST.DONE)
        self._post(IndexReady(pairs, index, self._pair_fetcher(config)))

    def _pair_fetcher(self, config: Config) -> Callable[[Mapping[str, Any]], pl.DataFrame] | None:
        """For input opened as partitions (no events in memory): a function reading one
        candidate's rows from its device's partition and indexing just that pair, so a
        chart costs one pair's rows, never the input's."""
        from detectors.pairs.context import PairContext
        from detectors.run.partitioned import Partitioned

        strategy = self.strategy
        if not isinstance(strategy, Partitioned) or strategy.parts is None:
            return None
        parts, actions = strategy.parts, chart_actions(config)

        def fetch(row: Mapping[str, Any]) -> pl.DataFrame:
            device = row.get(S.C_DEVICE)
            keys = {S.PROCESS: S.C_PROCESS, S.REMOTE_IP: S.C_REMOTE_IP}
            keys[S.REMOTE_PORT] = S.C_REMOTE_PORT
            named = pl.lit(device, pl.String)
            where = pl.col(S.DEVICE_NAME).eq_missing(named) | pl.col(S.DEVICE_ID).eq(named)
            for column, key in keys.items():
                dtype = S.EVENT_SCHEMA[column]
                where = where & pl.col(column).eq_missing(pl.lit(row.get(key), dtype))
            return PairContext(events=parts.device_rows(device, where)).pairs(actions)

        return fetch

    # --- detectors -------------------------------------------------------------------------

    def detect(self, dataset: PairContext, config: Config, names: Sequence[str]) -> int:
        """Start one worker per detector; returns the run id their results carry."""
        self.run_id += 1
        run_id = self.run_id
        self.cancel("detector:")
        if self._hunts_together():
            self._start_together(run_id, dataset, config, names)
            return run_id
        for name in names:
            key = detector_key(name)
            progress = self._new_progress(key)
            self._stage(key, 0.0, "starting")
            self._start(key, partial(self._detector_job, run_id, name, dataset, config, progress))
        return run_id

    def _hunts_together(self) -> bool:
        """Input opened as partitions is hunted in one pass for every detector: a
        worker per detector would each read every partition, and hold one at once (the
        open's peak memory grew with the number of detectors)."""
        from detectors.run.partitioned import Partitioned

        return isinstance(self.strategy, Partitioned)

    def _start_together(
        self, run_id: int, dataset: PairContext, config: Config, names: Sequence[str]
    ) -> None:
        key = detector_key("")  # cancelled with the others by cancel("detector:")
        progress = self._new_progress(key)
        for name in names:
            self._stage(detector_key(name), 0.0, "starting")
        job = partial(self._together_job, run_id, list(names), dataset, config, progress)
        self._start(key, job)

    def _together_job(
        self,
        run_id: int,
        names: list[str],
        dataset: PairContext,
        config: Config,
        progress: Progress,
    ) -> None:
        """Every detector over the partitions, one partition in memory at a time; each
        outcome is reported as its detector's, in the order the strategy yields them.

        Each row shows the run's progress over the partitions (the strategy's own
        reports) and its detector's latest message; a detector's message goes to its
        row alone (its fraction is within one partition, so the row keeps the run's).
        Each stage is throttled on its own: the detectors' many messages must not
        crowd out the pass's one per partition, which every row shows.
        """
        left = list(names)
        last: dict[str, float] = {}
        overall = [0.0]

        def report(stage: str, fraction: float, message: str) -> None:
            own = stage in left
            if not own:
                overall[0] = fraction
            now = self.clock()
            if now - last.get(stage, -_REPORT_EVERY) < _REPORT_EVERY and fraction < 1.0:
                return
            last[stage] = now
            text = f"{stage}: {message}" if message else stage
            for name in [stage] if own else list(left):
                self._stage(detector_key(name), overall[0], text)

        fan_out = Progress(report, progress.cancel_event)
        assert self.strategy is not None
        finished: list[DetectorOutcome] = []
        try:
            for outcome in self.strategy.hunts(dataset, config, names, fan_out):
                left.remove(outcome.name)
                finished.append(outcome)
        except Cancelled:
            for name in [*(o.name for o in finished), *left]:
                self._stage(detector_key(name), 0.0, "cancelled", ST.CANCELLED)
            return
        except InputError as exc:
            for name in left:
                self._stage(detector_key(name), 0.0, str(exc), ST.FAILED)
                self._post(DetectorFailed(run_id, name, str(exc)))
        event_count(dataset)  # counted here if placing again replaced the population
        # The outcomes go out together: they come within a second of each other (each
        # hunt's last step, after the last partition), and the app merges once, after
        # the last, instead of for the first alone and again for all (a merge at 100M
        # events is 10-20 s). Posted under the key whose progress this is: the
        # detectors' own keys have none in this mode.
        for number, outcome in enumerate(finished, start=1):
            merge = number == len(finished)
            self._finished(run_id, outcome, detector_key(""), progress, merge=merge)

    def _detector_job(
        self, run_id: int, name: str, dataset: PairContext, config: Config, progress: Progress
    ) -> None:
        from detectors.pairs.network import place_context
        from detectors.run.memory import InMemory

        key = detector_key(name)
        strategy = self.strategy or InMemory.of(dataset)
        try:
            with self._place_lock:  # new [network] settings re-place the events, once
                place_context(dataset, config.network_settings())
            (outcome,) = strategy.hunts(dataset, config, [name], progress)
        except Cancelled:
            if self._is_current(key, progress):
                self._stage(key, 0.0, "cancelled", ST.CANCELLED)
            return
        except InputError as exc:
            self._stage(key, 0.0, str(exc), ST.FAILED)
            self._post(DetectorFailed(run_id, name, str(exc)))
            return
        self._finished(run_id, outcome, key, progress)

    def _finished(
        self,
        run_id: int,
        outcome: DetectorOutcome,
        key: str,
        progress: Progress,
        merge: bool = True,
    ) -> None:
        if outcome.skipped:
            status, text = ST.SKIPPED, f"skipped: {outcome.skipped}"
        elif outcome.error:
            status, text = ST.FAILED, f"failed: {outcome.error}"
        else:
            hits = outcome.hits.height if outcome.hits is not None else 0
            status, text = ST.DONE, f"{hits:,} hits in {outcome.seconds:.1f}s"
        if self._is_current(key, progress):
            self._stage(detector_key(outcome.name), 1.0, text, status)
        self._post(DetectorFinished(run_id, outcome, merge))

    # --- merge ---------------------------------------------------------------------------

    def merge(
        self,
        run_id: int,
        outcomes: dict[str, DetectorOutcome],
        dataset: PairContext,
        config: Config,
        final: bool,
    ) -> None:
        job = partial(self._merge_job, run_id, dict(outcomes), dataset, config, final)
        self._start(MERGE, job)

    def _merge_job(
        self,
        run_id: int,
        outcomes: dict[str, DetectorOutcome],
        dataset: PairContext,
        config: Config,
        final: bool,
    ) -> None:
        """Merge and score; the allow-list and marks are added by ``decorate`` after it."""
        from detectors.rank.enrichment import with_asn
        from detectors.run.outcome import merge

        worker = get_current_worker()
        try:
            candidates = prepare(
                with_asn(
                    with_protocol(merge(outcomes, dataset, config), self._protocols(dataset)),
                    self._geo(config),
                )
            )
        except Exception as exc:
            self._post(Note("error", "".join(traceback.format_exception(exc)).rstrip()))
            self._post(Note("error", f"merging candidates failed: {type(exc).__name__}: {exc}"))
            self._post(CandidatesMerged(run_id, None, final))
            return
        if not worker.is_cancelled:
            self._post(CandidatesMerged(run_id, candidates, final))

    def _geo(self, config: Config) -> GeoLookup | None:
        """The local mmdb reader for ``asn``/``org`` columns, opened once per path."""
        from detectors.rank.enrichment import GeoLookup

        cached = self._geo_cache
        if cached is None or cached[0] != config.mmdb:
            cached = (config.mmdb, GeoLookup(config.mmdb) if config.mmdb else None)
            self._geo_cache = cached
        return cached[1]

    def _protocols(self, dataset: PairContext) -> pl.DataFrame:
        """Each pair's protocol, computed on the first merge of a dataset and kept."""
        cached = self._protocol_cache
        if cached is None or cached[0] is not dataset:
            cached = (dataset, pair_protocols(dataset.events))
            self._protocol_cache = cached
        return cached[1]

    # --- allow-list and triage marks ----------------------------------------------------

    def decorate(
        self,
        seq: int,
        merged: pl.DataFrame,
        allowlist: AllowList | None,
        triage: TriageStore | None,
        parts: Parts,
        want_hits: bool,
    ) -> None:
        """Re-flag the merged candidates after an edit (or a merge): no detector runs.

        ``allowlist`` and ``triage`` are snapshots (``Curation.snapshot``): the UI thread
        may edit the originals while this runs. ``parts`` still valid are reused.
        """
        job = partial(self._decorate_job, seq, merged, allowlist, triage, parts, want_hits)
        self._start(DECORATE, job)

    def _decorate_job(
        self,
        seq: int,
        merged: pl.DataFrame,
        allowlist: AllowList | None,
        triage: TriageStore | None,
        parts: Parts,
        want_hits: bool,
    ) -> None:
        from detectors.curate.decorate import Decorated, decorate

        worker = get_current_worker()
        try:
            result = decorate(merged, allowlist, triage, parts, want_hits=want_hits)
        except Exception as exc:  # a bug: keep the undecorated list, say why
            self._post(Note("error", "".join(traceback.format_exception(exc)).rstrip()))
            self._post(Note("error", f"applying the allow-list and marks failed: {exc}"))
            result = Decorated(merged)
        if not worker.is_cancelled:
            self._post(CandidatesDecorated(seq, result))

    # --- export --------------------------------------------------------------------------

    def export(self, frame: pl.DataFrame, path: str, fmt: str) -> None:
        """Write ``frame`` with ``detectors.report.export`` (atomic) off the UI thread."""
        self._start(EXPORT, partial(self._export_job, frame, path, fmt))

    def _export_job(self, frame: pl.DataFrame, path: str, fmt: str) -> None:
        from detectors.curate.triage import C_MARK, ESCALATE
        from detectors.report.export import export

        try:
            export(frame, path, fmt)
        except InputError as exc:
            self._post(Exported(path, fmt, 0, str(exc)))
            return
        except Exception as exc:  # a bug: say so, keep the app alive
            self._post(Note("error", "".join(traceback.format_exception(exc)).rstrip()))
            self._post(Exported(path, fmt, 0, f"internal error: {type(exc).__name__}: {exc}"))
            return
        rows = frame.height
        if fmt == "markdown" and C_MARK in frame.columns:
            rows = frame.filter(pl.col(C_MARK) == ESCALATE).height  # what the report lists
        self._post(Exported(path, fmt, rows, None))
