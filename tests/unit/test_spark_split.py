"""Cutting large inputs into read pieces (``run.spark.split``), without starting Spark.

Expected offsets are counted by hand from the bytes written; the Spark tests check that
reading the pieces gives what reading the whole file gives.
"""

from __future__ import annotations

import gzip

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from detectors.load.sniff import MDE_CSV, MDE_JSONL, MDE_PARQUET, ZEEK_TSV
from detectors.run.spark.read import merge_counts
from detectors.run.spark.split import (
    DEFAULT_SPLIT_BYTES,
    PARQUET,
    TEXT,
    Piece,
    piece_bytes,
    pieces,
    prefix_bytes,
    split_bytes_of,
)


def test_a_csv_range_never_starts_inside_a_quoted_field(tmp_path):
    # header 0-3 | 1,"x\ny"\n 4-11 (the newline at 8 is inside quotes) | 2,z\n 12-15 | 3,w\n 16-19
    path = tmp_path / "a.csv"
    path.write_bytes(b'a,b\n1,"x\ny"\n2,z\n3,w\n')
    found, note = pieces(path, MDE_CSV, 8)  # 20 bytes: 3 ranges of 7
    assert note is None
    assert found == [
        Piece(TEXT, 0, 12),  # the cut near 7 moved past the quoted newline to 12
        Piece(TEXT, 12, 16, b"a,b\n"),
        Piece(TEXT, 16, 20, b"a,b\n"),
    ]
    assert piece_bytes(path, found[0]) == b'a,b\n1,"x\ny"\n'
    assert piece_bytes(path, found[1]) == b"a,b\n2,z\n"
    assert prefix_bytes(path, found[2]) == path.read_bytes()


def test_a_csv_whose_quotes_do_not_pair_up_is_read_whole_with_a_note(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes(b'a,b\n1,5" screen\n2,z\n3,w\n4,v\n')
    found, note = pieces(path, MDE_CSV, 8)
    assert found == []
    assert note == (
        f"{path}: read in one task: its quotes do not pair up, so lines cannot be told apart"
    )


def _zeek(fields: str) -> bytes:
    return (
        "#separator \\x09\n#path\tconn\n"
        f"#fields\t{fields.replace(' ', chr(9))}\n#types\ttime\taddr\n"
    ).encode()


def test_a_zeek_range_carries_the_header_in_force_where_it_starts(tmp_path):
    first, second = _zeek("ts id.resp_h"), _zeek("ts id.resp_h extra")
    records1 = b"1.0\t203.0.113.5\n2.0\t203.0.113.6\n"
    records2 = b"3.0\t203.0.113.7\tx\n4.0\t203.0.113.8\ty\n"
    data = first + records1 + b"#close\t2026\n" + second + records2
    path = tmp_path / "conn.log"
    path.write_bytes(data)
    a = len(first) + 16  # the second record
    b = len(first) + len(records1) + len(b"#close\t2026\n") + len(second)  # the third record
    # 216 bytes in 3 ranges of 72: the cut near 72 (in the first record) moves to a, the
    # one near 144 (inside the second header) to that header's first record, b
    split = a - 3
    assert len(data) == 216 and (a, b) == (81, 180)
    found, _ = pieces(path, ZEEK_TSV, split)
    assert [p.start for p in found] == [0, a, b]
    by_start = {p.start: p for p in found}
    assert by_start[a].head == first
    assert by_start[b].head == second  # the later header, without the #close line
    assert found[0] == Piece(TEXT, 0, found[1].start)
    assert found[-1].stop == len(data)
    assert all(p.start < p.stop for p in found)


def test_parquet_is_cut_at_row_groups(tmp_path):
    path = tmp_path / "events.parquet"
    pq.write_table(pa.table({"n": list(range(10))}), path, row_group_size=2)
    found, _ = pieces(path, MDE_PARQUET, 1)
    assert found == [Piece(PARQUET, i, i + 1) for i in range(5)]
    assert pq.read_table(pa.BufferReader(piece_bytes(path, found[3])))["n"].to_pylist() == [6, 7]
    assert pq.read_table(pa.BufferReader(prefix_bytes(path, found[1])))["n"].to_pylist() == [
        0,
        1,
        2,
        3,
    ]


def test_small_gzipped_and_json_lines_files(tmp_path):
    lines = b"".join(b'{"n": %d}\n' % i for i in range(4))  # 9 bytes a line, 36 in all
    path = tmp_path / "a.jsonl"
    path.write_bytes(lines)
    assert pieces(path, MDE_JSONL, 1 << 20) == ([], None)  # small: whole
    found, _ = pieces(path, MDE_JSONL, 15)  # 3 ranges of 12: cut near 12 -> 18, 24 -> 27
    assert [(p.start, p.stop, p.head) for p in found] == [
        (0, 18, b""),
        (18, 27, b""),
        (27, 36, b""),
    ]
    zipped = tmp_path / "a.jsonl.gz"
    zipped.write_bytes(gzip.compress(lines * 10))
    assert pieces(zipped, MDE_JSONL, 15) == ([], None)


def test_split_size_reads_spark_size_settings():
    assert split_bytes_of(None) == DEFAULT_SPLIT_BYTES == 128 << 20
    assert split_bytes_of("134217728b") == 134217728  # how Spark reports its default
    assert split_bytes_of("64m") == split_bytes_of("64MB") == 64 << 20
    assert split_bytes_of("1g") == 1 << 30
    with pytest.raises(ValueError, match="expected a size"):
        split_bytes_of("lots")


def test_pieces_warnings_add_up_to_the_whole_files():
    got = merge_counts(
        [
            "f.csv: 3 rows with a remote_ip that is not an IP address dropped (first in f.csv)",
            "f.csv: a note",
            "f.csv: 2 rows with a remote_ip that is not an IP address dropped (first in f.csv)",
            "f.csv: a note",
        ]
    )
    assert got == [
        "f.csv: 5 rows with a remote_ip that is not an IP address dropped (first in f.csv)",
        "f.csv: a note",
    ]
