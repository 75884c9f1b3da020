"""Text files as the loaders see them: gzip or not, UTF-8 with a BOM or not, and CSV lines.

A leaf (imports nothing of the loaders), so the error diagnosis can use it too.
"""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

GZIP_MAGIC = b"\x1f\x8b"
_DELIMITERS = ",;\t|"


def is_gzip(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(2) == GZIP_MAGIC


def open_text(path: Path) -> io.TextIOBase:
    """The file as text, transparently gunzipped; undecodable bytes are replaced."""
    if is_gzip(path):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
    return path.open("r", encoding="utf-8", errors="replace", newline="")


def first_line(path: Path) -> str:
    with open_text(path) as handle:
        return handle.readline().lstrip("\ufeff").rstrip("\r\n")


def split_fields(line: str, delimiter: str) -> list[str]:
    """The fields of one CSV line; a stray CR or NUL inside it never raises."""
    try:
        return next(csv.reader([line], delimiter=delimiter), [])
    except csv.Error:
        return line.split(delimiter)


def sniff_delimiter(header: str) -> str:
    """The delimiter of a header line: whichever of , ; TAB | occurs most (comma on ties)."""
    counts = {d: header.count(d) for d in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda d: (counts[d], d == ","))
    return best if counts[best] else ","
