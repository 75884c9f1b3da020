"""The app's side of the analyst's work: allow-listing, triage marks and export.

``BeaconTriageApp`` inherits this layer; it keeps the open allow-list and triage stores
(``detectors.curate.session.Curation``) and answers the screens' requests: mark, note, allow a
candidate, edit/disable/delete an entry, export. Every edit is saved at once and then
the merged candidates are re-decorated in a worker, so the table changes without the
detectors running again. Saves never overwrite blindly: a file changed by someone else
is merged by the model, and when that is not possible the user chooses (keep theirs /
overwrite with mine / cancel); a failed write keeps the edit in memory, says so in the
header and the log, and is retried by the next save (or Ctrl+S).
"""

from __future__ import annotations

import copy
import dataclasses
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import on
from textual.app import App
from textual.notifications import SeverityLevel
from textual.screen import ModalScreen

from detectors.base import schema as S
from detectors.base.config import Config
from detectors.base.errors import InputError
from detectors.base.sanitize import visible
from tui.format import inert_lines
from tui.lazy import NO_ROWS
from tui.messages import CandidatesDecorated, CurationOpened, Exported
from tui.screens.allow_entry import AllowEntryScreen
from tui.screens.allowlist import AllowListScreen, AllowListState
from tui.screens.confirm import ConfirmScreen
from tui.screens.export import ExportRequest, ExportScreen
from tui.screens.main import MainScreen
from tui.screens.triage_note import NoteEdit, TriageNoteScreen
from tui.view import C_MARK, HAYSTACK
from tui.widgets.allow_entry_form import KEYS as FORM_KEYS

if TYPE_CHECKING:
    import polars as pl

    from detectors.curate import decorate as D
    from detectors.curate import session
    from detectors.curate.allowlist import AllowEntry
    from tui.pipeline import Pipeline
else:
    from tui.lazy import curate_decorate as D
    from tui.lazy import curate_session as session
    from tui.lazy import polars as pl

HEADER_MARKS = ("suspicious", "escalate", "benign")
EXPORT_DROPS = (HAYSTACK, S.C_ALLOWED_BY)  # search helper; an entry number that edits shift
THEIRS, MINE, CANCEL = "theirs", "mine", "cancel"


def describe_candidate(row: dict[str, Any]) -> str:
    """``ws-07 / rundll32.exe -> 203.0.113.7:443``, printable."""
    ip = visible(row.get(S.C_REMOTE_IP) or "-")
    port = row.get(S.C_REMOTE_PORT)
    where = f"[{ip}]" if ":" in ip and port is not None else ip
    if port is not None:
        where = f"{where}:{port}"
    device = visible(row.get(S.C_DEVICE) or "-")
    process = visible(row.get(S.C_PROCESS) or "-")
    return f"{device} / {process} -> {where}"


def _same_entry(a: AllowEntry, b: AllowEntry) -> bool:
    """The same rule, wherever it sits in the file now."""
    return dataclasses.replace(a, index=0, line=None) == dataclasses.replace(b, index=0, line=None)


