"""What every loader shares: the raw-table handle, column casts, and the final checks.

A loader reads its file into a ``RawTable`` (source columns, lazily where the format
allows), describes each canonical column as an expression over the source columns, and
hands both to ``finish_events``. That one function collects, re-parses the few rows
whose timestamp is in another form than the file's usual one, reports the first
unparsable timestamp with its line, drops rows without a timestamp (with a warning),
normalises IP text per distinct value and conforms to the canonical schema.
"""

from __future__ import annotations

import csv
import io
import os
import sys
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal, NoReturn

import polars as pl

from detectors.base import schema as S
from detectors.base.errors import InputError
from detectors.base.netclass import INVALID, classify_ip, normalize_ip
from detectors.load.timestamps import (
    choose_text_parser,
    present,
    text_timestamp,
    timestamp_for,
)

# polars holds any year, Python's datetime (the TUI, JSON output) only 1..9999: a corrupt
# or hostile timestamp outside that range would crash every later stage.
EARLIEST = datetime(1, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc)
OUT_OF_RANGE = "timestamp outside the years 1-9999:"

_BAD_TS = "__bad_timestamp"
_NO_TS = "__no_timestamp"
_HAS_TS = "__has_timestamp"
_KEEP = "__keep"
_BLANK = "__blank_row"
_ROW = "__row"
SAMPLE_ROWS = 1000


@dataclass
class RawTable:
    """A source file's columns before mapping, plus how to point at one of its records.

    ``locate(i)`` turns a 0-based record index into InputError keywords (``line=`` or
    ``row=``) and ``convention`` says in words how that number counts, for the message.
    """

    frame: pl.LazyFrame
    schema: dict[str, pl.DataType]
    locate: Callable[[int], dict[str, int]]
    convention: str
    warnings: list[str] = field(default_factory=list)
    # a query of a few columns reads only those (Parquet): the event checks then look
    # at the few columns they need first and build the frame already filtered
    columnar: bool = False


@dataclass
class LoadedFile:
    """One file's contribution to the Loaded; a loader fills the parts it has."""

    events: pl.DataFrame | None = None
    names: pl.DataFrame | None = None
    app: pl.DataFrame | None = None
    device_info: pl.DataFrame | None = None
    dns: pl.DataFrame | None = None  # Zeek dns.log queries (``schema.DNS_SCHEMA``)
    warnings: list[str] = field(default_factory=list)
    # set when the file holds nothing the engine uses: the summary line's group ("Zeek
    # weird logs", "Windows events of other IDs")
    skipped: str | None = None
    # Zeek open_conn/open_http/open_ssl: connections not yet closed, dropped when the
    # closed log has the same uid
    still_open: bool = False

    @property
    def rows(self) -> int:
        return sum(
            f.height for f in (self.events, self.names, self.app, self.device_info) if f is not None
        )


def merge_loaded(parts: list[LoadedFile]) -> LoadedFile:
    """One LoadedFile from the parts of one file (a concatenated log's sections)."""

    def joined(frames: list[pl.DataFrame | None]) -> pl.DataFrame | None:
        present = [f for f in frames if f is not None]
        return pl.concat(present, how="vertical") if present else None

    return LoadedFile(
        events=joined([p.events for p in parts]),
        names=joined([p.names for p in parts]),
        app=joined([p.app for p in parts]),
        device_info=joined([p.device_info for p in parts]),
        dns=joined([p.dns for p in parts]),
        warnings=[w for p in parts for w in p.warnings],
        skipped=parts[0].skipped if parts and all(p.skipped for p in parts) else None,
        still_open=any(p.still_open for p in parts),
    )


def csv_locator(index: int) -> dict[str, int]:
    """CSV record i (0-based) sits on line i + 2: the header is line 1."""
    return {"line": index + 2}


def row_locator(index: int) -> dict[str, int]:
    return {"row": index + 1}


CSV_CONVENTION = "line 1 is the header"
ROW_CONVENTION = "rows counted from 1"


