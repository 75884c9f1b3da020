"""Triage marks: what the analyst decided about each candidate, kept across re-runs.

A mark belongs to the candidate's identity, not to a row of one run: the key is
(device, process, remote_ip, remote_port), compared case-insensitively for names and
with IPv4-mapped IPv6 read as IPv4, so marks made today apply to tomorrow's data. The
file lives next to the allow-list (``Config.triage_path()``) and is hand-editable TOML::

    [[triage]]
    device = "WS-07"
    process = "rundll32.exe"
    remote_ip = "203.0.113.7"
    remote_port = 443
    mark = "escalate"
    note = "60 s beacon, new domain"
    analyst = "jdoe"
    updated = 2026-11-23T10:00:00Z

A key field the candidate does not have (a null process or port) is simply left out.
Setting a candidate back to unreviewed with no note removes its table.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import polars as pl

from detectors.base import schema as S
from detectors.base.errors import InputError
from detectors.base.netclass import is_canonical_ipv4, normalize_ip
from detectors.base.sanitize import visible
from detectors.curate.tomlstore import (
    Edit,
    EditConflict,
    StoreConflict,
    StoreSaveError,
    TableFile,
    TomlStore,
    Where,
    login_name,
    read_instant,
    read_port,
    read_text,
    unknown_keys,
    utc_now,
)

UNREVIEWED = "unreviewed"
SUSPICIOUS = "suspicious"
BENIGN = "benign"
ESCALATE = "escalate"
MARKS = (UNREVIEWED, SUSPICIOUS, BENIGN, ESCALATE)

# Columns ``apply`` adds.
C_MARK = S.C_MARK
C_NOTE = S.C_NOTE

KEY_COLUMNS = (S.C_DEVICE, S.C_PROCESS, S.C_REMOTE_IP, S.C_REMOTE_PORT)
KNOWN_KEYS = (*KEY_COLUMNS, "mark", "note", "analyst", "updated")
_K = "__triage_"  # prefix of the join-key columns, dropped before returning
_JOIN = [f"{_K}{c}" for c in KEY_COLUMNS]


class TriageConflict(StoreConflict):
    """The file changed on disk and someone else re-marked a candidate marked here."""


class TriageSaveError(StoreSaveError):
    """The triage file could not be written; the marks are kept in memory."""


def _norm_text(value: Any) -> str | None:
    return (str(value).strip().lower() or None) if value is not None else None


def _norm_ip(value: Any) -> str | None:
    if value is None:
        return None
    return (normalize_ip(str(value).strip()) or "").lower() or None


def _norm_port(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@functools.lru_cache(maxsize=1 << 16)
def _normalized(
    device: Any, process: Any, remote_ip: Any, remote_port: Any
) -> tuple[str | None, str | None, str | None, int | None]:
    """Cached: the store compares every table's key on each mark, so this runs a lot."""
    return _norm_text(device), _norm_text(process), _norm_ip(remote_ip), _norm_port(remote_port)


@dataclass(frozen=True, eq=False)
class CandidateKey:
    """Which candidate a mark belongs to; equal when the normalised fields are equal.

    The fields keep the case they were written with, for display and for the file.
    """

    device: str | None = None
    process: str | None = None
    remote_ip: str | None = None
    remote_port: int | None = None
    normalized: tuple[str | None, str | None, str | None, int | None] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        key = _normalized(self.device, self.process, self.remote_ip, self.remote_port)
        object.__setattr__(self, "normalized", key)

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> CandidateKey:
        """The key of a candidate row (``frame.row(i, named=True)``) or a table's values."""
        port = row.get(S.C_REMOTE_PORT)
        return cls(
            device=row.get(S.C_DEVICE),
            process=row.get(S.C_PROCESS),
            remote_ip=row.get(S.C_REMOTE_IP),
            remote_port=None if port is None else _norm_port(port),
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CandidateKey) and self.normalized == other.normalized

    def __hash__(self) -> int:
        return hash(self.normalized)

    def values(self) -> dict[str, Any]:
        """The key fields a table records (absent ones are left out)."""
        given = (self.device, self.process, self.remote_ip, self.remote_port)
        fields = zip(KEY_COLUMNS, given, strict=True)
        return {k: v for k, v in fields if v is not None and (not isinstance(v, str) or v.strip())}

    def describe(self) -> str:
        """``ws-07 / rundll32.exe -> 203.0.113.7:443`` (``[v6]:port``; ``-`` for a null)."""
        ip = "-" if self.remote_ip is None else visible(self.remote_ip)
        where = f"[{ip}]" if ":" in ip and self.remote_port is not None else ip
        if self.remote_port is not None:
            where = f"{where}:{self.remote_port}"
        device = "-" if self.device is None else visible(self.device)
        process = "-" if self.process is None else visible(self.process)
        return f"{device} / {process} -> {where}"


