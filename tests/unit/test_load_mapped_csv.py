"""Any CSV through the config's [mapping]; timestamps auto-detected per value."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from detectors.base import schema as S
from detectors.base.errors import InputError
from detectors.load import load_paths, sniff_format

DATA = Path(__file__).parent.parent / "data" / "load"
UTC = timezone.utc
MAPPING = {
    "timestamp": "EventTime",
    "local_ip": "Src",
    "remote_ip": "Dst",
    "remote_port": "DPort",
    "device_name": "Host",
    "process": "Proc",
    "bytes_out": "BytesOut",
}


def test_mapped_csv_rows_with_epoch_and_iso_timestamps() -> None:
    path = DATA / "mapped.csv"
    assert sniff_format(path) == "csv-mapped"
    events = load_paths([path], mapping=MAPPING).events
    base = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)  # 1700000000 s
    assert events.select(
        S.TIMESTAMP, S.LOCAL_IP, S.REMOTE_IP, S.REMOTE_PORT, S.DEVICE_NAME, S.PROCESS,
        S.BYTES_OUT, S.CONNECTIONS,
    ).rows() == [
        (base + timedelta(seconds=0.5), "10.0.0.5", "203.0.113.5", 443, "ws-01", "a.exe", 100, 1),
        # 13 digits: milliseconds
        (base + timedelta(seconds=1.5), "10.0.0.5", "203.0.113.5", 443, "ws-01", "a.exe", 200, 1),
        (datetime(2026, 11, 20, tzinfo=UTC), "10.0.0.6", "198.51.100.7", 80, "ws-02", "b.exe",
         None, 1),
        # no offset means UTC; a port that is not a number is null
        (datetime(2026, 11, 20, 0, 0, 0, 250000, UTC), "10.0.0.6", "198.51.100.7", None,
         "ws-02", "b.exe", 300, 1),
    ]  # fmt: skip
    # unmapped columns are null, never guessed
    assert events.get_column(S.DEVICE_ID).null_count() == 4


def test_mapped_csv_without_mapping_asks_for_one() -> None:
    path = DATA / "mapped.csv"
    with pytest.raises(InputError) as caught:
        load_paths([path])
    assert str(caught.value) == (
        f"{path}: CSV columns not recognised as a supported format; add a [mapping] section "
        "to the config naming at least its timestamp and remote_ip columns"
    )


def test_mapping_to_a_header_the_file_lacks_names_it() -> None:
    path = DATA / "mapped.csv"
    with pytest.raises(InputError) as caught:
        load_paths([path], mapping={**MAPPING, "protocol": "Proto"})
    assert str(caught.value) == (
        f"{path}: field Proto: column 'Proto' (mapped to protocol in [mapping]) "
        "is not in the CSV header"
    )


def test_mapping_with_an_unknown_key_is_rejected() -> None:
    with pytest.raises(InputError, match=r"\[mapping\] key 'dst_ip' is not a canonical column"):
        load_paths([DATA / "mapped.csv"], mapping={**MAPPING, "dst_ip": "Dst"})


def test_mapping_without_remote_ip_is_rejected() -> None:
    mapping = {k: v for k, v in MAPPING.items() if k != "remote_ip"}
    with pytest.raises(InputError, match=r"\[mapping\] must map 'remote_ip'"):
        load_paths([DATA / "mapped.csv"], mapping=mapping)


def test_forced_csv_mapped_reads_a_defender_csv_through_the_mapping() -> None:
    events = load_paths(
        [DATA / "mde_network.csv"],
        source_format="csv-mapped",
        mapping={"timestamp": "Timestamp", "remote_ip": "RemoteIP", "device_name": "DeviceName"},
    ).events
    assert events.height == 9
    assert events.get_column(S.ACTION).null_count() == 9  # ActionType was not mapped
    assert events.get_column(S.TIMESTAMP)[0] == datetime(2026, 11, 20, 0, 0, 0, 689929, UTC)