# What a broken or hostile file can make the readers raise. polars' PanicException
# derives from BaseException (it is a Rust panic on corrupt Parquet), so a plain
# ``except Exception`` in a caller would not stop it. pyarrow's errors join through
# ``read_errors()``: naming them here would import pyarrow for every input.
READ_ERRORS: tuple[type[BaseException], ...] = (
    pl.exceptions.PolarsError,
    pl.exceptions.PanicException,
    OSError,
    EOFError,
    UnicodeError,
    zlib.error,
    csv.Error,
    RecursionError,
)


def read_errors() -> tuple[type[BaseException], ...]:
    """``READ_ERRORS`` and, once pyarrow is loaded, its ``ArrowException``.

    Only Parquet (the page check, the schema read) and the Parquet diagnosis import
    pyarrow: a CSV, JSON or Zeek run never pays its ~0.04 s import. Before pyarrow is
    imported nothing can raise its errors, so the tuple without them catches the same.
    """
    arrow = sys.modules.get("pyarrow")
    arrow_error = getattr(arrow, "ArrowException", None)
    return READ_ERRORS if arrow_error is None else (*READ_ERRORS, arrow_error)


def polars_source(path: Path) -> Path | io.BytesIO:
    """What to hand polars or pyarrow for ``path``.

    Both take a path as UTF-8 text, so a file name that is not valid UTF-8 (``bad\\xff.csv``
    from another system's archive) made polars raise ``TypeError: Object does not have a
    .read() method``. Such a file is read through its bytes name into memory instead;
    every other file keeps polars' lazy, projected scan.
    """
    try:
        os.fspath(path).encode("utf-8")
    except UnicodeEncodeError:
        with open(os.fsencode(path), "rb") as handle:
            return io.BytesIO(handle.read())
    return path


