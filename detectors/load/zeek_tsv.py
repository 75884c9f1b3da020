"""Zeek's TSV layout: the ``#`` header lines, then records read by polars with that header.

The header says everything needed to read the records: ``#separator`` (written as an
escape such as ``\\x09``; any single character works), ``#set_separator``,
``#empty_field`` and ``#unset_field`` (both read as null), ``#path`` (which log this
is) and ``#fields`` (column names). Comment lines anywhere, including the ``#close``
footer, are skipped; quotes mean nothing in Zeek TSV, so quoting is off.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from detectors.base.errors import InputError
from detectors.load.common import RawTable, reading
from detectors.load.tables import line_of_record, open_text


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


def _unescape(value: str) -> str:
    """Zeek writes the separator as an escape such as ``\\x09``."""
    return re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), value)


def read_header(path: Path) -> ZeekHeader:
    header = ZeekHeader()
    with open_text(path) as handle:
        for line in handle:
            if not line.startswith("#"):
                break
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
            f"Zeek #separator {header.separator!r} is not one character", file=str(path), line=1
        )
    if not header.fields:
        raise InputError("Zeek log without a #fields header line", file=str(path))
    return header


def tsv_table(path: Path, header: ZeekHeader, wanted: tuple[str, ...]) -> RawTable:
    with reading(path):
        frame = pl.scan_csv(
            path,
            has_header=False,
            separator=header.separator,
            comment_prefix="#",
            quote_char=None,
            schema={name: pl.String for name in header.fields},
            null_values=[header.unset_field, header.empty_field],
        )
    keep = [name for name in header.fields if name in wanted]

    def locate(index: int) -> dict[str, int]:
        return {"line": line_of_record(path, index, lambda line: line.startswith("#"))}

    return RawTable(
        frame.select(keep), dict.fromkeys(keep, pl.String()), locate, "lines counted from 1"
    )
