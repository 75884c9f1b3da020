"""Defender DeviceNetworkEvents in its four containers, checked field by field."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import polars as pl

from detectors.base import schema as S
from detectors.load import load_paths
from detectors.load.mde import COLUMNS

DATA = Path(__file__).parent.parent / "data" / "load"
UTC = timezone.utc


def events_of(path: Path, source_format: str | None = None) -> pl.DataFrame:
    ds = load_paths([path], source_format=source_format, require_events=False)
    assert ds.warnings == []
    return ds.events


# --- CSV export --------------------------------------------------------------------------


def test_mde_csv_has_the_canonical_schema() -> None:
    assert events_of(DATA / "mde_network.csv").schema == pl.Schema(S.EVENT_SCHEMA)


def test_mde_csv_loads_every_action_type_in_file_order() -> None:
    events = events_of(DATA / "mde_network.csv")
    assert events.get_column(S.ACTION).to_list() == [
        S.ACTION_SUCCESS,
        S.ACTION_FAILED,
        S.ACTION_INBOUND,
        S.ACTION_LISTENING,
        S.ACTION_REQUEST,
        S.ACTION_DNS_INSPECTED,
        S.ACTION_DNS_RESPONSE,
        S.ACTION_SUCCESS_AGG,
        S.ACTION_FAILED_AGG,
    ]


def test_mde_csv_timestamps_keep_microseconds() -> None:
    ts = events_of(DATA / "mde_network.csv").get_column(S.TIMESTAMP).to_list()
    assert ts == [
        datetime(2026, 11, 20, 0, 0, 0, 689929, UTC),  # .6899290Z
        datetime(2026, 11, 20, 0, 1, 0, 123456, UTC),  # .1234569Z truncated
        datetime(2026, 11, 20, 0, 2, 0, 0, UTC),  # .0000001Z truncated to 0
        datetime(2026, 11, 20, 0, 2, 30, tzinfo=UTC),
        datetime(2026, 11, 20, 0, 3, 0, tzinfo=UTC),
        datetime(2026, 11, 20, 0, 4, 0, 500000, UTC),
        datetime(2026, 11, 20, 0, 5, 0, 123000, UTC),
        datetime(2026, 11, 20, 1, 0, 0, tzinfo=UTC),
        datetime(2026, 11, 20, 1, 0, 0, tzinfo=UTC),
    ]


def test_mde_csv_first_row_every_field() -> None:
    row = events_of(DATA / "mde_network.csv").row(0, named=True)
    assert row == {
        S.TIMESTAMP: datetime(2026, 11, 20, 0, 0, 0, 689929, UTC),
        S.DEVICE_ID: "dev1",
        S.DEVICE_NAME: "ws-01",
        S.ACCOUNT: "corp\\alice",
        S.PROCESS: "beacon.exe",
        S.ACTION: "ConnectionSuccess",
        S.LOCAL_IP: "10.0.0.5",
        S.LOCAL_PORT: 50000,
        S.REMOTE_IP: "203.0.113.5",
        S.REMOTE_PORT: 443,
        S.REMOTE_IP_TYPE: "Public",
        S.PROTOCOL: "tcp",  # Defender's "Tcp", lowercase as Zeek and Sysmon write it
        S.REMOTE_URL: "evil.example",
        S.BYTES_OUT: None,  # Defender has no byte counts
        S.BYTES_IN: None,
        S.CONNECTIONS: 1,
        S.COMPANY: "Evil Corp",
        S.UID: None,
        S.SOURCE_FILE: str(DATA / "mde_network.csv"),
    }


def test_mde_csv_aggregated_rows_count_unique_events_others_one() -> None:
    events = events_of(DATA / "mde_network.csv")
    # rows 1-7 are single events; the two AggregatedReport rows say 45 and 3
    assert events.get_column(S.CONNECTIONS).to_list() == [1, 1, 1, 1, 1, 1, 1, 45, 3]


def test_mde_csv_account_is_domain_backslash_name_or_name_alone() -> None:
    accounts = events_of(DATA / "mde_network.csv").get_column(S.ACCOUNT).to_list()
    assert accounts == [
        "corp\\alice",
        "bob",  # no domain
        "nt authority\\system",
        None,  # neither
        "corp\\alice",
        None,
        None,
        "corp\\alice",
        "bob",
    ]


def test_mde_csv_ipv4_mapped_remote_ip_becomes_ipv4_and_blank_ip_is_null() -> None:
    events = events_of(DATA / "mde_network.csv")
    assert events.get_column(S.REMOTE_IP).to_list() == [
        "203.0.113.5",
        "198.51.100.7",  # was ::ffff:198.51.100.7
        "10.0.0.9",
        None,  # ListeningConnectionCreated has no remote end
        "2001:db8::1",
        "10.0.0.53",
        "10.0.0.53",
        "203.0.113.5",
        "198.51.100.7",
    ]
    assert events.get_column(S.REMOTE_PORT).to_list() == [
        443, 8080, 51515, None, 443, 53, 53, 443, 8080
    ]  # fmt: skip
    assert events.get_column(S.LOCAL_PORT).to_list() == [
        50000, 50001, 3389, 445, 50002, 50003, 50004, None, None
    ]  # fmt: skip


def test_mde_csv_column_order_and_extra_columns_do_not_matter(tmp_path: Path) -> None:
    original = pl.read_csv(DATA / "mde_network.csv", infer_schema=False)
    shuffled = original.select(list(reversed(original.columns))).with_columns(
        pl.lit("x").alias("SomethingElse")
    )
    path = tmp_path / "shuffled.csv"
    shuffled.write_csv(path)
    expected = events_of(DATA / "mde_network.csv").drop(S.SOURCE_FILE)
    assert events_of(path).drop(S.SOURCE_FILE).equals(expected)


def test_mde_csv_header_only_is_zero_events(tmp_path: Path) -> None:
    path = tmp_path / "empty_result.csv"
    path.write_text(",".join(COLUMNS) + "\n")
    events = events_of(path)
    assert events.height == 0
    assert events.schema == pl.Schema(S.EVENT_SCHEMA)


def test_mde_csv_portal_display_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "portal.csv"
    path.write_text(
        "Timestamp,DeviceName,ActionType,RemoteIP\n"
        '"Nov 20, 2026 12:00:00 AM",ws-01,ConnectionSuccess,203.0.113.5\n'
        '"Nov 20, 2026 1:30:05 PM",ws-01,ConnectionSuccess,203.0.113.5\n'
    )
    assert events_of(path).get_column(S.TIMESTAMP).to_list() == [
        datetime(2026, 11, 20, tzinfo=UTC),
        datetime(2026, 11, 20, 13, 30, 5, tzinfo=UTC),
    ]


def test_mde_csv_rows_in_another_timestamp_form_are_still_parsed(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_text(
        "Timestamp,DeviceName,ActionType,RemoteIP\n"
        "2026-11-20T00:00:00.6899290Z,ws,ConnectionSuccess,203.0.113.5\n"
        "2026-11-20T01:00:00+01:00,ws,ConnectionSuccess,203.0.113.5\n"
        '"Nov 20, 2026 12:00:02 AM",ws,ConnectionSuccess,203.0.113.5\n'
        "2026-11-20 00:00:03.5,ws,ConnectionSuccess,203.0.113.5\n"
    )
    assert events_of(path).get_column(S.TIMESTAMP).to_list() == [
        datetime(2026, 11, 20, 0, 0, 0, 689929, UTC),
        datetime(2026, 11, 20, 0, 0, 0, tzinfo=UTC),  # 01:00 at +01:00
        datetime(2026, 11, 20, 0, 0, 2, tzinfo=UTC),
        datetime(2026, 11, 20, 0, 0, 3, 500000, UTC),  # no offset: UTC
    ]


# --- advanced hunting API JSON -------------------------------------------------------------


def test_mde_api_json_rows() -> None:
    events = events_of(DATA / "mde_network_api.json")
    got = events.select(
        S.TIMESTAMP, S.ACTION, S.REMOTE_IP, S.REMOTE_PORT, S.ACCOUNT, S.CONNECTIONS
    ).rows()
    assert got == [
        (datetime(2026, 11, 20, 0, 0, 0, 689929, UTC), "ConnectionSuccess", "203.0.113.5", 443,
         "corp\\alice", 1),
        # an empty-string domain composes no backslash; ::ffff: mapping removed
        (datetime(2026, 11, 20, 0, 1, tzinfo=UTC), "ConnectionRequest", "198.51.100.7", 8080,
         "bob", 1),
        (datetime(2026, 11, 20, 1, 0, tzinfo=UTC), "ConnectionSuccessAggregatedReport",
         "203.0.113.5", 443, "corp\\alice", 60),
    ]  # fmt: skip
    # columns the Schema does not list are null, not guessed
    assert events.get_column(S.LOCAL_PORT).null_count() == 3
    assert events.get_column(S.REMOTE_URL).null_count() == 3


def test_mde_graph_api_json_lowercase_keys(tmp_path: Path) -> None:
    path = tmp_path / "graph.json"
    path.write_text(
        '{"schema": [{"name": "Timestamp", "type": "DateTime"}, {"name": "RemoteIP"},'
        ' {"name": "DeviceName"}, {"name": "ActionType"}],'
        ' "results": [{"Timestamp": "2026-11-20T00:00:00.0000010Z", "RemoteIP": "203.0.113.5",'
        ' "DeviceName": "ws-01", "ActionType": "ConnectionSuccess"}]}'
    )
    events = events_of(path)
    assert events.select(S.TIMESTAMP, S.REMOTE_IP, S.DEVICE_NAME).rows() == [
        (datetime(2026, 11, 20, 0, 0, 0, 1, UTC), "203.0.113.5", "ws-01")
    ]


def test_mde_api_json_additional_fields_as_objects(tmp_path: Path) -> None:
    path = tmp_path / "objects.json"
    path.write_text(
        '{"Schema": [], "Results": [{"Timestamp": "2026-11-20T01:00:00Z", "RemoteIP": "1.2.3.4",'
        ' "DeviceName": "ws", "ActionType": "ConnectionSuccessAggregatedReport",'
        ' "AdditionalFields": {"uniqueEventsAggregated": 12}}]}'
    )
    assert events_of(path).get_column(S.CONNECTIONS).to_list() == [12]


def test_mde_api_json_empty_results_is_zero_events(tmp_path: Path) -> None:
    path = tmp_path / "none.json"
    path.write_text('{"Schema": [{"Name": "Timestamp"}, {"Name": "RemoteIP"}], "Results": []}')
    assert events_of(path, "mde-json").height == 0


# --- JSON Lines ------------------------------------------------------------------------------


def test_mde_jsonl_rows_with_additional_fields_as_object_or_text() -> None:
    events = events_of(DATA / "mde_network.jsonl")
    assert events.select(
        S.TIMESTAMP, S.REMOTE_IP, S.REMOTE_PORT, S.LOCAL_PORT, S.ACCOUNT, S.CONNECTIONS
    ).rows() == [
        (datetime(2026, 11, 20, 0, 0, 0, 689929, UTC), "203.0.113.5", 443, 50000, "corp\\alice", 1),
        # RemotePort written as text "443" still loads as 443
        (datetime(2026, 11, 20, 1, tzinfo=UTC), "203.0.113.5", 443, None, "alice", 45),
        (datetime(2026, 11, 20, 2, tzinfo=UTC), "203.0.113.5", 443, None, None, 7),
    ]


# --- Parquet ---------------------------------------------------------------------------------


def test_mde_parquet_with_a_real_datetime_column(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    pl.DataFrame(
        {
            "Timestamp": [datetime(2026, 11, 20, 0, 0, 0, 689929), datetime(2026, 11, 20, 1)],
            "DeviceId": ["dev1", "dev1"],
            "DeviceName": ["ws-01", "ws-01"],
            "ActionType": ["ConnectionSuccess", "ConnectionSuccessAggregatedReport"],
            "RemoteIP": ["::ffff:203.0.113.5", "203.0.113.5"],
            "RemotePort": [443, 443],
            "LocalPort": [50000, None],
            "InitiatingProcessFileName": ["beacon.exe", "beacon.exe"],
            "InitiatingProcessAccountDomain": ["corp", None],
            "InitiatingProcessAccountName": ["alice", "alice"],
            "AdditionalFields": [None, '{"uniqueEventsAggregated": 45}'],
            "Unused": [1.5, 2.5],
        },
        schema_overrides={"Timestamp": pl.Datetime("ns", "UTC"), "RemotePort": pl.Int64},
    ).write_parquet(path)
    events = events_of(path)
    assert events.select(
        S.TIMESTAMP, S.REMOTE_IP, S.REMOTE_PORT, S.LOCAL_PORT, S.ACCOUNT, S.CONNECTIONS
    ).rows() == [
        (datetime(2026, 11, 20, 0, 0, 0, 689929, UTC), "203.0.113.5", 443, 50000, "corp\\alice", 1),
        (datetime(2026, 11, 20, 1, tzinfo=UTC), "203.0.113.5", 443, None, "alice", 45),
    ]
    assert events.schema == pl.Schema(S.EVENT_SCHEMA)


def test_mde_parquet_with_text_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "text.parquet"
    pl.DataFrame(
        {
            "Timestamp": ["2026-11-20T00:00:00.6899290Z"],
            "DeviceName": ["ws-01"],
            "ActionType": ["ConnectionSuccess"],
            "RemoteIP": ["203.0.113.5"],
        }
    ).write_parquet(path)
    assert events_of(path).get_column(S.TIMESTAMP).to_list() == [
        datetime(2026, 11, 20, 0, 0, 0, 689929, UTC)
    ]


def _implausible_export() -> pl.DataFrame:
    """Rows of every kind the load drops, between rows it keeps (all text, as a CSV)."""
    return pl.DataFrame(
        {
            "Timestamp": [
                "2026-11-20T00:00:01Z",
                "1969-12-31T23:59:59Z",  # before 1970
                None,  # no timestamp
                "2026-11-20T00:00:04Z",
                "2026-11-20T00:00:05Z",
                "2101-01-01T00:00:00Z",  # 2100 or later
                "2026-11-20T00:00:07Z",
                None,  # a blank row: skipped silently
            ],
            "DeviceName": ["ws-01", "ws-01", "ws-01", "ws-01", "ws-01", "ws-01", "ws-01", None],
            "ActionType": ["ConnectionSuccess"] * 7 + [None],
            "RemoteIP": [
                "::ffff:203.0.113.5",  # IPv4-mapped: becomes IPv4
                "203.0.113.5",
                "203.0.113.5",
                "10.0.2.256",  # not an address
                "2001:DB8::1",  # IPv6: canonical text
                "203.0.113.5",
                "203.0.113.5",
                None,
            ],
            "RemotePort": ["443", "443", "443", "443", "443", "443", "70000", None],
            "LocalIP": ["10.0.0.5"] * 7 + [None],
        }
    )


def test_mde_parquet_drops_implausible_rows_as_the_csv_does(tmp_path: Path) -> None:
    rows = _implausible_export()
    rows.write_parquet(tmp_path / "events.parquet")
    rows.write_csv(tmp_path / "events.csv")
    results = {}
    for name in ("events.parquet", "events.csv"):
        path = tmp_path / name
        loaded = load_paths([path])
        assert loaded.warnings == [
            f"{path}: 1 rows without a Timestamp skipped",
            f"{path}: 1 rows with a remote_port outside 0-65535 dropped (first in {path})",
            f"{path}: 1 rows with a remote_ip that is not an IP address dropped (first in {path})",
            f"{path}: 1 rows with a timestamp before 1970 dropped (first in {path})",
            f"{path}: 1 rows with a timestamp in 2100 or later dropped (first in {path})",
        ]
        assert loaded.events.schema == pl.Schema(S.EVENT_SCHEMA)
        results[name] = loaded.events.drop(S.SOURCE_FILE)
        assert results[name].select(S.TIMESTAMP, S.REMOTE_IP).rows() == [
            (datetime(2026, 11, 20, 0, 0, 1, tzinfo=UTC), "203.0.113.5"),
            (datetime(2026, 11, 20, 0, 0, 5, tzinfo=UTC), "2001:db8::1"),
        ]
    assert results["events.parquet"].equals(results["events.csv"])


def test_mde_parquet_with_a_timestamp_in_another_form_still_drops_implausible_rows(
    tmp_path: Path,
) -> None:
    rows = _implausible_export().with_columns(
        pl.col("Timestamp").str.replace("2026-11-20T00:00:05Z", "2026-11-20 00:00:05+00:00")
    )
    path = tmp_path / "mixed.parquet"
    rows.write_parquet(path)
    loaded = load_paths([path])
    assert len(loaded.warnings) == 5
    assert loaded.events.select(S.TIMESTAMP, S.REMOTE_IP).rows() == [
        (datetime(2026, 11, 20, 0, 0, 1, tzinfo=UTC), "203.0.113.5"),
        (datetime(2026, 11, 20, 0, 0, 5, tzinfo=UTC), "2001:db8::1"),
    ]
