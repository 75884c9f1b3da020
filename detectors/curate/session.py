"""An editing session on the analyst's two files: the allow-list and the triage marks.

Both are hand-editable TOML models (``AllowList``, ``TriageStore``) that keep edits in
memory until saved. The TUI saves right after every edit; this module opens the files
(a broken one is reported, never rewritten) and turns a save into an outcome a face can
show (saved / a conflict to ask about / failed and kept). No Textual here: the flows
are tested without an app.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from detectors.base.errors import InputError
from detectors.curate.decorate import ALLOWLIST, KINDS, TRIAGE

if TYPE_CHECKING:
    from detectors.curate.allowlist import AllowList
    from detectors.curate.tomlstore import TomlStore
    from detectors.curate.triage import TriageStore

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
        from detectors.curate.allowlist import AllowList
        from detectors.curate.triage import TriageStore

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
        from detectors.curate.tomlstore import StoreConflict, StoreSaveError

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
    from detectors.curate.allowlist import AllowList

    try:
        AllowList(Path("allowlist.toml")).add(fields, added_by="check")
    except InputError as exc:
        return exc
    return None