class CurationApp(App[None]):
    """Allow-list, triage and export state and flows; the app class builds on it."""

    # Provided by the app class.
    config: Config
    allowlist_path: Path | None
    pipeline: Pipeline
    main_screen: MainScreen
    candidates: pl.DataFrame

    def add_log(self, level: str, text: str) -> None:
        raise NotImplementedError

    def refresh_header(self) -> None:
        raise NotImplementedError

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Every toast shows plain, inert text: messages quote file names and telemetry."""
        if not markup:
            message, title = inert_lines(message), inert_lines(title)
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    def _init_curation(self) -> None:
        self.curation: session.Curation | None = None
        self.merged: pl.DataFrame = NO_ROWS  # the merged candidates before flags and marks
        self.mark_counts: dict[str, int] = {}
        self.allow_hits: dict[AllowEntry, int] = {}
        self._decorate_seq = 0
        self._merged_final = True  # the merge on screen is the run's last
        self._parts_kept: D.Parts | None = None  # see _parts
        self._asking: set[str] = set()  # stores with a conflict question on screen
        self._quit_asked = False

    # --- opening ----------------------------------------------------------------------

    @property
    def _parts(self) -> D.Parts:
        """What the last decoration computed, reused per edit (made on first use: the
        curation modules are imported after the first paint)."""
        if self._parts_kept is None:
            self._parts_kept = D.Parts()
        return self._parts_kept

    @_parts.setter
    def _parts(self, parts: D.Parts) -> None:
        self._parts_kept = parts

    def open_curation(self) -> None:
        """Read the allow-list and the triage marks in a worker (their modules import
        polars: not on the event loop right after the first paint); see
        ``on_curation_opened``."""
        allowlist = self.allowlist_path or self.config.allowlist_path()
        self.run_worker(
            partial(self._read_curation, allowlist),
            name="curation",
            group="curation",
            thread=True,
            exit_on_error=False,
        )

    def _read_curation(self, allowlist: Path) -> None:
        triage = session.triage_path_for(allowlist, self.config.triage)
        self.post_message(CurationOpened(session.Curation.open(allowlist, triage)))

    def on_curation_opened(self, message: CurationOpened) -> None:
        """The allow-list and marks are read: apply them (a broken file is reported, not
        used), and re-flag candidates a fast merge already showed without them."""
        self.curation = message.curation
        if self.merged.height:
            self._parts = D.Parts()
            self.redecorate()
        self.refresh_header()
        for kind, error in self.curation.errors.items():
            self.add_log("error", f"{kind} not applied: {error}")
            self.notify(
                f"{error}\nThe app runs without it and will not rewrite the file; "
                "fix it by hand, then press r to read it again.",
                title=f"{kind.capitalize()} not applied",
                severity="error",
                markup=False,
                timeout=12,
            )

    def adopt_outside_changes(self) -> None:
        """Pick up edits made to the files by hand or by a colleague (before a run)."""
        if self.curation is None:
            return
        changed = [k for k in D.KINDS if self.curation.adopt_outside_changes(k)]
        for kind in changed:
            self.add_log("info", f"{kind}: re-read, it was changed on disk")
            self._parts = self._parts.without(kind)
        if changed:
            self.redecorate()

    # --- decorating: the table after an edit, without running the detectors -------------

    def set_merged(self, merged: pl.DataFrame, final: bool = True) -> None:
        """A merge's candidates; ``final`` when no detector of the run is left."""
        self.merged = merged
        self._merged_final = final
        self._parts = D.Parts()
        self.redecorate()

    def merged_shown(self, final: bool) -> None:
        """Hook: a merge's candidates are on screen (the app updates its status)."""

    def redecorate(self) -> None:
        """Flags and marks again, in a worker; only the parts whose file changed."""
        self._decorate_seq += 1
        allowlist, triage = self.curation.snapshot() if self.curation else (None, None)
        want_hits = self._allowlist_screen() is not None
        self.pipeline.decorate(
            self._decorate_seq, self.merged, allowlist, triage, self._parts, want_hits
        )
        self._refresh_allowlist_screen()

    def on_candidates_decorated(self, message: CandidatesDecorated) -> None:
        if message.seq != self._decorate_seq:
            return  # an edit since then started a newer one
        decorated = message.decorated
        self._parts = decorated.parts
        self.candidates = decorated.candidates
        self.mark_counts = decorated.marks
        self.allow_hits = decorated.parts.hits or {}
        self.main_screen.candidates = decorated.candidates
        self.merged_shown(self._merged_final)
        self.refresh_header()
        self._refresh_allowlist_screen()

    def header_marks(self) -> tuple[tuple[str, int], ...]:
        return tuple((m, self.mark_counts[m]) for m in HEADER_MARKS if self.mark_counts.get(m))

    def unsaved(self) -> tuple[str, ...]:
        return self.curation.unsaved() if self.curation else ()

    # --- saving ---------------------------------------------------------------------------

    def save_store(self, kind: str, *, overwrite: bool = False, skip: bool = False) -> None:
        """Save one store now, then retry any other store's unsaved edits; re-decorate."""
        if self.curation is None:
            return
        self._parts = self._parts.without(kind)  # edited, and maybe merged with theirs
        self._report(self.curation.save(kind, overwrite=overwrite, skip_conflicts=skip))
        for other in self.curation.unsaved():
            if other != kind and other not in self._asking:
                self._parts = self._parts.without(other)
                self._report(self.curation.save(other))
        self.refresh_header()
        self.redecorate()

    def _report(self, outcome: session.SaveOutcome) -> None:
        kind = outcome.kind
        if outcome.status == session.CONFLICT:
            self.add_log("warning", f"{kind}: {outcome.message}")
            if outcome.broken:
                self.notify(
                    f"{outcome.message}\nYour edits are kept in memory (Ctrl+S retries).",
                    title=f"{kind.capitalize()} not saved",
                    severity="error",
                    markup=False,
                    timeout=12,
                )
            else:
                self._ask_about_conflict(outcome)
        elif outcome.status == session.FAILED:
            self.add_log("error", f"{kind} not saved: {outcome.message}")
            self.notify(
                f"{outcome.message}\nThe edit is kept and marked UNSAVED; the next save "
                "(or Ctrl+S) tries again.",
                title=f"{kind.capitalize()} NOT saved",
                severity="error",
                markup=False,
                timeout=12,
            )
        elif outcome.status == session.SAVED and outcome.skipped:
            dropped = "\n".join(f"- {text}" for text in outcome.skipped)
            self.add_log("warning", f"{kind}: kept the other version for:\n{dropped}")
            self.notify(
                f"Kept the version on disk for:\n{dropped}",
                title=f"{kind.capitalize()} saved",
                severity="warning",
                markup=False,
            )

    def _ask_about_conflict(self, outcome: session.SaveOutcome) -> None:
        kind = outcome.kind
        if kind in self._asking:
            return
        self._asking.add(kind)

        def answered(choice: str | None) -> None:
            self._asking.discard(kind)
            if choice == THEIRS:
                self.save_store(kind, skip=True)
            elif choice == MINE:
                self.save_store(kind, overwrite=True)
            else:
                self.notify(
                    "Your edits are kept in memory, unsaved; Ctrl+S asks again.",
                    title=f"{kind.capitalize()} not saved",
                    severity="warning",
                    markup=False,
                )
                self.refresh_header()

        self.push_screen(
            ConfirmScreen(
                f"The {kind} file was changed by someone else",
                f"{outcome.message}\n\n"
                "Keep theirs: their version of that entry stays; your other edits are saved.\n"
                "Overwrite with mine: the file becomes exactly your version.\n"
                "Cancel: nothing is written; your edits stay in memory (Ctrl+S asks again).",
                [(THEIRS, "Keep theirs"), (MINE, "Overwrite with mine"), (CANCEL, "Cancel")],
                default=2,
            ),
            answered,
        )

    def may_quit(self) -> bool:
        """True when nothing unsaved would be lost; otherwise one more save, then a question.

        A second Ctrl+Q while the question is open quits anyway.
        """
        if self.curation is None or self._quit_asked:
            return True
        for kind in self.curation.unsaved():
            self.curation.save(kind)  # a last try; a conflict or failure is asked about below
        pending = [
            f"{kind}: {text}"
            for kind in self.curation.unsaved()
            if (store := self.curation.store(kind)) is not None
            for text in store.pending
        ]
        if not pending:
            return True
        self._quit_asked = True

        def answered(choice: str | None) -> None:
            self._quit_asked = False
            if choice == "quit":
                self.pipeline.cancel("")
                self.exit()

        listed = "\n".join(f"- {text}" for text in pending[:8])
        more = f"\n(+{len(pending) - 8} more)" if len(pending) > 8 else ""
        self.push_screen(
            ConfirmScreen(
                "Quit and lose unsaved edits?",
                f"These edits could not be written:\n{listed}{more}\n\n"
                "Stay, and Ctrl+S tries again (the log says why it failed).",
                [("quit", "Quit anyway"), ("stay", "Stay")],
                default=1,
            ),
            answered,
        )
        return False

    def action_save_now(self) -> None:
        pending = self.unsaved()
        if not pending:
            self.notify("Nothing to save: every edit is on disk.", markup=False)
            return
        for kind in pending:
            self.save_store(kind)

    # --- triage marks ---------------------------------------------------------------------

    def _triage_or_say_why(self) -> Any:
        triage = self.curation.triage if self.curation else None
        if triage is None:
            error = self.curation.errors.get(D.TRIAGE, "not opened yet") if self.curation else ""
            self.notify(
                f"Triage marks are off: {error}\nFix the file by hand, then press r.",
                title="Cannot mark",
                severity="error",
                markup=False,
            )
        return triage

    def set_mark(self, row: dict[str, Any], mark: str, note: str | None) -> None:
        triage = self._triage_or_say_why()
        if triage is None:
            return
        try:
            triage.set(row, mark, note)
        except InputError as exc:
            self.notify(str(exc), title="Cannot mark", severity="error", markup=False)
            return
        self.save_store(D.TRIAGE)

    @on(MainScreen.MarkRequested)
    def _mark_requested(self, message: MainScreen.MarkRequested) -> None:
        self.set_mark(message.row, message.mark, None)

    @on(MainScreen.NoteRequested)
    def _note_requested(self, message: MainScreen.NoteRequested) -> None:
        if self._triage_or_say_why() is None:
            return
        row = message.row

        def edited(result: NoteEdit | None) -> None:
            if result is not None:
                self.set_mark(row, result.mark, result.note)

        screen = TriageNoteScreen(describe_candidate(row), row.get(C_MARK), row.get("note"))
        self.push_screen(screen, edited)

    # --- allow-listing ------------------------------------------------------------------

    def _allowlist_or_say_why(self) -> Any:
        allowlist = self.curation.allowlist if self.curation else None
        if allowlist is None:
            error = self.curation.errors.get(D.ALLOWLIST, "not opened yet") if self.curation else ""
            self.notify(
                f"The allow-list is not applied: {error}\nFix the file by hand, then read "
                "it again (r, or Ctrl+R on the allow-list screen).",
                title="Cannot edit the allow-list",
                severity="error",
                markup=False,
            )
        return allowlist

    @on(MainScreen.AllowRequested)
    def _allow_requested(self, message: MainScreen.AllowRequested) -> None:
        from detectors.curate.allowlist import suggest_entries

        allowlist = self._allowlist_or_say_why()
        if allowlist is None:
            return
        suggestions = suggest_entries(message.row)
        if not suggestions:
            self.notify("This candidate has nothing to match on.", markup=False)
            return
        screen = AllowEntryScreen(
            "Allow-list this candidate: pick a rule (↑↓), edit it (Tab), Ctrl+S saves",
            suggestions[0][1],
            candidates=self.candidates,
            probe=copy.copy(allowlist),
            subject=describe_candidate(message.row),
            suggestions=suggestions,
        )
        self.push_screen(screen, self._add_entry)

    def _add_entry(self, fields: dict[str, Any] | None) -> None:
        allowlist = self._allowlist_or_say_why() if fields is not None else None
        if allowlist is None or fields is None:
            return
        try:
            entry = allowlist.add(fields)
        except InputError as exc:
            self.notify(str(exc), title="Entry not added", severity="error", markup=False)
            return
        self.add_log("info", f"allow-list: added {entry.describe()}")
        self.save_store(D.ALLOWLIST)
        if not allowlist.dirty:
            self.notify(entry.describe(), title="Allow-listed", markup=False)

    def action_show_allowlist(self) -> None:
        if isinstance(self.screen, (AllowListScreen, ModalScreen)) or self.curation is None:
            return  # already there, or a question or editor is open
        if self.curation.adopt_outside_changes(D.ALLOWLIST):
            self.add_log("info", "allow-list: re-read, it was changed on disk")
            self._parts = self._parts.without(D.ALLOWLIST)
        self.push_screen(AllowListScreen())
        self.redecorate()  # counts the hits per entry, now that they are shown

    def _allowlist_screen(self) -> AllowListScreen | None:
        for screen in self.screen_stack:
            if isinstance(screen, AllowListScreen):
                return screen
        return None

    def _refresh_allowlist_screen(self) -> None:
        screen = self._allowlist_screen()
        if screen is None or self.curation is None:
            return
        allowlist = self.curation.allowlist
        screen.entries = allowlist.entries if allowlist else ()
        screen.hits = self.allow_hits
        screen.state = AllowListState(
            path=str(self.curation.paths[D.ALLOWLIST]),
            error=self.curation.errors.get(D.ALLOWLIST) if allowlist is None else None,
            unsaved=bool(allowlist and allowlist.dirty),
        )

    def _locate(self, entry: AllowEntry) -> int | None:
        """The entry's index now (a save may have merged someone else's entries)."""
        allowlist = self._allowlist_or_say_why()
        if allowlist is None:
            return None
        entries = allowlist.entries
        if 0 <= entry.index < len(entries) and _same_entry(entries[entry.index], entry):
            return entry.index
        for current in entries:
            if _same_entry(current, entry):
                return current.index
        self.notify("That entry changed meanwhile; look again.", severity="warning", markup=False)
        self._refresh_allowlist_screen()
        return None

    def _edit_allowlist(self, entry: AllowEntry, what: str, change: Any) -> None:
        index = self._locate(entry)
        allowlist = self.curation.allowlist if self.curation else None
        if index is None or allowlist is None:
            return
        try:
            done = change(allowlist, index)
        except InputError as exc:
            self.notify(str(exc), title=f"Not {what}", severity="error", markup=False)
            return
        self.add_log("info", f"allow-list: {what} {done.describe()}")
        self.save_store(D.ALLOWLIST)

    @on(AllowListScreen.ToggleRequested)
    def _toggle_requested(self, message: AllowListScreen.ToggleRequested) -> None:
        enabled = message.enabled
        what = "enabled" if enabled else "disabled"
        self._edit_allowlist(message.entry, what, lambda al, i: al.set_enabled(i, enabled))

    @on(AllowListScreen.DeleteRequested)
    def _delete_requested(self, message: AllowListScreen.DeleteRequested) -> None:
        self._edit_allowlist(message.entry, "deleted", lambda al, i: al.remove(i))

    @on(AllowListScreen.EditRequested)
    def _edit_requested(self, message: AllowListScreen.EditRequested) -> None:
        entry = message.entry
        fields: dict[str, Any] = {**entry.match_fields(), "reason": entry.reason}
        if entry.expires:
            fields["expires"] = entry.expires

        def edited(result: dict[str, Any] | None) -> None:
            if result is None:
                return
            changes = {key: result.get(key) for key in FORM_KEYS}  # None removes a key
            self._edit_allowlist(entry, "changed", lambda al, i: al.update(i, changes))

        screen = AllowEntryScreen(
            f"Edit allow-list entry #{entry.number} (Ctrl+S saves, Esc cancels)",
            fields,
            candidates=self.candidates,
        )
        self.push_screen(screen, edited)

    @on(AllowListScreen.NewRequested)
    def _new_requested(self, message: AllowListScreen.NewRequested) -> None:
        allowlist = self._allowlist_or_say_why()
        if allowlist is None:
            return
        screen = AllowEntryScreen(
            "New allow-list entry: at least one match key and a reason (Ctrl+S saves)",
            {},
            candidates=self.candidates,
            probe=copy.copy(allowlist),
        )
        self.push_screen(screen, self._add_entry)

    @on(AllowListScreen.ReloadRequested)
    def _reload_requested(self, message: AllowListScreen.ReloadRequested) -> None:
        if self.curation is None:
            return
        allowlist = self.curation.allowlist
        if allowlist is not None and allowlist.dirty:
            self.notify(
                "There are unsaved edits: Ctrl+S saves them first.",
                severity="warning",
                markup=False,
            )
            return
        error = self.curation.reload(D.ALLOWLIST)
        self._parts = self._parts.without(D.ALLOWLIST)
        if error:
            self.add_log("error", f"allow-list not applied: {error}")
            self.notify(error, title="Allow-list still broken", severity="error", markup=False)
        else:
            self.notify("Allow-list re-read.", markup=False)
        self.redecorate()

    # --- export -------------------------------------------------------------------------

    @on(MainScreen.ExportRequested)
    def _export_requested(self, message: MainScreen.ExportRequested) -> None:
        view = message.view
        escalated = self.mark_counts.get("escalate", 0)

        def chosen(request: ExportRequest | None) -> None:
            if request is None:
                return
            if request.fmt == "markdown":  # every escalation, whatever the filters hide
                frame = self.candidates
                if S.C_SCORE in frame.columns:
                    frame = frame.sort(S.C_SCORE, descending=True, nulls_last=True)
            else:
                frame = view
            frame = frame.drop(EXPORT_DROPS, strict=False)
            self.pipeline.export(frame, str(request.path), request.fmt)

        self.push_screen(ExportScreen(view.height, escalated, Path.cwd(), datetime.now()), chosen)

    def on_exported(self, message: Exported) -> None:
        if message.error:
            self.add_log("error", f"export failed: {message.error}")
            self.notify(message.error, title="Export failed", severity="error", markup=False)
            return
        what = "escalated candidates" if message.fmt == "markdown" else "rows"
        self.add_log("info", f"exported {message.rows:,} {what} to {message.path}")
        self.notify(
            f"{message.rows:,} {what} written to {message.path}", title="Exported", markup=False
        )
