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
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from detectors.base import schema as S
from detectors.base.config import (
    DEFAULT_PARTITION_EVENTS,
    Config,
    cache_dir,
)
from detectors.base.errors import InputError
from detectors.base.netclass import normalize_ip
from detectors.base.progress import NULL_PROGRESS, Progress
from detectors.hunts.registry import get, params_for
from detectors.load import expand_paths, format_of, load_file
from detectors.load import mde as MDE
from detectors.load.common import (
    EARLIEST,
    LATEST,
    reading,
    require,
    timestamp_spec,
)
from detectors.load.sniff import MDE_CSV, MDE_JSONL, MDE_PARQUET
from detectors.load.timestamps import present
from detectors.pairs.context import PairContext
from detectors.pairs.population import INPUT_ROW, Population
from detectors.run.outcome import DetectorOutcome, guarded
from detectors.run.partition_store import SIDE_TABLES, PartitionStore, set_key, store_root

PARTITION = "__partition"
_STREAMED = {MDE_CSV: "csv", MDE_JSONL: "jsonl", MDE_PARQUET: "parquet"}
_FILE_BITS = 40  # INPUT_ROW = file number << 40 | row number in the file
_SEED = 0x5EED_0003
_SAMPLE_BYTES = 1 << 20


# --- sizing ------------------------------------------------------------------------------------


def estimate_events(paths: Sequence[str | Path]) -> int:
    """About how many rows the inputs hold: Parquet from its footer, text from its size.

    Text files are measured by the bytes per line of their first megabyte (gzip by its
    ratio too, roughly): close enough to choose between memory and partitions.
    """
    total = 0
    for path in expand_paths(paths):
        if path.suffix.lower() == ".parquet":
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


def _sink(frame: pl.LazyFrame, directory: Path, file_number: int, count: int) -> None:
    rows = pl.int_range(pl.len(), dtype=pl.UInt64) + (file_number << _FILE_BITS)
    shaped = frame.with_columns(rows.alias(INPUT_ROW), _partition_key(count).alias(PARTITION))
    target = pl.PartitionBy(
        directory / f"file-{file_number:05d}",
        key=PARTITION,
        include_key=False,
        approximate_bytes_per_file=1 << 60,  # one file per partition and input file
    )
    shaped.sink_parquet(target, mkdir=True, engine="streaming", row_group_size=10_000)


def _odd_addresses(column: str) -> pl.Expr:
    """Distinct values of an address column that normalising might change (as loaders)."""
    value = pl.col(column).cast(pl.String)
    odd = value.str.contains(":", literal=True) | (value.str.strip_chars() != value)
    return value.filter(odd).unique().implode().alias(column)


def _ip_fixes(odd: Mapping[str, list[str]]) -> dict[str, dict[str, str]]:
    """IPv4-mapped IPv6 and padded text to canonical form, per distinct value."""
    fixes: dict[str, dict[str, str]] = {}
    for column, distinct in odd.items():
        mapping = {
            ip: fixed
            for ip in distinct
            if ip is not None and (fixed := normalize_ip(ip)) is not None and fixed != ip
        }
        if mapping:
            fixes[column] = mapping
    return fixes


