"""Read a tabular file (CSV, API JSON, JSON Lines, Parquet) into a ``RawTable``.

These readers know containers, not meanings: the Defender, DeviceInfo and mapped-CSV
loaders say which columns they want and map them. CSV and Parquet are scanned lazily
with only the wanted columns; CSV is read as text (``infer_schema=False``) so a value is
never silently re-typed. An interrupted CSV or JSON Lines export (the last record cut
off) loads its whole records and warns how many were dropped.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl

from detectors.base.errors import InputError
from detectors.load.common import (
    CSV_CONVENTION,
    ROW_CONVENTION,
    RawTable,
    csv_locator,
    first_line_of,
    polars_source,
    reading,
    row_locator,
)
from detectors.load.text import (
    first_line,
    is_gzip,
    open_text,
    sniff_delimiter,
    split_fields,
)

_TAIL_BYTES = 1 << 20  # enough to hold any one record
_PYTHON_JSON_LIMIT = 256 << 20  # locate JSON syntax errors with the stdlib up to this size
PAGE_CHECK_THREADS = 2  # pyarrow's page check runs without the GIL: one share per core


def line_of_record(path: Path, index: int, skip: Callable[[str], bool]) -> int:
    """1-based line of the ``index``-th record, skipping lines ``skip`` says are not records.

    Streams the file once; only called to point at an error, never on the happy path.
    """
    seen = -1
    with open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if skip(line):
                continue
            seen += 1
            if seen == index:
                return number
    return seen + 1


# --- interrupted exports ------------------------------------------------------------------


def _cut_last_line(path: Path, incomplete: Callable[[str], bool]) -> int | None:
    """Byte offset where the last, incomplete line starts, or None if the file is whole.

    A file that ends with a newline is whole. Otherwise its last line is checked with
    ``incomplete``; gzip files are not checked (their stream cannot be tailed cheaply).
    """
    if is_gzip(path):
        return None
    size = path.stat().st_size
    with path.open("rb") as handle:
        handle.seek(max(0, size - _TAIL_BYTES))
        tail = handle.read()
    if tail.endswith((b"\n", b"\r")):
        return None
    newline = tail.rfind(b"\n")
    if newline < 0 and size > len(tail):
        return None  # one enormous last line: let the parser judge it
    last = tail[newline + 1 :]
    if newline < 0 or not last.strip():
        return None  # the only line (a CSV header) or trailing blanks
    if incomplete(last.decode("utf-8", errors="replace")):
        return size - len(last)
    return None


def _whole_records(path: Path, cut: int) -> io.BytesIO:
    with path.open("rb") as handle:
        return io.BytesIO(handle.read(cut))


def _csv_row_incomplete(header_fields: int, delimiter: str) -> Callable[[str], bool]:
    def incomplete(line: str) -> bool:
        if line.count('"') % 2:
            return True  # an unterminated quote
        return len(split_fields(line, delimiter)) < header_fields

    return incomplete


def _json_incomplete(line: str) -> bool:
    try:
        json.loads(line)
    except (ValueError, RecursionError):
        return True
    return False


def _dropped_warning(count: int) -> str:
    return f"the last record is incomplete (export cut mid-row?): dropped {count} row"


# --- readers --------------------------------------------------------------------------------


def _project(
    frame: pl.LazyFrame, wanted: Collection[str] | None
) -> tuple[pl.LazyFrame, dict[str, pl.DataType]]:
    schema = dict(frame.collect_schema())
    keep = [c for c in schema if wanted is None or c in wanted]
    return frame.select(keep), {c: schema[c] for c in keep}


def csv_table(path: Path, wanted: Collection[str] | None = None) -> RawTable:
    """A CSV (optionally gzipped) as text columns; the delimiter is sniffed from the header."""
    header = first_line(path)
    delimiter = sniff_delimiter(header)
    header_fields = len(split_fields(header, delimiter))
    cut = _cut_last_line(path, _csv_row_incomplete(header_fields, delimiter))
    source = polars_source(path) if cut is None else _whole_records(path, cut)
    warnings = [] if cut is None else [_dropped_warning(1)]
    with reading(path):
        frame = pl.scan_csv(
            source, separator=delimiter, infer_schema=False, quote_char='"', has_header=True
        )
        names = frame.collect_schema().names()
        stripped = {n: n.strip().lstrip("\ufeff") for n in names}
        if any(k != v for k, v in stripped.items()):
            frame = frame.rename(stripped)
        frame, schema = _project(frame, wanted)
    return RawTable(frame, schema, csv_locator, CSV_CONVENTION, warnings)


def jsonl_table(path: Path, wanted: Collection[str] | None = None) -> RawTable:
    """JSON Lines (one object per line, optionally gzipped); types inferred from all rows."""
    cut = _cut_last_line(path, _json_incomplete)
    source = polars_source(path) if cut is None else _whole_records(path, cut)
    warnings = [] if cut is None else [_dropped_warning(1)]
    with reading(path):
        frame = pl.scan_ndjson(source, infer_schema_length=None)
        frame, schema = _project(frame, wanted)

    def locate(index: int) -> dict[str, int]:
        return {"line": line_of_record(path, index, lambda line: not line.strip())}

    return RawTable(frame, schema, locate, "lines counted from 1", warnings)


def _read_every_page(path: Path | io.BytesIO, columns: Collection[str]) -> None:
    """Read and decode every page of ``columns`` with pyarrow, which raises on damage.

    Values are decoded but never built into arrays: this is a check, not a read. It runs
    alone before polars reads anything, on one thread per call, so the columns are
    checked in ``PAGE_CHECK_THREADS`` shares of about equal decoded bytes at once (10M
    Defender events: 1.0 s on one core). Only the columns polars will read are checked
    (``scan_contents`` takes names: given leaf numbers, it checked every column).
    """
    import pyarrow as pa  # Parquet only: text inputs never load pyarrow
    import pyarrow.parquet as pq

    data = pa.py_buffer(path.getbuffer()) if isinstance(path, io.BytesIO) else None

    def opened() -> pq.ParquetFile:  # a reader per thread: one is not safe to share
        return pq.ParquetFile(pa.BufferReader(data) if data is not None else path)

    def check(names: list[str]) -> None:
        with opened() as reader:
            reader.scan_contents(columns=names)

    with opened() as source:
        meta = source.metadata
        top = [path[0] for path in source.reader.column_paths]  # a dotted name is one name
    size: dict[str, int] = {}
    for leaf, name in enumerate(top):
        if name in columns:
            chunks = (meta.row_group(g).column(leaf) for g in range(meta.num_row_groups))
            size[name] = size.get(name, 0) + sum(c.total_uncompressed_size for c in chunks)
    shares: list[list[str]] = [[] for _ in range(PAGE_CHECK_THREADS)]
    loads = [0] * PAGE_CHECK_THREADS
    for name in sorted(size, key=lambda n: (-size[n], n)):  # largest first, to the lightest
        lightest = loads.index(min(loads))
        shares[lightest].append(name)
        loads[lightest] += size[name]
    shares = [share for share in shares if share]
    if len(shares) <= 1:
        for share in shares:
            check(share)
        return
    with ThreadPoolExecutor(len(shares), thread_name_prefix="page-check") as pool:
        list(pool.map(check, shares))


def parquet_table(path: Path, wanted: Collection[str] | None = None) -> RawTable:
    """Parquet checked page by page by pyarrow first, then scanned lazily by polars.

    polars' reader, on a corrupt page header, tries to allocate exabytes and aborts the
    whole process (no exception to catch), where pyarrow raises. Invalid UTF-8 needs no
    check here: polars refuses it with an error of its own.
    """
    import pyarrow.parquet as pq  # Parquet only: text inputs never load pyarrow

    with reading(path):
        source = polars_source(path)
        file_schema = pq.read_schema(source)
        keep = [c for c in file_schema.names if wanted is None or c in wanted]
        _read_every_page(source, keep)
        if isinstance(source, io.BytesIO):
            source.seek(0)
        frame = pl.scan_parquet(source).select(keep)
        schema = dict(frame.collect_schema())
    return RawTable(frame, schema, row_locator, ROW_CONVENTION, columnar=True)


def api_json_table(path: Path, wanted: Collection[str]) -> RawTable:
    """Advanced hunting API JSON: ``{"Schema": [{"Name", "Type"}], "Results": [{...}]}``.

    Both the legacy (``Schema``/``Results``/``Name``) and the Graph (``schema``/
    ``results``/``name``) spellings are read. Wanted columns are read as text, so a
    number and a string in the same column both load. A column counts as present when
    the Schema lists it (or, without a Schema, when any row has it).
    """
    wanted = list(wanted)
    as_text = pl.Struct({c: pl.String for c in wanted})
    shape = {
        "Schema": pl.List(pl.Struct({"Name": pl.String})),
        "schema": pl.List(pl.Struct({"name": pl.String})),
        "Results": pl.List(as_text),
        "results": pl.List(as_text),
    }
    try:
        document = pl.read_json(polars_source(path), schema=shape)
    except pl.exceptions.PolarsError as exc:
        document = _api_json_inferred(path, exc)
    declared = _declared_columns(document)
    found = [
        k for k in ("Results", "results") if k in document.columns and document[k][0] is not None
    ]
    if not found:
        raise InputError("API JSON has no 'Results' list", file=str(path))
    key = found[0]
    rows = document.select(pl.col(key).explode(empty_as_null=False)).unnest(key)
    if declared:
        keep = [c for c in wanted if c in declared and c in rows.columns]
    elif rows.height:
        keep = [c for c in rows.columns if c in wanted and rows[c].null_count() < rows.height]
    else:
        keep = [c for c in wanted if c in rows.columns]
    rows = rows.select(keep)
    return RawTable(rows.lazy(), dict(rows.schema), row_locator, "rows of Results counted from 1")


def _declared_columns(document: pl.DataFrame) -> list[str]:
    """Column names listed in the API's Schema section (either spelling), if any."""
    declared: list[str] = []
    for key, name in (("Schema", "Name"), ("schema", "name")):
        dtype = document.schema.get(key)
        if not (isinstance(dtype, pl.List) and isinstance(dtype.inner, pl.Struct)):
            continue
        if name not in {f.name for f in dtype.inner.fields}:
            continue
        names = document.select(pl.col(key).explode().struct.field(name)).to_series()
        declared += names.drop_nulls().to_list()
    return declared


