"""Input files to canonical events as a Spark DataFrame, read by the local loaders.

Each file is read inside an executor by the very loader a local run uses
(``detectors.load.load_file``: sniffing, timestamp parsing, IP normalising, the
canonical columns), so the two engines cannot map a format differently. A file is one
task: plain paths are opened by the executor (local mode, or a file system every node
mounts); URIs (``s3a://``, ``abfss://``, ``hdfs://``, ``file://``) are fetched through
Spark's own file systems (``binaryFile``) and handed to the loader as a local copy.
The price is that one file must fit in one executor's memory, as data lakes cut them.

The side tables (names, HTTP/TLS details, DeviceInfo) are small: they travel back to
the driver as Arrow IPC bytes in the same pass, with warnings and errors.
"""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa

from detectors.base import schema as S
from detectors.base.errors import InputError
from detectors.pairs.population import INPUT_ROW

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

KIND = "__kind"  # null for an event row; else what BLOB holds
BLOB = "__blob"
NAMES, APP, DEVICE_INFO, WARNING, SKIPPED, ERROR = (
    "names",
    "app",
    "device_info",
    "warning",
    "skipped",
    "error",
)
FILE_BITS = 40  # INPUT_ROW = file number << 40 | row in the file (as partitions on disk)

_ARROW_TYPES: dict[type, pa.DataType] = {
    pl.Datetime: pa.timestamp("us", tz="UTC"),
    pl.String: pa.string(),
    pl.Int32: pa.int32(),
    pl.Int64: pa.int64(),
}


def arrow_schema() -> pa.Schema:
    """The rows the read stage emits: canonical columns, input position, side payload."""
    fields = [pa.field(name, _ARROW_TYPES[type(dtype)]) for name, dtype in S.EVENT_SCHEMA.items()]
    fields += [
        pa.field(INPUT_ROW, pa.int64()),
        pa.field(KIND, pa.string()),
        pa.field(BLOB, pa.binary()),
    ]
    return pa.schema(fields)


def spark_schema() -> Any:
    """``arrow_schema`` as a Spark StructType."""
    from pyspark.sql.types import (
        BinaryType,
        IntegerType,
        LongType,
        StringType,
        StructField,
        StructType,
        TimestampType,
    )

    types = {
        pa.timestamp("us", tz="UTC"): TimestampType(),
        pa.string(): StringType(),
        pa.int32(): IntegerType(),
        pa.int64(): LongType(),
        pa.binary(): BinaryType(),
    }
    return StructType([StructField(f.name, types[f.type], True) for f in arrow_schema()])


def is_uri(path: str) -> bool:
    return "://" in path


