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

Conversion streams Defender exports (CSV, JSON Lines, Parquet) straight from the file
to the partitions; other formats are loaded one file at a time by the normal loaders.
A file whose timestamps need the slow path (a second format mixed in, an unparsable
or out-of-range value) goes through the normal loader too, which re-parses or reports
them exactly as a load in memory would.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import dataclasses
import io
import math
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import polars as pl

from detectors.base import schema as S
from detectors.base.config import (
    DEFAULT_PARTITION_EVENTS,
    Config,
    NetworkSettings,
    cache_dir,
)
from detectors.base.errors import InputError
from detectors.base.progress import NULL_PROGRESS, Progress
from detectors.hunts.registry import get, params_for
from detectors.load import _without_duplicates, expand_paths, format_of, load_file
from detectors.load import mde as MDE
from detectors.load.common import (
    EARLIEST,
    LATEST,
    address_fixes_of,
    implausible_found,
    implausible_kinds,
    reading,
    require,
    timestamp_spec,
)
from detectors.load.sniff import MDE_CSV, MDE_JSONL, MDE_PARQUET
from detectors.load.timestamps import present
from detectors.pairs.context import PairContext
from detectors.pairs.network import apply, apply_links, decide, link, link_rows, no_links
from detectors.pairs.population import INPUT_ROW, Population
from detectors.run.outcome import DetectorOutcome, guarded
from detectors.run.partition_store import SIDE_TABLES, PartitionStore, set_key, store_root

PARTITION = "__partition"
_PLACEMENT = ("placed", "duplicates", "notes")  # kept in a set's manifest
Compression = Literal["zstd", "lz4"]  # kept partitions: small; removed ones: fast
_STREAMED = {MDE_CSV: "csv", MDE_JSONL: "jsonl", MDE_PARQUET: "parquet"}
_FILE_BITS = 40  # INPUT_ROW = file number << 40 | row number in the file
_SEED = 0x5EED_0003
_SAMPLE_BYTES = 1 << 20
SINK_BUFFERED_ROWS = 3_400_000  # ~0.4 GB of canonical rows held open by the streaming sink
_SINK_MIN_GROUP, _SINK_MAX_GROUP = 10_000, 100_000


# --- sizing ------------------------------------------------------------------------------------


def estimate_events(paths: Sequence[str | Path]) -> int:
    """About how many rows the inputs hold: Parquet from its footer, text from its size.

    Text files are measured by the bytes per line of their first megabyte (gzip by its
    ratio too, roughly): close enough to choose between memory and partitions.
    """
    total = 0
    for path in expand_paths(paths):
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq  # Parquet only: a text input never loads pyarrow

            try:
                total += pq.ParquetFile(path).metadata.num_rows
                continue
            except (OSError, ValueError):
                pass
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(_SAMPLE_BYTES)
        lines = max(1, head.count(b"\n"))
        scale = 5 if head[:2] == b"\x1f\x8b" else 1  # compressed text: ~5x per byte
        total += int(size * scale / max(1.0, len(head) / lines))
    return total


def partition_count(events: int, partition_events: int = DEFAULT_PARTITION_EVENTS) -> int:
    return max(1, math.ceil(events / max(1, partition_events)))


def wanted(paths: Sequence[str | Path], config: Config) -> int | None:
    """How many partitions ``paths`` need when they hold more events than ``[engine]
    max_events_in_memory``; None when they fit in memory (the estimate is made once)."""
    settings = config.engine_settings()
    try:
        events = estimate_events(paths)
    except (InputError, OSError):
        return None  # let the normal loader report the problem
    if events <= settings.max_events_in_memory:
        return None
    return partition_count(events, settings.partition_events)


# --- writing the partitions --------------------------------------------------------------------


def _partition_key(count: int) -> pl.Expr:
    """Partition of each event: a hash of its device name (no name: partition 0)."""
    name = pl.col(S.DEVICE_NAME)
    bucket = (name.hash(_SEED) % count).cast(pl.UInt16)
    return pl.when(name.is_not_null()).then(bucket).otherwise(pl.lit(0, pl.UInt16))


