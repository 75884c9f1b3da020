"""A file the fast reader rejects: the message names file, line (or row) and field."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from detectors.base.errors import InputError
from detectors.load import load_paths

HEADER = "Timestamp,DeviceId,DeviceName,ActionType,RemoteIP,RemotePort,LocalIP,LocalPort\n"
ROW = "2026-11-20T00:00:00Z,d1,ws,ConnectionSuccess,203.0.113.5,443,10.0.0.5,5000\n"
MDE = '"Timestamp":"2026-11-20T00:00:00Z","DeviceId":"d","DeviceName":"w","RemoteIP":"1.2.3.4"'


def message(path: Path) -> str:
    with pytest.raises(InputError) as caught:
        load_paths([path], cache=False)
    return str(caught.value)


def test_csv_row_with_more_fields_than_the_header(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(HEADER + ROW * 3 + ROW.rstrip("\n") + ",extra,fields\n" + ROW)
    assert message(path) == f"{path}: line 5: 10 fields where the header names 8"


def test_json_lines_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("{" + MDE + "}\n\n{" + MDE + ',,"x":1}\n')
    column = len("{" + MDE + ",") + 1  # the second comma, counted from 1
    assert message(path) == (
        f"{path}: line 3: invalid JSON: Expecting property name enclosed in double quotes "
        f"(column {column})"
    )


def test_json_lines_field_that_changes_shape_names_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(
        "{" + MDE + ',"AdditionalFields":{"a":1}}\n{' + MDE + ',"AdditionalFields":[1,2]}\n'
    )
    assert message(path) == (
        f"{path}: line 2, field AdditionalFields: holds a list here but an object on line 1"
    )


def test_zeek_json_nested_field_that_changes_shape(tmp_path: Path) -> None:
    path = tmp_path / "conn.json"
    line = '{"ts":1700000000,"uid":"C1","id":{"orig_h":"10.0.0.1","resp_h":"1.2.3.4","resp_p":%s}}'
    path.write_text(line % "443" + "\n" + line % "[443]" + "\n")
    assert message(path) == (
        f"{path}: line 2, field id.resp_p: holds a list here but a single value on line 1"
    )


def test_parquet_list_column_is_named(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    pl.DataFrame(
        {"Timestamp": ["2026-11-20T00:00:00Z"], "DeviceId": ["d"], "DeviceName": ["w"],
         "ActionType": ["ConnectionSuccess"], "RemoteIP": [["1.2.3.4"]]}
    ).write_parquet(path)  # fmt: skip
    assert message(path) == (
        f"{path}: field RemoteIP: holds large_list<element: large_string> values, not single values"
    )
