"""Which candidates the table shows, in which order, and how each cell reads.

Filtering and sorting are polars expressions over the whole candidate frame (100k rows
take milliseconds), so the table widget only ever formats the rows on screen. No
Textual here: the tests check the view without running an app.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import polars as pl

from detectors.base import schema as S
from detectors.base.sanitize import visible
from tui import format as F

C_MARK = "mark"  # detectors.curate.triage.C_MARK: unreviewed, suspicious, benign, escalate
C_ALLOWED = "allowed"  # detectors.curate.allowlist.C_ALLOWED: True when an entry matches
UNREVIEWED = "unreviewed"
HAYSTACK = "_haystack"  # lower-cased device|process|ip|domain, built once per merge

SEARCHED = (S.C_DEVICE, S.C_PROCESS, S.C_REMOTE_IP, S.C_DOMAIN)
MARK_FILTERS = (None, "unmarked", "marked", "suspicious", "escalate", "benign")
SCORE_STEP = 0.1


@dataclass(frozen=True)
class ViewSpec:
    """The user's current filters and sort; the table shows ``apply_view(frame, spec)``."""

    text: str = ""
    detector: str | None = None
    min_score: float = 0.0
    show_allowed: bool = False
    mark: str | None = None  # None: all, "unmarked", "marked", or one mark
    sort: str = "score"
    descending: bool = True

    def with_(self, **changes: Any) -> ViewSpec:
        return replace(self, **changes)

    def describe(self) -> str:
        """One line for the filter bar: what is hiding rows right now."""
        parts = []
        if self.detector:
            parts.append(f"detector={self.detector}")
        if self.min_score > 0:
            parts.append(f"score≥{self.min_score:.1f}")
        if self.mark:
            parts.append(f"mark={self.mark}")
        if self.show_allowed:
            parts.append("allow-listed shown")
        arrow = "↓" if self.descending else "↑"
        parts.append(f"sort {self.sort}{arrow}")
        return " · ".join(parts)


def _text(column: str) -> Callable[[dict[str, Any]], str]:
    return lambda row: visible(row.get(column)) if row.get(column) is not None else ""


def _remote(row: dict[str, Any]) -> str:
    ip = visible(row.get(S.C_REMOTE_IP) or "")
    port = row.get(S.C_REMOTE_PORT)
    if ":" in ip:  # IPv6: brackets keep the port readable
        ip = f"[{ip}]"
    text = f"{ip}:{port}" if port is not None else ip
    if row.get(S.C_DIRECTION) == S.DIR_INBOUND:  # the remote end connects to our port
        text = f"← {text}"
    proxy = row.get(S.C_VIA_PROXY)
    return f"{text} via proxy {visible(proxy)}" if proxy else text


def _detectors(row: dict[str, Any]) -> str:
    names = row.get(S.C_DETECTORS) or []
    return ",".join(visible(n) for n in names)


def _mark(row: dict[str, Any]) -> str:
    """S(uspicious), E(scalate), B(enign), plus A when allow-listed; blank when unreviewed."""
    mark = row.get(C_MARK)
    allowed = "A" if row.get(C_ALLOWED) else ""
    shown = visible(mark)[:1].upper() if mark and mark != UNREVIEWED else ""
    return shown + allowed


@dataclass(frozen=True)
class Column:
    """A table column: title, widths, alignment, how to sort and how to show a cell."""

    key: str
    title: str
    width: int  # minimum width in cells
    cell: Callable[[dict[str, Any]], str]
    sort_by: Callable[[], pl.Expr] | None = None
    needs: tuple[str, ...] = ()  # frame columns the sort needs
    flex: int = 0  # share of the spare width
    right: bool = False


def _by(column: str) -> Callable[[], pl.Expr]:
    return lambda: pl.col(column)


def _lower(column: str) -> Callable[[], pl.Expr]:
    return lambda: pl.col(column).str.to_lowercase()


COLUMNS: tuple[Column, ...] = (
    Column("mark", "M", 2, _mark, _by(C_MARK), (C_MARK,)),
    Column(
        "score",
        "score",
        6,
        lambda r: F.score(r.get(S.C_SCORE)),
        _by(S.C_SCORE),
        (S.C_SCORE,),
        right=True,
    ),
    Column("device", "device", 10, _text(S.C_DEVICE), _lower(S.C_DEVICE), (S.C_DEVICE,), 3),
    Column("process", "process", 10, _text(S.C_PROCESS), _lower(S.C_PROCESS), (S.C_PROCESS,), 3),
    Column("remote", "remote", 15, _remote, _by(S.C_REMOTE_IP), (S.C_REMOTE_IP,), 2),
    Column("domain", "domain", 10, _text(S.C_DOMAIN), _lower(S.C_DOMAIN), (S.C_DOMAIN,), 3),
    Column(
        "detectors",
        "detectors",
        9,
        _detectors,
        lambda: pl.col(S.C_DETECTORS).list.len(),
        (S.C_DETECTORS,),
        2,
    ),
    Column(
        "conns",
        "conns",
        6,
        lambda r: F.count(r.get(S.C_CONNECTIONS)),
        _by(S.C_CONNECTIONS),
        (S.C_CONNECTIONS,),
        right=True,
    ),
    Column(
        "interval",
        "interval",
        8,
        lambda r: F.seconds(r.get(S.C_INTERVAL)),
        _by(S.C_INTERVAL),
        (S.C_INTERVAL,),
        right=True,
    ),
    Column(
        "jitter",
        "jitter",
        6,
        lambda r: F.percent(r.get(S.C_JITTER)),
        _by(S.C_JITTER),
        (S.C_JITTER,),
        right=True,
    ),
    Column(
        "first",
        "first seen",
        11,
        lambda r: F.when(r.get(S.C_FIRST_SEEN)),
        _by(S.C_FIRST_SEEN),
        (S.C_FIRST_SEEN,),
    ),
    Column(
        "last",
        "last seen",
        11,
        lambda r: F.when(r.get(S.C_LAST_SEEN)),
        _by(S.C_LAST_SEEN),
        (S.C_LAST_SEEN,),
    ),
)
COLUMN_KEYS = tuple(c.key for c in COLUMNS)
SORTABLE = tuple(c.key for c in COLUMNS if c.sort_by is not None)
_BY_KEY = {c.key: c for c in COLUMNS}