def _sink(
    frame: pl.LazyFrame,
    directory: Path,
    file_number: int,
    count: int,
    compression: Compression = "zstd",
) -> None:
    # Rows numbered by ``with_row_index``: ``int_range(pl.len())`` made the streaming sink
    # hold the whole file to learn its length first (10M events: peak 3.0 -> 2.1 GB).
    rows = pl.col(INPUT_ROW).cast(pl.UInt64) + (file_number << _FILE_BITS)
    shaped = frame.with_row_index(INPUT_ROW).with_columns(
        rows, _partition_key(count).alias(PARTITION)
    )
    target = pl.PartitionBy(
        directory / f"file-{file_number:05d}",
        key=PARTITION,
        include_key=False,
        approximate_bytes_per_file=1 << 60,  # one file per partition and input file
    )
    shaped.sink_parquet(
        target,
        mkdir=True,
        engine="streaming",
        row_group_size=sink_row_group(count),
        compression=compression,
        statistics=False,  # partitions are read whole or scanned, never skipped by range
    )


def sink_row_group(count: int) -> int:
    """Rows per row group of a streamed partition: as large as the sink's buffers allow.

    The sink holds one open row group per partition, so ``SINK_BUFFERED_ROWS`` rows in
    all; within that, larger groups are cheaper to write and to read back (10M events in
    4 partitions: 100k-row groups cost 2 s less CPU to write and 1.9 s less to place than
    10k-row ones).
    """
    return max(_SINK_MIN_GROUP, min(_SINK_MAX_GROUP, SINK_BUFFERED_ROWS // max(1, count)))


def _stream_defender(
    path: Path,
    container: str,
    directory: Path,
    file_number: int,
    count: int,
    compression: Compression = "zstd",
) -> list[str] | None:
    """Defender events from ``path`` to the partitions, streamed; None if the file needs the
    normal loader (timestamps in another form than its first rows, or invalid)."""
    table = MDE.read_table(path, container, MDE.COLUMNS)
    require(table.schema, MDE.REQUIRED, path)
    spec = timestamp_spec(table, MDE.TIMESTAMP, path)
    has_ts = present(pl.col(spec.source), table.schema[spec.source])
    fast = spec.fast
    raw_addresses = {S.REMOTE_IP: MDE.REMOTE_IP, S.LOCAL_IP: MDE.LOCAL_IP}
    addresses = [name for name, raw in raw_addresses.items() if raw in table.schema]
    columns = MDE.canonical_columns(table.schema)
    canonical_of = {**columns, S.TIMESTAMP: fast}  # each canonical column, from the raw file
    # One pass over the few columns the checks read, as the load in memory probes: each
    # address column's distinct texts (fixed and judged per text, never per row), and
    # whether any row needs the slow timestamp parse, lacks a timestamp or is impossible.
    check = table.frame.select(
        (fast.is_null() & has_ts).sum().alias("retry"),
        ((fast < EARLIEST) | (fast > LATEST)).fill_null(False).sum().alias("outside"),
        (~has_ts).sum().alias("untimed"),
        *[columns[name].drop_nulls().unique().implode().alias(name) for name in addresses],
        pl.any_horizontal(mask for _, mask in implausible_kinds({}, canonical_of.__getitem__))
        .filter(has_ts)
        .sum()
        .alias("implausible"),
    ).collect(engine="streaming")
    if check.item(0, "retry") or check.item(0, "outside"):
        return None
    missing = 0
    if check.item(0, "untimed"):  # blank rows are skipped silently: only then read them all
        blank = pl.all_horizontal([pl.col(c).is_null() for c in table.schema])
        untimed = table.frame.select((~has_ts & ~blank).sum()).collect(engine="streaming")
        missing = untimed.item()
    canonical = table.frame.filter(has_ts).select(
        fast.alias(S.TIMESTAMP), *[expr.alias(name) for name, expr in columns.items()]
    )
    fixes, bad = address_fixes_of({name: check.item(0, name) for name in addresses})
    if fixes:
        canonical = canonical.with_columns(
            pl.col(column).replace(mapping) for column, mapping in fixes.items()
        )
    events = S.conform(canonical, str(path))
    dropped: list[str] = []
    if check.item(0, "implausible") or any(bad.values()):
        events, dropped = _without_implausible(events, bad, str(path))
    _sink(events, directory, file_number, count, compression)
    warnings = list(table.warnings)
    if missing:
        warnings.append(f"{missing} rows without a {spec.source} skipped")
    return warnings + dropped


def _without_implausible(
    events: pl.LazyFrame, bad_addresses: Mapping[str, list[str]], file: str
) -> tuple[pl.LazyFrame, list[str]]:
    """The streamed events less the rows a load in memory drops as impossible
    (``load.common.drop_implausible``: same kinds, counts and words)."""
    kinds = implausible_kinds(bad_addresses)
    warnings, drop, _ = implausible_found(events, kinds, file=pl.lit(file), engine="streaming")
    return (events if drop is None else events.filter(~drop)), warnings


@dataclass
class Partitions:
    """The canonical events on disk, one directory per input file, plus the side tables."""

    directory: Path
    count: int
    names: pl.DataFrame
    app: pl.DataFrame
    device_info: pl.DataFrame | None
    files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    dns: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=S.DNS_SCHEMA))
    # Placed in the network (``place_partitions``): keyed by the placed device, exact
    # repeats already dropped (``duplicates`` of them), and what placement found.
    placed: bool = False
    duplicates: int | None = None
    notes: list[str] = field(default_factory=list)

    def part_files(self, partition: int) -> list[Path]:
        return sorted(self.directory.glob(f"file-*/{PARTITION}={partition}/*.parquet"))

    def all_files(self) -> list[Path]:
        return sorted(self.directory.glob(f"file-*/{PARTITION}=*/*.parquet"))

    def scan(self) -> pl.LazyFrame:
        files = self.all_files()
        if not files:
            return S.empty_events().lazy().with_columns(pl.lit(0, pl.UInt64).alias(INPUT_ROW))
        return pl.scan_parquet(files)

    def device_rows(self, device: str | None, where: pl.Expr) -> pl.DataFrame:
        """The events matching ``where`` among those of ``device`` (a device name, or an
        id or originating IP a candidate is keyed by), read from disk on demand: one
        pair's rows for a chart, without holding the input. Its name's partition is read
        first; the other partitions only when the device is known by another key."""
        named = pl.DataFrame({S.DEVICE_NAME: [device]}, schema={S.DEVICE_NAME: pl.String})
        home = int(named.select(_partition_key(self.count)).item())
        for files in (self.part_files(home), self.all_files()):
            if not files:
                continue
            # placed partitions gather rows from every loaded one: input order by row
            rows = pl.scan_parquet(files).filter(where).sort(INPUT_ROW).drop(INPUT_ROW).collect()
            if rows.height:
                return rows
        return S.empty_events()