def _stream_defender(
    path: Path, container: str, directory: Path, file_number: int, count: int
) -> list[str] | None:
    """Defender events from ``path`` to the partitions, streamed; None if the file needs the
    normal loader (timestamps in another form than its first rows, or invalid)."""
    table = MDE.read_table(path, container, MDE.COLUMNS)
    require(table.schema, MDE.REQUIRED, path)
    spec = timestamp_spec(table, MDE.TIMESTAMP, path)
    has_ts = present(pl.col(spec.source), table.schema[spec.source])
    blank = pl.all_horizontal([pl.col(c).is_null() for c in table.schema])
    fast = spec.fast
    addresses = {S.REMOTE_IP: MDE.REMOTE_IP, S.LOCAL_IP: MDE.LOCAL_IP}
    addresses = {k: v for k, v in addresses.items() if v in table.schema}
    check = table.frame.select(  # one pass: what the eager loader would check and fix
        (fast.is_null() & has_ts).sum().alias("retry"),
        ((fast < EARLIEST) | (fast > LATEST)).fill_null(False).sum().alias("outside"),
        (~has_ts & ~blank).sum().alias("missing"),
        *[_odd_addresses(raw) for raw in addresses.values()],
    ).collect(engine="streaming")
    if check.item(0, "retry") or check.item(0, "outside"):
        return None
    columns = MDE.canonical_columns(table.schema)
    canonical = table.frame.filter(has_ts).select(
        fast.alias(S.TIMESTAMP), *[expr.alias(name) for name, expr in columns.items()]
    )
    fixes = _ip_fixes({name: check.item(0, raw).to_list() for name, raw in addresses.items()})
    if fixes:
        canonical = canonical.with_columns(
            pl.col(column).replace(mapping) for column, mapping in fixes.items()
        )
    _sink(S.conform(canonical, str(path)), directory, file_number, count)
    warnings = list(table.warnings)
    missing = check.item(0, "missing")
    if missing:
        warnings.append(f"{missing} rows without a {spec.source} skipped")
    return warnings


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
            rows = pl.scan_parquet(files).filter(where).drop(INPUT_ROW).collect()
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
) -> Partitions:
    """Every input file's canonical events into ``count`` device partitions under
    ``directory`` (see the module docstring); side tables are kept in memory."""
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
                warnings = _stream_defender(path, _STREAMED[fmt], directory, number, count)
        if warnings is None:
            loaded = load_file(path, fmt, mapping)
            warnings = loaded.warnings
            if loaded.events is not None and loaded.events.height:
                with reading(path):
                    _sink(loaded.events.lazy(), directory, number, count)
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


# --- running the detectors ---------------------------------------------------------------------


def load_partition(
    parts: Partitions, partition: int, population: Population
) -> tuple[PairContext, int]:
    """One partition as a dataset whose ``everyone()`` is the whole input, and how many
    exact repeats were dropped from it (repeats share their device: same partition)."""
    from detectors.load import _without_duplicates

    files = parts.part_files(partition)
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

    def context(self, config: Config, progress: Progress) -> PairContext:
        if self.parts is None:
            size = config.engine_settings().partition_events
            count = self.count or partition_count(estimate_events(self.paths), size)
            self.parts = self._kept_or_written(config, count, progress)
        parts = self.parts
        warnings = list(parts.warnings)
        if config.network_settings().enabled:
            warnings.append(
                "input bigger than memory: [network] placement (direction, proxies as "
                "destinations, inbound pairs) is not applied yet; public addresses are hunted"
            )
        return PairContext(
            names=parts.names,
            app=parts.app,
            device_info=parts.device_info,
            dns=parts.dns,
            files=parts.files,
            warnings=warnings,
            population=Population(parts.scan(), parts.names, streaming=True),
        )

    def hunts(
        self, context: PairContext, config: Config, names: Sequence[str], progress: Progress
    ) -> Iterator[DetectorOutcome]:
        """Every hunt over every partition, then combined; outcomes come at the end."""
        parts = self.parts
        assert parts is not None and context.population is not None, "context() first"
        state = {name: _Progressing(DetectorOutcome(name)) for name in names}
        duplicates = 0
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

    def _kept_or_written(self, config: Config, count: int, progress: Progress) -> Partitions:
        """The partitions a previous run kept for these files, else written now (and
        kept for the next run when ``reuse``; see ``partition_store``)."""
        root = store_root(cache_dir())  # 0700: it holds the events
        store = PartitionStore(root)
        args = (self.paths, count, self.source_format, config.mapping)
        key = set_key(*args) if self.reuse else None
        found = store.find(key) if key else None
        if found is not None:
            progress.report("load", 1.0, f"reusing {found['count']} partitions")
            stored = ("directory", "count", "files", "warnings", *SIDE_TABLES)
            return Partitions(**{k: found[k] for k in stored})  # type: ignore[arg-type]
        self._scratch = Path(tempfile.mkdtemp(prefix="run-", dir=root))
        parts = write_partitions(
            self.paths, self._scratch, count, self.source_format, config.mapping, progress
        )
        if key is not None and set_key(*args) == key:  # no file changed while read
            side = {name: getattr(parts, name) for name in SIDE_TABLES}
            kept = store.keep(self._scratch, key, side, count, parts.files, parts.warnings)
            if kept is not None:
                parts.directory, self._scratch = kept, None
        return parts

    def close(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None


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
