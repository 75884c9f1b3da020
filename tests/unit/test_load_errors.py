"""Bad input: every mistake is one InputError naming the file (and line/column when known)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import polars as pl
import pytest

from detectors.base import schema as S
from detectors.base.errors import InputError
from detectors.load import load_paths

DATA = Path(__file__).parent.parent / "data" / "load"
UTC = timezone.utc
HEADER = "Timestamp,DeviceId,DeviceName,ActionType,RemoteIP,RemotePort,AdditionalFields\n"
ROW = "2026-11-20T00:00:0{s}Z,dev1,ws-01,ConnectionSuccess,203.0.113.5,443,\n"


def error_of(*paths: Path | str, **kwargs: object) -> InputError:
    with pytest.raises(InputError) as caught:
        load_paths(list(paths), **kwargs)  # type: ignore[arg-type]
    return caught.value


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    assert str(error_of(path)) == f"{path}: file not found"


def test_directory_without_files(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert str(error_of(tmp_path / "empty")) == f"{tmp_path / 'empty'}: directory has no files"


def test_glob_matching_nothing(tmp_path: Path) -> None:
    pattern = str(tmp_path / "*.csv")
    assert str(error_of(pattern)) == f"{pattern}: no files match this pattern"


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("")
    assert str(error_of(path)) == f"{path}: file is empty"


def test_whitespace_only_file_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("\n  \n")
    assert str(error_of(path)) == f"{path}: file is empty"


def test_binary_garbage(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_bytes(bytes(range(256)) * 8)
    error = error_of(path)
    assert str(error).startswith(f"{path}: binary data")
    assert "not a supported format" in str(error)


def test_unknown_text_format(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello\nworld\n")
    assert str(error_of(path)).startswith(f"{path}: unrecognised format: expected a Defender")


def test_unknown_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "other.jsonl"
    path.write_text('{"foo": 1, "bar": 2}\n')
    assert str(error_of(path)).startswith(f"{path}: JSON Lines with unknown fields;")


def test_unknown_source_format_option() -> None:
    error = error_of(DATA / "mde_network.csv", source_format="splunk")
    assert str(error).startswith("field source-format: unknown source format 'splunk';")


def test_missing_required_column_is_named(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        "Timestamp,DeviceId,DeviceName,ActionType,RemotePort\n"
        "2026-11-20T00:00:00Z,dev1,ws-01,ConnectionSuccess,443\n"
    )
    error = error_of(path)
    assert str(error) == f"{path}: field RemoteIP: missing required column 'RemoteIP'"
    assert (error.file, error.field) == (str(path), "RemoteIP")


def test_missing_zeek_field_is_named(tmp_path: Path) -> None:
    text = (DATA / "conn.log").read_text().replace("id.resp_h", "id.other_h")
    path = tmp_path / "conn.log"
    path.write_text(text)
    assert str(error_of(path)) == f"{path}: field id.resp_h: missing required field 'id.resp_h'"


def test_unparsable_csv_timestamp_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    # header = line 1, rows on lines 2-4, the bad value on line 5
    path.write_text(
        HEADER + ROW.format(s=0) + ROW.format(s=1) + ROW.format(s=2)
        + "2026-13-45T00:00:00Z,dev1,ws-01,ConnectionSuccess,203.0.113.5,443,\n"
    )  # fmt: skip
    error = error_of(path)
    assert str(error) == (
        f"{path}: line 5, field Timestamp: cannot parse timestamp '2026-13-45T00:00:00Z' "
        "(line 1 is the header)"
    )
    assert (error.line, error.field) == (5, "Timestamp")


def test_unparsable_timestamp_after_rows_in_other_forms_is_still_found(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        HEADER
        + ROW.format(s=0)  # line 2: the file's usual form
        + "2026-11-20T01:00:00+01:00,dev1,ws-01,ConnectionSuccess,203.0.113.5,443,\n"  # line 3
        + "2026-11-20T24:61:00Z,dev1,ws-01,ConnectionSuccess,203.0.113.5,443,\n"  # line 4
    )
    assert str(error_of(path)) == (
        f"{path}: line 4, field Timestamp: cannot parse timestamp '2026-11-20T24:61:00Z' "
        "(line 1 is the header)"
    )


def test_unparsable_jsonl_timestamp_counts_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    good = (
        '{"Timestamp":"2026-11-20T00:00:00Z","DeviceName":"ws","ActionType":"X",'
        '"RemoteIP":"1.2.3.4"}'
    )
    bad = good.replace("2026-11-20T00:00:00Z", "yesterday")
    path.write_text(f"{good}\n\n{bad}\n")  # the bad record is on line 3
    assert str(error_of(path)) == (
        f"{path}: line 3, field Timestamp: cannot parse timestamp 'yesterday' "
        "(lines counted from 1)"
    )


def test_unparsable_zeek_ts_counts_header_lines(tmp_path: Path) -> None:
    text = (DATA / "conn.log").read_text().replace("1700000060.5", "17000x0060.5")
    path = tmp_path / "conn.log"
    path.write_text(text)
    # 8 header lines, first record on line 9, the bad one on line 10
    assert str(error_of(path)) == (
        f"{path}: line 10, field ts: cannot parse timestamp '17000x0060.5' (lines counted from 1)"
    )


def test_unparsable_api_json_timestamp_names_the_row(tmp_path: Path) -> None:
    path = tmp_path / "api.json"
    path.write_text(
        '{"Schema": [{"Name": "Timestamp"}, {"Name": "RemoteIP"}], "Results": ['
        '{"Timestamp": "2026-11-20T00:00:00Z", "RemoteIP": "1.2.3.4"},'
        '{"Timestamp": "20/11/2026", "RemoteIP": "1.2.3.4"}]}'
    )
    assert str(error_of(path, source_format="mde-json")) == (
        f"{path}: row 2, field Timestamp: cannot parse timestamp '20/11/2026' "
        "(rows of Results counted from 1)"
    )


def test_truncated_api_json(tmp_path: Path) -> None:
    text = (DATA / "mde_network_api.json").read_text()
    path = tmp_path / "api.json"
    path.write_text(text[: text.index('"Results"') + 60])  # cut inside the first result
    error = error_of(path)
    assert str(error).startswith(f"{path}: line ")
    assert "truncated JSON: the document ends before it is closed" in str(error)
    assert error.line == path.read_text().count("\n") + 1


def test_invalid_api_json_gives_the_position(tmp_path: Path) -> None:
    path = tmp_path / "api.json"
    path.write_text('{"Schema": [], "Results": [\n{"Timestamp": "x",, "RemoteIP": "1"}\n]}')
    error = error_of(path, source_format="mde-json")
    # '{"Timestamp": "x",' is 18 characters, so the stray comma is column 19 of line 2
    assert str(error) == (
        f"{path}: line 2: invalid JSON: Expecting property name enclosed in double quotes "
        "(column 19)"
    )


def test_csv_cut_mid_row_keeps_whole_rows_and_warns(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(HEADER + ROW.format(s=0) + ROW.format(s=1) + "2026-11-20T00:00:02Z,dev1,ws")
    ds = load_paths([path])
    assert ds.events.get_column(S.TIMESTAMP).to_list() == [
        datetime(2026, 11, 20, 0, 0, 0, tzinfo=UTC),
        datetime(2026, 11, 20, 0, 0, 1, tzinfo=UTC),
    ]
    assert ds.warnings == [
        f"{path}: the last record is incomplete (export cut mid-row?): dropped 1 row"
    ]


def test_csv_cut_inside_a_quoted_field_keeps_whole_rows_and_warns(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        HEADER
        + ROW.format(s=0)
        + "2026-11-20T01:00:00Z,dev1,ws-01,ConnectionSuccessAggregatedReport,203.0.113.5,443,"
        + '"{""uniqueEventsAggreg'
    )
    ds = load_paths([path])
    assert ds.events.height == 1
    assert ds.warnings == [
        f"{path}: the last record is incomplete (export cut mid-row?): dropped 1 row"
    ]


def test_complete_csv_without_final_newline_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(HEADER + ROW.format(s=0) + ROW.format(s=1).rstrip("\n"))
    ds = load_paths([path])
    assert (ds.events.height, ds.warnings) == (2, [])


def test_jsonl_cut_mid_line_keeps_whole_lines_and_warns(tmp_path: Path) -> None:
    source = (DATA / "mde_network.jsonl").read_text()
    path = tmp_path / "events.jsonl"
    path.write_text(source[: source.rindex("\n", 0, len(source) - 1) + 40])
    ds = load_paths([path])
    assert ds.events.height == 2
    assert ds.warnings == [
        f"{path}: the last record is incomplete (export cut mid-row?): dropped 1 row"
    ]


def test_header_only_csv_is_valid_and_empty(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(HEADER)
    ds = load_paths([path], require_events=False)
    assert (ds.events.height, ds.warnings) == (0, [])


def test_rows_without_timestamp_are_skipped_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        HEADER + ROW.format(s=0) + ",dev1,ws-01,ConnectionSuccess,203.0.113.5,443,\n" + "\n"
    )
    ds = load_paths([path])
    assert ds.events.height == 1
    # the blank last line is not counted as a skipped row
    assert ds.warnings == [f"{path}: 1 rows without a Timestamp skipped"]


def test_broken_parquet(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    path.write_bytes(b"PAR1" + b"\x01" * 64)
    assert str(error_of(path)).startswith(f"{path}: broken Parquet file:")


def test_unparsable_parquet_timestamp_names_the_row(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    pl.DataFrame(
        {"Timestamp": ["2026-11-20T00:00:00Z", "soon"], "RemoteIP": ["1.2.3.4"] * 2,
         "DeviceName": ["ws"] * 2, "ActionType": ["ConnectionSuccess"] * 2}
    ).write_parquet(path)  # fmt: skip
    assert str(error_of(path)) == (
        f"{path}: row 2, field Timestamp: cannot parse timestamp 'soon' (rows counted from 1)"
    )


def test_invalid_utf8_in_parquet_text_is_an_input_error(tmp_path: Path) -> None:
    # pyarrow writes the bytes as they are when a binary array is relabelled as text;
    # the loader must refuse the file with one line, never load or crash on it
    import pyarrow as pa
    import pyarrow.parquet as pq

    raw = pa.array([b"203.0.113.5", b"\xff\xfe.0.113.6"], pa.binary())
    remote_ip = pa.Array.from_buffers(pa.string(), len(raw), raw.buffers())
    stamps = pa.array([datetime(2026, 11, 20, tzinfo=UTC)] * 2, pa.timestamp("us", "UTC"))
    path = tmp_path / "events.parquet"
    names = pa.array(["ws-01"] * 2)
    actions = pa.array(["ConnectionSuccess"] * 2)
    columns = {"Timestamp": stamps, "DeviceName": names, "ActionType": actions}
    pq.write_table(pa.table({**columns, "RemoteIP": remote_ip}), path)
    message = str(error_of(path))
    assert message.startswith(f"{path}: cannot read: ") and "UTF-8" in message
    assert "\n" not in message


def test_utf16_csv_is_explained(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_bytes(HEADER.encode("utf-16"))
    assert str(error_of(path)) == f"{path}: UTF-16 text is not supported: save the file as UTF-8"