def first_line_of(exc: BaseException) -> str:
    """An exception's message cut to its first line (polars adds hints on later lines)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


@contextmanager
def reading(file: Path) -> Iterator[None]:
    """Turn polars/OS/decoder errors while reading ``file`` into one-line InputErrors."""
    try:
        yield
    except InputError:
        raise
    except read_errors() as exc:
        from detectors.load.diagnose import explain  # the error path only; avoids a cycle

        raise explain(file, first_line_of(exc)) from None


# --- column conversions: source column (of a known dtype) -> canonical type -----------------


def text(column: str, schema: Mapping[str, pl.DataType]) -> pl.Expr:
    """A string column, blank text as null (CSV already reads empty fields as null)."""
    if column not in schema:
        return pl.lit(None, pl.String())
    value = pl.col(column).cast(pl.String)
    return pl.when(value != "").then(value)


def integer(column: str, schema: Mapping[str, pl.DataType], dtype: pl.DataType) -> pl.Expr:
    """An integer column from text or numbers; text that is not a number becomes null."""
    if column not in schema:
        return pl.lit(None, dtype)
    source = schema[column]
    value = pl.col(column)
    if source == pl.String:
        value = value.str.strip_chars()
    elif source.is_float():
        value = value.round(0)
    return value.cast(dtype, strict=False)


def require(
    schema: Mapping[str, pl.DataType], columns: list[str], file: Path, what: str = "column"
) -> None:
    """Raise naming the first required column the file lacks."""
    for column in columns:
        if column not in schema:
            raise InputError(f"missing required {what} '{column}'", file=str(file), field=column)


# --- the final step ---------------------------------------------------------------------


@dataclass(frozen=True)
class TimestampSpec:
    """How to parse a file's timestamp column.

    ``fast`` is the one form that fits the file's first rows and runs on every row;
    ``full`` tries every accepted form and runs only on the rows ``fast`` left null.
    """

    source: str
    fast: pl.Expr
    full: pl.Expr


def timestamp_spec(
    table: RawTable,
    source: str,
    file: Path,
    *,
    epoch: bool = False,
    number_unit: str = "s",
) -> TimestampSpec:
    """The parse for raw column ``source``, chosen from its dtype and its first values."""
    dtype = table.schema[source]
    column = pl.col(source)
    if dtype == pl.String:
        with reading(file):  # streaming stops reading at the sample's end
            sample = (
                table.frame.select(column).head(SAMPLE_ROWS).collect(engine="streaming").to_series()
            )
        fast = choose_text_parser(sample, epoch=epoch)(column)
        return TimestampSpec(source, fast, text_timestamp(column, epoch=epoch))
    typed = timestamp_for(column, dtype, epoch=epoch, number_unit=number_unit)
    return TimestampSpec(source, typed, typed)


def collect_checked(
    table: RawTable,
    columns: Mapping[str, pl.Expr],
    timestamp: TimestampSpec,
    file: Path,
    *,
    drop_outside: bool = False,
) -> tuple[pl.DataFrame, list[str]]:
    """Collect ``TIMESTAMP`` and ``columns`` (canonical name -> expression over raw columns).

    Rows the fast timestamp parse missed are re-parsed with every accepted form; the
    first still unparsable one raises, naming its line and column. Rows without a
    timestamp are dropped (a warning says how many; blank lines silently). A timestamp
    outside the years 1-9999 raises, unless ``drop_outside`` (events: the caller drops
    implausible times with a warning, see ``drop_implausible``).
    """
    frame, warnings = _collect_flagged(table, columns, timestamp, file, drop_outside=drop_outside)
    if frame.get_column(_NO_TS).any():  # filtering copies every column: only when needed
        frame = frame.filter(~pl.col(_NO_TS))
    return frame.drop(_NO_TS), warnings


def _collect_flagged(
    table: RawTable,
    columns: Mapping[str, pl.Expr],
    timestamp: TimestampSpec,
    file: Path,
    *,
    drop_outside: bool,
) -> tuple[pl.DataFrame, list[str]]:
    """``collect_checked`` before its filter: rows without a timestamp are still there,
    flagged in ``_NO_TS``, so a caller dropping other rows too copies the frame once."""
    raw_ts = pl.col(timestamp.source)
    has_ts = present(raw_ts, table.schema[timestamp.source])
    blank = pl.all_horizontal([pl.col(c).is_null() for c in table.schema])
    query = table.frame.select(
        timestamp.fast.alias(S.TIMESTAMP),
        *[expr.alias(name) for name, expr in columns.items()],
        (timestamp.fast.is_null() & has_ts).alias(_BAD_TS),
        (~has_ts).alias(_NO_TS),
        blank.alias(_BLANK),
    )
    with reading(file):
        frame = query.collect(engine="auto")
    bad_rows = frame.get_column(_BAD_TS).arg_true()
    if bad_rows.len():
        with reading(file):
            retried = (
                table.frame.with_row_index(_ROW)
                .filter(pl.col(_ROW).is_in(bad_rows.to_list()))
                .select(timestamp.full)
                .collect()
                .to_series()
            )
        parsed = frame.get_column(S.TIMESTAMP).clone().scatter(bad_rows, retried)
        frame = frame.with_columns(parsed)
        still_bad = bad_rows.filter(retried.is_null())
        if still_bad.len():
            _raise_bad_timestamp(table, timestamp.source, int(still_bad[0]), file)
    if not drop_outside:
        parsed_ts = frame.get_column(S.TIMESTAMP)
        outside = ((parsed_ts < EARLIEST) | (parsed_ts > LATEST)).fill_null(False).arg_true()
        if outside.len():
            _raise_bad_timestamp(table, timestamp.source, int(outside[0]), file, OUT_OF_RANGE)
    warnings = list(table.warnings)
    no_ts = frame.get_column(_NO_TS)
    missing = int((no_ts & ~frame.get_column(_BLANK)).sum())
    if missing:
        warnings.append(f"{missing} rows without a {timestamp.source} skipped")
    return frame.drop(_BAD_TS, _BLANK), warnings


def _raise_bad_timestamp(
    table: RawTable, source: str, index: int, file: Path, problem: str = "cannot parse timestamp"
) -> NoReturn:
    with reading(file):
        value = (
            table.frame.slice(index, 1)
            .select(pl.col(source).cast(pl.String))
            .collect()
            .to_series()[0]
        )
    raise InputError(
        f"{problem} {value!r} ({table.convention})",
        file=str(file),
        field=source,
        **table.locate(index),
    )


def finish_events(
    table: RawTable, columns: Mapping[str, pl.Expr], timestamp: TimestampSpec, file: Path
) -> tuple[pl.DataFrame, list[str]]:
    """``collect_checked``, IP text normalised, the canonical event schema applied and
    implausible rows dropped (``drop_implausible``), building the frame once.

    The schema's casts and the protocol's case are part of the one query; the address
    checks look at each distinct address text once; rows without a timestamp and
    implausible rows go in one filter (a filter copies every column).
    """
    wanted = dict(columns)
    # protocol names as Zeek writes them ("tcp"), whatever the source's case (Defender "Tcp")
    if S.PROTOCOL in wanted:
        wanted[S.PROTOCOL] = wanted[S.PROTOCOL].cast(pl.String, strict=False).str.to_lowercase()
    conformed = S.conformed_columns(wanted, str(file))
    if S.SOURCE_FILE in wanted:  # one scan of many files: each row names its own
        conformed = [
            wanted[S.SOURCE_FILE].cast(pl.String).alias(S.SOURCE_FILE)
            if e.meta.output_name() == S.SOURCE_FILE
            else e
            for e in conformed
        ]
    body = {e.meta.output_name(): e for e in conformed if e.meta.output_name() != S.TIMESTAMP}
    if table.columnar:
        built = _build_filtered(table, body, timestamp, file)
        if built is not None:
            return built
    frame, warnings = _collect_flagged(table, body, timestamp, file, drop_outside=True)
    frame = _timestamp_typed(frame)
    fixes, bad = address_fixes(frame)
    dropped, drop = _implausible(frame, bad, kept=~pl.col(_NO_TS))
    drop = pl.col(_NO_TS) if drop is None else drop | pl.col(_NO_TS)
    if frame.select(drop.any()).item():
        frame = frame.filter(~drop)
    frame = frame.drop(_NO_TS)
    if fixes:
        frame = frame.with_columns(pl.col(c).replace(m) for c, m in fixes.items())
    return frame, warnings + dropped


def _timestamp_typed(frame: pl.DataFrame) -> pl.DataFrame:
    timestamp_type = S.EVENT_SCHEMA[S.TIMESTAMP]
    if frame.schema[S.TIMESTAMP] == timestamp_type:
        return frame
    return frame.with_columns(pl.col(S.TIMESTAMP).cast(timestamp_type, strict=False))


def _build_filtered(
    table: RawTable, body: Mapping[str, pl.Expr], timestamp: TimestampSpec, file: Path
) -> tuple[pl.DataFrame, list[str]] | None:
    """``finish_events`` for a columnar table, the kept rows built once and never copied.

    Two narrow queries first: the distinct address texts (and whether any timestamp
    needs the full parse: then None, the general path retries and reports those rows),
    then the counts per kind of implausible row over the few columns the kinds read.
    The frame is then built and filtered in one query, its addresses already normalised.
    The filter follows the select there (not pushed into the reader), so every column
    comes back cut the same way (see ``aligned``).
    """
    has_ts = present(pl.col(timestamp.source), table.schema[timestamp.source])
    addresses = [c for c in (S.REMOTE_IP, S.LOCAL_IP) if c in body]
    with reading(file):
        probe = table.frame.select(
            *[body[c].drop_nulls().unique().implode() for c in addresses],
            (timestamp.fast.is_null() & has_ts).sum().alias(_BAD_TS),
            (~has_ts).sum().alias(_NO_TS),
        ).collect()
    if probe.item(0, _BAD_TS):
        return None
    fixes, bad = address_fixes_of({c: probe.item(0, c) for c in addresses})
    canonical = {**body, S.TIMESTAMP: timestamp.fast}
    kinds = implausible_kinds(bad, canonical.__getitem__)
    blank = pl.all_horizontal([pl.col(c).is_null() for c in table.schema])
    untimed = [~has_ts & ~blank] if probe.item(0, _NO_TS) else []  # blank rows: silently
    with reading(file):
        dropped, drop, sums = implausible_found(
            table.frame, kinds, kept=has_ts, file=body[S.SOURCE_FILE], also=untimed
        )
    warnings = list(table.warnings)
    missing = sums[0] if untimed else 0
    if missing:
        warnings.append(f"{missing} rows without a {timestamp.source} skipped")
    keep = has_ts if drop is None else has_ts & ~drop
    columns = {
        name: expr.replace(fixes[name]).alias(name) if name in fixes else expr
        for name, expr in body.items()
    }
    with reading(file):
        frame = (
            table.frame.select(
                timestamp.fast.alias(S.TIMESTAMP),
                *[e.alias(n) for n, e in columns.items()],
                keep.alias(_KEEP),
            )
            .filter(_KEEP)
            .drop(_KEEP)
            .collect(engine="auto")
        )
    return aligned(_timestamp_typed(frame)), warnings + dropped


def aligned(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` in one chunk per column when its columns are chunked differently.

    A filter pushed into the Parquet reader handed the columns back cut differently (at
    2M events: the timestamps in 42 pieces, an address in 114, the rest in 18), and later
    stages paid for it: the 2M Parquet detect took 0.6 s more CPU and 0.2 GB more peak
    memory than after one ``rechunk`` (cutting every column at the union of the cuts,
    zero-copy, cost as much as the mixed layout). ``_build_filtered`` now filters after
    its select, which keeps one layout; this is the guard. Columns of one chunk
    (literals) do not count.
    """
    layouts = {
        tuple(series.chunk_lengths()) for series in frame.get_columns() if series.n_chunks() > 1
    }
    return frame.rechunk() if len(layouts) > 1 else frame


