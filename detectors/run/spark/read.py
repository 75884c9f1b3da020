"""Input files to canonical events as a Spark DataFrame, read by the local loaders.

Each file is read inside an executor by the very loader a local run uses
(``detectors.load.load_file``: sniffing, timestamp parsing, IP normalising, the
canonical columns), so the two engines cannot map a format differently. Plain paths are
opened by the executor (local mode, or a file system every node mounts), a file larger
than ``spark.sql.files.maxPartitionBytes`` in pieces read side by side (``split``),
numbered as one file's rows; URIs (``s3a://``, ``abfss://``, ``hdfs://``, ``file://``)
are passed to Spark as written, fetched through its own file systems (``binaryFile``)
and handed to the loader whole, as a local copy.

The side tables (names, HTTP/TLS details, DeviceInfo) are small: they travel back to
the driver as Arrow IPC bytes in the same pass, with warnings and errors.
"""

from __future__ import annotations

import io
import json
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa

from detectors.base import schema as S
from detectors.base.errors import InputError
from detectors.load.common import LoadedFile
from detectors.pairs.population import INPUT_ROW
from detectors.run.spark.split import (
    SPLIT_CONF,
    Piece,
    piece_bytes,
    pieces,
    prefix_bytes,
    split_bytes_of,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

KIND = "__kind"  # null for an event row; else what BLOB holds
BLOB = "__blob"
NAMES, APP, DEVICE_INFO, WARNING, SKIPPED, ERROR, COUNT = (
    "names",
    "app",
    "device_info",
    "warning",
    "skipped",
    "error",
    "count",  # a piece's events, to number a cut file's rows as one file's
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


def _side_row(task: int, kind: str, blob: bytes) -> dict[str, Any]:
    return {INPUT_ROW: task << FILE_BITS, KIND: kind, BLOB: blob}


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


@dataclass(frozen=True)
class Task:
    """One read task: a whole file, or a piece of one (``split``)."""

    task: int  # position in the read order (INPUT_ROW's high bits until renumbered)
    file: int  # the file's number
    shown: str  # its path or URI as the user named it
    listed: bool  # found by listing a folder (a bad one is skipped, not fatal)
    content: bytes | None = None  # fetched by Spark
    piece: Piece | None = None
    fmt: str | None = None  # the piece's format, sniffed on the driver from the whole file


def _loaded(
    task: Task, scratch: str, source_format: str | None, mapping: Mapping[str, str] | None
) -> LoadedFile:
    """The task's file through the local loader (a piece or a fetched file as a copy)."""
    from detectors.load import format_of, load_file
    from detectors.load.common import reading

    path = Path(task.shown)
    content = task.content
    if task.piece is not None:
        content = piece_bytes(path, task.piece)
    if content is not None:  # the loader reads a local copy, under the same name
        path = Path(scratch) / (Path(task.shown).name or "input")
        path.write_bytes(content)
    forced = task.fmt or source_format
    try:
        with reading(path):
            fmt = format_of(path, forced, mapping)
        return load_file(path, fmt, mapping)
    except InputError:
        if task.piece is None or task.piece.start == 0:
            raise
        # name the row and line of the whole file: read it up to this piece's end
        path.write_bytes(prefix_bytes(Path(task.shown), task.piece))
        load_file(path, forced, mapping)
        raise


def load_one(
    task: Task, source_format: str | None, mapping: Mapping[str, str] | None
) -> Iterator[pa.RecordBatch]:
    """One task's file (or piece) through the local loader, as Arrow batches of
    ``arrow_schema``; side rows first, then the events."""
    schema = arrow_schema()
    number, shown = task.task, task.shown
    with tempfile.TemporaryDirectory(prefix="beacon-spark-") as scratch:
        side: list[dict[str, Any]] = []
        try:
            loaded = _loaded(task, scratch, source_format, mapping)
        except InputError as exc:
            if task.listed:  # a stray file in a listed folder: skipped, as a local run does
                side.append(_side_row(number, SKIPPED, f"{shown}: skipped: {exc.message}".encode()))
            side.append(_side_row(number, ERROR, _error_blob(exc, shown)))
            yield pa.RecordBatch.from_pylist(side, schema=schema)
            return
        side += [
            _side_row(number, WARNING, f"{shown}: {w.replace(scratch_path, shown)}".encode())
            for w in loaded.warnings
            for scratch_path in [str(Path(scratch) / (Path(shown).name or "input"))]
        ]
        for kind, frame in ((NAMES, loaded.names), (APP, loaded.app)):
            if frame is not None and frame.height:
                side.append(_side_row(number, kind, frame_bytes(frame)))
        if loaded.device_info is not None:
            side.append(_side_row(number, DEVICE_INFO, frame_bytes(loaded.device_info)))
        events = loaded.events
        height = 0 if events is None else events.height
        if task.piece is not None:
            side.append(_side_row(number, COUNT, str(height).encode()))
        yield pa.RecordBatch.from_pylist(side, schema=schema)
        if events is None or height == 0:
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


def _task_of(row: Mapping[str, Any]) -> Task:
    piece = None
    if row["kind"]:
        piece = Piece(row["kind"], row["start"], row["stop"], row["head"] or b"")
    return Task(
        row["task"], row["file"], row["path"], row["listed"], row["content"], piece, row["fmt"]
    )


def load_partition(
    batches: Iterator[pa.RecordBatch],
    source_format: str | None,
    mapping: Mapping[str, str] | None,
) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` body: every task row of the partition through ``load_one``."""
    for batch in batches:
        for row in batch.to_pylist():
            yield from load_one(_task_of(row), source_format, mapping)


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
    tasks: int = 0  # read tasks (more than files when large files were cut)
    cached: DataFrame | None = None  # what Spark holds for ``events`` (the read's rows)

    def release(self) -> None:
        """Let Spark drop the cached rows."""
        (self.cached if self.cached is not None else self.events).unpersist()


_TASK_SCHEMA = (
    "task long, file long, path string, listed boolean, kind string, start long, stop long, "
    "head binary, fmt string"
)


def split_bytes_for(spark: SparkSession) -> int:
    """``spark.sql.files.maxPartitionBytes`` (default 128 MiB): bytes of a file per task."""
    try:
        return split_bytes_of(spark.conf.get(SPLIT_CONF, None))
    except ValueError as exc:
        raise InputError(str(exc), field=SPLIT_CONF) from None


def _cut(
    files: list[tuple[str, bool]],
    split_bytes: int,
    source_format: str | None,
    mapping: Mapping[str, str] | None,
) -> tuple[list[Task], list[str]]:
    """Tasks for local files, large ones cut into pieces (``split``); notes on files
    that could not be cut."""
    from detectors.load import format_of

    tasks: list[Task] = []
    notes: list[str] = []
    for number, (shown, listed) in enumerate(files):
        found: list[Piece | None] = []
        fmt = None
        path = Path(shown)
        if not is_uri(shown) and path.is_file() and path.stat().st_size > split_bytes:
            try:
                fmt = format_of(path, source_format, mapping)
                cut, note = pieces(path, fmt, split_bytes)
                found = list(cut)
            except (InputError, OSError, ValueError):
                note = None  # the whole-file read reports what is wrong
            notes += [note] if note else []
        for piece in found or [None]:
            tasks.append(
                Task(len(tasks), number, shown, listed, None, piece, fmt if piece else None)
            )
    return tasks, notes


def _task_rows(
    spark: SparkSession,
    paths: Sequence[str],
    split_bytes: int,
    source_format: str | None,
    mapping: Mapping[str, str] | None,
) -> tuple[DataFrame, list[Task], list[str], list[str]]:
    """One row per read task, in the order a local run reads; the tasks; the paths by
    file number; notes on files left whole."""
    from pyspark.sql import functions as F

    from detectors.load import _expand

    local = [p for p in paths if not is_uri(p)]
    remote = [p for p in paths if is_uri(p)]
    files: list[tuple[str, bool]] = [(str(p), listed) for p, listed in _expand(local)]
    fetched = None
    if remote:
        check_schemes(spark, remote)
        reader = spark.read.format("binaryFile").option("recursiveFileLookup", "true")
        try:
            fetched = reader.load(remote)
            found = sorted(r.path for r in fetched.select("path").collect())
        except Exception as exc:  # a JVM error: one line naming the URI, or on to Spark's
            missing = _missing_path(str(exc))
            if missing is None:
                raise
            raise InputError("no such file or folder", file=missing) from None
        if not found:
            raise InputError("no files found", file=", ".join(remote))
        files += [(uri, True) for uri in found]
    tasks, notes = _cut(files, split_bytes, source_format, mapping)
    listed = spark.createDataFrame(
        [
            (
                t.task,
                t.file,
                t.shown,
                t.listed,
                *((t.piece.kind, t.piece.start, t.piece.stop, t.piece.head) if t.piece else _WHOLE),
                t.fmt,
            )
            for t in tasks
        ],
        _TASK_SCHEMA,
    )
    if fetched is None:
        with_content = listed.withColumn("content", F.lit(None).cast("binary"))
    else:
        with_content = listed.join(fetched.select("path", "content"), "path", "left")
    rows = with_content.select(
        "task", "file", "path", "listed", "content", "kind", "start", "stop", "head", "fmt"
    )
    return rows.repartition(max(1, len(tasks)), "task"), tasks, [p for p, _ in files], notes


_WHOLE = (None, None, None, None)

# Where a scheme's Hadoop file system comes from, for the hint in the error.
_CONNECTORS = {
    "s3a": "org.apache.hadoop:hadoop-aws:{hadoop}",
    "abfs": "org.apache.hadoop:hadoop-azure:{hadoop}",
    "abfss": "org.apache.hadoop:hadoop-azure:{hadoop}",
    "wasb": "org.apache.hadoop:hadoop-azure:{hadoop}",
    "wasbs": "org.apache.hadoop:hadoop-azure:{hadoop}",
    "gs": "com.google.cloud.bigdataoss:gcs-connector:hadoop3-<version>",
}


def scheme_of(uri: str) -> str:
    return uri.partition("://")[0].lower()


def check_schemes(spark: SparkSession, uris: Sequence[str]) -> None:
    """Each URI's scheme has a Hadoop file system in this Spark, or a one-line error
    naming the first such URI and the package to add. Asks the JVM which class serves the
    scheme: no connection is made, so a missing connector is told from a missing bucket."""
    try:
        jvm: Any = spark.sparkContext._jvm
        hadoop_conf = spark.sparkContext._jsc.hadoopConfiguration()
        file_system = jvm.org.apache.hadoop.fs.FileSystem
        hadoop = jvm.org.apache.hadoop.util.VersionInfo.getVersion()
    except Exception:  # not a classic session (Spark Connect): Spark's own error then
        return
    seen: set[str] = set()
    for uri in uris:
        scheme = scheme_of(uri)
        if scheme in seen:
            continue
        seen.add(scheme)
        try:
            file_system.getFileSystemClass(scheme, hadoop_conf)
        except Exception as exc:
            text = str(exc)
            if "ClassNotFoundException" not in text and "No FileSystem for scheme" not in text:
                raise
            package = _CONNECTORS.get(scheme, "").format(hadoop=hadoop) or "its connector"
            raise InputError(
                f"Spark has no filesystem for scheme {scheme} "
                f"(add {package} to --spark-conf spark.jars.packages)",
                file=uri,
            ) from None


_NOT_FOUND = re.compile(r"Path does not exist: (\S+?)\.?(?:\s|$)")


def _missing_path(text: str) -> str | None:
    found = _NOT_FOUND.search(text)
    return found.group(1) if found else None


def _concat(frames: list[pl.DataFrame], schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    return pl.concat(frames, how="vertical") if frames else pl.DataFrame(schema=dict(schema))


_COUNTED = re.compile(r"^(.*?: )(\d+) (.*)$", re.DOTALL)


def merge_counts(warnings: Sequence[str]) -> list[str]:
    """The pieces' warnings of one file as the whole file's: "N rows ..." lines that say
    the same thing are one line with the sum (first-seen order); others once each."""
    merged: dict[tuple[str, str], int] = {}
    plain: dict[str, None] = {}
    order: list[tuple[str, str] | str] = []
    for warning in warnings:
        found = _COUNTED.match(warning)
        if found is None:
            if warning not in plain:
                plain[warning] = None
                order.append(warning)
            continue
        key = (found.group(1), found.group(3))
        if key not in merged:
            merged[key] = 0
            order.append(key)
        merged[key] += int(found.group(2))
    return [w if isinstance(w, str) else f"{w[0]}{merged[w]} {w[1]}" for w in order]


def _renumbered(rows: DataFrame, tasks: Sequence[Task], counts: Mapping[int, int]) -> DataFrame:
    """Events of cut files numbered as an uncut read numbers them (file << 40 | row in
    the file): each piece's rows move by the events of the pieces before it. Events of
    tasks not in ``counts`` (files skipped) are dropped."""
    from pyspark.sql import functions as F

    shifts: list[tuple[int, int]] = []
    before: dict[int, int] = {}
    for task in tasks:
        if task.task not in counts:
            continue
        held = before.get(task.file, 0)
        shifts.append((task.task, ((task.file << FILE_BITS) + held) - (task.task << FILE_BITS)))
        before[task.file] = held + counts[task.task]
    table = rows.sparkSession.createDataFrame(shifts, "__task long, __shift long")
    keyed = rows.withColumn("__task", F.shiftright(F.col(INPUT_ROW), FILE_BITS))
    joined = keyed.join(F.broadcast(table), "__task", "inner")
    return joined.withColumn(INPUT_ROW, F.col(INPUT_ROW) + F.col("__shift")).drop(
        "__task", "__shift"
    )


def read_inputs(
    spark: SparkSession,
    paths: Sequence[str],
    source_format: str | None = None,
    mapping: Mapping[str, str] | None = None,
    split_bytes: int | None = None,
) -> SparkInput:
    """Load ``paths`` in Spark (see the module docstring); raise the first file's error.

    ``split_bytes``: a file larger than this is read by several tasks (``split``);
    default ``spark.sql.files.maxPartitionBytes`` (128 MiB unless set).
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from detectors.load import check_request

    check_request(paths, source_format)
    cut_at = split_bytes if split_bytes is not None else split_bytes_for(spark)
    mapping = dict(mapping or {})
    files, tasks, listed, notes = _task_rows(spark, paths, cut_at, source_format, mapping)
    rows = files.mapInArrow(
        lambda batches: load_partition(batches, source_format, mapping), spark_schema()
    ).persist(StorageLevel.MEMORY_AND_DISK)
    side = rows.filter(F.col(KIND).isNotNull()).select(INPUT_ROW, KIND, BLOB).collect()
    side = sorted(side, key=lambda r: r[INPUT_ROW])
    file_of = {t.task: t.file for t in tasks}
    errors: dict[int, Any] = {}  # file number -> its first error
    for row in side:
        if row[KIND] == ERROR:
            errors.setdefault(file_of[row[INPUT_ROW] >> FILE_BITS], row)
    by_file = {t.file: t for t in tasks}
    fatal = [row for number, row in errors.items() if not by_file[number].listed]
    used = [p for n, p in enumerate(listed) if n not in errors]
    if fatal or (errors and not used):
        rows.unpersist()
        first = json.loads(bytes((fatal or list(errors.values()))[0][BLOB]))
        raise InputError(
            first["message"],
            file=first["file"],
            row=first["row"],
            line=first["line"],
            field=first["field"],
        )
    kept = [r for r in side if file_of[r[INPUT_ROW] >> FILE_BITS] not in errors]
    by_kind: dict[str, list[Any]] = {}
    for row in kept:
        by_kind.setdefault(row[KIND], []).append(row)
    warnings = _warnings(side, kept, tasks, file_of)
    names = _concat([frame_of(bytes(r[BLOB])) for r in by_kind.get(NAMES, [])], S.NAMES_SCHEMA)
    app = _concat([frame_of(bytes(r[BLOB])) for r in by_kind.get(APP, [])], S.APP_SCHEMA)
    infos = [frame_of(bytes(r[BLOB])) for r in by_kind.get(DEVICE_INFO, [])]
    events = rows.filter(F.col(KIND).isNull()).drop(KIND, BLOB)
    if len(tasks) > len(listed):  # some files were cut: number their rows as one file
        counts = {r[INPUT_ROW] >> FILE_BITS: int(bytes(r[BLOB])) for r in by_kind.get(COUNT, [])}
        counts.update({t.task: 0 for t in tasks if t.piece is None and t.file not in errors})
        # a broadcast join over the cached rows, each time they are read: a small map-side
        # step, cheaper than caching a renumbered copy (which cost a pass and the memory)
        events = _renumbered(events, tasks, counts)
    return SparkInput(
        events=events,
        names=names.unique(maintain_order=True),
        app=app,
        device_info=pl.concat(infos, how="vertical") if infos else None,
        files=used,
        warnings=[*notes, *warnings],
        tasks=len(tasks),
        cached=rows,
    )


def _warnings(
    side: Sequence[Any], kept: Sequence[Any], tasks: Sequence[Task], file_of: Mapping[int, int]
) -> list[str]:
    """Warnings of the files read, a cut file's pieces' as one file's; one skip line
    per skipped file."""
    cut = {t.file for t in tasks if t.piece is not None}
    lines: list[str | int] = []  # an int: where that cut file's merged warnings go
    skipped: set[int] = set()
    pieces_of: dict[int, list[str]] = {}
    for row in side:
        number = file_of[row[INPUT_ROW] >> FILE_BITS]
        if row[KIND] == SKIPPED and number not in skipped:
            skipped.add(number)
            lines.append(bytes(row[BLOB]).decode())
    for row in kept:
        if row[KIND] != WARNING:
            continue
        number = file_of[row[INPUT_ROW] >> FILE_BITS]
        text = bytes(row[BLOB]).decode()
        if number not in cut:
            lines.append(text)
        elif number not in pieces_of:
            pieces_of[number] = [text]
            lines.append(number)
        else:
            pieces_of[number].append(text)
    merged: list[str] = []
    for line in lines:
        merged += [line] if isinstance(line, str) else merge_counts(pieces_of[line])
    return merged


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
