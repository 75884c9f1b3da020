"""Zeek conn/dns/http/ssl logs in TSV (plain, gzip, other separators) and JSON."""

from __future__ import annotations

import gzip
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest

from detectors.base import schema as S
from detectors.base.errors import InputError
from detectors.load import load_paths, sniff_format
from detectors.load.zeek_tsv import read_header

DATA = Path(__file__).parent.parent / "data" / "load"
UTC = timezone.utc
# 1700000000 s after 1970-01-01 = 2023-11-14T22:13:20Z (19675 days + 80000 s)
EPOCH_1_7E9 = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)

CONN_COLUMNS = [
    S.TIMESTAMP, S.DEVICE_ID, S.DEVICE_NAME, S.LOCAL_IP, S.LOCAL_PORT, S.REMOTE_IP,
    S.REMOTE_PORT, S.PROTOCOL, S.BYTES_OUT, S.BYTES_IN, S.UID, S.ACTION, S.CONNECTIONS,
]  # fmt: skip
CONN_ROWS = [
    (EPOCH_1_7E9 + timedelta(microseconds=123456), "10.0.0.5", "10.0.0.5", "10.0.0.5", 50000,
     "203.0.113.5", 443, "tcp", 517, 4012, "CAbc1", "SF", 1),
    # '-' (unset) bytes are null, not 0
    (EPOCH_1_7E9 + timedelta(seconds=60.5), "10.0.0.5", "10.0.0.5", "10.0.0.5", 50001,
     "203.0.113.5", 443, "tcp", None, None, "CAbc2", "S0", 1),
    # ::ffff:198.51.100.7 normalised to IPv4
    (EPOCH_1_7E9 + timedelta(seconds=120), "10.0.0.6", "10.0.0.6", "10.0.0.6", 53211,
     "198.51.100.7", 80, "tcp", 0, 120, "CAbc3", "REJ", 1),
]  # fmt: skip


def conn_rows(path: Path) -> list[tuple[object, ...]]:
    ds = load_paths([path])
    assert ds.warnings == []
    assert ds.events.schema == pl.Schema(S.EVENT_SCHEMA)
    assert ds.events.get_column(S.PROCESS).null_count() == ds.events.height
    return ds.events.select(CONN_COLUMNS).rows()


def test_zeek_header_is_read_from_the_file() -> None:
    header = read_header(DATA / "conn.log")
    assert header.separator == "\t"
    assert header.set_separator == ","
    assert (header.unset_field, header.empty_field) == ("-", "(empty)")
    assert header.path == "conn"
    assert header.fields[:5] == ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h"]
    assert header.lines == 8


def test_zeek_conn_tsv_every_field() -> None:
    assert sniff_format(DATA / "conn.log") == "zeek-tsv"
    assert conn_rows(DATA / "conn.log") == CONN_ROWS


def test_zeek_conn_tsv_gzip_loads_the_same(tmp_path: Path) -> None:
    path = tmp_path / "conn.00:00:00-01:00:00.log.gz"
    path.write_bytes(gzip.compress((DATA / "conn.log").read_bytes()))
    assert sniff_format(path) == "zeek-tsv"
    assert conn_rows(path) == CONN_ROWS


def test_zeek_tsv_honours_another_separator(tmp_path: Path) -> None:
    text = (DATA / "conn.log").read_text().replace("\t", "|").replace("\\x09", "\\x7c")
    path = tmp_path / "conn_pipe.log"
    path.write_text(text)
    assert read_header(path).separator == "|"
    assert conn_rows(path) == CONN_ROWS


def test_zeek_conn_json_flat_and_nested_id_fields() -> None:
    path = DATA / "conn.json"
    assert sniff_format(path) == "zeek-json"
    # row 1 writes "id.orig_h", row 2 writes {"id": {"orig_h": ...}}; JSON omits unset bytes
    assert conn_rows(path) == CONN_ROWS[:2]


