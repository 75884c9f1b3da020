"""Zeek as sites really write it: own fields and types, any order, concatenated logs,
underscored/vendor JSON, Filebeat/Security Onion ECS, and the open_* logs."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from detectors.base import schema as S
from detectors.base.errors import InputError
from detectors.load import load_paths, sniff_format

UTC = timezone.utc
T0 = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)  # epoch 1700000000
COLUMNS = [S.TIMESTAMP, S.LOCAL_IP, S.LOCAL_PORT, S.REMOTE_IP, S.REMOTE_PORT, S.PROTOCOL,
           S.BYTES_OUT, S.BYTES_IN, S.UID, S.ACTION]  # fmt: skip


def tsv(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def rows(*paths: Path) -> list[tuple[object, ...]]:
    return load_paths(list(paths), cache=False).events.select(COLUMNS).rows()


def test_site_fields_of_any_type_in_any_order_without_types_line(tmp_path: Path) -> None:
    path = tmp_path / "conn.log"
    path.write_text(
        tsv(
            "#separator \\x09",
            "#path\tconn",
            # no #types line; a site's int64, vector, set and table fields; resp first
            "#fields\tid.resp_h\tid.resp_p\tsite_score\tts\tsite_tags\tuid\tid.orig_h"
            "\tid.orig_p\tproto\tsite_seen\tconn_state\tsite_map",
            "203.0.113.5\t443\t-9223372036854775807\t1700000000.5\ta,b\tC1\t10.0.0.5\t50000"
            "\ttcp\t(empty)\tSF\tk=v",
            "#close\t2026-11-20-01-00-00",
        )
    )
    assert rows(path) == [
        (T0 + timedelta(seconds=0.5), "10.0.0.5", 50000, "203.0.113.5", 443, "tcp", None,
         None, "C1", "SF"),
    ]  # fmt: skip


CONCATENATED = tsv(
    "#separator \\x09",
    "#path\tconn",
    "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto",
    "#types\ttime\tstring\taddr\tport\taddr\tport\tenum",
    "1700000000\tC1\t10.0.0.5\t50000\t203.0.113.5\t443\ttcp",
    "#close\t2026-11-20-01-00-00",
    "#separator \\x09",
    "#path\tconn",
    # the next hour was written by a Zeek with another field order and orig_bytes
    "#fields\tuid\tts\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\torig_bytes",
    "#types\tstring\ttime\taddr\tport\taddr\tport\tenum\tcount",
    "C2\t1700003600\t10.0.0.6\t50001\t198.51.100.7\t80\tudp\t12",
    "C3\t1700003660\t10.0.0.6\t50002\t198.51.100.7\t80\tudp\t13",
    "#close\t2026-11-20-02-00-00",
)


def test_concatenated_logs_with_different_headers_read_each_part_by_its_own(tmp_path):
    path = tmp_path / "conn.log"
    path.write_text(CONCATENATED)
    assert rows(path) == [
        (T0, "10.0.0.5", 50000, "203.0.113.5", 443, "tcp", None, None, "C1", None),
        (T0 + timedelta(hours=1), "10.0.0.6", 50001, "198.51.100.7", 80, "udp", 12, None,
         "C2", None),
        (T0 + timedelta(hours=1, minutes=1), "10.0.0.6", 50002, "198.51.100.7", 80, "udp",
         13, None, "C3", None),
    ]  # fmt: skip


def test_a_bad_time_in_the_second_part_names_its_own_line(tmp_path: Path) -> None:
    path = tmp_path / "conn.log"
    path.write_text(CONCATENATED.replace("1700003660", "noon"))
    with pytest.raises(InputError) as caught:
        load_paths([path], cache=False)
    assert str(caught.value) == (
        f"{path}: line 12, field ts: cannot parse timestamp 'noon' (lines counted from 1)"
    )


def test_json_with_underscored_ids_and_streaming_extras(tmp_path: Path) -> None:
    path = tmp_path / "conn.json"
    record = {
        "@stream": "conn", "@system": "sensor-1", "@proc": "zeek", "_write_ts": "x",
        "ts": 1700000000.25, "uid": "C9", "id_orig_h": "10.0.0.9", "id_orig_p": 40000,
        "id_resp_h": "203.0.113.9", "id_resp_p": 8443, "proto": "tcp", "orig_bytes": 5,
        "resp_bytes": 6, "conn_state": "SF",
    }  # fmt: skip
    path.write_text(json.dumps(record) + "\n")
    assert sniff_format(path) == "zeek-json"
    assert rows(path) == [
        (T0 + timedelta(seconds=0.25), "10.0.0.9", 40000, "203.0.113.9", 8443, "tcp", 5, 6,
         "C9", "SF"),
    ]  # fmt: skip


def test_corelight_json_nested_id_iso_time_and_system_name(tmp_path: Path) -> None:
    path = tmp_path / "conn_20231114.json"
    record = {
        "_path": "conn", "_system_name": "corelight-ap200", "_write_ts": "2023-11-14T22:14:00Z",
        "ts": "2023-11-14T22:13:20.000001Z", "uid": "C5",
        "id": {"orig_h": "10.0.0.5", "orig_p": 1, "resp_h": "203.0.113.5", "resp_p": 2},
        "proto": "tcp", "conn_state": "S0", "orig_bytes": 0, "resp_bytes": 0,
    }  # fmt: skip
    path.write_text(json.dumps(record) + "\n")
    assert rows(path) == [
        (T0 + timedelta(microseconds=1), "10.0.0.5", 1, "203.0.113.5", 2, "tcp", 0, 0, "C5",
         "S0"),
    ]  # fmt: skip


def test_open_conn_counts_only_connections_not_logged_closed(tmp_path: Path) -> None:
    header = "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\torig_bytes"
    (tmp_path / "conn.log").write_text(
        tsv(
            "#separator \\x09",
            "#path\tconn",
            header,
            "1700000000\tC1\t10.0.0.5\t1\t203.0.113.5\t443\ttcp\t900",
        )
    )
    (tmp_path / "open_conn.log").write_text(
        tsv(
            "#separator \\x09",
            "#path\topen_conn",
            header,
            "1700000000\tC1\t10.0.0.5\t1\t203.0.113.5\t443\ttcp\t100",  # closed since
            "1700000100\tC2\t10.0.0.5\t2\t203.0.113.5\t443\ttcp\t10",  # still open
            "1700000100\tC2\t10.0.0.5\t2\t203.0.113.5\t443\ttcp\t20",
        )  # its next report
    )
    assert load_paths([tmp_path], cache=False).events.select(S.UID, S.BYTES_OUT).rows() == [
        ("C1", 900),
        ("C2", 10),
    ]


def test_filebeat_zeek_module_documents_read_as_ecs_other_logs_dropped(tmp_path: Path) -> None:
    path = tmp_path / "filebeat.ndjson"
    conn = {
        "@timestamp": "2023-11-14T22:13:20.000Z",
        "event": {"dataset": "zeek.connection", "module": "zeek"},
        "source": {"ip": "10.0.0.5", "port": 50000, "bytes": 10},
        "destination": {"ip": "203.0.113.5", "port": 443, "bytes": 20},
        "network": {"transport": "tcp"},
        "zeek": {"session_id": "CfB1", "connection": {"state": "SF"}},
    }
    dns = {
        "@timestamp": "2023-11-14T22:13:21.000Z",
        "event": {"dataset": "zeek.dns", "module": "zeek"},
        "source": {"ip": "10.0.0.5", "port": 5353},
        "destination": {"ip": "10.0.0.53", "port": 53},
        "zeek": {"session_id": "CfB2"},
    }
    path.write_text(json.dumps(conn) + "\n" + json.dumps(dns) + "\n")
    dataset = load_paths([path], cache=False)
    assert dataset.events.select(COLUMNS).rows() == [
        (T0, "10.0.0.5", 50000, "203.0.113.5", 443, "tcp", 10, 20, "CfB1", "SF")
    ]
    assert dataset.warnings == [
        f"{path}: 1 documents of Zeek logs other than conn skipped (not connections)"
    ]


def test_security_onion_zeek_conn_document(tmp_path: Path) -> None:
    path = tmp_path / "so.ndjson"
    doc = {
        "@timestamp": "2023-11-14T22:13:20Z", "event": {"module": "zeek", "dataset": "conn"},
        "log": {"id": {"uid": "CSo1"}}, "connection": {"state": "REJ"},
        "source": {"ip": "10.0.0.7", "port": 1}, "destination": {"ip": "203.0.113.7", "port": 22},
        "network": {"transport": "tcp"},
    }  # fmt: skip
    path.write_text(json.dumps(doc) + "\n")
    assert rows(path) == [(T0, "10.0.0.7", 1, "203.0.113.7", 22, "tcp", None, None, "CSo1", "REJ")]
