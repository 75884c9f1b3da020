"""Timestamp parsing used by every loader: exact microseconds, UTC, truncation not rounding."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import polars as pl
import pytest

from detectors.load.timestamps import (
    choose_text_parser,
    epoch_number,
    epoch_text,
    text_timestamp,
    timestamp_for,
    utc_z_fast,
)

UTC = timezone.utc


def parse(values: list[str | None], *, epoch: bool = False) -> list[datetime | None]:
    frame = pl.DataFrame({"t": values}, schema={"t": pl.String})
    return frame.select(text_timestamp(pl.col("t"), epoch=epoch)).to_series().to_list()


def test_kusto_timestamp_keeps_microseconds() -> None:
    assert parse(["2026-11-20T00:00:00.6899290Z"]) == [datetime(2026, 11, 20, 0, 0, 0, 689929, UTC)]


def test_seventh_fraction_digit_is_truncated_not_rounded() -> None:
    # .1234569 rounded would be .123457 and .9999999 would roll over into the next second
    assert parse(["2026-11-20T00:00:00.1234569Z", "2026-11-20T00:00:00.9999999Z"]) == [
        datetime(2026, 11, 20, 0, 0, 0, 123456, UTC),
        datetime(2026, 11, 20, 0, 0, 0, 999999, UTC),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-20T00:00:00Z", datetime(2026, 11, 20, tzinfo=UTC)),
        ("2026-11-20T00:00:00.5Z", datetime(2026, 11, 20, 0, 0, 0, 500000, UTC)),
        ("2026-11-20T00:00:00.123Z", datetime(2026, 11, 20, 0, 0, 0, 123000, UTC)),
        # offsets are converted to UTC: 01:00 at +01:00 is 00:00 UTC
        ("2026-11-20T01:00:00+01:00", datetime(2026, 11, 20, tzinfo=UTC)),
        ("2026-11-20T01:00:00.25+0100", datetime(2026, 11, 20, 0, 0, 0, 250000, UTC)),
        ("2026-11-19T19:30:00-04:30", datetime(2026, 11, 20, tzinfo=UTC)),
        ("2026-11-20 00:00:00.123456", datetime(2026, 11, 20, 0, 0, 0, 123456, UTC)),
        ("2026-11-20T00:00:00", datetime(2026, 11, 20, tzinfo=UTC)),
        ("  2026-11-20T00:00:00Z  ", datetime(2026, 11, 20, tzinfo=UTC)),
        # the Defender portal's display form (12-hour clock)
        ("Nov 20, 2026 12:00:00 AM", datetime(2026, 11, 20, tzinfo=UTC)),
        ("Nov 20, 2026 1:02:03 PM", datetime(2026, 11, 20, 13, 2, 3, tzinfo=UTC)),
    ],
)
def test_iso_variants_parse_to_utc(text: str, expected: datetime) -> None:
    assert parse([text]) == [expected]


def test_unparsable_or_impossible_text_is_null() -> None:
    assert parse(["garbage", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", None]) == [None] * 4


def test_plain_numbers_are_not_timestamps_unless_epoch_is_allowed() -> None:
    assert parse(["1700000000"]) == [None]


def test_epoch_unit_chosen_by_integer_digits() -> None:
    # 1700000000 s = 2023-11-14T22:13:20Z (1700000000 = 19675 days * 86400 + 80000 s)
    base = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert parse(["1700000000.5", "1700000000500", "1700000000000123"], epoch=True) == [
        base + timedelta(microseconds=500000),  # seconds (10 digits)
        base + timedelta(microseconds=500000),  # milliseconds (13 digits)
        base + timedelta(microseconds=123),  # microseconds (16 digits)
    ]


def test_epoch_text_is_exact_decimal_arithmetic() -> None:
    frame = pl.DataFrame({"t": ["1700000000.123457", "1700000000.1234579", "1700000000"]})
    out = frame.select(epoch_text(pl.col("t"), "s")).to_series().to_list()
    base = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert out == [
        base + timedelta(microseconds=123457),
        base + timedelta(microseconds=123457),  # 7th digit truncated
        base,
    ]


def test_epoch_float_seconds_round_to_the_written_microsecond() -> None:
    # 1700000000.123457 is not exact in binary; the nearest microsecond is what Zeek wrote
    frame = pl.DataFrame({"t": [1700000000.123457, 1700000060.5]})
    out = frame.select(epoch_number(pl.col("t"), "s")).to_series().to_list()
    base = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert out == [base + timedelta(microseconds=123457), base + timedelta(seconds=60.5)]


def test_datetime_columns_become_utc_microseconds() -> None:
    naive = pl.Series("t", [datetime(2026, 11, 20, 1, 0, 0, 689929)])
    aware = naive.dt.replace_time_zone("Europe/Paris")  # 01:00 in Paris (CET) = 00:00 UTC
    frame = pl.DataFrame({"naive": naive, "aware": aware.cast(pl.Datetime("ns", "Europe/Paris"))})
    out = frame.select(
        timestamp_for(pl.col("naive"), frame.schema["naive"]),
        timestamp_for(pl.col("aware"), frame.schema["aware"]),
    )
    assert out.dtypes == [pl.Datetime("us", "UTC")] * 2
    assert out.row(0) == (
        datetime(2026, 11, 20, 1, 0, 0, 689929, UTC),
        datetime(2026, 11, 20, 0, 0, 0, 689929, UTC),
    )


def test_chosen_parser_is_the_one_form_the_sample_uses() -> None:
    sample = pl.Series(["Nov 20, 2026 12:00:00 AM", "Nov 20, 2026 12:00:01 AM", None])
    parse = choose_text_parser(sample)
    frame = pl.DataFrame({"t": ["Nov 21, 2026 1:00:00 PM", "2026-11-20T00:00:00Z"]})
    # the portal form parses; the ISO row is left null for the all-forms retry
    assert frame.select(parse(pl.col("t"))).to_series().to_list() == [
        datetime(2026, 11, 21, 13, 0, tzinfo=UTC),
        None,
    ]


def test_chosen_parser_for_epoch_samples_when_allowed() -> None:
    parse = choose_text_parser(pl.Series(["1700000000", "1700000001"]), epoch=True)
    frame = pl.DataFrame({"t": ["1700000002.25"]})
    assert frame.select(parse(pl.col("t"))).item() == datetime(
        2023, 11, 14, 22, 13, 22, 250000, UTC
    )


def test_defender_form_fast_parse_agrees_with_the_full_parse_or_leaves_null() -> None:
    values = [
        "2026-11-20T00:00:00.6899290Z",  # Defender's seven digits, truncated
        "2026-11-20T23:59:59.9999999Z",
        "2024-02-29T12:00:00.5Z",  # one digit: half a second
        "2026-11-20T00:00:00Z",  # no fraction
        "1000-01-01T00:00:00.000001Z",
        "2026-02-30T00:00:00.1Z",  # no such day: null in both
        "2026-13-01T00:00:00Z",
        " 2026-11-20T00:00:00.1Z",  # padded: left to the full parse
        "2026-11-20T00:00:00.1234567891Z",  # ten digits: left to the full parse
        "2026-11-20T00:00:00.+12345Z",
        "2026-11-20T00:00:60Z",  # a leap second: left to the full parse
        "2026-11-20T00:00:00.1+00:00",  # another form
    ]
    frame = pl.DataFrame({"t": values})
    fast = frame.select(utc_z_fast(pl.col("t"))).to_series().to_list()
    assert fast[:5] == [
        datetime(2026, 11, 20, 0, 0, 0, 689929, UTC),
        datetime(2026, 11, 20, 23, 59, 59, 999999, UTC),
        datetime(2024, 2, 29, 12, 0, 0, 500000, UTC),
        datetime(2026, 11, 20, tzinfo=UTC),
        datetime(1000, 1, 1, 0, 0, 0, 1, UTC),
    ]
    assert fast[5:] == [None] * 7
    full = parse(values)
    assert all(f is None or f == g for f, g in zip(fast, full, strict=True))


def test_unpadded_defender_sample_gets_the_fast_parse_and_padded_the_full_form() -> None:
    unpadded = pl.Series(["2026-11-20T00:00:00.1Z", "2026-11-20T00:00:01.1Z"])
    assert choose_text_parser(unpadded) is utc_z_fast
    padded = pl.Series([" 2026-11-20T00:00:00.1Z", "2026-11-20T00:00:01.1Z"])
    parse_padded = choose_text_parser(padded)
    assert parse_padded is not utc_z_fast
    frame = pl.DataFrame({"t": [" 2026-11-20T00:00:00.1Z "]})
    assert frame.select(parse_padded(pl.col("t"))).item() == datetime(
        2026, 11, 20, 0, 0, 0, 100000, UTC
    )
