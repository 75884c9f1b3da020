"""Elastic ECS NDJSON: nested objects, dotted keys, and both mixed in one file."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from detectors.base import schema as S
from detectors.base.errors import InputError
from detectors.load import load_paths, sniff_format

DATA = Path(__file__).parent.parent / "data" / "load"
UTC = timezone.utc


def test_ecs_nested_documents_every_field() -> None:
    path = DATA / "ecs_nested.ndjson"
    assert sniff_format(path) == "ecs"
    events = load_paths([path]).events
    first = events.drop(S.SOURCE_FILE).row(0, named=True)
    assert first == {
        S.TIMESTAMP: datetime(2026, 11, 20, 0, 0, 0, 123456, UTC),  # nanoseconds truncated
        S.DEVICE_ID: "h-1",  # host.id wins over host.name
        S.DEVICE_NAME: "ws-01",
        S.ACCOUNT: "CORP\\alice",
        S.PROCESS: "beacon.exe",
        S.ACTION: "connection_attempted",
        S.LOCAL_IP: "10.0.0.5",
        S.LOCAL_PORT: 50000,
        S.REMOTE_IP: "203.0.113.5",
        S.REMOTE_PORT: 443,
        S.REMOTE_IP_TYPE: None,
        S.PROTOCOL: "tcp",
        S.REMOTE_URL: "evil.example",  # destination.domain
        S.BYTES_OUT: 517,
        S.BYTES_IN: 4012,
        S.CONNECTIONS: 1,
        S.COMPANY: None,
        S.UID: None,
    }
    second = events.row(1, named=True)
    assert (second[S.DEVICE_ID], second[S.DEVICE_NAME]) == ("ws-02", "ws-02")  # no host.id
    assert second[S.REMOTE_IP] == "198.51.100.7"  # ::ffff: mapping removed
    assert second[S.REMOTE_URL] == "www.example"  # url.domain
    assert (second[S.BYTES_OUT], second[S.ACCOUNT], second[S.ACTION]) == (None, None, None)


def test_ecs_dotted_keys_and_mixed_spellings() -> None:
    events = load_paths([DATA / "ecs_dotted.ndjson"]).events
    assert events.select(
        S.TIMESTAMP, S.DEVICE_NAME, S.ACCOUNT, S.PROCESS, S.LOCAL_PORT, S.REMOTE_IP,
        S.REMOTE_PORT, S.BYTES_OUT, S.BYTES_IN, S.REMOTE_URL, S.ACTION,
    ).rows() == [
        # 01:00:00.5+01:00 is 00:00:00.5 UTC; "source.port" given as text "50002"
        (datetime(2026, 11, 20, 0, 0, 0, 500000, UTC), "ws-03", "bob", "curl", 50002,
         "203.0.113.9", 8443, 10, 20, None, "disconnect_received"),
        # host nested, destination.ip dotted, destination.port nested in the same document
        (datetime(2026, 11, 20, 0, 0, 7, tzinfo=UTC), "ws-04", None, None, None,
         "203.0.113.10", 22, None, None, "ssh.example", None),
    ]  # fmt: skip


def test_ecs_numeric_timestamp_is_epoch_milliseconds(tmp_path: Path) -> None:
    path = tmp_path / "ecs.ndjson"
    path.write_text('{"@timestamp": 1700000000123, "destination": {"ip": "203.0.113.5"}}\n')
    # 1700000000 s = 2023-11-14T22:13:20Z, plus 123 ms
    assert load_paths([path]).events.get_column(S.TIMESTAMP).to_list() == [
        datetime(2023, 11, 14, 22, 13, 20, 123000, UTC)
    ]


def test_ecs_without_destination_ip_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "ecs.ndjson"
    path.write_text('{"@timestamp": "2026-11-20T00:00:00Z", "source": {"ip": "10.0.0.5"}}\n')
    with pytest.raises(InputError) as caught:
        load_paths([path])
    assert str(caught.value) == (
        f"{path}: field destination.ip: missing required field 'destination.ip'"
    )
