"""New columns cut as the frame's own columns are, so the frame stays cheap to work on.

Polars, given a frame whose columns are cut into chunks at different rows, copies the
whole frame into one chunk before every eager ``select``, ``filter`` or
``with_columns`` on it (and throws the copy away with the frame it returns to a
``select``). A loaded frame is in many chunks (one per file piece read); a column built
by ``Series.scatter`` or from numpy is one chunk. Placement adds such columns: each
later step then copied 2M rows of 19 columns again (0.05 s a time, three times). Cut
to the frame's layout by zero-copy slices, the new columns leave it aligned, and no
step copies it.
"""

from __future__ import annotations

import numpy as np
import polars as pl


def like(values: pl.Series, layout: pl.Series) -> pl.Series:
    """``values`` cut into chunks at the rows ``layout`` is (no data copied): for a
    column to join a frame whose columns are cut as ``layout``. Same length needed."""
    if layout.n_chunks() == values.n_chunks() == 1 or values.len() != layout.len():
        return values
    lengths = [chunk.len() for chunk in layout.get_chunks()]
    if values.n_chunks() > 1 and lengths == [chunk.len() for chunk in values.get_chunks()]:
        return values
    whole = values.rechunk() if values.n_chunks() > 1 else values
    pieces, offset = [], 0
    for length in lengths:
        pieces.append(whole.slice(offset, length))
        offset += length
    return pl.concat(pieces, rechunk=False)


def scatter(column: pl.Series, rows: pl.Series, values: pl.Series, layout: pl.Series) -> pl.Series:
    """``column`` with ``values`` written at ``rows`` (ascending positions), cut as
    ``layout``: only the chunks holding one of ``rows`` are copied (a few hundred rows
    re-keyed among millions copied every row of each column, twice)."""
    column = like(column.cast(values.dtype), layout)
    if rows.len() == 0:
        return column
    at = rows.to_numpy()
    pieces, offset = [], 0
    for chunk in column.get_chunks():
        length = chunk.len()
        lo, hi = np.searchsorted(at, [offset, offset + length])
        if hi > lo:
            where = pl.Series(at[lo:hi] - offset, dtype=pl.UInt32)
            chunk = chunk.clone().scatter(where, values.slice(int(lo), int(hi - lo)))
        pieces.append(chunk)
        offset += length
    return pl.concat(pieces, rechunk=False) if len(pieces) > 1 else pieces[0]
