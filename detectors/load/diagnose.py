"""Say where a file breaks when the fast reader gives up, in the product's words.

polars reports a broken file in its own terms ("ExpectedObjectKey at character 36",
"failed to determine supertype of struct[6] and list[i64]", "found more fields than
defined in 'Schema'", "cannot cast List type") without a line. Only then, and only for
the file that failed, the file is walked again with the standard library to find the
line (or row) and the field; the library's message follows after a colon when nothing
more precise is found. Slow by design: it runs once, on the error path.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from detectors.base.errors import InputError
from detectors.load.text import GZIP_MAGIC, open_text, sniff_delimiter, split_fields

_SCAN_LIMIT = 8 << 30  # a diagnosis never reads more than this much text
# What the diagnosis itself may meet in a broken file (it then says what polars said).
_FAILURES: tuple[type[BaseException], ...] = (
    OSError,
    UnicodeError,
    ValueError,
    csv.Error,
    RecursionError,
)


def explain(path: Path, message: str) -> InputError:
    """The most precise InputError for ``path``, whose reader failed with ``message``."""
    try:
        found = _diagnose(path)
    except (*_FAILURES, *_arrow_errors()):
        found = None
    return found or InputError(f"cannot read: {message}", file=str(path))


def _arrow_errors() -> tuple[type[BaseException], ...]:
    """pyarrow's error type once pyarrow is loaded (a Parquet file loads it; nothing can
    raise it before), so a CSV's diagnosis never imports pyarrow just to name it."""
    arrow_error = getattr(sys.modules.get("pyarrow"), "ArrowException", None)
    return () if arrow_error is None else (arrow_error,)


def _diagnose(path: Path) -> InputError | None:
    with path.open("rb") as handle:
        head = handle.read(4)
    if head.startswith(b"PAR1"):
        return _parquet(path)
    if head.startswith(GZIP_MAGIC) or not head.startswith(b"\xff\xfe"):
        with open_text(path) as text:
            first = text.read(1 << 16).lstrip("\ufeff").lstrip()
        if first.startswith("{"):
            return _json_lines(path)
        if first and not first.startswith("#"):
            return _csv(path)
    return None


def _kind(value: object) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return "a single value"


def _json_lines(path: Path) -> InputError | None:
    """First line that is not JSON, else the first field whose shape changes."""
    seen: dict[str, tuple[str, int]] = {}
    read = 0
    with open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            read += len(line)
            if read > _SCAN_LIMIT:
                return None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as bad:
                return InputError(
                    f"invalid JSON: {bad.msg} (column {bad.colno})", file=str(path), line=number
                )
            if not isinstance(record, dict):
                return InputError("not a JSON object", file=str(path), line=number)
            pending: list[tuple[str, dict[str, object]]] = [("", record)]
            while pending:
                prefix, current = pending.pop()
                for key, value in current.items():
                    name = prefix + key
                    if value is None:
                        continue
                    kind = _kind(value)
                    first = seen.setdefault(name, (kind, number))
                    if first[0] != kind:
                        return InputError(
                            f"holds {kind} here but {first[0]} on line {first[1]}",
                            file=str(path),
                            line=number,
                            field=name,
                        )
                    if isinstance(value, dict):
                        pending.append((name + ".", value))
    return None


def _csv(path: Path) -> InputError | None:
    """First record with more fields than the header names."""
    with open_text(path) as handle:
        header_line = handle.readline().lstrip("\ufeff").rstrip("\r\n")
        delimiter = sniff_delimiter(header_line)
        width = len(split_fields(header_line, delimiter))
        reader = csv.reader(handle, delimiter=delimiter)
        for record in reader:
            if len(record) > width:
                return InputError(
                    f"{len(record)} fields where the header names {width}",
                    file=str(path),
                    line=reader.line_num + 1,
                )
    return None


def _parquet(path: Path) -> InputError | None:
    """A column of lists or structs where the reader needs single values."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    for column in schema:
        if pa.types.is_nested(column.type):
            return InputError(
                f"holds {column.type} values, not single values", file=str(path), field=column.name
            )
    return None