def write_partitions(
    paths: Sequence[str | Path],
    directory: Path,
    count: int,
    source_format: str | None = None,
    mapping: Mapping[str, str] | None = None,
    progress: Progress = NULL_PROGRESS,
    compression: Compression = "zstd",
) -> Partitions:
    """Every input file's canonical events into ``count`` device partitions under
    ``directory`` (see the module docstring); side tables are kept in memory.
    ``compression``: lz4 for partitions read once and removed (placed, then dropped)."""
    from detectors.load import _expand

    files = _expand(paths)
    names: list[pl.DataFrame] = []
    apps: list[pl.DataFrame] = []
    queries: list[pl.DataFrame] = []
    infos: list[pl.DataFrame] = []
    result = Partitions(directory, count, pl.DataFrame(), pl.DataFrame(), None)
    skipped: InputError | None = None
    for number, (path, listed) in enumerate(files):
        progress.report("load", number / max(1, len(files)), f"partitioning {path.name}")
        try:
            with reading(path):
                fmt = format_of(path, source_format, mapping)
        except InputError as error:  # as load_paths: a listed stray file is skipped
            if not listed:
                raise
            skipped = skipped or error
            result.warnings.append(f"{path}: skipped: {error.message}")
            continue
        warnings = None
        if fmt in _STREAMED:
            with reading(path):
                warnings = _stream_defender(
                    path, _STREAMED[fmt], directory, number, count, compression
                )
        if warnings is None:
            loaded = load_file(path, fmt, mapping)
            warnings = loaded.warnings
            if loaded.events is not None and loaded.events.height:
                with reading(path):
                    _sink(loaded.events.lazy(), directory, number, count, compression)
            names += [loaded.names] if loaded.names is not None else []
            apps += [loaded.app] if loaded.app is not None else []
            queries += [loaded.dns] if loaded.dns is not None else []
            infos += [loaded.device_info] if loaded.device_info is not None else []
        result.files.append(str(path))
        result.warnings += [f"{path}: {w}" for w in warnings]
    if skipped is not None and not result.files:
        raise skipped
    result.names = (
        pl.concat(names, how="vertical").unique(maintain_order=True)
        if names
        else pl.DataFrame(schema=S.NAMES_SCHEMA)
    )
    result.app = pl.concat(apps, how="vertical") if apps else pl.DataFrame(schema=S.APP_SCHEMA)
    if queries:
        result.dns = pl.concat(queries, how="vertical").sort(S.DNS_TIME, maintain_order=True)
    result.device_info = pl.concat(infos, how="vertical") if infos else None
    progress.report("load", 1.0, f"{len(files)} files in {count} partitions")
    return result


