"""The per-pair index: distinct sorted times, sub-second deltas, sums, public filter."""

from datetime import datetime, timezone

import polars as pl

from detectors.base import schema as S
from detectors.pairs.index import P_BYTES_IN, P_CONNECTIONS, P_COUNT, P_DELTAS, P_EVENTS, P_TS
from detectors.pairs.table import build_pair_index

UTC = timezone.utc


def _events(rows: list[dict]) -> pl.DataFrame:
    return S.conform(pl.DataFrame(rows), "test").collect()


def _row(second: float, ip: str = "8.8.8.8", action: str = "ConnectionSuccess", **kw) -> dict:
    whole = int(second)
    micro = round((second - whole) * 1e6)
    return {
        S.TIMESTAMP: datetime(2026, 11, 20, 0, 0, whole, micro, tzinfo=UTC),
        S.DEVICE_ID: "d1",
        S.DEVICE_NAME: "ws-1",
        S.PROCESS: "a.exe",
        S.REMOTE_IP: ip,
        S.REMOTE_PORT: 443,
        S.ACTION: action,
        **kw,
    }


def test_pair_deltas_keep_microseconds_and_sort():
    # Unsorted input 3.0, 0.5, 1.25 -> sorted 0.5, 1.25, 3.0 -> deltas 0.75, 1.75.
    index = build_pair_index(_events([_row(3.0), _row(0.5), _row(1.25)]), None)
    assert index.height == 1
    assert index[P_DELTAS].to_list() == [[0.75, 1.75]]
    assert index[P_COUNT].to_list() == [3]


def test_pair_timestamps_are_distinct_like_make_set_but_events_count_rows():
    index = build_pair_index(_events([_row(1.0), _row(1.0), _row(2.0)]), None)
    assert len(index[P_TS][0]) == 2
    assert index[P_EVENTS].to_list() == [3]
    assert index[P_CONNECTIONS].to_list() == [3]


def test_pair_index_excludes_private_and_aggregated_and_other_actions():
    rows = [
        _row(1.0),
        _row(2.0, ip="10.1.2.3"),
        _row(3.0, action="ConnectionSuccessAggregatedReport"),
        _row(4.0, action="ConnectionFailed"),
        _row(5.0, ip="::ffff:10.0.0.1"),
    ]
    index = build_pair_index(_events(rows), ["ConnectionSuccess"])
    assert index[P_COUNT].to_list() == [1]


def test_pair_bytes_null_when_source_has_none_and_summed_otherwise():
    no_bytes = build_pair_index(_events([_row(1.0), _row(2.0)]), None)
    assert no_bytes[P_BYTES_IN].to_list() == [None]
    with_bytes = build_pair_index(
        _events([_row(1.0, bytes_in=100), _row(2.0, bytes_in=None), _row(3.0, bytes_in=50)]), None
    )
    assert with_bytes[P_BYTES_IN].to_list() == [150]


def test_zeek_conn_state_actions_always_count_as_connections():
    rows = [_row(1.0, action="SF"), _row(2.0, action="S0"), _row(3.0, action=None)]
    index = build_pair_index(_events(rows), ["ConnectionSuccess"])
    assert index[P_COUNT].to_list() == [3]


def test_ecs_connection_counted_once_from_its_disconnect_and_inbound_dropped():
    # Two connections, each logged as attempt + disconnect, plus one inbound accept.
    rows = [
        _row(1.0, action="connection_attempted"),
        _row(1.5, action="disconnect_received", bytes_out=10),
        _row(31.0, action="connection_attempted"),
        _row(31.5, action="disconnect_received", bytes_out=10),
        _row(50.0, action="connection_accepted"),
    ]
    index = build_pair_index(_events(rows), None)
    assert index[P_DELTAS].to_list() == [[30.0]]


def test_ecs_attempts_count_when_no_disconnects_exist():
    rows = [_row(1.0, action="connection_attempted"), _row(31.0, action="connection_attempted")]
    assert build_pair_index(_events(rows), None)[P_COUNT].to_list() == [2]
