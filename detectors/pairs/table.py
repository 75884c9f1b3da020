"""The connection table: connection rows sorted once by pair and time, for every index.

Detectors ask for pair indexes of different action types (intervals: success and
request; periodicity and buckets add failed). Grouping millions of rows by a six-column
string key costs far more than anything done with the groups afterwards, so it happens
once per dataset, here: each row gets its pair's number and the rows are sorted by
(pair, time). A pair index for any action set and address scope is then a mask and a
few segment reductions over those sorted arrays (numpy, no Python per pair).

Pairs are told apart by two 64-bit hashes of the key: each key column is hashed once
and the six column hashes are combined twice, with two sets of odd weights (a sum
that wraps modulo 2**64; polars shares the column hashes between the two). That
costs about a third of the two row (struct) hashes it replaced. Rows are sorted by
the first hash and a collision is detected by the second disagreeing inside a run, in
which case both are used. Two keys whose column hashes differ in one column only
never share a combination (an odd weight times a non-zero difference is never 0
modulo 2**64); otherwise they would have to collide in both, about 1e-26 for a
million pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from detectors.base import schema as S
from detectors.pairs.index import (
    P_ACTIONS,
    P_BYTES_IN,
    P_BYTES_OUT,
    P_CONNECTIONS,
    P_COUNT,
    P_DELTAS,
    P_EVENTS,
    P_FIRST,
    P_LAST,
    P_TS,
    PAIR_KEY,
    connection_rows,
    lists_from_lengths,
    lists_from_offsets,
    offsets_of,
)
from detectors.pairs.topology import hunted_mask

UTC_US = pl.Datetime("us", "UTC")
_SEED = 0x5EED_0001
# Odd 64-bit weights for the two combinations of the key's column hashes (one per
# column of ``PAIR_KEY``; any odd numbers will do: these are arbitrary).
_WEIGHTS = (
    (0x243F6A8885A308D3, 0x13198A2E03707345, 0xA4093822299F31D1,
     0x082EFA98EC4E6C89, 0x452821E638D01377, 0xBE5466CF34E90C6D),
    (0xB7E151628AED2A6B, 0xF324E7738926CFBF, 0xA409E6C9F1D4B9B9,
     0xCC6B9E3B2D8C7AF1, 0x8A3F4C5D6E7F9011, 0xE2F1D0C9B8A79685),
)  # fmt: skip
_ROW, _H1, _H2 = "_row", "_h1", "_h2"


@dataclass
class ByteColumn:
    """A byte counter in row order: values (0 where null) and where it was reported."""

    values: np.ndarray
    present: np.ndarray

    @classmethod
    def of(cls, series: pl.Series) -> ByteColumn | None:
        """None when the source never reports the counter (Defender): nothing to carry."""
        if series.null_count() == series.len():
            return None
        return cls(
            series.fill_null(0).to_numpy().astype(np.int64, copy=False),
            series.is_not_null().to_numpy(),
        )

    def take(self, order: np.ndarray) -> ByteColumn:
        return ByteColumn(self.values[order], self.present[order])


def _action_codes(actions: pl.Series) -> tuple[np.ndarray, list[str]]:
    """Each row's action as an index into the sorted distinct names (-1 for null)."""
    names = sorted(actions.drop_nulls().unique().to_list())
    codes = actions.cast(pl.Enum(names)).to_physical().cast(pl.Int16())  # Enum order: sorted
    return codes.fill_null(-1).to_numpy(), names


def key_hash(weights: Sequence[int]) -> pl.Expr:
    """One 64-bit hash of the pair key: its columns' hashes, weighted and summed.

    The sum wraps modulo 2**64, as polars' unsigned arithmetic does (a test pins it).
    """
    terms = [
        pl.col(column).hash(_SEED) * pl.lit(weight, pl.UInt64)
        for column, weight in zip(PAIR_KEY, weights, strict=True)
    ]
    return pl.sum_horizontal(terms)


