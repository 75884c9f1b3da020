"""Folders: read recursively, stray files counted in one line, rotated logs read in batches."""

from __future__ import annotations

import gzip
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest

from detectors import load
from detectors.base import schema as S
from detectors.base.errors import InputError
from detectors.load import load_file, load_paths

UTC = timezone.utc
T0 = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)  # epoch 1700000000
CONN_HEADER = (
    "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n"
    "#path\tconn\n#open\t2024-04-19-00-00-00\n"
    "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tconn_state\n"
    "#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\n"
)


def conn_log(hour: int, count: int = 2) -> bytes:
    lines = [
        f"{1700000000 + hour * 3600 + i}\tC{hour}x{i}\t10.0.0.5\t{40000 + i}\t203.0.113.5\t443"
        "\ttcp\tSF\n"
        for i in range(count)
    ]
    return (CONN_HEADER + "".join(lines) + "#close\t2024-04-19-01-00-00\n").encode()


def other_log(path: str) -> bytes:
    return f"#separator \\x09\n#path\t{path}\n#fields\tts\tname\n1700000000\tx\n".encode()


def archive(root: Path, hours: int = 3) -> list[Path]:
    """zeek/2024-04-19/conn.HH:00:00-HH:00:00.log.gz as a sensor's log archive lays it out."""
    day = root / "zeek" / "2024-04-19"
    day.mkdir(parents=True)
    conns = []
    for hour in range(hours):
        stamp = f"{hour:02d}:00:00-{hour + 1:02d}:00:00"
        conns.append(day / f"conn.{stamp}.log.gz")
        conns[-1].write_bytes(gzip.compress(conn_log(hour)))
        for log in ("weird", "stats", "capture_loss"):
            (day / f"{log}.{stamp}.log.gz").write_bytes(gzip.compress(other_log(log)))
    (day / "dhcp.00:00:00-01:00:00.log.gz").write_bytes(gzip.compress(other_log("dhcp")))
    (root / "zeek" / "README").write_text("Sensor logs, rotated hourly.\n")
    (root / "zeek" / ".DS_Store").write_bytes(b"\x00\x01junk")
    return conns


def test_a_dated_archive_is_read_recursively_with_one_skip_line(tmp_path: Path) -> None:
    conns = archive(tmp_path)
    dataset = load_paths([tmp_path / "zeek"], cache=False)
    assert dataset.warnings == [
        "skipped 11 files: 10 Zeek capture_loss/dhcp/stats/weird logs, 1 README"
    ]
    assert dataset.files == [str(p) for p in conns]
    assert dataset.events.select(S.TIMESTAMP, S.UID, S.SOURCE_FILE).rows() == [
        (T0 + timedelta(hours=h, seconds=i), f"C{h}x{i}", str(conns[h]))
        for h in range(3)
        for i in range(2)
    ]


def test_no_recursive_reads_only_the_top_folder(tmp_path: Path) -> None:
    archive(tmp_path)
    with pytest.raises(InputError) as caught:
        load_paths([tmp_path / "zeek"], cache=False, recursive=False)
    folder = tmp_path / "zeek"
    assert str(caught.value) == (
        f"{folder / 'README'}: CSV columns not recognised as a supported format; add a "
        "[mapping] section to the config naming at least its timestamp and remote_ip columns"
    )


def test_a_folder_of_only_unused_zeek_logs_is_an_error_saying_what_it_holds(tmp_path):
    (tmp_path / "dhcp.log").write_bytes(other_log("dhcp"))
    (tmp_path / "weird.log").write_bytes(other_log("weird"))
    (tmp_path / "weird.1.log").write_bytes(other_log("weird"))
    with pytest.raises(InputError) as caught:
        load_paths([tmp_path], cache=False)
    assert str(caught.value) == (
        f"{tmp_path}: no connection events found; these paths hold 3 Zeek dhcp/weird logs"
    )


def test_rotated_logs_in_one_scan_equal_file_by_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(load, "BATCH_FILES", 4)
    paths = []
    for hour in range(11):  # batches of 4, 4 and 3 files; every other one gzip
        paths.append(tmp_path / f"conn.{hour:04d}.log{'.gz' if hour % 2 else ''}")
        data = conn_log(hour, count=3)
        paths[-1].write_bytes(gzip.compress(data) if hour % 2 else data)
    batched = load_paths([tmp_path], cache=False)
    one_by_one = pl.concat([load_file(p).events for p in paths])  # type: ignore[misc]
    assert batched.events.height == 3 * 11
    assert batched.events.equals(one_by_one)
    assert batched.files == [str(p) for p in paths]


def test_a_bad_row_in_a_batch_names_its_file_and_line(tmp_path: Path) -> None:
    for hour in range(5):
        data = conn_log(hour)
        if hour == 3:
            data = data.replace(b"1700010801\t", b"17OOO10801\t")
        (tmp_path / f"conn.{hour}.log").write_bytes(data)
    with pytest.raises(InputError) as caught:
        load_paths([tmp_path], cache=False)
    assert str(caught.value) == (
        f"{tmp_path / 'conn.3.log'}: line 10, field ts: cannot parse timestamp '17OOO10801' "
        "(lines counted from 1)"
    )


def test_impossible_values_are_dropped_with_one_warning_per_kind(tmp_path: Path) -> None:
    path = tmp_path / "conn.log"
    good = "1700000000\tCok\t10.0.0.5\t40000\t203.0.113.5\t443\ttcp\tSF\n"
    path.write_text(
        CONN_HEADER
        + good
        + "1700000001\tCp1\t10.0.0.5\t40000\t203.0.113.5\t70000\ttcp\tSF\n"
        + "1700000002\tCp2\t10.0.0.5\t-1\t203.0.113.5\t443\ttcp\tSF\n"
        + "1700000003\tCip\t10.0.0.5\t40000\t203.0.113.999\t443\ttcp\tSF\n"
        + "1700000004\tCh\t10.0.0.5\t40000\tevil.example\t443\ttcp\tSF\n"
        + "1969-12-31T00:00:00Z\tCold\t10.0.0.5\t40000\t203.0.113.5\t443\ttcp\tSF\n"
        + "4200000000\tCnew\t10.0.0.5\t40000\t203.0.113.5\t443\ttcp\tSF\n"
    )
    dataset = load_paths([path], cache=False)
    assert dataset.events.get_column(S.UID).to_list() == ["Cok"]
    assert dataset.warnings == [
        f"{path}: 1 rows with a local_port outside 0-65535 dropped (first in {path})",
        f"{path}: 1 rows with a remote_port outside 0-65535 dropped (first in {path})",
        f"{path}: 2 rows with a remote_ip that is not an IP address dropped (first in {path})",
        f"{path}: 1 rows with a timestamp before 1970 dropped (first in {path})",
        f"{path}: 1 rows with a timestamp in 2100 or later dropped (first in {path})",
    ]


def test_a_blank_line_in_one_rotated_log_keeps_rows_with_their_files(tmp_path: Path) -> None:
    paths = []
    for hour in range(3):
        data = conn_log(hour, count=2)
        if hour == 1:  # Zeek never writes one; a hand-edited file may
            data = data.replace(b"SF\n", b"SF\n\n", 1)
        paths.append(tmp_path / f"conn.{hour}.log")
        paths[-1].write_bytes(data)
    batched = load_paths([tmp_path], cache=False)
    assert batched.events.select(S.UID, S.SOURCE_FILE).rows() == [
        (f"C{h}x{i}", str(paths[h])) for h in range(3) for i in range(2)
    ]