# --- placing the partitions in the network ---------------------------------------------------


def _empty_placed() -> pl.DataFrame:
    """No events, with the columns of placed partitions."""
    topology = {
        INPUT_ROW: pl.UInt64(),
        S.VIA_PROXY: pl.String(),
        S.ICMP_TYPE: pl.Int32(),
        S.DIRECTION: pl.String(),
        S.PROXY_SERVER: pl.String(),
    }
    return pl.DataFrame(schema={**S.EVENT_SCHEMA, **topology})


def place_partitions(
    parts: Partitions,
    directory: Path,
    settings: NetworkSettings,
    progress: Progress = NULL_PROGRESS,
) -> Partitions:
    """``parts`` placed in the network (``pairs.network``), written under ``directory``.

    The decisions need every event (which address:port is a proxy, which public address
    a sensor watches): two passes over a few columns of each partition gather the small
    evidence they are taken from. Then each partition's exact repeats are dropped (they
    share a device, so a partition holds all of them, and a run in memory drops them
    before placing) and its rows placed: once more first when some row comes from a
    proxy's address, to gather the rows its egress is linked by (client and proxy are
    two devices: linked once over all of them); then written, linked, to the partition
    of their *placed* device: an inbound row
    turned round belongs with our host, so every pair and every fact about one device
    stays in one partition.
    """

    def pieces(columns: Sequence[str]) -> Iterator[pl.DataFrame]:
        for number in range(parts.count):
            files = parts.part_files(number)
            if files:
                yield pl.read_parquet(files, columns=list(columns))

    progress.report("load", 0.0, "placing the events in the network")
    decisions = decide(pieces, parts.app, settings)

    def placed(number: int) -> tuple[pl.DataFrame, int, int]:
        """Partition ``number`` deduplicated and placed (egress not linked yet)."""
        files = parts.part_files(number)
        if not files:
            return _empty_placed().drop(S.PROXY_SERVER), 0, 0
        frame, dropped = _without_duplicates(pl.read_parquet(files), ignore=(INPUT_ROW,))
        events, outside = apply(frame, decisions)
        return events, dropped, outside

    external_only = duplicates = 0
    links = no_links(decisions)
    if decisions.from_proxy:  # the rows a proxy's egress is linked by, from every partition
        rows = []
        for number in range(parts.count):
            events, dropped, outside = placed(number)
            rows.append(link_rows(events, decisions, INPUT_ROW))
            duplicates, external_only = duplicates + dropped, external_only + outside
        links = link(pl.concat(rows).sort(INPUT_ROW), parts.app, decisions, INPUT_ROW)
        del rows
    for number in range(parts.count):
        progress.report("load", number / parts.count, f"placing partition {number + 1}")
        events, dropped, outside = placed(number)
        if not decisions.from_proxy:  # placed once: counted here
            duplicates, external_only = duplicates + dropped, external_only + outside
        events = apply_links(events, links, INPUT_ROW)
        if not decisions.icmp:
            events = events.drop(S.ICMP_TYPE)
        if events.height:
            _write_placed(events, directory / f"file-{number:05d}", parts.count)
        del events
    return dataclasses.replace(
        parts,
        directory=directory,
        placed=True,
        duplicates=duplicates,
        notes=decisions.notes(external_only, links.count),
    )


