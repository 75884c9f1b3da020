"""Input bigger than memory, first step: every input file's canonical events written to
``count`` device partitions on disk (``detectors.run.partitioned`` has the whole design).

How many partitions an input needs is estimated before anything is read (Parquet from
its footer, text from its size). Defender exports (CSV, JSON Lines, Parquet) stream
straight from the file to the partitions after one pass over the few columns the
checks read; other formats, and files whose timestamps need the slow path, go through
the normal loader one file at a time, which re-parses or reports them exactly as a
load in memory would.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import polars as pl

from detectors.base import schema as S
from detectors.base.config import DEFAULT_PARTITION_EVENTS, Config
from detectors.base.errors import InputError
from detectors.base.progress import NULL_PROGRESS, Progress
from detectors.load import _expand, expand_paths, format_of, load_file
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
from detectors.pairs.population import INPUT_ROW

PARTITION = "__partition"
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


def partition_key(count: int) -> pl.Expr:
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
        rows, partition_key(count).alias(PARTITION)
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

    def pieces(self) -> list[pl.LazyFrame]:
        """Each partition's events, lazily (the partitions that hold any)."""
        files = [self.part_files(number) for number in range(self.count)]
        return [pl.scan_parquet(found) for found in files if found]

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
        home = int(named.select(partition_key(self.count)).item())
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
