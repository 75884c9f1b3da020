"""Dotted field paths (``source.ip``, ``id.orig_h``) over JSON that may be nested or flat.

JSON exporters disagree: Elastic writes ``{"source": {"ip": ...}}``, Filebeat-style
flattening writes ``{"source.ip": ...}``, Zeek writes ``{"id.orig_h": ...}``, and one file
can mix them. polars reads nested objects as struct columns and dotted keys as columns
with dots in their names; ``candidates`` finds every spelling of a path in a schema and
the helpers coalesce them, so a path works whichever way each row wrote it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import cast

import polars as pl

Candidate = tuple[pl.Expr, pl.DataType, str]  # expression, its dtype, top-level column


def candidates(schema: Mapping[str, pl.DataType], path: str) -> list[Candidate]:
    """Every way ``path`` is spelled in ``schema`` (flat column, struct fields, or a mix)."""
    parts = path.split(".")
    found: list[Candidate] = []
    for cut in range(1, len(parts) + 1):
        head = ".".join(parts[:cut])
        if head in schema:
            for expr, dtype in _descend(pl.col(head), schema[head], parts[cut:]):
                found.append((expr, dtype, head))
    return found


def _descend(
    expr: pl.Expr, dtype: pl.DataType, rest: list[str]
) -> list[tuple[pl.Expr, pl.DataType]]:
    if not rest:
        return [(expr, dtype)]
    if not isinstance(dtype, pl.Struct):
        return []
    fields: dict[str, pl.DataType] = {f.name: cast(pl.DataType, f.dtype) for f in dtype.fields}
    found = []
    for cut in range(1, len(rest) + 1):
        key = ".".join(rest[:cut])
        if key in fields:
            found += _descend(expr.struct.field(key), fields[key], rest[cut:])
    return found


def has(schema: Mapping[str, pl.DataType], path: str) -> bool:
    return bool(candidates(schema, path))


def top_columns(schema: Mapping[str, pl.DataType], paths: Iterable[str]) -> list[str]:
    """The top-level columns holding any of ``paths`` (what a reader must keep)."""
    keep = {top for path in paths for _, _, top in candidates(schema, path)}
    return [c for c in schema if c in keep]


def _as_text(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if isinstance(dtype, (pl.Struct, pl.List)):
        return pl.lit(None, pl.String)  # an object where text was expected: not a value
    value = expr.cast(pl.String)
    return pl.when(value != "").then(value)


def text(schema: Mapping[str, pl.DataType], *paths: str) -> pl.Expr:
    """The first non-blank text among every spelling of ``paths`` (in the order given)."""
    exprs = [_as_text(e, d) for path in paths for e, d, _ in candidates(schema, path)]
    return pl.coalesce(exprs) if exprs else pl.lit(None, pl.String)


def integer(schema: Mapping[str, pl.DataType], path: str, dtype: pl.DataType) -> pl.Expr:
    """An integer from numbers or numeric text; anything else is null."""
    exprs = []
    for expr, source, _ in candidates(schema, path):
        if source == pl.String:
            exprs.append(expr.str.strip_chars().cast(dtype, strict=False))
        elif source.is_float():
            exprs.append(expr.round(0).cast(dtype, strict=False))
        elif source.is_numeric():
            exprs.append(expr.cast(dtype, strict=False))
    return pl.coalesce(exprs) if exprs else pl.lit(None, dtype)


def text_list(schema: Mapping[str, pl.DataType], path: str, separator: str) -> pl.Expr:
    """A list of strings from a JSON array or from text joined by ``separator`` (Zeek sets)."""
    exprs = []
    for expr, dtype, _ in candidates(schema, path):
        if isinstance(dtype, pl.List):
            exprs.append(expr.cast(pl.List(pl.String), strict=False))
        elif dtype == pl.String:
            exprs.append(expr.str.split(separator))
    return pl.coalesce(exprs) if exprs else pl.lit(None, pl.List(pl.String))