# Connection times before this are a clock or parsing fault; after, a corrupt record.
PLAUSIBLE_FROM = datetime(1970, 1, 1, tzinfo=timezone.utc)
PLAUSIBLE_UNTIL = datetime(2100, 1, 1, tzinfo=timezone.utc)
_IPV4 = r"^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$"


def implausible_kinds(
    bad_addresses: Mapping[str, Sequence[str]], col: Callable[[str], pl.Expr] = pl.col
) -> list[tuple[str, pl.Expr]]:
    """(what, row mask) per kind of impossible value, over canonical columns.

    ``bad_addresses``: per address column, its texts that are no IP (``address_fixes_of``),
    found per distinct value so Python never sees a row. ``col`` gives each canonical
    column (a raw file's expression for it, before the frame is built). One definition
    for a load in memory (``drop_implausible``) and a load streamed to partitions.
    """
    kinds: list[tuple[str, pl.Expr]] = []
    for column in (S.LOCAL_PORT, S.REMOTE_PORT):
        port = col(column)
        kinds.append((f"{column} outside 0-65535", ((port < 0) | (port > 65535)).fill_null(False)))
    for column in (S.REMOTE_IP, S.LOCAL_IP):
        texts = list(bad_addresses.get(column, ()))
        if texts:
            bad = pl.Series(texts, dtype=pl.String)
            is_bad = col(column).is_in(bad.implode()).fill_null(False)
        else:  # the usual case: no row to look up
            is_bad = pl.lit(False)
        kinds.append((f"{column} that is not an IP address", is_bad))
    stamp = col(S.TIMESTAMP)
    kinds.append(("timestamp before 1970", (stamp < PLAUSIBLE_FROM).fill_null(False)))
    kinds.append(("timestamp in 2100 or later", (stamp >= PLAUSIBLE_UNTIL).fill_null(False)))
    return kinds