SCORE_HIGH = 0.7
SCORE_MID = 0.4


def score_band(value: float | None) -> str:
    """high / mid / low: the table colours the score cell by band (colours in .tcss)."""
    if value is None:
        return "low"
    return "high" if value >= SCORE_HIGH else "mid" if value >= SCORE_MID else "low"


def prepare(candidates: pl.DataFrame) -> pl.DataFrame:
    """Add the search haystack once per merge, so each keystroke is one ``contains``."""
    present = [c for c in SEARCHED if c in candidates.columns]
    if not present:
        return candidates.with_columns(pl.lit("").alias(HAYSTACK))
    parts = [pl.col(c).cast(pl.String).str.to_lowercase() for c in present]
    return candidates.with_columns(
        pl.concat_str(parts, separator="\x1f", ignore_nulls=True).fill_null("").alias(HAYSTACK)
    )


def _filters(frame: pl.DataFrame, spec: ViewSpec) -> pl.Expr:
    keep = pl.lit(True)
    query = spec.text.strip().lower()
    if query and HAYSTACK in frame.columns:
        keep = keep & pl.col(HAYSTACK).str.contains(query, literal=True)
    if spec.detector and S.C_DETECTORS in frame.columns:
        keep = keep & pl.col(S.C_DETECTORS).list.contains(spec.detector).fill_null(False)
    if spec.min_score > 0 and S.C_SCORE in frame.columns:
        keep = keep & (pl.col(S.C_SCORE) >= spec.min_score).fill_null(False)
    if not spec.show_allowed and C_ALLOWED in frame.columns:
        keep = keep & ~pl.col(C_ALLOWED).fill_null(False)
    if spec.mark and C_MARK in frame.columns:
        mark = pl.col(C_MARK)
        marked = mark.is_not_null() & ~mark.is_in(["", UNREVIEWED])
        if spec.mark == "marked":
            keep = keep & marked
        elif spec.mark == "unmarked":
            keep = keep & ~marked
        else:
            keep = keep & (mark == spec.mark).fill_null(False)
    return keep


def apply_view(frame: pl.DataFrame, spec: ViewSpec) -> pl.DataFrame:
    """Filter, then sort by the chosen column (nulls last), ties by score then key."""
    if frame.height == 0:
        return frame
    view = frame.filter(_filters(frame, spec))
    keys: list[pl.Expr] = []
    descending: list[bool] = []
    column = _BY_KEY.get(spec.sort)
    if column and column.sort_by and all(n in frame.columns for n in column.needs):
        keys.append(column.sort_by())
        descending.append(spec.descending)
    if S.C_SCORE in frame.columns and spec.sort != "score":
        keys.append(pl.col(S.C_SCORE))
        descending.append(True)
    for name in S.CANDIDATE_KEY:
        if name in frame.columns:
            keys.append(pl.col(name))
            descending.append(False)
    if not keys:
        return view
    return view.sort(keys, descending=descending, nulls_last=True, maintain_order=True)


def next_sort(spec: ViewSpec) -> ViewSpec:
    """``s``: the next sortable column, in its natural direction (numbers high first)."""
    keys = list(SORTABLE)
    at = keys.index(spec.sort) if spec.sort in keys else -1
    key = keys[(at + 1) % len(keys)]
    return spec.with_(sort=key, descending=_BY_KEY[key].right or key == "mark")


def sort_by(spec: ViewSpec, key: str) -> ViewSpec:
    """A header click: sort by that column, or reverse if it already is."""
    if spec.sort == key:
        return spec.with_(descending=not spec.descending)
    return spec.with_(sort=key, descending=_BY_KEY[key].right if key in _BY_KEY else True)


def detectors_in(frame: pl.DataFrame) -> list[str]:
    """Detectors that produced at least one candidate, for the detector quick filter."""
    if S.C_DETECTORS not in frame.columns or frame.height == 0:
        return []
    names = frame.get_column(S.C_DETECTORS).explode().drop_nulls().unique().sort()
    return [str(n) for n in names.to_list()]


def cycle(options: list[Any], current: Any) -> Any:
    """The option after ``current`` (wrapping), for keys that step through choices."""
    if not options:
        return current
    at = options.index(current) if current in options else -1
    return options[(at + 1) % len(options)]


def key_of(row: dict[str, Any]) -> tuple[Any, ...]:
    """A candidate's identity, to keep the cursor on it when the list changes."""
    return tuple(row.get(k) for k in S.CANDIDATE_KEY)


def find_row(frame: pl.DataFrame, key: tuple[Any, ...]) -> int | None:
    """Index of the candidate with this key in ``frame``, or None."""
    if frame.height == 0 or not all(k in frame.columns for k in S.CANDIDATE_KEY):
        return None
    match = pl.lit(True)
    for name, value in zip(S.CANDIDATE_KEY, key, strict=True):
        match = match & pl.col(name).eq_missing(pl.lit(value, dtype=frame.schema[name]))
    found = frame.select(match.arg_true().first()).item()
    return None if found is None else int(found)