def _write_placed(events: pl.DataFrame, folder: Path, count: int) -> None:
    """``events`` (one source partition, placed) into ``folder``'s partition folders, by
    their placed device, in the layout ``_sink`` writes (``__partition=K/00000000.parquet``).

    Written eagerly, a frame per placed partition: nearly every row stays in its own
    partition (only turned-round rows move), and the streaming partitioned sink cost 1.8x
    the CPU of a plain write of the same frame. Row groups of 100k rows: the partition is
    read whole or scanned by the population, never sought row by row, and larger groups
    are a third cheaper to write and half the size on disk. No statistics: they serve to
    skip row groups by range, and no query here could skip one. zstd at level 1: a tenth
    less CPU than its default level for 2 % more disk, and read back as fast (20M events
    in 7 partitions: 11.3 -> 10.3 s of CPU, 303 -> 309 MB).
    """
    keys = events.select(_partition_key(count)).to_series()
    if keys.min() == keys.max():  # the usual case: no row left its source partition
        groups = {keys[0]: events}
    else:
        groups = {
            key[0]: frame
            for key, frame in events.with_columns(keys.alias(PARTITION))
            .partition_by(PARTITION, maintain_order=True, include_key=False, as_dict=True)
            .items()
        }
    del keys
    for key, frame in groups.items():
        target = folder / f"{PARTITION}={key}"
        target.mkdir(parents=True, exist_ok=True)
        frame.write_parquet(
            target / "00000000.parquet",
            row_group_size=100_000,
            statistics=False,
            compression_level=1,
        )


# --- running the detectors ---------------------------------------------------------------------


def load_partition(
    parts: Partitions, partition: int, population: Population
) -> tuple[PairContext, int]:
    """One partition as a dataset whose ``everyone()`` is the whole input, and how many
    exact repeats were dropped from it (repeats share their device: same partition)."""
    files = parts.part_files(partition)
    if parts.duplicates is not None:  # placed: repeats dropped before placing, as in memory
        frame = pl.read_parquet(files) if files else _empty_placed()
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
    # Hunts run at once on each partition (threads). 1 for detect: its peak memory is
    # one partition and one hunt; the TUI uses 2, trading some memory for time to the
    # first candidate on two cores (the partition is still read once).
    threads: int = 1
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
            population=Population(parts.scan(), parts.names, streaming=True),
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
            if self.threads > 1 and len(names) > 1:
                with ThreadPoolExecutor(min(self.threads, len(names))) as pool:
                    run = partial(_run_partial, piece=piece, config=config, progress=progress)
                    list(pool.map(run, [state[name] for name in names]))
            else:
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