def implausible_found(
    frame: pl.LazyFrame,
    kinds: Sequence[tuple[str, pl.Expr]],
    *,
    kept: pl.Expr | None = None,
    file: pl.Expr | None = None,
    also: Sequence[pl.Expr] = (),
    engine: Literal["auto", "in-memory", "streaming"] = "auto",
) -> tuple[list[str], pl.Expr | None, list[int]]:
    """One query over ``frame``: a warning per kind found (how many rows, the file of the
    first), the mask of every row to drop (None: none), and the number of rows each of
    ``also`` marks. Only rows where ``kept`` is true count for the kinds.

    ``file`` names each row's file (default: the ``source_file`` column; a literal for
    one file); it is laid out per row before the counts, so a literal and a column are
    alike. One definition for a load
    in memory, a columnar load and a load streamed to partitions.
    """
    kept = pl.lit(True) if kept is None else kept
    file = pl.col(S.SOURCE_FILE) if file is None else file
    flagged = frame.select(
        file.cast(pl.String).alias(S.SOURCE_FILE),
        kept.alias(_HAS_TS),
        *[mask.alias(f"m{i}") for i, (_, mask) in enumerate(kinds)],
        *[mask.alias(f"a{j}") for j, mask in enumerate(also)],
    )
    counted = [pl.col(f"m{i}") & pl.col(_HAS_TS) for i in range(len(kinds))]
    row = (
        flagged.select(
            *[mask.sum().alias(f"n{i}") for i, mask in enumerate(counted)],
            *[
                pl.col(S.SOURCE_FILE).filter(mask).first().alias(f"f{i}")
                for i, mask in enumerate(counted)
            ],
            *[pl.col(f"a{j}").sum() for j in range(len(also))],
        )
        .collect(engine=engine)
        .row(0)
    )
    counts, firsts = row[: len(kinds)], row[len(kinds) : 2 * len(kinds)]
    warnings, masks = [], []
    for (what, mask), count, first in zip(kinds, counts, firsts, strict=True):
        if count:
            warnings.append(f"{count} rows with a {what} dropped (first in {first})")
            masks.append(mask)
    drop = pl.any_horizontal(masks) if masks else None
    return warnings, drop, [int(n) for n in row[2 * len(kinds) :]]