@dataclass(frozen=True)
class Mark:
    """The analyst's decision about one candidate."""

    key: CandidateKey
    status: str  # one of MARKS
    note: str = ""
    analyst: str | None = None
    updated: datetime | None = None
    line: int | None = None  # 1-based line of its [[triage]] header, when read from a file


def _parse_mark(values: Mapping[str, Any], index: int, where: Where) -> Mark:
    unknown_keys(values, KNOWN_KEYS, where)
    key = CandidateKey(
        device=read_text(values, S.C_DEVICE, where),
        process=read_text(values, S.C_PROCESS, where),
        remote_ip=read_text(values, S.C_REMOTE_IP, where),
        remote_port=read_port(values, where, S.C_REMOTE_PORT),
    )
    if not key.values():
        raise where.error(f"no candidate key: give at least one of {', '.join(KEY_COLUMNS)}")
    status = values.get("mark")
    if status not in MARKS:
        raise where.error(f"mark must be one of {', '.join(MARKS)}, not {status!r}", "mark")
    note = values.get("note", "")
    if not isinstance(note, str):
        raise where.error("note must be a string", "note")
    return Mark(
        key=key,
        status=status,
        note=note,
        analyst=read_text(values, "analyst", where),
        updated=read_instant(values, "updated", where),
        line=where.line,
    )


@dataclass(frozen=True)
class _SetMark(Edit):
    key: CandidateKey = field(default_factory=CandidateKey)
    values: dict[str, Any] | None = None  # mark/note/analyst/updated; None removes the table
    expected: dict[str, Any] | None = None  # the table as it was when marked (None: no table)


def _key_columns(frame: pl.DataFrame) -> list[pl.Expr]:
    """The normalised key of every row, as join columns; addresses normalised per distinct value."""
    out = []
    for column, name in zip(KEY_COLUMNS, _JOIN, strict=True):
        if column not in frame.columns:
            dtype = pl.Int64 if column == S.C_REMOTE_PORT else pl.String
            out.append(pl.lit(None, dtype).alias(name))
        elif column == S.C_REMOTE_PORT:
            out.append(pl.col(column).cast(pl.Int64, strict=False).alias(name))
        elif column == S.C_REMOTE_IP:
            # Canonical IPv4 is its own normal form (a regex, vectorised); ``ipaddress``
            # runs only on the distinct rest (IPv6, mapped, junk): 100k marks in ~50 ms.
            text = pl.col(column).cast(pl.String)
            v4 = is_canonical_ipv4(text.str.strip_chars())
            rest = frame.select(text.filter(~v4).unique().drop_nulls()).to_series().to_list()
            mapping = {ip: _norm_ip(ip) for ip in rest}
            out.append(
                pl.when(v4)
                .then(text.str.strip_chars())
                .otherwise(text.replace_strict(mapping, default=None, return_dtype=pl.String))
                .alias(name)
            )
        else:
            lowered = pl.col(column).cast(pl.String).str.strip_chars().str.to_lowercase()
            out.append(pl.when(lowered != "").then(lowered).alias(name))
    return out


