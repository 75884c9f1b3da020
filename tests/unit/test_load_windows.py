"""Windows Sysmon 3 / Security 5156 from EVTX, NXLog, Winlogbeat and Get-WinEvent JSON."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import polars as pl
import pytest

from detectors.base import schema as S
from detectors.base.errors import InputError
from detectors.load import load_paths, sniff_format

UTC = timezone.utc
DATA = Path(__file__).parent.parent / "data" / "load" / "windows"
# A real Sysmon log (MIT, from the evtx crate's samples): CI keeps ../shared beside the clone.
SYSMON_EVTX = Path(__file__).parents[2] / ".." / "shared" / "data" / "evtx" / "sysmon.evtx"

COLUMNS = [
    S.TIMESTAMP, S.DEVICE_NAME, S.ACCOUNT, S.PROCESS, S.ACTION, S.PROTOCOL,
    S.LOCAL_IP, S.LOCAL_PORT, S.REMOTE_IP, S.REMOTE_PORT,
]  # fmt: skip
HOST = "ws-07.corp.example"
SYSMON_ROW = (
    datetime(2024, 4, 19, 8, 0, 0, 123000, UTC), HOST, "CORP\\bob", "updater.exe",
    "NetworkConnect", "tcp", "10.1.2.7", 50123, "203.0.113.50", 443,
)  # fmt: skip
WFP_ROW = (
    datetime(2024, 4, 19, 8, 0, 5, tzinfo=UTC), HOST, None, "updater.exe",
    "FilteringPlatformConnection", "tcp", "10.1.2.7", 50124, "203.0.113.50", 443,
)  # fmt: skip
WFP_UDP_ROW = (
    datetime(2024, 4, 19, 8, 0, 7, tzinfo=UTC), HOST, None, "svchost.exe",
    "FilteringPlatformConnection", "udp", "10.1.2.7", 61000, "198.51.100.53", 53,
)  # fmt: skip


def rows(path: Path) -> list[tuple[object, ...]]:
    return load_paths([path], cache=False).events.select(COLUMNS).rows()


def test_real_sysmon_evtx_gives_its_two_network_connections_and_survives_the_damaged_chunk():
    dataset = load_paths([SYSMON_EVTX], cache=False)
    assert dataset.events.select(COLUMNS).rows() == [
        (datetime(2017, 12, 18, 14, 51, 29, 706000, UTC), "desktop-2kgm189",
         "NT AUTHORITY\\SYSTEM", "installer.exe", "NetworkConnect", "tcp",
         "192.168.2.128", 59344, "185.26.182.117", 443),
        (datetime(2017, 12, 18, 14, 51, 29, 968000, UTC), "desktop-2kgm189",
         "NT AUTHORITY\\SYSTEM", "installer.exe", "NetworkConnect", "tcp",
         "192.168.2.128", 59345, "93.184.220.29", 80),
    ]  # fmt: skip
    where = str(SYSMON_EVTX)
    assert dataset.warnings == [
        f"{where}: damaged EVTX after record 358: Failed to parse chunk number 9: Failed to "
        "parse chunk header: Invalid EVTX chunk header magic, expected `ElfChnk0`, found "
        "`[ 0,  0,  0,  0,  0,  0,  0,  0]`; the 358 records before it are loaded",
        f"{where}: skipped 356 events of other IDs (1: 227, 10: 60, 11: 34, 13: 24, 12: 8, "
        "15: 2, 16: 1); used: 3 and 5156",
    ]


def test_evtx_is_sniffed_by_its_magic_not_its_name(tmp_path: Path) -> None:
    renamed = tmp_path / "export.bin"
    renamed.write_bytes(SYSMON_EVTX.read_bytes())
    assert sniff_format(renamed) == "windows-evtx"


def test_nxlog_flat_json_outbound_only_other_ids_counted() -> None:
    dataset = load_paths([DATA / "nxlog.jsonl"], cache=False)
    assert dataset.events.select(COLUMNS).rows() == [SYSMON_ROW, WFP_ROW, WFP_UDP_ROW]
    where = DATA / "nxlog.jsonl"
    assert dataset.warnings == [
        f"{where}: skipped 2 events of other IDs (1: 1, 5158: 1); used: 3 and 5156",
        f"{where}: 2 inbound connections dropped (only the host's own count)",
    ]


@pytest.mark.parametrize("name", ["winlogbeat.ndjson", "winlogbeat_dotted.ndjson"])
def test_winlogbeat_nested_or_dotted(name: str) -> None:
    assert sniff_format(DATA / name) == "windows-json"  # before ECS, though it has @timestamp
    assert rows(DATA / name) == [SYSMON_ROW, WFP_ROW]


def test_powershell_convertto_json_properties_by_template_position() -> None:
    assert sniff_format(DATA / "get_winevent.json") == "windows-json"
    assert rows(DATA / "get_winevent.json") == [SYSMON_ROW, WFP_ROW]


def test_powershell_utf16_output_of_windows_powershell_loads_the_same(tmp_path: Path) -> None:
    path = tmp_path / "events.json"
    path.write_bytes((DATA / "get_winevent.json").read_text().encode("utf-16"))
    assert sniff_format(path) == "windows-json"
    assert rows(path) == [SYSMON_ROW, WFP_ROW]


def test_sysmon_without_rulename_shifts_properties_by_one(tmp_path: Path) -> None:
    text = (DATA / "get_winevent.json").read_text()
    path = tmp_path / "old_sysmon.json"
    # Sysmon before schema 4.1: no RuleName, the first property is UtcTime
    path.write_text(text.replace('{\n                "Value":  "-"\n            },\n', "", 1))
    assert rows(path) == [SYSMON_ROW, WFP_ROW]


def test_only_other_event_ids_is_an_error_saying_so(tmp_path: Path) -> None:
    path = tmp_path / "bind_only.jsonl"
    lines = (DATA / "nxlog.jsonl").read_text().splitlines()
    path.write_text(lines[3] + "\n")  # a 5158 bind
    with pytest.raises(InputError) as caught:
        load_paths([path], cache=False)
    assert str(caught.value) == (
        f"{path}: no connection events found; these paths hold "
        "1 Windows log without event 3 or 5156"
    )


def test_broken_json_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "nx.jsonl"
    lines = (DATA / "nxlog.jsonl").read_text().splitlines()
    path.write_text(lines[1] + "\n" + lines[4][:60] + "\n")
    with pytest.raises(InputError) as caught:
        load_paths([path], cache=False)
    assert str(caught.value) == (
        f"{path}: line 2: invalid JSON: Unterminated string starting at (column 50)"
    )


def test_unparsable_utctime_names_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "nx.jsonl"
    lines = (DATA / "nxlog.jsonl").read_text().splitlines()
    path.write_text("\n".join([lines[0], lines[1].replace("2024-04-19 08:00:00.123", "soon")]))
    with pytest.raises(InputError) as caught:
        load_paths([path], cache=False)
    assert str(caught.value) == (
        f"{path}: line 2, field UtcTime: cannot parse timestamp 'soon' (lines counted from 1)"
    )


def test_windows_events_schema_is_canonical() -> None:
    events = load_paths([DATA / "nxlog.jsonl"], cache=False).events
    assert events.schema == pl.Schema(S.EVENT_SCHEMA)
    assert events.get_column(S.SOURCE_FILE).unique().to_list() == [str(DATA / "nxlog.jsonl")]
