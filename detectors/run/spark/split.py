"""Cut one large input file into pieces that Spark tasks read side by side.

The read stage runs the local loader on whatever a task is handed, so a piece must be a
file that loader reads exactly as it would read its part of the whole: the same rows,
in the same order. Hence:

* Parquet: whole row groups (from the footer's metadata), grouped until they hold
  ``split_bytes`` of compressed data; a piece is those row groups written as a file.
* Text (Defender CSV, mapped CSV, JSON Lines, Zeek TSV/JSON, ECS NDJSON): byte ranges
  of equal length, at most about ``split_bytes``, each starting at the beginning of a
  line, with the header the loader needs carried in front: the CSV header row, or the
  Zeek ``#`` lines in force where the range starts (a log whose ``#fields`` change part
  way carries the later header to the ranges after the change; ``#close`` lines are not
  carried).
* A CSV range may only start where no quoted field is open: a quoted field may hold a
  newline (RFC 4180), so the range is moved on to the first line start with an even
  count of quotes before it. A file whose quotes do not pair up (a stray ``"``) is read
  as one piece, with a note.
* gzip, one-document JSON (API exports), EVTX, DeviceInfo and files up to
  ``split_bytes`` stay whole.

Cutting happens on the driver, which needs the file (a local path or a file system every
node mounts); URIs fetched through Spark are read whole. Choosing text ranges reads the
file once on the driver, at counting speed (``bytes.count``), for CSV and Zeek TSV only.
"""

from __future__ import annotations

import itertools
import mmap
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from detectors.load.sniff import (
    CSV_MAPPED,
    ECS,
    MDE_CSV,
    MDE_JSONL,
    MDE_PARQUET,
    ZEEK_JSON,
    ZEEK_TSV,
)
from detectors.load.text import GZIP_MAGIC

# Spark's own setting for how much of a file one read task takes; its default, 128 MiB.
SPLIT_CONF = "spark.sql.files.maxPartitionBytes"
DEFAULT_SPLIT_BYTES = 128 << 20
PARQUET, TEXT = "parquet", "text"
_CSV = (MDE_CSV, CSV_MAPPED)
_LINES = (*_CSV, MDE_JSONL, ZEEK_TSV, ZEEK_JSON, ECS)
_COUNT_BYTES = 16 << 20
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


@dataclass(frozen=True)
class Piece:
    """Part of a file: bytes ``[start, stop)`` (TEXT) or row groups ``[start, stop)``
    (PARQUET), with ``head`` (the header lines) written in front of a text range."""

    kind: str
    start: int
    stop: int
    head: bytes = b""


def split_bytes_of(value: str | None) -> int:
    """A Spark size setting (``134217728``, ``128m``, ``64MB``, ``1g``) in bytes."""
    if value is None or not value.strip():
        return DEFAULT_SPLIT_BYTES
    found = re.fullmatch(r"\s*(\d+)\s*([kmgt]?)i?b?\s*", value.lower())
    if not found or int(found.group(1)) <= 0:
        raise ValueError(f"{SPLIT_CONF}={value!r}: expected a size such as 128m")
    return int(found.group(1)) * _UNITS[found.group(2)]


def pieces(path: Path, fmt: str, split_bytes: int) -> tuple[list[Piece], str | None]:
    """How to read ``path`` (of format ``fmt``): more than one piece, or [] for whole;
    and a note when a file that could have been cut was not."""
    try:
        size = path.stat().st_size
    except OSError:
        return [], None  # the read says what is wrong with it
    if size <= split_bytes:
        return [], None
    if fmt == MDE_PARQUET:
        return _row_groups(path, split_bytes), None
    if fmt not in _LINES:
        return [], None
    with path.open("rb") as handle:
        if handle.read(2) == GZIP_MAGIC or size == 0:
            return [], None
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            if fmt in _CSV:
                return _csv_ranges(data, split_bytes, path)
            if fmt == ZEEK_TSV:
                return _zeek_ranges(data, split_bytes), None
            return _ranges(data, _line_starts(data, split_bytes), lambda _: b""), None


def _row_groups(path: Path, split_bytes: int) -> list[Piece]:
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    cuts, held = [0], 0
    for index in range(meta.num_row_groups):
        group = meta.row_group(index)
        held += sum(group.column(c).total_compressed_size for c in range(group.num_columns))
        if held >= split_bytes and index + 1 < meta.num_row_groups:
            cuts.append(index + 1)
            held = 0
    cuts.append(meta.num_row_groups)
    found = [Piece(PARQUET, a, b) for a, b in itertools.pairwise(cuts) if b > a]
    return found if len(found) > 1 else []


def _next_line(data: mmap.mmap, at: int) -> int:
    """The first line start at or after ``at`` (the file's length when none)."""
    if at <= 0:
        return 0
    if data[at - 1 : at] == b"\n":
        return at
    newline = data.find(b"\n", at)
    return len(data) if newline < 0 else newline + 1


