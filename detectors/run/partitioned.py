"""Input bigger than memory: split by device on disk, detect partition by partition.

Everything a detector computes per pair, per host or per server lives on one device,
so the canonical events are written to ``count`` Parquet partitions keyed by a hash of
the device name (rows without a name all go to partition 0, so a detector grouping by
name still sees them together). Each partition is loaded alone and every detector's
first stage runs on it (``registry.Stages.partial``); what needs all devices (the time
window, names of addresses, companies on few servers, device counts per destination) is
asked of a ``Population`` that scans every partition with polars' streaming engine.
Each detector's second stage (``Stages.combine``) then joins the partitions' partial
results, and the candidates are merged and scored as usual, with the population
answering the scoring's questions about everyone.

Memory is bounded by one partition (``partition_events`` events), the population's
query results and the candidates, not by the input. The results equal a run in memory:
partitions are deduplicated alone (exact repeats share their device), and events carry
their input position (``population.INPUT_ROW``) so "the first seen" stays the same.

Three steps, a module each: the input written to partitions (``partition_write``),
placed in the network and written again by placed device (``partition_place``), then
the detectors run here; ``partition_store`` keeps the placed partitions for the next run.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import dataclasses
import io
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import polars as pl

from detectors.base import schema as S
from detectors.base.config import Config, cache_dir
from detectors.base.progress import Progress
from detectors.hunts.registry import get, params_for
from detectors.load import _without_duplicates
from detectors.pairs.context import PairContext
from detectors.pairs.population import INPUT_ROW, Population
from detectors.run.outcome import DetectorOutcome, guarded
from detectors.run.partition_place import empty_placed, place_partitions
from detectors.run.partition_store import SIDE_TABLES, PartitionStore, set_key, store_root
from detectors.run.partition_write import (
    Partitions,
    estimate_events,
    partition_count,
    write_partitions,
)

_PLACEMENT = ("placed", "duplicates", "notes")  # kept in a set's manifest


# --- running the detectors ---------------------------------------------------------------------


def load_partition(
    parts: Partitions, partition: int, population: Population
) -> tuple[PairContext, int]:
    """One partition as a dataset whose ``everyone()`` is the whole input, and how many
    exact repeats were dropped from it (repeats share their device: same partition)."""
    files = parts.part_files(partition)
    if parts.duplicates is not None:  # placed: repeats dropped before placing, as in memory
        frame = pl.read_parquet(files) if files else empty_placed()
        events, duplicates = _in_input_order(frame), 0
    else:
        # files in input order, rows in input order inside each (sinks keep the order)
        frame = pl.read_parquet(files).drop(INPUT_ROW) if files else S.empty_events()
        events, duplicates = _without_duplicates(frame)
    dataset = PairContext(
        events=events,
        names=parts.names,
        app=parts.app,
        device_info=parts.device_info,
        population=population,
    )
    return dataset, duplicates


def _in_input_order(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame``'s rows in input order (by ``INPUT_ROW``, then dropped), a column at a
    time: a placed partition holds every source partition's rows for its devices, each
    run in input order, and sorting the whole frame at once held two copies of it
    (10M events in 4 partitions: a reusing run's peak 3.2 GB, 2.0 GB before placement)."""
    rows = frame.drop_in_place(INPUT_ROW)
    if rows.is_sorted():  # one placed file, or files whose runs follow on: nothing to move
        return frame
    order = rows.arg_sort()
    del rows
    return pl.DataFrame([frame.drop_in_place(name).gather(order) for name in list(frame.columns)])


