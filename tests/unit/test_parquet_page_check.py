"""The Parquet page check: the columns polars will read, every page of them, in shares."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from detectors.base.errors import InputError
from detectors.load import tables
from detectors.load.tables import _read_every_page, parquet_table


def damaged(path: Path, column: str) -> Path:
    """``path`` with the first page header of ``column`` overwritten (thrift junk)."""
    meta = pq.ParquetFile(path).metadata
    names = [meta.row_group(0).column(i).path_in_schema for i in range(meta.num_columns)]
    chunk = meta.row_group(0).column(names.index(column))
    offset = chunk.dictionary_page_offset or chunk.data_page_offset
    data = bytearray(path.read_bytes())
    data[offset : offset + 4] = b"\xff\xff\xff\xff"
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def events(tmp_path: Path) -> Path:
    path = tmp_path / "events.parquet"
    pl.DataFrame(
        {
            "big": [f"https://host-{i}.example/path/{i * 7}" for i in range(2000)],
            "port": list(range(2000)),
            "small": [i % 3 for i in range(2000)],
        }
    ).write_parquet(path, compression="uncompressed", statistics=False)
    return path


def test_a_damaged_page_in_a_column_never_read_does_not_refuse_the_file(events):
    # pyarrow's scan_contents takes column names: given leaf numbers it checked every
    # column, and refused files for damage polars would never have read
    damaged(events, "big")
    _read_every_page(events, ["port", "small"])
    table = parquet_table(events, {"port", "small"})
    assert table.frame.collect().get_column("port").sum() == sum(range(2000))


@pytest.mark.parametrize("column", ["big", "port", "small"])
def test_a_damaged_page_in_any_share_is_found(events, column, monkeypatch):
    # three columns in two shares by decoded bytes: "big" alone, "port" and "small" together
    damaged(events, column)
    with pytest.raises(OSError, match="thrift"):
        _read_every_page(events, ["big", "port", "small"])
    monkeypatch.setattr(tables, "PAGE_CHECK_THREADS", 1)
    with pytest.raises(OSError, match="thrift"):
        _read_every_page(events, ["big", "port", "small"])


def test_a_damaged_page_is_one_error_naming_the_file(events):
    damaged(events, "small")
    with pytest.raises(InputError, match=r"events\.parquet"):
        parquet_table(events, {"big", "port", "small"})


def test_a_column_whose_name_holds_a_dot_is_checked_by_its_whole_name(tmp_path):
    path = tmp_path / "dotted.parquet"
    pl.DataFrame({"event.action": ["a", "b"] * 500, "port": list(range(1000))}).write_parquet(
        path, compression="uncompressed", statistics=False
    )
    damaged(path, "event.action")
    _read_every_page(path, ["port"])
    with pytest.raises(OSError, match="thrift"):
        _read_every_page(path, ["event.action"])
