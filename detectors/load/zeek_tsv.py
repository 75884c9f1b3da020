"""Zeek's TSV layout: the ``#`` header lines, then records read by polars with that header.

The header says everything needed to read the records: ``#separator`` (written as an
escape such as ``\\x09``; any single character works), ``#set_separator``,
``#empty_field`` and ``#unset_field`` (both read as null), ``#path`` (which log this
is) and ``#fields`` (column names). ``#types`` is not needed and never read: a site's
own fields may have any Zeek type (``int64``, ``vector[string]``, ``set[addr]``,
``table[...]``) and only the fields the loader uses are kept, by name, so their order
does not matter either. Comment lines anywhere, including the ``#close`` footer, are
skipped; quotes mean nothing in Zeek TSV, so quoting is off.

Logs concatenated into one file (``cat conn.*.log > all.log``) repeat the header; when
the repeated ``#fields`` lines differ, each part is read with its own header.
"""

from __future__ import annotations

import gzip
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from detectors.base.errors import InputError
from detectors.load.common import RawTable, polars_source, reading
from detectors.load.tables import line_of_record
from detectors.load.text import is_gzip, open_text

SOURCE_PATH = "__source_path"  # the file each row came from, in a scan of many files
_CHUNK = 16 << 20
_JOIN_LIMIT = 512 << 20  # bytes of joined text a batch may hold in memory
_FIELDS = b"\n#fields"


@dataclass
class ZeekHeader:
    """The ``#`` lines at the top of a Zeek TSV log."""

    separator: str = "\t"
    set_separator: str = ","
    empty_field: str = "(empty)"
    unset_field: str = "-"
    path: str | None = None
    fields: list[str] = field(default_factory=list)
    lines: int = 0  # how many header lines precede the first record

    def signature(self) -> tuple[object, ...]:
        """Files whose headers agree on this can be read in one scan."""
        return (self.separator, self.empty_field, self.unset_field, tuple(self.fields))


def _unescape(value: str) -> str:
    """Zeek writes the separator as an escape such as ``\\x09``."""
    return re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), value)


def _parse_header(lines: Sequence[str], path: Path, first_line: int = 1) -> ZeekHeader:
    header = ZeekHeader()
    for line in lines:
        header.lines += 1
        line = line.rstrip("\r\n")
        if line.startswith("#separator"):
            header.separator = _unescape(line[len("#separator") :].strip())
            continue
        key, *values = line[1:].split(header.separator)
        if key == "set_separator" and values:
            header.set_separator = _unescape(values[0])
        elif key == "empty_field" and values:
            header.empty_field = values[0]
        elif key == "unset_field" and values:
            header.unset_field = values[0]
        elif key == "path" and values:
            header.path = values[0]
        elif key == "fields":
            header.fields = values
    if len(header.separator) != 1:
        raise InputError(
            f"Zeek #separator {header.separator!r} is not one character",
            file=str(path),
            line=first_line,
            field="#separator",
        )
    if not header.fields:
        raise InputError("Zeek log without a #fields header line", file=str(path), field="#fields")
    return header


def header_of(head: bytes, path: Path) -> ZeekHeader:
    """The header from a file's first bytes (``sniff.read_head``), without reopening it."""
    head = head.removeprefix(b"\xef\xbb\xbf")
    end = 0
    while head.startswith(b"#", end):  # only the header lines are decoded
        newline = head.find(b"\n", end)
        end = len(head) if newline < 0 else newline + 1
    text = head[:end].decode("utf-8", errors="replace")
    return _parse_header(text.splitlines(True), path)


def read_header(path: Path) -> ZeekHeader:
    lines = []
    with open_text(path) as handle:
        for line in handle:
            if not line.startswith("#"):
                break
            lines.append(line)
    return _parse_header(lines, path)


def repeats_other_fields(path: Path, header: ZeekHeader, whole: bytes | None = None) -> bool:
    """True when a later ``#fields`` line differs from the first (concatenated logs).

    Scans the bytes in C (no Python per line), so a big log costs a read, not a parse;
    ``whole`` is the file's content when the caller already holds all of it.
    """
    first = ("#fields" + header.separator + header.separator.join(header.fields)).encode()
    if whole is not None:
        if whole.count(b"\n#fields") + whole.startswith(b"#fields") < 2:
            return False
        return any(
            line.rstrip(b"\r") != first
            for line in whole.split(b"\n")
            if line.startswith(b"#fields")
        )
    with gzip.open(path, "rb") if is_gzip(path) else path.open("rb") as handle:
        carry = b""
        while chunk := handle.read(_CHUNK):
            data = carry + chunk
            start = data.find(_FIELDS)
            while start >= 0:
                end = data.find(b"\n", start + 1)
                if end < 0:
                    break  # the line continues in the next chunk
                if data[start + 1 : end].rstrip(b"\r") != first:
                    return True
                start = data.find(_FIELDS, end)
            carry = data[-(len(first) + 64) :] if start < 0 else data[start:]
    return False