def drop_implausible(events: pl.DataFrame) -> tuple[pl.DataFrame, list[str]]:
    """Events without an impossible value, and one warning per kind of value dropped.

    A port outside 0-65535, an address that is not an IP, or a time before 1970 or from
    2100 on cannot be a connection as written: ranked, it would be noise a hunter has to
    explain away. Such rows are counted per kind, the first file named, and never ranked.
    """
    if events.is_empty():
        return events, []
    _, bad = address_fixes(events, normalise=False)
    warnings, drop = _implausible(events, bad)
    if drop is None:
        return events, []
    return events.filter(~drop), warnings


def address_fixes(
    events: pl.DataFrame, *, normalise: bool = True
) -> tuple[dict[str, dict[str, str]], dict[str, list[str]]]:
    """``address_fixes_of`` the address columns of ``events``."""
    distinct = {
        c: events.get_column(c).drop_nulls().unique()
        for c in (S.REMOTE_IP, S.LOCAL_IP)
        if c in events.columns
    }
    return address_fixes_of(distinct, normalise=normalise)


def address_fixes_of(
    distinct: Mapping[str, pl.Series], *, normalise: bool = True
) -> tuple[dict[str, dict[str, str]], dict[str, list[str]]]:
    """Per address column (its distinct non-null texts): the texts to replace
    (``normalize_ip``: IPv4-mapped IPv6 to IPv4, canonical IPv6) and the texts that are
    no IP address once replaced.

    Worked out per distinct text, so Python and the IPv4 pattern never see a row. Only
    texts with a colon (IPv6) or surrounding blanks can change, so plain IPv4 text never
    reaches Python. ``normalise=False``: the texts are taken as they are.
    """
    fixes: dict[str, dict[str, str]] = {}
    bad: dict[str, list[str]] = {}
    for column, texts in distinct.items():
        mapping: dict[str, str] = {}
        if normalise:
            candidates = texts.filter(
                texts.str.contains(":", literal=True) | (texts.str.strip_chars() != texts)
            )
            for ip in candidates.to_list():
                if (new := normalize_ip(ip)) is not None and new != ip:
                    mapping[ip] = new
        if mapping:
            fixes[column] = mapping
        fixed = texts.replace(mapping) if mapping else texts
        odd = ~fixed.str.contains(_IPV4)
        # a text and its replacement are both no address or both one: normalize_ip
        # leaves junk as it is and turns an address into an address
        pairs = zip(texts.filter(odd).to_list(), fixed.filter(odd).to_list(), strict=True)
        bad[column] = [raw for raw, value in pairs if classify_ip(value) == INVALID]
    return fixes, bad


def _implausible(
    events: pl.DataFrame, bad: Mapping[str, Sequence[str]], kept: pl.Expr | None = None
) -> tuple[list[str], pl.Expr | None]:
    """``implausible_found`` over ``events`` (only rows where ``kept`` is true count)."""
    warnings, drop, _ = implausible_found(events.lazy(), implausible_kinds(bad), kept=kept)
    return warnings, drop


def conform_to(frame: pl.DataFrame, schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    """Exactly ``schema``'s columns and types (missing ones null) for the side tables."""
    return frame.select(
        [
            pl.col(name).cast(dtype, strict=False)
            if name in frame.columns
            else pl.lit(None, dtype).alias(name)
            for name, dtype in schema.items()
        ]
    )