def frame_bytes(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_ipc(buffer)
    return buffer.getvalue()


def frame_of(blob: bytes) -> pl.DataFrame:
    return pl.read_ipc(io.BytesIO(blob))


# --- inside an executor -------------------------------------------------------------------


def _side_row(number: int, kind: str, blob: bytes) -> dict[str, Any]:
    return {INPUT_ROW: number << FILE_BITS, KIND: kind, BLOB: blob}


def _error_blob(exc: InputError, shown: str) -> bytes:
    return json.dumps(
        {
            "message": exc.message,
            "file": shown if exc.file else None,
            "row": exc.row,
            "line": exc.line,
            "field": exc.field,
        }
    ).encode()


def load_one(
    number: int,
    shown: str,
    listed: bool,
    content: bytes | None,
    source_format: str | None,
    mapping: Mapping[str, str] | None,
) -> Iterator[pa.RecordBatch]:
    """One file through the local loader, as Arrow batches of ``arrow_schema``."""
    from detectors.load import format_of, load_file
    from detectors.load.common import reading

    schema = arrow_schema()
    with tempfile.TemporaryDirectory(prefix="beacon-spark-") as scratch:
        path = Path(shown)
        if content is not None:  # fetched by Spark: the loader reads a local copy
            path = Path(scratch) / (Path(shown).name or "input")
            path.write_bytes(content)
        side: list[dict[str, Any]] = []
        try:
            with reading(path):
                fmt = format_of(path, source_format, mapping)
            loaded = load_file(path, fmt, mapping)
        except InputError as exc:
            if listed:  # a stray file in a listed folder: skipped, as a local run does
                side.append(_side_row(number, SKIPPED, f"{shown}: skipped: {exc.message}".encode()))
                side.append(_side_row(number, ERROR, _error_blob(exc, shown)))
            else:
                side.append(_side_row(number, ERROR, _error_blob(exc, shown)))
            yield pa.RecordBatch.from_pylist(side, schema=schema)
            return
        side += [_side_row(number, WARNING, f"{shown}: {w}".encode()) for w in loaded.warnings]
        for kind, frame in ((NAMES, loaded.names), (APP, loaded.app)):
            if frame is not None and frame.height:
                side.append(_side_row(number, kind, frame_bytes(frame)))
        if loaded.device_info is not None:
            side.append(_side_row(number, DEVICE_INFO, frame_bytes(loaded.device_info)))
        yield pa.RecordBatch.from_pylist(side, schema=schema)
        events = loaded.events
        if events is None or events.height == 0:
            return
        rows = pl.int_range(pl.len(), dtype=pl.Int64) + (number << FILE_BITS)
        shaped = events.with_columns(
            pl.lit(shown, pl.String).alias(S.SOURCE_FILE),
            rows.alias(INPUT_ROW),
            pl.lit(None, pl.String).alias(KIND),
            pl.lit(None, pl.Binary).alias(BLOB),
        )
        table = shaped.to_arrow().cast(schema)
        yield from table.to_batches(max_chunksize=65_536)


def load_partition(
    batches: Iterator[pa.RecordBatch],
    source_format: str | None,
    mapping: Mapping[str, str] | None,
) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` body: every file row of the partition through ``load_one``."""
    for batch in batches:
        for row in batch.to_pylist():
            yield from load_one(
                row["number"],
                row["path"],
                row["listed"],
                row["content"],
                source_format,
                mapping,
            )


# --- on the driver ------------------------------------------------------------------------


@dataclass
class SparkInput:
    """The canonical events in Spark (persisted), and the side tables on the driver."""

    events: DataFrame
    names: pl.DataFrame
    app: pl.DataFrame
    device_info: pl.DataFrame | None
    files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _file_rows(spark: SparkSession, paths: Sequence[str]) -> tuple[DataFrame, list[str]]:
    """(number, path, listed, content) per input file, in the order a local run reads,
    and the paths by number."""
    from pyspark.sql import functions as F

    from detectors.load import _expand

    local = [p for p in paths if not is_uri(p)]
    remote = [p for p in paths if is_uri(p)]
    rows: list[tuple[str, bool]] = [(str(p), listed) for p, listed in _expand(local)]
    fetched = None
    if remote:
        reader = spark.read.format("binaryFile").option("recursiveFileLookup", "true")
        fetched = reader.load(remote)
        found = sorted(r.path for r in fetched.select("path").collect())
        if not found:
            raise InputError("no files found", file=", ".join(remote))
        rows += [(uri, True) for uri in found]
    numbered = spark.createDataFrame(
        [(i, p, listed) for i, (p, listed) in enumerate(rows)],
        "number long, path string, listed boolean",
    )
    if fetched is None:
        with_content = numbered.withColumn("content", F.lit(None).cast("binary"))
    else:
        with_content = numbered.join(fetched.select("path", "content"), "path", "left")
    files = with_content.select("number", "path", "listed", "content")
    return files.repartition(max(1, len(rows)), "number"), [p for p, _ in rows]


def _concat(frames: list[pl.DataFrame], schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    return pl.concat(frames, how="vertical") if frames else pl.DataFrame(schema=dict(schema))


def read_inputs(
    spark: SparkSession,
    paths: Sequence[str],
    source_format: str | None = None,
    mapping: Mapping[str, str] | None = None,
) -> SparkInput:
    """Load ``paths`` in Spark (see the module docstring); raise the first file's error."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from detectors.load.sniff import SOURCE_FORMATS

    if source_format is not None and source_format not in SOURCE_FORMATS:
        raise InputError(
            f"unknown source format '{source_format}'; choose one of: " + ", ".join(SOURCE_FORMATS),
            field="source-format",
        )
    if not paths:
        raise InputError("no input files given")
    files, listed = _file_rows(spark, paths)
    mapping = dict(mapping or {})
    rows = files.mapInArrow(
        lambda batches: load_partition(batches, source_format, mapping), spark_schema()
    ).persist(StorageLevel.MEMORY_AND_DISK)
    side = rows.filter(F.col(KIND).isNotNull()).select(INPUT_ROW, KIND, BLOB).collect()
    side = sorted(side, key=lambda r: r[INPUT_ROW])
    by_kind: dict[str, list[Any]] = {}
    for row in side:
        by_kind.setdefault(row[KIND], []).append(row)
    errors = by_kind.get(ERROR, [])
    skipped_numbers = {r[INPUT_ROW] for r in by_kind.get(SKIPPED, [])}
    fatal = [r for r in errors if r[INPUT_ROW] not in skipped_numbers]
    used = [p for n, p in enumerate(listed) if n << FILE_BITS not in skipped_numbers]
    if fatal or (errors and not used):
        rows.unpersist()
        first = json.loads(bytes((fatal or errors)[0][BLOB]))
        raise InputError(
            first["message"],
            file=first["file"],
            row=first["row"],
            line=first["line"],
            field=first["field"],
        )
    warnings = [bytes(r[BLOB]).decode() for r in side if r[KIND] in (WARNING, SKIPPED)]
    names = _concat([frame_of(bytes(r[BLOB])) for r in by_kind.get(NAMES, [])], S.NAMES_SCHEMA)
    app = _concat([frame_of(bytes(r[BLOB])) for r in by_kind.get(APP, [])], S.APP_SCHEMA)
    infos = [frame_of(bytes(r[BLOB])) for r in by_kind.get(DEVICE_INFO, [])]
    events = rows.filter(F.col(KIND).isNull()).drop(KIND, BLOB)
    return SparkInput(
        events=events,
        names=names.unique(maintain_order=True),
        app=app,
        device_info=pl.concat(infos, how="vertical") if infos else None,
        files=used,
        warnings=warnings,
    )


def collect_events(frame: DataFrame) -> pl.DataFrame:
    """Spark rows of canonical events (plus INPUT_ROW) as a polars frame, input order."""
    table = frame.toArrow()
    collected = pl.from_arrow(table)
    assert isinstance(collected, pl.DataFrame)
    return conform_events(collected)


def conform_events(frame: pl.DataFrame) -> pl.DataFrame:
    """Canonical dtypes back (Spark may hand a timestamp's zone as another spelling)."""
    casts = [pl.col(n).cast(t) for n, t in S.EVENT_SCHEMA.items()]
    keep = [INPUT_ROW] if INPUT_ROW in frame.columns else []
    return frame.select(*casts, *keep).sort(INPUT_ROW) if keep else frame.select(casts)
