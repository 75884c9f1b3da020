"""Timestamp parsing shared by every loader, as polars expressions (never row by row).

Everything becomes ``Datetime("us", "UTC")``. Text is tried against these forms, in order:

- ISO-8601 with an offset or ``Z``: ``2026-11-20T00:00:00.6899290Z``,
  ``2026-11-20T01:00:00+01:00``, ``...+0100``, ``...+01`` (``T`` or a space between date
  and time, any number of fractional digits);
- ISO-8601 without an offset, taken as UTC: ``2026-11-20 00:00:00.123456``;
- the Defender portal's display form, taken as UTC: ``Nov 20, 2026 12:00:00 AM``;
- with ``epoch=True`` (mapped CSV only): a plain number is seconds since 1970 when its
  integer part has at most 11 digits, milliseconds with 12-14 digits, microseconds with
  15 or more. (11 digits of seconds reach the year 5138; 12 digits of milliseconds start
  in 2001, so the ranges cannot be confused for real telemetry.)

Fractions finer than a microsecond are truncated, never rounded: Defender's 7-digit
``.6899290`` becomes ``.689929``, so two events never swap order.
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

UTC_US = pl.Datetime("us", "UTC")
NAIVE_US = pl.Datetime("us")

# (strptime format, has an offset); tried in this order. The first is Defender's and
# Elastic's literal-Z form, the cheapest to parse, so most files never try the others.
TEXT_FORMATS: tuple[tuple[str, bool], ...] = (
    ("%Y-%m-%dT%H:%M:%S%.fZ", True),
    ("%Y-%m-%dT%H:%M:%S%.f%#z", True),
    ("%Y-%m-%d %H:%M:%S%.f%#z", True),
    ("%Y-%m-%dT%H:%M:%S%.f", False),
    ("%Y-%m-%d %H:%M:%S%.f", False),
    ("%b %d, %Y %I:%M:%S%.f %p", False),  # the Defender portal's display form
)
_EPOCH_PATTERN = r"^(\d+)(?:\.(\d*))?$"

TextParser = Callable[[pl.Expr], pl.Expr]


def _with_format(fmt: str, aware: bool) -> TextParser:
    def parse(text: pl.Expr) -> pl.Expr:
        text = text.str.strip_chars()
        if aware:
            return text.str.strptime(UTC_US, fmt, strict=False, cache=False)
        naive = text.str.strptime(NAIVE_US, fmt, strict=False, cache=False)
        return naive.dt.replace_time_zone("UTC")

    return parse


def text_timestamp(text: pl.Expr, *, epoch: bool = False) -> pl.Expr:
    """Parse text timestamps in any accepted form (module docstring); otherwise null.

    Tries every form on every row: use ``choose_text_parser`` for the bulk of a file and
    this only for the rows the chosen form missed.
    """
    attempts = [_with_format(fmt, aware)(text) for fmt, aware in TEXT_FORMATS]
    if epoch:
        attempts.append(epoch_text(text, unit=None))
    return pl.coalesce(attempts)


def choose_text_parser(sample: pl.Series, *, epoch: bool = False) -> TextParser:
    """The single form that parses most of ``sample`` (a file's first values).

    One strptime per row instead of six; rows in another form are caught afterwards
    because they come out null, and are re-parsed with ``text_timestamp``.
    """
    values = sample.cast(pl.String).drop_nulls().str.strip_chars()
    values = values.filter(values != "")
    parsers = [_with_format(fmt, aware) for fmt, aware in TEXT_FORMATS]
    if epoch:
        parsers.append(lambda text: epoch_text(text, unit=None))
    if values.is_empty():
        return lambda text: text_timestamp(text, epoch=epoch)
    frame = values.to_frame("t")
    counts = [frame.select(parse(pl.col("t"))).to_series().count() for parse in parsers]
    best = max(range(len(parsers)), key=lambda i: (counts[i], -i))
    if counts[best] == 0:
        return lambda text: text_timestamp(text, epoch=epoch)
    if best == 0 and (sample.cast(pl.String).str.strip_chars() == sample.cast(pl.String)).all():
        return utc_z_fast  # unpadded values: the common form's own parser, twice as fast
    return parsers[best]


# ``2026-11-20T00:00:00.6899290Z`` exactly: a four-digit year from 1000, two-digit fields
# in range, 0-9 fractional digits. Anything else comes out null from ``utc_z_fast`` and is
# parsed again by ``text_timestamp``.
_UTC_Z_SHAPE = r"^[1-9]\d{3}-\d\d-\d\dT([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,9})?Z$"


def utc_z_fast(text: pl.Expr) -> pl.Expr:
    """The first ``TEXT_FORMATS`` form (Defender's), parsed without its ``%.f``.

    polars parses ``%Y-%m-%dT%H:%M:%S`` on its own fast path but hands any format with a
    fraction to chrono, at twice the cost per row. So the seconds are parsed alone and the
    fraction's first six digits added as microseconds (truncated, as ``%.f`` to ``us``
    does); the shape check leaves null whatever the two might read differently (padding,
    leap seconds, more than nine digits, years before 1000), for the full parse to judge.
    """
    seconds = text.str.slice(0, 19).str.strptime(
        NAIVE_US, "%Y-%m-%dT%H:%M:%S", strict=False, cache=False
    )
    digits = text.str.slice(20, 6).str.strip_suffix("Z").str.pad_end(6, "0")
    micros = pl.duration(microseconds=digits.cast(pl.Int64, strict=False))
    parsed = pl.when(text.str.contains(_UTC_Z_SHAPE)).then(seconds + micros)
    return parsed.dt.replace_time_zone("UTC")


def epoch_text(text: pl.Expr, unit: str | None = "s") -> pl.Expr:
    """Exact decimal epoch text (``1700000000.123456``) to a UTC datetime, without floats.

    ``unit`` is ``"s"``, ``"ms"``, ``"us"``, or None to choose per value by the number of
    integer digits (<=11 seconds, 12-14 milliseconds, more microseconds).
    """
    parts = text.str.strip_chars().str.extract_groups(_EPOCH_PATTERN)
    whole = parts.struct.field("1")
    frac = parts.struct.field("2").fill_null("")

    def scaled(digits: int) -> pl.Expr:
        micro_per_unit = 10**digits
        frac_micros = (
            frac.str.pad_end(digits, "0").str.slice(0, digits).cast(pl.Int64, strict=False)
            if digits
            else pl.lit(0, pl.Int64)
        )
        return whole.cast(pl.Int64, strict=False) * micro_per_unit + frac_micros

    if unit == "s":
        micros = scaled(6)
    elif unit == "ms":
        micros = scaled(3)
    elif unit == "us":
        micros = scaled(0)
    else:
        width = whole.str.len_chars()
        micros = (
            pl.when(width <= 11)
            .then(scaled(6))
            .when(width <= 14)
            .then(scaled(3))
            .otherwise(scaled(0))
        )
    return pl.from_epoch(micros, time_unit="us").dt.replace_time_zone("UTC")


def epoch_number(number: pl.Expr, unit: str = "s") -> pl.Expr:
    """A numeric epoch (Zeek JSON ``ts`` float seconds, ECS epoch milliseconds) to UTC.

    Float seconds near 1.7e9 carry about 0.2 µs of rounding error, so rounding to the
    nearest microsecond recovers the value Zeek wrote.
    """
    scale = {"s": 1_000_000, "ms": 1_000, "us": 1}[unit]
    micros = (number.cast(pl.Float64) * scale).round(0).cast(pl.Int64, strict=False)
    return pl.from_epoch(micros, time_unit="us").dt.replace_time_zone("UTC")


def datetime_to_utc(value: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """A real datetime column (Parquet) to UTC microseconds; naive values are taken as UTC."""
    if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
        return value.dt.convert_time_zone("UTC").cast(UTC_US)
    return value.cast(NAIVE_US).dt.replace_time_zone("UTC")


def timestamp_for(
    value: pl.Expr, dtype: pl.DataType, *, epoch: bool = False, number_unit: str = "s"
) -> pl.Expr:
    """Parse a timestamp column whatever its stored type: text, number or datetime."""
    if isinstance(dtype, (pl.Datetime, pl.Date)):
        return datetime_to_utc(value, dtype)
    if dtype.is_numeric():
        return epoch_number(value, number_unit)
    return text_timestamp(value.cast(pl.String), epoch=epoch)


def present(value: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """True where a source field holds something (not null, not blank text)."""
    if dtype == pl.String:
        return value.is_not_null() & (value.str.strip_chars() != "")
    return value.is_not_null()
