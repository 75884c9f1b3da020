"""Per-group statistics over one flat array with a group id per element.

The per-pair analyses (period estimation, jitter) run over every pair at once: the
values of all pairs are laid end to end and each element carries its pair's index, so
a median or a quantile per pair is one sort of the whole array instead of a Python
loop over pairs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

# Iterative refinements read only the values of groups still moving once these are
# under this share of all values (below it, gathering them costs less than it saves).
SUBSET_SHARE = 0.5


def moving_rows(moving: np.ndarray, ids: np.ndarray, rows: np.ndarray | None) -> np.ndarray | None:
    """The values a refinement's next pass reads: all (None) while the groups still
    ``moving`` hold at least ``SUBSET_SHARE`` of them, else the positions of theirs.
    Once a subset, always a subset (``rows`` given): a converged group stays converged.
    """
    moving_values = moving[ids]
    if rows is not None or np.count_nonzero(moving_values) < SUBSET_SHARE * ids.size:
        return np.flatnonzero(moving_values)
    return None


def segment_ids(counts: np.ndarray) -> np.ndarray:
    """The group index of each element when group ``i`` holds ``counts[i]`` elements."""
    return np.repeat(np.arange(len(counts), dtype=np.int64), counts)


def segment_sum(values: np.ndarray, ids: np.ndarray, n: int) -> np.ndarray:
    """Sum of ``values`` per group (0 for an empty group)."""
    # asarray: no copy of values that are float64 already
    return np.bincount(ids, weights=np.asarray(values, dtype=np.float64), minlength=n)[:n]


def segment_count(mask: np.ndarray, ids: np.ndarray, n: int) -> np.ndarray:
    """How many elements of each group satisfy ``mask``."""
    return np.bincount(ids[mask], minlength=n)[:n]


def segment_max(values: np.ndarray, ids: np.ndarray, n: int) -> np.ndarray:
    """Maximum per group; NaN for an empty group."""
    out = np.full(n, -np.inf)
    np.maximum.at(out, ids, values)
    out[np.isneginf(out)] = np.nan
    return out


def sorted_within_groups(values: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Values ordered by (group, value); polars sorts groups in parallel, ~4x lexsort.

    Callers that take several statistics of the same values sort once here and pass
    the result on as ``presorted``."""
    frame = pl.DataFrame({"g": ids, "v": values})
    if ids.size > 1 and bool(np.all(ids[1:] >= ids[:-1])):
        # Groups already contiguous and ascending: said so, each group's sorted values
        # come back in group order ("explode"), with no mapping back to the rows, in
        # about half the CPU of the default window mapping.
        frame = frame.with_columns(pl.col("g").set_sorted())
        ordered = frame.select(pl.col("v").sort().over("g", mapping_strategy="explode"))
    else:
        ordered = frame.sort(["g", "v"]).select("v")
    return ordered.to_series().to_numpy()


def sorted_deltas(times: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Each group's differences between consecutive ``times`` (sorted within each group,
    groups end to end), sorted within the group: ``np.diff`` inside the groups, the same
    numbers every per-pair analysis of the deltas computes, sorted once for all of them.
    """
    ids = segment_ids(counts)
    same = ids[1:] == ids[:-1]
    return sorted_within_groups(np.diff(times)[same], ids[1:][same])


def segment_sorted(values: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Indices that order ``values`` by (group, value); ``values[result]`` is sorted per group.

    polars sorts in parallel (a few times faster than ``np.lexsort``); ties keep their
    order, so the result is the same as lexsort's.
    """
    frame = pl.DataFrame({"g": ids, "v": values}).with_row_index("i")
    ordered = frame.sort(["g", "v", "i"])
    return ordered.get_column("i").to_numpy().astype(np.int64)


def segment_quantiles(
    values: np.ndarray,
    ids: np.ndarray,
    n: int,
    qs: Sequence[float | np.ndarray],
    mask: np.ndarray | None = None,
    presorted: bool = False,
) -> np.ndarray:
    """Quantiles per group with linear interpolation (numpy's default 'linear' method).

    Each entry of ``qs`` is one quantile for every group, or an array with a quantile
    per group. Returns shape ``(len(qs), n)``; a group with no (selected) element gets
    NaN. One sort serves every requested quantile; ``presorted`` says the values are
    already sorted within groups laid out in group order (a mask keeps that), so none.
    """
    if mask is not None:
        values = values[mask]
        ids = ids[mask]
    out = np.full((len(qs), n), np.nan)
    if values.size == 0:
        return out
    sorted_values = values if presorted else sorted_within_groups(values, ids)
    counts = np.bincount(ids, minlength=n)[:n]
    starts = np.cumsum(counts) - counts
    has = counts > 0
    for row, q in enumerate(qs):
        q_groups = np.broadcast_to(np.asarray(q, dtype=np.float64), (n,))[has]
        pos = (counts[has] - 1) * np.clip(q_groups, 0.0, 1.0)
        lo = np.floor(pos).astype(np.int64)
        hi = np.ceil(pos).astype(np.int64)
        frac = pos - lo
        base = starts[has]
        low_value = sorted_values[base + lo]
        high_value = sorted_values[base + hi]
        out[row, has] = low_value + (high_value - low_value) * frac
    return out


def segment_median(
    values: np.ndarray,
    ids: np.ndarray,
    n: int,
    mask: np.ndarray | None = None,
    presorted: bool = False,
) -> np.ndarray:
    """Median per group; NaN for an empty group."""
    return segment_quantiles(values, ids, n, (0.5,), mask, presorted)[0]
