"""The per-pair index: one row per (device, account, process, remote IP, port).

Built once from the canonical frame with plain sort/group-by/aggregate steps (so the
same summary could be computed in Kusto or Spark), then shared by every detector and
by the TUI's charts. Timestamps are the distinct, sorted connection times (the seed's
``make_set``); deltas keep microsecond precision (the seed truncated to seconds).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from detectors.base import schema as S

if TYPE_CHECKING:  # imported where a list column is built: loading files never needs it
    import pyarrow as pa

PAIR_KEY = [S.DEVICE_ID, S.DEVICE_NAME, S.ACCOUNT, S.PROCESS, S.REMOTE_IP, S.REMOTE_PORT]

P_TS = "ts"  # list[datetime]: distinct connection times, ascending
P_DELTAS = "deltas"  # list[f64]: seconds between consecutive distinct times
P_COUNT = "count"  # number of distinct times
P_EVENTS = "events"  # number of rows
P_CONNECTIONS = "connections"  # sum of the connections column
P_FIRST = "first_seen"
P_LAST = "last_seen"
P_BYTES_OUT = "bytes_out"
P_BYTES_IN = "bytes_in"
P_ACTIONS = "actions"  # list[str]: distinct action types seen


def connection_rows(events: pl.DataFrame) -> pl.Expr:
    """Rows that can be a connection for some action set (the one rule for every index).

    Aggregated-report rows are excluded: they summarise an hour and have no
    per-connection time. ECS (Elastic Defend) writes one connection as
    ``connection_attempted`` then ``disconnect_received``: when the data has the
    latter (it carries the bytes, and Elastic's beaconing uses it alone), the attempts
    are dropped so no connection counts twice; ``connection_accepted`` is inbound.
    """
    action = pl.col(S.ACTION)
    foreign = action.is_null() | ~action.is_in(list(S.DEFENDER_ACTIONS))
    keep = foreign | ~action.str.ends_with(S.AGGREGATED_SUFFIX)
    accepted = action.is_in([S.ECS_INBOUND]).fill_null(False)
    if S.DIRECTION in events.columns:  # placed: an inbound pair is hunted too
        accepted = accepted & (pl.col(S.DIRECTION) != S.DIR_INBOUND).fill_null(True)
    keep = keep & ~accepted
    if events.height and events.select((action == S.ECS_DISCONNECT).any()).item():
        keep = keep & ~action.is_in([S.ECS_ATTEMPT]).fill_null(False)
    return keep & pl.col(S.REMOTE_IP).is_not_null()


def connection_events(
    events: pl.DataFrame, actions: Sequence[str] | None, public_only: bool = True
) -> pl.DataFrame:
    """Non-aggregated events of the given action types to or from the internet.

    Placed events (``detectors.pairs.network``): outbound and inbound rows by direction (an
    inbound row counts whatever its action); otherwise rows to public addresses.

    The action filter speaks Defender's ActionTypes: rows whose action is not one of
    them (Zeek's conn_state, ECS's event.action, or none) always count as connections
    (``connection_rows`` says which).
    """
    keep = connection_rows(events)
    if actions is not None:
        action = pl.col(S.ACTION)
        foreign = action.is_null() | ~action.is_in(list(S.DEFENDER_ACTIONS))
        if S.DIRECTION in events.columns:
            foreign = foreign | (pl.col(S.DIRECTION) == S.DIR_INBOUND).fill_null(False)
        keep = keep & (foreign | action.is_in(list(actions)))
    frame = events.filter(keep)
    if public_only and frame.height:
        from detectors.pairs.topology import hunted_mask

        frame = frame.filter(hunted_mask(frame))
    return frame


def deltas_from_sorted_lists(ts: pl.Series) -> pl.Series:
    """Consecutive differences (seconds) inside each list, for all lists in one numpy pass.

    The lists are flattened, differenced once, each list's first element dropped, and
    the result wrapped back into lists by offsets (Arrow), so no per-pair Python runs.
    """
    lengths = ts.list.len().fill_null(0).to_numpy().astype(np.int64)
    flat = ts.explode().drop_nulls().dt.epoch("us").to_numpy()
    starts = np.cumsum(lengths) - lengths
    keep = np.ones(flat.shape[0], dtype=bool)
    keep[starts[lengths > 0]] = False
    values = np.diff(flat, prepend=flat[:1]).astype(np.float64)[keep] / 1e6
    return lists_from_lengths(P_DELTAS, values, np.maximum(lengths - 1, 0), pl.Float64())


def arrow_of(values: np.ndarray) -> pa.Array:
    """A numpy array as an Arrow array, handed over by polars.

    Not ``pa.array``: given a numpy array, it imports pandas to ask whether the array is
    a pandas object (a quarter of a second, on the first call of every run, when
    pandas is installed).
    """
    return pl.Series(values).to_arrow()


def offsets_of(lengths: np.ndarray) -> np.ndarray:
    """Where each list starts in the flat values, and where the last one ends."""
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


def lists_from_lengths(
    name: str, flat: np.ndarray, lengths: np.ndarray, dtype: pl.DataType
) -> pl.Series:
    """A list column from values laid end to end and each list's length (no Python per
    list: Arrow wraps the values with offsets)."""
    return lists_from_offsets(name, offsets_of(lengths), pl.Series(flat).cast(dtype))


class _ArrowHandle:
    """An Arrow array seen only through the C data interface.

    Handed a pyarrow array, polars' Series constructor imports ``pyarrow.compute``
    (~0.05 s of CPU, once per run) to merge chunked dictionaries, which a single list
    array never is; through ``__arrow_c_array__`` it takes the same buffers as they are.
    """

    def __init__(self, array: pa.Array) -> None:
        self.array = array

    def __arrow_c_array__(self, requested_schema: object | None = None) -> tuple[object, object]:
        return self.array.__arrow_c_array__(requested_schema)


def lists_from_offsets(name: str, offsets: np.ndarray, values: pl.Series) -> pl.Series:
    """A list column over ``values``: list i holds ``values[offsets[i]:offsets[i + 1]]``.

    Arrow wraps the values with the offsets without copying them; only this needs
    pyarrow, so it is imported here (loading a file never does).
    """
    import pyarrow as pa

    lists = pa.LargeListArray.from_arrays(arrow_of(offsets), values.to_arrow())
    dtype = pl.List(values.dtype)
    try:
        series = pl.Series(values=_ArrowHandle(lists))
    except TypeError:  # a polars before the C data interface's import (mid-2024)
        series = pl.Series(values=lists)
    return series.alias(name).cast(dtype, wrap_numerical=False)
