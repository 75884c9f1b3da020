"""The analyst's two files behind the TUI: the allow-list and the triage marks.

Both are hand-editable TOML models in ``detectors/`` (``AllowList``, ``TriageStore``)
that keep edits in memory until saved. The TUI saves right after every edit; this
module opens the files (a broken one is reported, never rewritten), turns a save into
an outcome the app can show (saved / a conflict to ask about / failed and kept), and
decorates the merged candidates with both files, which is what an edit re-runs instead
of the detectors. No Textual here: the flows are tested without an app.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from detectors.errors import InputError

if TYPE_CHECKING:
    from detectors.allowlist import AllowEntry, AllowList
    from detectors.tomlstore import TomlStore
    from detectors.triage import TriageStore

ALLOWLIST = "allow-list"
TRIAGE = "triage"
KINDS = (ALLOWLIST, TRIAGE)

SAVED = "saved"
NOTHING = "nothing"  # no edits and nobody else's changes to adopt
CONFLICT = "conflict"  # ask the user: keep theirs / overwrite with mine / cancel
FAILED = "failed"  # could not write: the edits stay in memory and are retried


@dataclass(frozen=True)
class SaveOutcome:
    """What one save did, in words the app can show as they are."""

    kind: str
    status: str
    message: str = ""
    skipped: tuple[str, ...] = ()  # our edits dropped in favour of the other writer's
    broken: bool = False  # a conflict because the file on disk no longer reads: fix it first


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
    from detectors.allowlist import C_ALLOWED, C_ALLOWED_BY
    from detectors.triage import C_MARK, C_NOTE

    parts = parts or Parts()
    base = merged.drop([C_ALLOWED, C_ALLOWED_BY, C_MARK, C_NOTE], strict=False)
    flags, marks, hits = parts.flags, parts.marks, parts.hits
    if flags is None and allowlist is not None:
        flags = allowlist.flag(base).select(C_ALLOWED, C_ALLOWED_BY)
    if hits is None and want_hits and allowlist is not None:
        per_index = allowlist.hits_per_entry(base)
        hits = {entry: per_index.get(entry.index, 0) for entry in allowlist.entries}
    if marks is None and triage is not None:
        marks = triage.apply(base).select(C_MARK, C_NOTE)
    frame = base
    for extra in (flags, marks):
        if extra is not None:
            frame = frame.hstack(extra)  # parts of another frame would fail here, loudly
    counts: dict[str, int] = {}
    if marks is not None and marks.height:
        counted = marks.get_column(C_MARK).value_counts()
        counts = {str(k): int(n) for k, n in counted.iter_rows()}
    return Decorated(frame, counts, Parts(flags, marks, hits))


def triage_path_for(allowlist_path: Path, configured: Path | None) -> Path:
    """The triage file: the configured one, else ``triage.toml`` beside the allow-list."""
    return configured or allowlist_path.with_name("triage.toml")


@dataclass
class Curation:
    """The open allow-list and triage stores, or why each could not be opened.

    A store that failed to open stays ``None`` with its ``errors`` entry: the app runs
    without it and, having no model of the file, can never write over it.
    """

    paths: dict[str, Path]
    allowlist: AllowList | None = None
    triage: TriageStore | None = None
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def open(cls, allowlist_path: Path, triage_path: Path) -> Curation:
        curation = cls({ALLOWLIST: allowlist_path, TRIAGE: triage_path})
        for kind in KINDS:
            curation.reload(kind)
        return curation

    def store(self, kind: str) -> TomlStore[Any] | None:
        return self.allowlist if kind == ALLOWLIST else self.triage

    def reload(self, kind: str) -> str | None:
        """Read the file again (dropping unsaved edits); returns the error, if any."""
        from detectors.allowlist import AllowList
        from detectors.triage import TriageStore

        path = self.paths[kind]
        try:
            if kind == ALLOWLIST:
                self.allowlist = AllowList.load(path)
            else:
                self.triage = TriageStore.load(path)
        except InputError as exc:
            if kind == ALLOWLIST:
                self.allowlist = None
            else:
                self.triage = None
            self.errors[kind] = str(exc)
            return str(exc)
        self.errors.pop(kind, None)
        return None

    def adopt_outside_changes(self, kind: str) -> bool:
        """Re-read a file someone else changed, when we have no edits of our own pending.

        A file that no longer reads keeps our last good model (and is not rewritten: the
        next save reports it as a conflict). Returns True when the model changed.
        """
        store = self.store(kind)
        if store is None:
            return self.reload(kind) is None
        if store.dirty or not store.changed_on_disk():
            return False
        try:
            store.reload()
        except InputError as exc:
            self.errors[kind] = str(exc)
            return False
        self.errors.pop(kind, None)
        return True

    def unsaved(self) -> tuple[str, ...]:
        """The stores holding edits that are not on disk yet."""
        return tuple(k for k in KINDS if (s := self.store(k)) is not None and s.dirty)

    def save(
        self, kind: str, *, overwrite: bool = False, skip_conflicts: bool = False
    ) -> SaveOutcome:
        """Save one store; never raises for a conflict or a write failure."""
        from detectors.tomlstore import StoreConflict, StoreSaveError

        store = self.store(kind)
        if store is None:
            return SaveOutcome(kind, NOTHING)
        had_edits = store.dirty
        try:
            skipped = store.save(overwrite=overwrite, skip_conflicts=skip_conflicts)
        except StoreConflict as exc:
            return SaveOutcome(kind, CONFLICT, str(exc), broken=exc.edit is None)
        except StoreSaveError as exc:
            return SaveOutcome(kind, FAILED, str(exc))
        status = SAVED if had_edits or overwrite else NOTHING
        return SaveOutcome(kind, status, str(self.paths[kind]), tuple(skipped))

    def snapshot(self) -> tuple[AllowList | None, TriageStore | None]:
        """Copies for a worker thread: later edits rebind the originals' state, not these."""
        return copy.copy(self.allowlist), copy.copy(self.triage)


def check_entry(fields: dict[str, Any]) -> InputError | None:
    """Why an allow-list entry with ``fields`` would be refused (None: it is fine).

    Runs the model's own validation on a throwaway, never-saved list, so the editor
    stays open on a mistake (``field`` names the box) instead of losing what was typed.
    """
    from detectors.allowlist import AllowList

    try:
        AllowList(Path("allowlist.toml")).add(fields, added_by="check")
    except InputError as exc:
        return exc
    return None