def test_zeek_conn_header_only_is_zero_events(tmp_path: Path) -> None:
    lines = (DATA / "conn.log").read_text().splitlines(keepends=True)
    path = tmp_path / "conn.log"
    path.write_text("".join(line for line in lines if line.startswith("#")))
    assert load_paths([path], require_events=False).events.height == 0
    with pytest.raises(InputError) as caught:
        load_paths([path])
    assert str(caught.value) == (
        f"{path}: no connection events found; these paths hold 1 file without rows"
    )


def test_zeek_dns_answers_that_are_addresses_become_names() -> None:
    ds = load_paths([DATA / "dns.log"], require_events=False)
    assert ds.events.height == 0
    # the CNAME answer is dropped; '-' and '(empty)' answers give nothing
    assert ds.names.rows() == [
        ("203.0.113.5", "evil.example", "dns"),
        ("203.0.113.6", "evil.example", "dns"),  # was ::ffff:203.0.113.6
        ("2001:db8::1", "v6.example", "dns"),
    ]


def test_zeek_http_host_and_connect_target_names_and_app_rows() -> None:
    ds = load_paths([DATA / "http.log"], require_events=False)
    assert ds.names.rows() == [
        ("203.0.113.5", "evil.example", "http_host"),  # host "evil.example:8080" without port
        ("10.0.0.3", "c2.example", "connect"),  # the proxy's address, named by CONNECT target
    ]
    assert ds.app.rows() == [
        ("CHttp1", "http", "Mozilla/5.0 (X; beacon)", "evil.example", "GET", None, "/beacon?id=1"),
        # user_agent (empty) → null; the uri names the proxied target (detectors.pairs.proxy)
        ("CHttp2", "http", None, "c2.example", "CONNECT", None, "c2.example:443"),
        ("CHttp3", "http", "curl/8.0", None, "POST", None, "/upload"),  # host '-' → null
    ]
    assert ds.app.schema == pl.Schema(S.APP_SCHEMA)


def test_zeek_ssl_server_name_names_and_app_rows() -> None:
    ds = load_paths([DATA / "ssl.log"], require_events=False)
    assert ds.names.rows() == [("203.0.113.5", "evil.example", "ssl_sni")]
    assert ds.app.rows() == [
        ("CAbc1", "ssl", None, None, None, "evil.example", None),
        ("CSsl2", "ssl", None, None, None, None, None),  # no SNI: kept, it is evidence itself
    ]


def test_zeek_unknown_log_is_counted_in_the_skip_line_not_an_error() -> None:
    ds = load_paths([DATA / "files.log", DATA / "conn.log"])
    assert ds.events.height == 3
    assert ds.warnings == ["skipped 1 file: 1 Zeek files log"]


def test_zeek_json_log_kind_from_path_field(tmp_path: Path) -> None:
    path = tmp_path / "zeek.json"
    path.write_text(
        '{"_path":"ssl","ts":1700000000.0,"uid":"C1","id.orig_h":"10.0.0.5","id.orig_p":1,'
        '"id.resp_h":"203.0.113.5","id.resp_p":443,"server_name":"evil.example"}\n'
    )
    ds = load_paths([path], require_events=False)
    assert ds.names.rows() == [("203.0.113.5", "evil.example", "ssl_sni")]


def test_zeek_dns_json_answers_list(tmp_path: Path) -> None:
    path = tmp_path / "dns.json"
    path.write_text(
        '{"ts":1700000000.0,"uid":"C1","id.orig_h":"10.0.0.5","id.orig_p":5353,'
        '"id.resp_h":"10.0.0.53","id.resp_p":53,"query":"evil.example","qtype_name":"A",'
        '"answers":["cdn.evil.example","203.0.113.5"]}\n'
    )
    names = load_paths([path], require_events=False).names
    assert names.rows() == [("203.0.113.5", "evil.example", "dns")]


def test_zeek_json_files_log_is_skipped_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "files.json"
    path.write_text('{"ts":1700000000.0,"fuid":"F1","source":"HTTP","mime_type":"text/plain"}\n')
    assert sniff_format(path) == "zeek-json"
    with pytest.raises(InputError) as caught:
        load_paths([path])
    assert str(caught.value) == (
        f"{path}: no connection events found; these paths hold 1 Zeek files log"
    )