def _api_json_inferred(path: Path, first_error: Exception) -> pl.DataFrame:
    """Second try with inferred types (e.g. AdditionalFields given as objects, not text)."""
    try:
        return pl.read_json(polars_source(path), infer_schema_length=None)
    except pl.exceptions.PolarsError:
        raise _json_syntax_error(path, first_error) from None


def _json_syntax_error(path: Path, polars_error: Exception) -> InputError:
    """Say where a JSON document breaks: truncation first, then the stdlib's position."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        handle.seek(max(0, size - 64))
        tail = handle.read().rstrip()
    if not tail.endswith((b"}", b"]")):
        with path.open("rb") as handle:
            lines = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
        return InputError(
            "truncated JSON: the document ends before it is closed (download cut off?)",
            file=str(path),
            line=lines + 1,
        )
    if size <= _PYTHON_JSON_LIMIT:
        try:
            json.loads(path.read_bytes())
        except json.JSONDecodeError as exc:
            return InputError(
                f"invalid JSON: {exc.msg} (column {exc.colno})", file=str(path), line=exc.lineno
            )
        except (ValueError, RecursionError) as exc:
            return InputError(f"invalid JSON: {first_line_of(exc)}", file=str(path))
    return InputError(f"invalid JSON: {first_line_of(polars_error)}", file=str(path))


def looks_like_api_json(head: str) -> bool:
    """True when a JSON document's opening holds the API's Results/Schema keys."""
    return re.search(r'"(?:results|schema)"\s*:\s*\[', head, flags=re.IGNORECASE) is not None
