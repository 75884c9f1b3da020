"""Candidates to the formats ``detect`` writes: table, CSV, JSON array, JSON Lines.

The JSON shape is a contract for scripts: every object has at least ``detector``,
``device``, ``process``, ``remote_ip``, ``remote_port``, ``score`` and ``connections``.

Telemetry text is attacker-written, and every format is safe to print on a terminal:
JSON and JSON Lines escape control, bidi and zero-width characters as ``\\uXXXX`` (so
they decode to the exact original strings), the table and CSV show them as visible
``\\xNN`` escapes, and CSV cells never start a spreadsheet formula
(``detectors.base.sanitize``).
"""

from __future__ import annotations

import io
import json
from datetime import datetime
from typing import Any

import polars as pl

from detectors.base import schema as S
from detectors.base.sanitize import csv_cell, json_safe, visible

FORMATS = ("table", "csv", "json", "jsonl")


def with_detector_column(candidates: pl.DataFrame) -> pl.DataFrame:
    """Merged candidates name their detectors as one string (``intervals,periodicity``)."""
    if S.C_DETECTOR in candidates.columns or S.C_DETECTORS not in candidates.columns:
        return candidates
    return candidates.with_columns(pl.col(S.C_DETECTORS).list.join(",").alias(S.C_DETECTOR)).select(
        S.C_DETECTOR, pl.exclude(S.C_DETECTOR)
    )


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    return value


def to_records(candidates: pl.DataFrame) -> list[dict[str, Any]]:
    frame = with_detector_column(candidates)
    return [{k: _json_value(v) for k, v in row.items()} for row in frame.iter_rows(named=True)]


def to_json(candidates: pl.DataFrame) -> str:
    return json_safe(json.dumps(to_records(candidates), indent=2, ensure_ascii=False)) + "\n"


def to_jsonl(candidates: pl.DataFrame) -> str:
    lines = [json_safe(json.dumps(r, ensure_ascii=False)) for r in to_records(candidates)]
    return "".join(line + "\n" for line in lines)


def _csv_safe(column: pl.Series) -> pl.Series:
    """``sanitize.csv_cell`` over a text column, computed once per distinct value."""
    distinct = column.drop_nulls().unique().to_list()
    mapping = {v: safe for v in distinct if (safe := csv_cell(v)) != v}
    return column.replace(mapping) if mapping else column


def to_csv(candidates: pl.DataFrame) -> str:
    """Flat CSV: lists joined with ';', nested evidence as JSON text."""
    frame = with_detector_column(candidates)
    flat = []
    for name, dtype in frame.schema.items():
        col = pl.col(name)
        if isinstance(dtype, pl.List) and dtype.inner in (pl.String, pl.Utf8):
            flat.append(col.list.join(";").alias(name))
        elif isinstance(dtype, (pl.List, pl.Struct, pl.Array)):
            flat.append(
                col.map_elements(
                    lambda v: json.dumps(_json_value(v.to_list() if hasattr(v, "to_list") else v)),
                    return_dtype=pl.String,
                ).alias(name)
            )
        else:
            flat.append(col)
    flat_frame = frame.select(flat)
    flat_frame = flat_frame.with_columns(
        _csv_safe(flat_frame.get_column(name))
        for name, dtype in flat_frame.schema.items()
        if dtype == pl.String
    )
    buffer = io.StringIO()
    flat_frame.write_csv(buffer)
    return buffer.getvalue()


TABLE_COLUMNS = [
    ("score", S.C_SCORE, 5),
    ("device", S.C_DEVICE, 18),
    ("process", S.C_PROCESS, 18),
    ("remote", "remote", 28),
    ("domain", S.C_DOMAIN, 24),
    ("conns", S.C_CONNECTIONS, 7),
    ("detectors", S.C_DETECTOR, 30),
]


def _cell(value: Any, width: int) -> str:
    if isinstance(value, float):
        text = f"{value:.2f}"
    else:
        text = visible(value if value is not None else "-")
    if len(text) > width:
        text = text[: width - 1] + "…"
    return text.ljust(width)


def to_table(candidates: pl.DataFrame, limit: int | None = None) -> str:
    """A fixed-width table for a terminal; telemetry text is escaped, never interpreted."""
    frame = with_detector_column(candidates)
    if limit is not None:
        frame = frame.head(limit)
    port = pl.col(S.C_REMOTE_PORT).cast(pl.String).fill_null("-")
    remote = pl.concat_str([pl.col(S.C_REMOTE_IP).fill_null("-"), port], separator=":")
    if S.C_ICMP in frame.columns:  # ICMP: "ip icmp/8 echo", types rather than a port
        ip = pl.col(S.C_REMOTE_IP).fill_null("-")
        kinds = pl.concat_str([ip, pl.col(S.C_ICMP)], separator=" ")
        remote = pl.coalesce(kinds, remote)
    if S.C_DIRECTION in frame.columns:  # inbound: the remote end connects to our port
        inbound = (pl.col(S.C_DIRECTION) == S.DIR_INBOUND).fill_null(False)
        remote = pl.when(inbound).then(pl.concat_str([pl.lit("<- "), remote])).otherwise(remote)
    frame = frame.with_columns(remote.alias("remote"))
    header = " ".join(title.ljust(width) for title, _, width in TABLE_COLUMNS).rstrip()
    lines = [header, "-" * len(header)]
    present = [(c, w) for _, c, w in TABLE_COLUMNS]
    for row in frame.iter_rows(named=True):
        cells = [_cell(row.get(col), width) for col, width in present]
        lines.append(" ".join(cells).rstrip())
    lines.append(f"{candidates.height} candidate(s)")
    return "\n".join(lines) + "\n"


def render(candidates: pl.DataFrame, fmt: str) -> str:
    if fmt == "table":
        return to_table(candidates)
    if fmt == "csv":
        return to_csv(candidates)
    if fmt == "json":
        return to_json(candidates)
    if fmt == "jsonl":
        return to_jsonl(candidates)
    raise ValueError(f"unknown format {fmt}")