class TriageStore(TomlStore[dict[CandidateKey, Mark]]):
    """The triage file and its marks; edits are in memory until ``save()``.

    ``TriageStore.load(path)``; ``get``, ``set``, ``counts``, ``apply``; ``save()`` is
    atomic, keeps a ``.bak`` and re-applies the marks made here on top of a file someone
    else changed meanwhile (``TriageConflict`` when they re-marked the same candidate).
    """

    TABLE = "triage"
    NEW_FILE_COMMENT = (
        "beacon-triage marks: one [[triage]] table per candidate (device, process,\n"
        "remote_ip, remote_port); mark is suspicious, benign, escalate or unreviewed."
    )
    conflict_error = TriageConflict
    save_error = TriageSaveError

    def _build(self, file: TableFile) -> dict[CandidateKey, Mark]:
        marks: dict[CandidateKey, Mark] = {}
        for mark in self._parse_tables(file, _parse_mark):
            marks.pop(mark.key, None)  # a later table for the same candidate wins
            marks[mark.key] = mark
        return marks

    def _apply(self, file: TableFile, edit: Edit) -> TableFile:
        if not isinstance(edit, _SetMark):
            raise TypeError(f"not a triage edit: {edit!r}")
        index = self._last_index(file, edit.key)
        current = file.tables[index].values if index is not None else None
        if current != edit.expected:
            raise EditConflict(
                f"cannot {edit.description}: it was marked differently in the file since "
                "it was loaded"
            )
        if index is None or current is None:
            if edit.values is None:
                return file
            return file.append({**edit.key.values(), **edit.values}, self.NEW_FILE_COMMENT)
        if edit.values is None:
            return file.remove(index)
        changed = {k: v for k, v in edit.values.items() if current.get(k) != v}
        return file.change(index, changed, ["note"] if "note" not in edit.values else [])

    def _last_index(self, file: TableFile, key: CandidateKey) -> int | None:
        """The table that holds the candidate's mark (the last one, as ``_build`` keeps it)."""
        for index in range(len(file.tables) - 1, -1, -1):
            table = file.tables[index]
            known = self._parsed_item(table)
            if (known.key if known is not None else CandidateKey.of(table.values)) == key:
                return index
        return None

    @property
    def marks(self) -> tuple[Mark, ...]:
        return tuple(self._model.values())

    def get(self, key: CandidateKey | Mapping[str, Any]) -> Mark | None:
        """The mark of a candidate (a key or a candidate row), or None if unreviewed."""
        return self._model.get(key if isinstance(key, CandidateKey) else CandidateKey.of(key))

    def set(
        self,
        key: CandidateKey | Mapping[str, Any],
        mark: str,
        note: str | None = None,
        *,
        analyst: str | None = None,
        now: datetime | None = None,
    ) -> Mark | None:
        """Mark a candidate; ``note=None`` keeps its current note, ``""`` clears it.

        Returns the new mark, or None when the candidate went back to plain unreviewed.
        """
        if mark not in MARKS:
            raise InputError(f"unknown mark '{mark}' (one of {', '.join(MARKS)})", field="mark")
        key = key if isinstance(key, CandidateKey) else CandidateKey.of(key)
        if not key.values():
            raise InputError(f"a mark needs at least one of {', '.join(KEY_COLUMNS)}")
        index = self._last_index(self._file, key)
        current = self._file.tables[index].values if index is not None else None
        existing = self._model.get(key)
        text = (existing.note if existing else "") if note is None else note.strip()
        if mark == UNREVIEWED and not text:
            if current is not None:
                self._commit(_SetMark(f"clear the mark of {key.describe()}", key, None, current))
            return None
        values: dict[str, Any] = {"mark": mark}
        if text:
            values["note"] = text
        values["analyst"] = analyst or login_name()
        when = now or utc_now()
        values["updated"] = (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).replace(
            microsecond=0
        )
        self._commit(_SetMark(f"mark {key.describe()} {mark}", key, values, current))
        return self._model[key]

    def counts(self, candidates: pl.DataFrame | None = None) -> dict[str, int]:
        """How many of each mark: among ``candidates`` if given, else among the stored marks."""
        result = dict.fromkeys(MARKS, 0)
        if candidates is None:
            for mark in self._model.values():
                result[mark.status] += 1
            return result
        applied = self.apply(candidates)
        for status, count in applied.group_by(C_MARK).len().iter_rows():
            result[status] = count
        return result

    def apply(self, candidates: pl.DataFrame) -> pl.DataFrame:
        """``candidates`` plus ``mark`` (default unreviewed) and ``note`` (null if none)."""
        base = candidates.drop([C_MARK, C_NOTE], strict=False)
        if base.height == 0:
            return base.with_columns(
                pl.Series(C_MARK, [], pl.String), pl.Series(C_NOTE, [], pl.String)
            )
        marks = list(self._model.values())
        table = pl.DataFrame(
            {
                **{name: [m.key.normalized[i] for m in marks] for i, name in enumerate(_JOIN)},
                C_MARK: [m.status for m in marks],
                C_NOTE: [m.note or None for m in marks],
            },
            schema={
                **{name: pl.String for name in _JOIN[:3]},
                _JOIN[3]: pl.Int64,
                C_MARK: pl.String,
                C_NOTE: pl.String,
            },
        )
        keyed = base.rechunk().with_columns(_key_columns(base))
        joined = keyed.join(table, on=_JOIN, how="left", nulls_equal=True, maintain_order="left")
        return joined.with_columns(pl.col(C_MARK).fill_null(UNREVIEWED)).drop(_JOIN)