def detached(value: Any) -> Any:
    """``value`` with its frames copied out of the partition they came from.

    A frame cut from a partition shares that partition's buffers (text columns are
    views into them): kept as is, every partial result would pin its whole partition
    in memory. Frames, alone or as fields of a dataclass, are rewritten compactly.
    """
    if isinstance(value, pl.DataFrame):
        buffer = io.BytesIO()
        value.write_ipc(buffer)
        buffer.seek(0)
        return pl.read_ipc(buffer)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {
            f.name: detached(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if isinstance(getattr(value, f.name), pl.DataFrame)
        }
        return dataclasses.replace(value, **changes)
    return value


@dataclass
class _Progressing:
    """Per-detector state across partitions."""

    outcome: DetectorOutcome
    partials: list[object] = field(default_factory=list)


@dataclass
class Partitioned:
    """The strategy for input bigger than memory: device partitions on disk.

    ``context`` finds the partitions a previous run kept for the same files, or writes
    them (kept for the next run, ``partition_store``; with ``reuse=False`` in a scratch
    folder removed by ``close``), unless ``parts`` were given; it answers for everyone
    through a streaming ``Population``; ``hunts`` runs each hunt's first stage partition
    by partition, then its second.
    """

    paths: Sequence[str | Path] = ()
    source_format: str | None = None
    count: int | None = None
    parts: Partitions | None = None
    reuse: bool = True  # keep the partitions for the next run on the same files
    _scratch: Path | None = None
    _placed_scratch: Path | None = None  # placed copies of partitions handed in
    _given: Partitions | None = None  # partitions handed in, as loaded (placed again)
    _network: str | None = None  # the [network] settings the partitions were placed with
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def context(self, config: Config, progress: Progress) -> PairContext:
        settings = config.network_settings()
        self._network = _network_key(config)
        if self.parts is None:
            size = config.engine_settings().partition_events
            count = self.count or partition_count(estimate_events(self.paths), size)
            self.parts = self._kept_or_written(config, count, progress)
        elif settings.enabled and not self.parts.placed:  # partitions handed in: placed beside
            self._given = self._given or self.parts
            parent = self.parts.directory.parent
            self._placed_scratch = Path(tempfile.mkdtemp(prefix="placed-", dir=parent))
            self.parts = place_partitions(self.parts, self._placed_scratch, settings, progress)
        parts = self.parts
        return PairContext(
            names=parts.names,
            app=parts.app,
            device_info=parts.device_info,
            dns=parts.dns,
            files=parts.files,
            warnings=[*parts.warnings, *parts.notes],
            population=Population(parts.scan(), parts.names, streaming=True, pieces=parts.pieces()),
        )

    def hunts(
        self, context: PairContext, config: Config, names: Sequence[str], progress: Progress
    ) -> Iterator[DetectorOutcome]:
        """Every hunt over every partition, then combined; outcomes come at the end."""
        self._replace(context, config, progress)
        parts = self.parts
        assert parts is not None and context.population is not None, "context() first"
        state = {name: _Progressing(DetectorOutcome(name)) for name in names}
        duplicates = parts.duplicates or 0  # placed partitions: dropped before placing
        for partition in range(parts.count):
            progress.report("detect", partition / parts.count, f"partition {partition + 1}")
            piece, dropped = load_partition(parts, partition, context.population)
            duplicates += dropped
            # One hunt at a time: the peak is one partition and one hunt's work on it.
            # Two at once (the TUI did) held 0.6 GB more at 100M events and took longer
            # (hunts 77 s against 67 s): each hunt already keeps both cores busy.
            for name in names:
                _run_partial(state[name], piece, config, progress)
            del piece
            _return_freed_memory()
        if duplicates:
            context.warnings.append(
                f"{duplicates} duplicate event rows dropped (identical in every field)"
            )
        for name in names:
            outcome = state[name].outcome
            if outcome.skipped is None and outcome.error is None:
                stages = get(name).stages
                assert stages is not None
                params = params_for(config, name)
                partials = state[name].partials
                outcome.hits = guarded(
                    outcome, partial(stages.combine, partials, context, params, progress)
                )
            yield outcome

    def _replace(self, context: PairContext, config: Config, progress: Progress) -> None:
        """Placed again when ``[network]`` changed since ``context`` (the TUI's parameters
        screen): the partitions are keyed by the placed device, so they are partitioned
        (or found kept) again, and the context's population and notes follow."""
        with self._lock:
            if _network_key(config) == self._network:
                return
            old = self.parts.notes if self.parts is not None else []
            self.close()
            self.parts = self._given
            fresh = self.context(config, progress)
            context.population = fresh.population
            context.warnings[:] = [w for w in context.warnings if w not in old]
            context.warnings.extend(self.parts.notes if self.parts is not None else [])

    def _kept_or_written(self, config: Config, count: int, progress: Progress) -> Partitions:
        """The partitions a previous run kept for these files and ``[network]`` settings,
        else written (and placed) now, and kept for the next run when ``reuse``; see
        ``partition_store``."""
        store = PartitionStore(store_root(cache_dir()))  # 0700: it holds the events
        settings = config.network_settings()
        network = dataclasses.asdict(settings) if settings.enabled else None
        args = (self.paths, count, self.source_format, config.mapping, network)
        key = set_key(*args) if self.reuse else None
        found = store.find(key) if key else None
        if found is not None:
            progress.report("load", 1.0, f"reusing {found['count']} partitions")
            stored = ("directory", "count", "files", "warnings", *SIDE_TABLES, *_PLACEMENT)
            return Partitions(**{k: found[k] for k in stored if k in found})  # type: ignore[arg-type]
        self._scratch = self._new_scratch()
        parts = write_partitions(
            self.paths,
            self._scratch,
            count,
            self.source_format,
            config.mapping,
            progress,
            compression="lz4" if settings.enabled else "zstd",  # placed then removed: fast
        )
        if settings.enabled:  # the loaded partitions only serve to place: then removed
            loaded, self._scratch = self._scratch, self._new_scratch()
            try:
                parts = place_partitions(parts, self._scratch, settings, progress)
            finally:
                shutil.rmtree(loaded, ignore_errors=True)
        if key is not None and set_key(*args) == key:  # no file changed while read
            side = {name: getattr(parts, name) for name in SIDE_TABLES}
            placement = {name: getattr(parts, name) for name in _PLACEMENT}
            kept = store.keep(
                self._scratch, key, side, count, parts.files, parts.warnings, placement
            )
            if kept is not None:
                parts.directory, self._scratch = kept, None
        return parts

    def _new_scratch(self) -> Path:
        return Path(tempfile.mkdtemp(prefix="run-", dir=store_root(cache_dir())))

    def close(self) -> None:
        for scratch in (self._scratch, self._placed_scratch):
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
        self._scratch = self._placed_scratch = None


def _network_key(config: Config) -> str:
    """The ``[network]`` settings as placement sees them (all off is one value)."""
    settings = config.network_settings()
    return repr(settings) if settings.enabled else "off"


def _return_freed_memory() -> None:
    """Hand the C heap's free pages back to the system between partitions (glibc).

    numpy's arrays live on the C heap; what a partition freed in the middle of a
    thread's heap stayed resident, and over 34 partitions of 100M events the periodogram's
    threads left 0.6 GB there. Elsewhere (musl, macOS) this does nothing.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)


def _run_partial(
    item: _Progressing, piece: PairContext, config: Config, progress: Progress
) -> None:
    outcome = item.outcome
    if outcome.skipped is not None or outcome.error is not None:
        return
    stages = get(outcome.name).stages
    if stages is None:
        outcome.skipped = "cannot run on partitions (input bigger than memory)"
        return
    params = params_for(config, outcome.name)
    result = guarded(outcome, partial(stages.partial, piece, params, progress))
    if outcome.skipped is None and outcome.error is None:
        item.partials.append(detached(result))
