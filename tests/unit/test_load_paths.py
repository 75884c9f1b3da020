"""load_paths: files, directories and globs of mixed formats into one PairContext; sniffing."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import polars as pl
import pytest

from detectors.base import schema as S
from detectors.base.errors import Cancelled, InputError
from detectors.base.progress import Progress
from detectors.load import SOURCE_FORMATS, load_paths, sniff_format

DATA = Path(__file__).parent.parent / "data" / "load"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("mde_network.csv", "mde-csv"),
        ("mde_network_api.json", "mde-json"),
        ("mde_network.jsonl", "mde-jsonl"),
        ("deviceinfo.csv", "deviceinfo"),
        ("deviceinfo_api.json", "deviceinfo"),
        ("conn.log", "zeek-tsv"),
        ("dns.log", "zeek-tsv"),
        ("files.log", "zeek-tsv"),
        ("conn.json", "zeek-json"),
        ("ecs_nested.ndjson", "ecs"),
        ("ecs_dotted.ndjson", "ecs"),
        ("mapped.csv", "csv-mapped"),
    ],
)
def test_sniff_format_by_content(name: str, expected: str, tmp_path: Path) -> None:
    assert sniff_format(DATA / name) == expected
    # the name plays no part: the same bytes under a meaningless name sniff the same
    renamed = tmp_path / "export.dat"
    shutil.copy(DATA / name, renamed)
    assert sniff_format(renamed) == expected


def test_sniff_parquet(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    pl.DataFrame({"Timestamp": ["t"], "RemoteIP": ["1.2.3.4"], "DeviceName": ["ws"]}).write_parquet(
        path
    )
    assert sniff_format(path) == "mde-parquet"


def test_source_formats_are_the_documented_names() -> None:
    assert SOURCE_FORMATS == (
        "mde-csv", "mde-json", "mde-jsonl", "mde-parquet", "deviceinfo",
        "zeek-tsv", "zeek-json", "ecs", "csv-mapped", "windows-evtx", "windows-json",
    )  # fmt: skip


def test_mixed_formats_concatenate_into_one_dataset() -> None:
    ds = load_paths(
        [
            DATA / "mde_network.csv",  # 9 events
            DATA / "conn.log",  # 3 events
            str(DATA / "ecs_*.ndjson"),  # glob: ecs_dotted (2) then ecs_nested (2)
            DATA / "dns.log",  # 3 names
            DATA / "http.log",  # 2 names, 3 app rows
            DATA / "ssl.log",  # 1 name, 1 app row
            DATA / "deviceinfo.csv",  # 2 device rows
        ]
    )
    assert ds.events.height == 9 + 3 + 2 + 2
    assert ds.events.schema == pl.Schema(S.EVENT_SCHEMA)
    sources = ds.events.get_column(S.SOURCE_FILE).unique(maintain_order=True).to_list()
    assert sources == [
        str(DATA / "mde_network.csv"),
        str(DATA / "conn.log"),
        str(DATA / "ecs_dotted.ndjson"),
        str(DATA / "ecs_nested.ndjson"),
    ]
    # 203.0.113.5 is named by dns and http and ssl: the same (ip, name, source) is kept once
    assert ds.names.height == 3 + 2 + 1
    assert ds.app.height == 3 + 2  # http rows + every ssl row (with or without SNI)
    assert ds.device_info is not None and ds.device_info.height == 2
    assert ds.files == [
        str(DATA / "mde_network.csv"),
        str(DATA / "conn.log"),
        str(DATA / "ecs_dotted.ndjson"),
        str(DATA / "ecs_nested.ndjson"),
        str(DATA / "dns.log"),
        str(DATA / "http.log"),
        str(DATA / "ssl.log"),
        str(DATA / "deviceinfo.csv"),
    ]


def test_a_directory_loads_its_files_sorted_and_skips_dotfiles(tmp_path: Path) -> None:
    for name in ("b_conn.log", "a_events.csv"):
        source = "conn.log" if name.endswith(".log") else "mde_network.csv"
        shutil.copy(DATA / source, tmp_path / name)
    (tmp_path / ".DS_Store").write_bytes(b"\x00\x01junk")
    (tmp_path / "sub").mkdir()
    ds = load_paths([tmp_path])
    assert ds.files == [str(tmp_path / "a_events.csv"), str(tmp_path / "b_conn.log")]
    assert ds.events.height == 9 + 3


def test_the_same_file_named_twice_loads_once() -> None:
    ds = load_paths([DATA / "conn.log", str(DATA / "conn.*")])
    # the glob matches conn.json and conn.log; conn.log was already named
    assert ds.files == [str(DATA / "conn.log"), str(DATA / "conn.json")]
    # conn.json repeats two of conn.log's connections exactly: kept once, with a warning
    assert ds.events.height == 3
    assert "2 duplicate event rows dropped (identical in every field)" in " ".join(ds.warnings)


def test_progress_reports_each_file_with_its_row_count() -> None:
    calls: list[tuple[str, float, str]] = []
    load_paths(
        [DATA / "mde_network.csv", DATA / "conn.log"],
        progress=Progress(lambda *args: calls.append(args)),
    )
    assert calls == [
        ("load", 0.0, "2 files"),
        ("load", 0.5, "mde_network.csv: 9 rows"),
        ("load", 1.0, "conn.log: 3 rows"),
    ]


def test_cancel_stops_loading() -> None:
    progress = Progress(cancel_event=threading.Event())
    progress.cancel()
    with pytest.raises(Cancelled):
        load_paths([DATA / "mde_network.csv"], progress=progress)


def test_forced_format_applies_to_every_file(tmp_path: Path) -> None:
    path = tmp_path / "weird_name.txt"
    shutil.copy(DATA / "mde_network.jsonl", path)
    ds = load_paths([path], source_format="mde-jsonl")
    assert ds.events.get_column(S.CONNECTIONS).to_list() == [1, 45, 7]


def test_a_directory_skips_files_in_no_supported_format_with_one_line(tmp_path: Path) -> None:
    shutil.copy(DATA / "conn.log", tmp_path / "conn.log")
    (tmp_path / "README.md").write_text("# exports from the lab\n")
    (tmp_path / "truth.csv").write_text("label,score\nbeacon,1\n")  # a CSV with no [mapping]
    ds = load_paths([tmp_path])
    assert ds.files == [str(tmp_path / "conn.log")]
    assert ds.events.height == 3
    assert ds.warnings == ["skipped 2 files: 1 README, 1 in no supported format (truth.csv)"]


def test_a_directory_where_nothing_loads_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("# nothing here\n")
    with pytest.raises(InputError) as caught:
        load_paths([tmp_path])
    assert str(caught.value).startswith(f"{tmp_path / 'README.md'}: unrecognised format")


def test_a_named_file_in_no_supported_format_is_an_error_not_a_warning(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# not data\n")
    with pytest.raises(InputError):
        load_paths([DATA / "conn.log", readme])