def segments(path: Path) -> list[tuple[ZeekHeader, bytes, int]]:
    """Each header's records of a concatenated log: (header, record bytes, line offset).

    Only for the rare file whose ``#fields`` change part way; read into memory once.
    """
    parts: list[tuple[ZeekHeader, bytes, int]] = []
    head: list[str] = []
    body: list[str] = []
    header: ZeekHeader | None = None
    start = 0
    with open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if line.startswith("#"):
                if body and header is not None:
                    parts.append((header, "".join(body).encode(), start))
                    body, header = [], None
                if not line.startswith("#close"):
                    head.append(line)
                continue
            if header is None:
                header = _parse_header(head, path, number - len(head))
                head, start = [], number - 1
            body.append(line)
    if body and header is not None:
        parts.append((header, "".join(body).encode(), start))
    return parts


def _records(data: bytes) -> int:
    """Record lines in a Zeek TSV text (ending in a newline): lines less comment lines.

    Zeek writes no empty lines; a file that has some makes the batch's row count
    disagree, and the batch is then scanned file by file instead (``_joined``).
    """
    return data.count(b"\n") - data.count(b"\n#") - data.startswith(b"#")


def _joined(
    paths: list[Path],
    options: dict[str, object],
    keep: list[str],
    contents: Sequence[bytes | None] | None = None,
) -> pl.LazyFrame | None:
    """Small files' bytes joined and parsed once, each row tagged with its file.

    polars opens each file of a multi-file scan on its own (~0.25 ms a file); joining
    the (gunzipped) bytes first makes a batch of hourly logs one parse. None when the
    batch is too big to hold twice, or when the row count does not check out (a file
    polars would read differently): then the files are scanned as a list.
    """
    parts: list[bytes] = []
    counts: list[int] = []
    size = 0
    for number, path in enumerate(paths):
        held = contents[number] if contents else None
        if held is not None:
            data = held
        else:
            with gzip.open(path, "rb") if is_gzip(path) else path.open("rb") as handle:
                data = handle.read()
        if data and not data.endswith(b"\n"):
            data += b"\n"
        size += len(data)
        if size > _JOIN_LIMIT:
            return None
        parts.append(data)
        counts.append(_records(data))
    joined = io.BytesIO(b"".join(parts))
    frame = pl.scan_csv(joined, **options).select(keep).collect()  # type: ignore[arg-type]
    if frame.height != sum(counts):
        return None
    names = pl.Series(SOURCE_PATH, [str(p) for p in paths], dtype=pl.String)
    which = pl.Series(np.repeat(np.arange(len(paths), dtype=np.int64), counts))
    return frame.with_columns(names.gather(which)).lazy()


def tsv_table(
    path: Path,
    header: ZeekHeader,
    wanted: tuple[str, ...],
    sources: Sequence[Path] | io.BytesIO | None = None,
    line_offset: int = 0,
    contents: Sequence[bytes | None] | None = None,
) -> RawTable:
    """The records of ``path`` (or of every file in ``sources``, read in one scan).

    With several files, each row carries its file in ``SOURCE_PATH``; records are
    located by line only for one file (a failed batch is re-read file by file).
    """
    many = isinstance(sources, list | tuple)
    source: list[str] | io.BytesIO | Path = path
    if sources is None:
        source = polars_source(path)  # a file name that is not UTF-8: read from memory
    elif isinstance(sources, list | tuple):
        source = [str(p) for p in sources]
    elif isinstance(sources, io.BytesIO):
        source = sources
    options = {
        "has_header": False,
        "separator": header.separator,
        "comment_prefix": "#",
        "quote_char": None,
        "schema": {name: pl.String for name in header.fields},
        "null_values": [header.unset_field, header.empty_field],
    }
    keep = [name for name in dict.fromkeys(header.fields) if name in wanted]
    frame: pl.LazyFrame | None = None
    if isinstance(sources, list | tuple):
        with reading(path):  # a failure here is located file by file by the caller
            frame = _joined(list(sources), options, keep, contents)
    if frame is None:
        with reading(path):
            frame = pl.scan_csv(
                source,
                include_file_paths=SOURCE_PATH if many else None,
                **options,  # type: ignore[arg-type]
            )

    def locate(index: int) -> dict[str, int]:
        if isinstance(sources, io.BytesIO):
            return {"line": line_offset + index + 1}
        return {"line": line_of_record(path, index, lambda line: line.startswith("#"))}

    columns = keep + ([SOURCE_PATH] if many else [])
    schema: dict[str, pl.DataType] = dict.fromkeys(columns, pl.String())
    return RawTable(frame.select(columns), schema, locate, "lines counted from 1")