def _step(size: int, split_bytes: int) -> int:
    """Equal ranges of at most about ``split_bytes``: a file of 2.1 splits is 3 thirds,
    not two whole splits and a sliver."""
    return -(-size // -(-size // split_bytes))


def _line_starts(data: mmap.mmap, split_bytes: int) -> list[int]:
    """Range starts: ranges of equal length (``_step``), each at a line start, ascending."""
    starts = [0]
    step = _step(len(data), split_bytes)
    for nominal in range(step, len(data), step):
        at = _next_line(data, max(nominal, starts[-1] + 1))
        if at < len(data) and at > starts[-1]:
            starts.append(at)
    return starts


def _ranges(data: mmap.mmap, starts: list[int], head_at: Callable[[int], bytes]) -> list[Piece]:
    if len(starts) < 2:
        return []
    ends = [*starts[1:], len(data)]
    return [
        Piece(TEXT, a, b, b"" if a == 0 else head_at(a)) for a, b in zip(starts, ends, strict=True)
    ]


def _csv_ranges(data: mmap.mmap, split_bytes: int, path: Path) -> tuple[list[Piece], str | None]:
    newline = data.find(b"\n")
    if newline < 0:
        return [], None
    header = data[: newline + 1]
    if header.count(b'"') % 2:
        return [], f"{path}: read in one task: its header row has an unpaired quote"
    starts = [0]
    quotes, counted = 0, 0  # quotes in data[:counted]
    step = _step(len(data), split_bytes)
    for nominal in range(step, len(data), step):
        at = _next_line(data, max(nominal, starts[-1] + 1))
        while at < len(data):
            quotes += _quotes(data, counted, at)
            counted = at
            if quotes % 2 == 0:
                break
            at = _next_line(data, at + 1)  # inside a quoted field: the next line start
        if at < len(data) and at > starts[-1]:
            starts.append(at)
    quotes += _quotes(data, counted, len(data))
    if quotes % 2:
        note = f"{path}: read in one task: its quotes do not pair up, so lines cannot be told apart"
        return [], note
    return _ranges(data, starts, lambda _: header), None


def _quotes(data: mmap.mmap, start: int, stop: int) -> int:
    """``"`` characters in ``data[start:stop]``, counted a slice at a time (a slice of an
    mmap is a copy: 16 MiB at most is held)."""
    return sum(
        data[at : min(at + _COUNT_BYTES, stop)].count(b'"')
        for at in range(start, stop, _COUNT_BYTES)
    )


def _comment_blocks(data: mmap.mmap) -> list[tuple[int, int]]:
    """(start, stop) of every run of ``#`` lines, in file order."""
    blocks: list[tuple[int, int]] = []
    found = -1 if data[:1] == b"#" else data.find(b"\n#")
    at = None if found < 0 and data[:1] != b"#" else found + 1
    while at is not None and at < len(data):
        stop = at
        while stop < len(data) and data[stop : stop + 1] == b"#":
            newline = data.find(b"\n", stop)
            stop = len(data) if newline < 0 else newline + 1
        blocks.append((at, stop))
        found = data.find(b"\n#", stop)
        at = None if found < 0 else found + 1
    return blocks


def _zeek_ranges(data: mmap.mmap, split_bytes: int) -> list[Piece]:
    blocks = _comment_blocks(data)
    if not blocks or blocks[0][0] != 0:
        return []  # no header first: the read reports it, whole
    starts: list[int] = []
    for at in _line_starts(data, split_bytes):
        inside = next((stop for start, stop in blocks if start <= at < stop), None)
        at = at if inside is None or at == 0 else inside  # a range starts on a record
        if at < len(data) and (not starts or at > starts[-1]):
            starts.append(at)

    def header_at(at: int) -> bytes:
        start, stop = max(((a, b) for a, b in blocks if b <= at), default=blocks[0])
        lines = data[start:stop].splitlines(keepends=True)
        return b"".join(line for line in lines if not line.startswith(b"#close"))

    return _ranges(data, starts, header_at)


def piece_bytes(path: Path, piece: Piece) -> bytes:
    """The file a task hands the loader for ``piece`` (executor side)."""
    if piece.kind == PARQUET:
        import io

        import pyarrow.parquet as pq

        table = pq.ParquetFile(path).read_row_groups(list(range(piece.start, piece.stop)))
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        return buffer.getvalue()
    with path.open("rb") as handle:
        handle.seek(piece.start)
        return piece.head + handle.read(piece.stop - piece.start)


def prefix_bytes(path: Path, piece: Piece) -> bytes:
    """The file from its start to the end of ``piece``: read when a piece fails, so the
    error names the row and line of the whole file, as an uncut read would."""
    if piece.kind == PARQUET:
        return piece_bytes(path, Piece(PARQUET, 0, piece.stop))
    with path.open("rb") as handle:
        return handle.read(piece.stop)
