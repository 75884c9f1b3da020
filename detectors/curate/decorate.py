"""The one step that adds the analyst's files to a merged candidate list.

The CLI (``detect --allowlist``) and the TUI both call ``decorate``: allow-listed
candidates are flagged (``allowed``, ``allowed_by``) and triage marks attached (``mark``,
``note``), vectorised, without running any hunt again. An edit in the TUI recomputes only
the part that depends on the edited file.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import polars as pl

from detectors.base import schema as S
from detectors.curate.allowlist import AllowEntry, AllowList
from detectors.curate.triage import TriageStore

ALLOWLIST = "allow-list"
TRIAGE = "triage"
KINDS = (ALLOWLIST, TRIAGE)


@dataclass(frozen=True)
class Parts:
    """What decorating one merged frame computed, kept until its file changes.

    Each part costs a pass over every candidate, so an edit recomputes only its own:
    a mark re-joins the marks, an allow-list edit re-flags; the per-entry hit counts
    are only counted while the allow-list screen shows them.
    """

    flags: pl.DataFrame | None = None  # allowed, allowed_by (row for row with the merge)
    marks: pl.DataFrame | None = None  # mark, note
    hits: dict[AllowEntry, int] | None = None  # per entry (as it was), matched on its own

    def without(self, kind: str) -> Parts:
        """These parts with the ones that depend on ``kind``'s file dropped."""
        if kind == ALLOWLIST:
            return replace(self, flags=None, hits=None)
        return replace(self, marks=None)


@dataclass(frozen=True)
class Decorated:
    """The merged candidates with ``allowed``/``allowed_by`` and ``mark``/``note`` added,
    the count of each mark, and the parts to reuse next time."""

    candidates: pl.DataFrame
    marks: dict[str, int] = field(default_factory=dict)
    parts: Parts = field(default_factory=Parts)


def decorate(
    merged: pl.DataFrame,
    allowlist: AllowList | None,
    triage: TriageStore | None,
    parts: Parts | None = None,
    *,
    want_hits: bool = False,
) -> Decorated:
    """Flag allow-listed candidates and attach marks: vectorised, no detector runs.

    ``parts`` from an earlier call on the same ``merged`` are reused as they are.
    """
    parts = parts or Parts()
    base = merged.drop([S.C_ALLOWED, S.C_ALLOWED_BY, S.C_MARK, S.C_NOTE], strict=False)
    flags, marks, hits = parts.flags, parts.marks, parts.hits
    if flags is None and allowlist is not None:
        flags = allowlist.flag(base).select(S.C_ALLOWED, S.C_ALLOWED_BY)
    if hits is None and want_hits and allowlist is not None:
        per_index = allowlist.hits_per_entry(base)
        hits = {entry: per_index.get(entry.index, 0) for entry in allowlist.entries}
    if marks is None and triage is not None:
        marks = triage.apply(base).select(S.C_MARK, S.C_NOTE)
    frame = base
    for extra in (flags, marks):
        if extra is not None:
            frame = frame.hstack(extra)  # parts of another frame would fail here, loudly
    counts: dict[str, int] = {}
    if marks is not None and marks.height:
        counted = marks.get_column(S.C_MARK).value_counts()
        counts = {str(k): int(n) for k, n in counted.iter_rows()}
    return Decorated(frame, counts, Parts(flags, marks, hits))


def hide_allowed(decorated: pl.DataFrame) -> pl.DataFrame:
    """The candidates no allow-list entry matches, without the allow-list columns."""
    return decorated.filter(~pl.col(S.C_ALLOWED)).drop(S.C_ALLOWED, S.C_ALLOWED_BY)
