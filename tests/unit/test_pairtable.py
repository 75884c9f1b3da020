"""The connection table: one sort of the connection rows serves every pair index."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from detectors.base import schema as S
from detectors.pairs.context import PairContext
from detectors.pairs.index import (
    P_ACTIONS,
    P_BYTES_IN,
    P_BYTES_OUT,
    P_CONNECTIONS,
    P_COUNT,
    P_EVENTS,
    P_FIRST,
    P_LAST,
    P_TS,
    PAIR_KEY,
    connection_events,
    deltas_from_sorted_lists,
)
from detectors.pairs.table import (
    _WEIGHTS,
    ConnectionTable,
    _sort_by_pair,
    build_pair_index,
    key_hash,
    pair_order,
)

START = datetime(2026, 11, 20, tzinfo=timezone.utc)


def random_events(n: int = 3000, seed: int = 3) -> pl.DataFrame:
    """Few devices/processes/addresses so pairs repeat; nulls, Zeek states, repeats."""
    rng = np.random.default_rng(seed)

    def pick(values: list, size: int = n) -> list:
        return [values[i] for i in rng.integers(0, len(values), size)]

    actions = [
        S.ACTION_SUCCESS,
        S.ACTION_REQUEST,
        S.ACTION_FAILED,
        S.ACTION_SUCCESS_AGG,
        S.ACTION_INBOUND,
        "SF",
        "S0",
        None,
    ]
    seconds = rng.integers(0, 600, n)  # repeats: two rows of a pair at the same time
    bytes_out = [int(b) if b % 3 else None for b in rng.integers(0, 1000, n)]
    frame = pl.DataFrame(
        {
            S.TIMESTAMP: [START + timedelta(seconds=int(s)) for s in seconds],
            S.DEVICE_ID: pick(["d1", "d2", None]),
            S.DEVICE_NAME: pick(["ws-1", "ws-2"]),
            S.ACCOUNT: pick(["corp\\a", None]),
            S.PROCESS: pick(["a.exe", "b.exe", None]),
            S.ACTION: pick(actions),
            S.REMOTE_IP: pick(["8.8.8.8", "1.1.1.1", "10.0.0.1", "::ffff:9.9.9.9", None]),
            S.REMOTE_PORT: pick([443, 80, None]),
            S.CONNECTIONS: pick([1, 1, 5, None]),
            S.BYTES_OUT: bytes_out,
        }
    )
    return S.conform(frame, "random").collect()


def reference_index(events: pl.DataFrame, actions, public_only: bool) -> pl.DataFrame:
    """The pair index the obvious way: a polars group-by per pair (the former build)."""
    frame = connection_events(events, actions, public_only).filter(
        pl.col(S.TIMESTAMP).is_not_null()
    )
    ts = pl.col(S.TIMESTAMP)

    def sum_or_null(column: str) -> pl.Expr:
        col = pl.col(column)
        return pl.when(col.is_not_null().any()).then(col.sum()).otherwise(None)

    grouped = (
        frame.group_by(PAIR_KEY)
        .agg(
            ts.alias(P_TS),
            pl.len().alias(P_EVENTS),
            pl.col(S.CONNECTIONS).fill_null(1).sum().alias(P_CONNECTIONS),
            ts.min().alias(P_FIRST),
            ts.max().alias(P_LAST),
            sum_or_null(S.BYTES_OUT).alias(P_BYTES_OUT),
            sum_or_null(S.BYTES_IN).alias(P_BYTES_IN),
            pl.col(S.ACTION).drop_nulls().unique().sort().alias(P_ACTIONS),
        )
        .with_columns(pl.col(P_TS).list.unique().list.sort())
        .with_columns(pl.col(P_TS).list.len().alias(P_COUNT))
        .sort([P_FIRST, *PAIR_KEY], nulls_last=True)
    )
    return grouped.with_columns(deltas_from_sorted_lists(grouped.get_column(P_TS)))


ACTION_SETS = [
    None,
    (S.ACTION_SUCCESS, S.ACTION_REQUEST),
    (S.ACTION_SUCCESS, S.ACTION_REQUEST, S.ACTION_FAILED),
    (S.ACTION_INBOUND,),
]


@pytest.mark.parametrize("public_only", [True, False])
@pytest.mark.parametrize("actions", ACTION_SETS)
def test_index_from_the_table_equals_a_plain_group_by(actions, public_only):
    events = random_events()
    table = ConnectionTable.from_events(events)
    assert_frame_equal(
        table.index(actions, public_only), reference_index(events, actions, public_only)
    )


@pytest.mark.parametrize("min_count", [2, 4, 10_000])
@pytest.mark.parametrize("actions", ACTION_SETS)
def test_index_of_busy_pairs_equals_the_plain_group_by_filtered(actions, min_count):
    # Pairs with fewer distinct times go before any list is built; the rest must be
    # the reference's rows, in its order (10,000: no pair is that busy).
    events = random_events(n=1500, seed=8)
    table = ConnectionTable.from_events(events)
    want = reference_index(events, actions, True).filter(pl.col(P_COUNT) >= min_count)
    got = table.index(actions, min_count=min_count)
    assert 0 < want.height < reference_index(events, actions, True).height or min_count > 1000
    assert_frame_equal(got, want)


def test_pairs_of_several_action_sets_share_one_table():
    data = PairContext(events=random_events())
    success = data.pairs((S.ACTION_SUCCESS,))
    table = data.connection_table()
    wider = data.pairs((S.ACTION_SUCCESS, S.ACTION_FAILED))
    assert data.connection_table() is table
    assert_frame_equal(success, build_pair_index(data.events, (S.ACTION_SUCCESS,)))
    assert_frame_equal(wider, build_pair_index(data.events, (S.ACTION_SUCCESS, S.ACTION_FAILED)))


def test_pairs_first_seen_at_the_same_time_are_ordered_by_key_nulls_last():
    # Three pairs, all first seen at START: keys differ only in the process.
    rows = [
        {S.TIMESTAMP: START, S.PROCESS: process, S.REMOTE_IP: "8.8.8.8"}
        for process in ("b.exe", None, "a.exe")
    ]
    rows.append({S.TIMESTAMP: START - timedelta(seconds=1), S.PROCESS: "z.exe"})
    rows[-1][S.REMOTE_IP] = "8.8.8.8"
    events = S.conform(pl.DataFrame(rows), "t").collect()
    index = ConnectionTable.from_events(events).index(None)
    # z.exe first (earliest), then the tie by process: a.exe, b.exe, null last
    assert index.get_column(S.PROCESS).to_list() == ["z.exe", "a.exe", "b.exe", None]


def test_a_collision_of_the_first_hash_keeps_pairs_apart():
    # Rows 0-4; pairs by second hash: {0, 2, 4} and {1, 3}; the first hash collides.
    h1 = np.zeros(5, dtype=np.uint64)
    h2 = np.array([7, 9, 7, 9, 7], dtype=np.uint64)
    ts = np.array([50, 10, 30, 20, 40])
    order, starts = pair_order(h1, h2, ts)
    # sorted by (h1, h2, ts): pair 7 -> rows 2 (30), 4 (40), 0 (50); pair 9 -> 1 (10), 3 (20)
    assert order.tolist() == [2, 4, 0, 1, 3]
    assert starts.tolist() == [True, False, False, True, False]


def test_without_a_collision_rows_are_ordered_by_hash_then_time():
    h1 = np.array([5, 3, 5, 3], dtype=np.uint64)
    h2 = np.array([1, 2, 1, 2], dtype=np.uint64)
    ts = np.array([9, 8, 1, 2])
    order, starts = pair_order(h1, h2, ts)
    # hash 3: rows 3 (t=2), 1 (t=8); hash 5: rows 2 (t=1), 0 (t=9)
    assert order.tolist() == [3, 1, 2, 0]
    assert starts.tolist() == [True, False, True, False]


def test_rows_without_a_time_are_left_out_of_the_table():
    rows = [
        {S.TIMESTAMP: START, S.REMOTE_IP: "8.8.8.8"},
        {S.TIMESTAMP: None, S.REMOTE_IP: "8.8.8.8"},
    ]
    events = S.conform(
        pl.DataFrame(rows, schema_overrides={S.TIMESTAMP: S.EVENT_SCHEMA[S.TIMESTAMP]}), "t"
    ).collect()
    index = ConnectionTable.from_events(events).index(None)
    assert index.get_column(P_EVENTS).to_list() == [1]


def test_an_empty_selection_gives_the_empty_index_schema():
    events = S.conform(pl.DataFrame({S.TIMESTAMP: [START], S.REMOTE_IP: ["10.0.0.1"]}), "t")
    index = ConnectionTable.from_events(events.collect()).index(None)
    assert index.height == 0
    assert index.schema == reference_index(events.collect(), None, True).schema


def test_building_the_table_and_its_index_never_imports_pandas(tmp_path):
    # pyarrow's pa.array imports pandas (when installed) to test its argument: a quarter
    # of a second on every run. A stand-in pandas first on the path records any import,
    # whether or not the real one is installed.
    marker = tmp_path / "imported"
    stub = tmp_path / "stub" / "pandas"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nraise ImportError('stand-in')\n"
    )
    script = (
        "from tests.unit.test_pairtable import random_events\n"
        "from detectors.pairs.table import ConnectionTable\n"
        "from detectors.pairs.index import deltas_from_sorted_lists, P_TS\n"
        "table = ConnectionTable.from_events(random_events(300))\n"
        "index = table.index(None)\n"
        "deltas_from_sorted_lists(index.get_column(P_TS))\n"
        "print(index.height)\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(stub.parent), str(root)])}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=root, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 0
    assert not marker.exists(), "building the connection table imported pandas"


@pytest.mark.parametrize(
    "ts_span",
    [
        600_000_000,  # ten minutes: hash run number and time share one integer
        2**62,  # beyond 64 bits together: the two columns are sorted as such
    ],
)
def test_sorting_by_pair_orders_rows_as_lexsort_does(ts_span):
    rng = np.random.default_rng(5)
    h1 = rng.integers(0, 2**64, 40, dtype=np.uint64)[rng.integers(0, 40, 5000)]
    ts = rng.integers(-ts_span // 2, ts_span // 2, 5000)  # before 1970 too
    order = _sort_by_pair(h1, ts)
    want = np.lexsort((ts, h1))
    # Rows equal in both keys may come in any order: compare the sorted keys.
    assert sorted(order.tolist()) == list(range(5000))
    assert h1[order].tolist() == h1[want].tolist()
    assert ts[order].tolist() == ts[want].tolist()


def test_sorting_no_rows_gives_an_empty_order():
    assert _sort_by_pair(np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)).size == 0


def test_the_key_hash_is_the_weighted_sum_of_column_hashes_modulo_2_64():
    # Pins polars' wrapping unsigned arithmetic, which the pair hash relies on.
    from detectors.pairs.table import _SEED

    frame = pl.DataFrame(
        {
            S.DEVICE_ID: ["d1", None],
            S.DEVICE_NAME: ["ws-1", "ws-2"],
            S.ACCOUNT: [None, "corp\\a"],
            S.PROCESS: ["a.exe", "b.exe"],
            S.REMOTE_IP: ["8.8.8.8", "1.1.1.1"],
            S.REMOTE_PORT: pl.Series([443, None], dtype=pl.Int32),
        }
    )
    got = frame.select(key_hash(_WEIGHTS[1])).to_series().to_list()
    columns = [frame.get_column(c).hash(_SEED).to_list() for c in PAIR_KEY]
    want = [
        sum(int(col[row]) * weight for col, weight in zip(columns, _WEIGHTS[1], strict=True))
        % 2**64
        for row in range(2)
    ]
    assert got == want
    assert all(w % 2 == 1 for weights in _WEIGHTS for w in weights)