def _sort_by_pair(h1: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Row order by (first hash, time), as ``np.lexsort((ts, h1))``, in two cheap sorts.

    Sorting on two 64-bit columns at once costs about three times sorting on one. So
    the rows are sorted by the hash alone, each run of one hash gets its number, and a
    second sort on one integer, that number above the time since the first row, puts
    every run in time order (it only permutes inside runs). When number and time do
    not fit in 64 bits together (tens of millions of pairs over months), the two
    columns are sorted as such. Rows equal in both keys may come in any order: nothing
    built from the table depends on the order of one pair's simultaneous rows.
    """
    if h1.size == 0:
        return np.zeros(0, dtype=np.int64)
    by_hash = pl.Series(h1).arg_sort().to_numpy()
    sorted_h1 = h1[by_hash]
    run = np.zeros(h1.size, dtype=np.uint64)
    run[1:] = np.cumsum(sorted_h1[1:] != sorted_h1[:-1])
    since = ts[by_hash] - ts.min()
    time_bits = int(since.max()).bit_length()
    if int(run[-1]).bit_length() + time_bits > 64:
        frame = pl.DataFrame({"h": h1, "t": ts})
        return frame.select(pl.arg_sort_by(["h", "t"])).to_series().to_numpy()
    composite = (run << np.uint64(time_bits)) | since.astype(np.uint64)
    # Runs are in order already, so the merge sort finds long sorted stretches.
    return by_hash[np.argsort(composite, kind="stable")]


def pair_order(
    h1: np.ndarray, h2: np.ndarray, ts: np.ndarray, order: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Rows ordered by (first hash, time), and where each run of one pair starts.

    ``order`` is that ordering when the caller has it already. When the second hash
    disagrees inside a run of the first (a 64-bit collision of two keys), both hashes
    are used, so the two pairs stay apart.
    """
    if order is None:
        order = np.lexsort((ts, h1))
    s1 = h1[order]
    s2 = h2[order]
    starts = np.ones(order.size, dtype=bool)
    starts[1:] = s1[1:] != s1[:-1]
    if bool(np.any(~starts[1:] & (s2[1:] != s2[:-1]))):
        order = np.lexsort((ts, h2, h1))
        s1 = h1[order]
        s2 = h2[order]
        starts[1:] = (s1[1:] != s1[:-1]) | (s2[1:] != s2[:-1])
    return order, starts


@dataclass
class ConnectionTable:
    """Connection rows sorted by (pair, time).

    Pair ``i``'s key is row ``key_row[i]`` of ``source_keys`` (the events' key columns,
    shared, not copied): keys are gathered only for the pairs an index keeps.
    """

    source_keys: pl.DataFrame
    key_row: np.ndarray  # int64 per pair: a row of ``source_keys`` holding its key
    pair: np.ndarray  # int32 per row, ascending
    ts: np.ndarray  # int64 microseconds per row, ascending within a pair
    action: np.ndarray  # int16 per row: index into ``action_names``, -1 = none
    action_names: list[str]
    connections: np.ndarray  # int64 per row (missing counts as 1)
    public: np.ndarray  # bool per row: hunted (to or from the internet; ``topology``)
    inbound: np.ndarray  # bool per row: inbound to our host (kept whatever the action set)
    bytes_out: ByteColumn | None
    bytes_in: ByteColumn | None

    @classmethod
    def from_events(cls, events: pl.DataFrame) -> ConnectionTable:
        """Sort the connection rows of canonical ``events`` (one pass; rows without a time
        are left out: they cannot be placed on a timeline)."""
        placed = S.DIRECTION in events.columns
        # Placed rows say "hunted" by their direction alone; the address is read only
        # for events never placed (``topology.hunted_mask``).
        where = [S.DIRECTION] if placed else [S.REMOTE_IP, S.REMOTE_IP_TYPE]
        rows = (
            events.lazy()
            .with_row_index(_ROW)
            .filter(connection_rows(events) & pl.col(S.TIMESTAMP).is_not_null())
            .select(
                _ROW,
                key_hash(_WEIGHTS[0]).alias(_H1),
                key_hash(_WEIGHTS[1]).alias(_H2),
                pl.col(S.TIMESTAMP).dt.epoch("us").alias(S.TIMESTAMP),
                pl.col(S.CONNECTIONS).fill_null(1),
                S.ACTION,
                S.BYTES_OUT,
                S.BYTES_IN,
                *where,
            )
            .collect()
        )
        public = hunted_mask(rows).fill_null(False).to_numpy()
        if placed:
            inbound = (rows.get_column(S.DIRECTION) == S.DIR_INBOUND).fill_null(False).to_numpy()
        else:
            inbound = np.zeros(rows.height, dtype=bool)
        ts = rows.get_column(S.TIMESTAMP).to_numpy()
        h1 = rows.get_column(_H1).to_numpy()
        order, starts = pair_order(h1, rows.get_column(_H2).to_numpy(), ts, _sort_by_pair(h1, ts))
        action, names = _action_codes(rows.get_column(S.ACTION))
        connections = rows.get_column(S.CONNECTIONS).to_numpy()
        bytes_out = ByteColumn.of(rows.get_column(S.BYTES_OUT))
        bytes_in = ByteColumn.of(rows.get_column(S.BYTES_IN))
        event_row = rows.get_column(_ROW).to_numpy()
        return cls(
            source_keys=events.select(PAIR_KEY),
            key_row=event_row[order[starts]].astype(np.int64),
            pair=(np.cumsum(starts) - 1).astype(np.int32),
            ts=ts[order],
            action=action[order],
            action_names=names,
            connections=connections[order].astype(np.int64, copy=False),
            public=public[order],
            inbound=inbound[order],
            bytes_out=bytes_out.take(order) if bytes_out else None,
            bytes_in=bytes_in.take(order) if bytes_in else None,
        )

    def keys_of(self, pairs: np.ndarray) -> pl.DataFrame:
        """The key columns of ``pairs`` (pair numbers), in that order."""
        return _gather(self.source_keys, self.key_row[pairs])

    def row_mask(self, actions: Sequence[str] | None, public_only: bool) -> np.ndarray:
        """Rows of the given Defender action types (other sources' rows and inbound rows
        always: an accepted connection is how an inbound pair is logged)."""
        allowed = np.ones(len(self.action_names) + 1, dtype=bool)  # slot 0: no action
        if actions is not None:
            wanted = set(actions)
            for code, name in enumerate(self.action_names, start=1):
                allowed[code] = name not in S.DEFENDER_ACTIONS or name in wanted
        mask = allowed[self.action.astype(np.int64) + 1] | self.inbound
        if public_only:
            mask &= self.public
        return mask

    def index(
        self, actions: Sequence[str] | None, public_only: bool = True, min_count: int = 1
    ) -> pl.DataFrame:
        """The per-pair index (``detectors.pairs.index`` documents the columns).

        ``min_count`` keeps only pairs with at least that many distinct times, decided
        before any list or key is built: detectors that need 16 connections skip the
        millions of pairs seen a few times.
        """
        sel = np.flatnonzero(self.row_mask(actions, public_only))
        if sel.size == 0:
            return empty_index()
        pair = self.pair[sel]
        ts = self.ts[sel]
        pair_start = np.ones(sel.size, dtype=bool)
        pair_start[1:] = pair[1:] != pair[:-1]
        distinct = pair_start.copy()
        distinct[1:] |= ts[1:] != ts[:-1]
        starts = np.flatnonzero(pair_start)
        counts = np.add.reduceat(distinct.astype(np.int64), starts)
        if min_count > 1:
            # Whole pairs go, so the kept rows' flags are those computed above: cut them
            # rather than walk the kept rows again.
            busy = counts >= min_count
            if not busy.any():
                return empty_index()
            if not busy.all():
                keep = np.repeat(busy, np.diff(np.append(starts, sel.size)))
                sel, pair, ts = sel[keep], pair[keep], ts[keep]
                pair_start, distinct = pair_start[keep], distinct[keep]
                starts = np.flatnonzero(pair_start)
                counts = counts[busy]
        n = sel.size
        ends = np.append(starts[1:], n)
        present = pair[starts]
        distinct_ts = ts[distinct]
        columns: dict[str, pl.Series] = {
            P_TS: lists_from_lengths(P_TS, distinct_ts, counts, UTC_US),
            P_EVENTS: pl.Series(P_EVENTS, ends - starts, dtype=pl.UInt32),
            P_CONNECTIONS: pl.Series(
                P_CONNECTIONS, np.add.reduceat(self.connections[sel], starts), dtype=pl.Int64
            ),
            P_FIRST: pl.Series(P_FIRST, ts[starts]).cast(pl.Int64).cast(UTC_US),
            P_LAST: pl.Series(P_LAST, ts[ends - 1]).cast(pl.Int64).cast(UTC_US),
            P_BYTES_OUT: _byte_sums(P_BYTES_OUT, self.bytes_out, sel, starts),
            P_BYTES_IN: _byte_sums(P_BYTES_IN, self.bytes_in, sel, starts),
            P_ACTIONS: self._action_lists(starts, sel),
            P_COUNT: pl.Series(P_COUNT, counts, dtype=pl.UInt32),
            P_DELTAS: _deltas(distinct_ts, counts),
        }
        frame = self.keys_of(present).with_columns(list(columns.values()))
        # A stable order (by first sighting, then key) keeps every run's output identical.
        return frame[self._stable_order(ts[starts], present)]

    def _stable_order(self, first: np.ndarray, present: np.ndarray) -> np.ndarray:
        """Positions sorted by first sighting, ties broken by the key (nulls last).

        Ties are rare (two pairs first seen in the same microsecond), so only the tied
        rows' keys are compared as text.
        """
        order = np.argsort(first, kind="stable")
        ordered = first[order]
        same = ordered[1:] == ordered[:-1]
        tied = np.zeros(order.size, dtype=bool)
        tied[1:] |= same
        tied[:-1] |= same
        slots = np.flatnonzero(tied)
        if slots.size:
            rows = order[slots]
            tied_keys = self.keys_of(present[rows]).with_columns(
                pl.Series("_first", first[rows]), pl.Series("_row", rows)
            )
            ranked = tied_keys.sort(["_first", *PAIR_KEY], nulls_last=True)
            order[slots] = ranked.get_column("_row").to_numpy()
        return order

    def _action_lists(self, starts: np.ndarray, sel: np.ndarray) -> pl.Series:
        """Per present pair, its distinct action names, sorted (codes are in name order).

        Each pair's actions are OR-ed into a bit set, then the set bits are read back in
        code order; more than 63 distinct actions (never seen) fall back to a sort.
        """
        codes = self.action[sel].astype(np.int64)
        width = len(self.action_names)
        if width <= 63:
            bits = np.where(codes >= 0, np.left_shift(1, np.maximum(codes, 0)), 0)
            sets = np.bitwise_or.reduceat(bits, starts)
            table = (sets[:, None] >> np.arange(width)) & 1
            rows, code = np.nonzero(table)
            lengths = np.bincount(rows, minlength=starts.size)
        else:
            pair = np.repeat(np.arange(starts.size), np.diff(np.append(starts, sel.size)))
            combos = np.unique(pair * (width + 1) + codes + 1)
            combos = combos[combos % (width + 1) > 0]
            code = combos % (width + 1) - 1
            lengths = np.bincount(combos // (width + 1), minlength=starts.size)
        names = pl.Series(self.action_names, dtype=pl.String)
        values = names.gather(code.astype(np.int64, copy=False))
        return lists_from_offsets(P_ACTIONS, offsets_of(lengths), values)


def _gather(frame: pl.DataFrame, rows: np.ndarray) -> pl.DataFrame:
    """``frame[rows]`` for scattered ``rows``: read in ascending order, then permute.

    Reading millions of rows in random order misses the cache on every one; reading
    them ascending and permuting the (smaller) result is about twice as fast.
    """
    ascending = np.argsort(rows)
    inverse = np.empty_like(ascending)
    inverse[ascending] = np.arange(ascending.size)
    return frame[rows[ascending]][inverse]


def _deltas(distinct_ts: np.ndarray, counts: np.ndarray) -> pl.Series:
    """Seconds between consecutive distinct times inside each pair (first time dropped)."""
    diffs = np.diff(distinct_ts, prepend=distinct_ts[:1]).astype(np.float64) / 1e6
    keep = np.ones(distinct_ts.size, dtype=bool)
    keep[np.cumsum(counts) - counts] = False
    return lists_from_lengths(P_DELTAS, diffs[keep], np.maximum(counts - 1, 0), pl.Float64())


def _byte_sums(
    name: str, column: ByteColumn | None, sel: np.ndarray, starts: np.ndarray
) -> pl.Series:
    """Sum per pair, null when the pair's rows never reported the counter."""
    if column is None:
        return pl.Series(name, [None] * starts.size, dtype=pl.Int64)
    sums = pl.Series(name, np.add.reduceat(column.values[sel], starts), dtype=pl.Int64)
    reported = pl.Series(np.add.reduceat(column.present[sel].astype(np.int64), starts) > 0)
    return sums.to_frame().select(pl.when(reported).then(pl.col(name))).to_series()


def empty_index() -> pl.DataFrame:
    """The pair index with no rows."""
    schema = {name: S.EVENT_SCHEMA[name] for name in PAIR_KEY}
    schema.update(
        {
            P_TS: pl.List(UTC_US),
            P_EVENTS: pl.UInt32(),
            P_CONNECTIONS: pl.Int64(),
            P_FIRST: UTC_US,
            P_LAST: UTC_US,
            P_BYTES_OUT: pl.Int64(),
            P_BYTES_IN: pl.Int64(),
            P_ACTIONS: pl.List(pl.String()),
            P_COUNT: pl.UInt32(),
            P_DELTAS: pl.List(pl.Float64()),
        }
    )
    return pl.DataFrame(schema=schema)


def build_pair_index(
    events: pl.DataFrame, actions: Sequence[str] | None, public_only: bool = True
) -> pl.DataFrame:
    """Summarise connection events per pair; see the module docstring for the columns.

    Built by ``detectors.pairs.table`` (one sort of the connection rows by pair and time);
    ``PairContext.pairs`` keeps that sort and derives every action set's index from it.
    """
    return ConnectionTable.from_events(events).index(actions, public_only)
