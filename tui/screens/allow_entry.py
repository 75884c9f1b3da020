"""``A`` on a candidate (or Enter on an allow-list entry): one allow-list entry's editor.

From a candidate it offers the ready-made entries of ``suggest_entries`` (exact pair,
destination IP, its /24, the registered domain, the process, the device), each with a
prefilled reason to edit. While the analyst picks and types, a worker previews how many
candidates the entry would hide (``AllowList.preview``), so a too-broad rule shows
before it is saved. Dismisses with the entry's fields, or None.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Footer, Label, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import get_current_worker

from detectors.base import schema as S
from detectors.base.errors import InputError
from detectors.base.sanitize import visible
from tui import keymap
from tui.view import C_ALLOWED
from tui.widgets.allow_entry_form import KEYS, AllowEntryForm

if TYPE_CHECKING:
    import polars as pl

    from detectors.curate.allowlist import AllowList
else:
    from tui.lazy import polars as pl

Suggestion = tuple[str, dict[str, Any]]  # (printable label, raw fields)
DOMAIN_WARNING = (
    "Names come from DNS, SNI and Host headers an adversary can set: "
    "an entry by domain is weaker than one by address."
)

NO_MMDB = (
    "asn/org match nothing here: no local MaxMind ASN file filled the candidates' "
    'network owner (set mmdb = "/path/GeoLite2-ASN.mmdb" in the config; needs the '
    "maxminddb package)."
)


def mmdb_missing(fields: dict[str, Any], candidates: pl.DataFrame) -> bool:
    """True when the entry asks for asn/org but no candidate carries those columns."""
    wanted = {"asn": S.C_ASN, "org": S.C_ORG}
    return any(fields.get(k) and col not in candidates.columns for k, col in wanted.items())


class PreviewReady(Message):
    """How many candidates the entry as typed would hide (or why it cannot say)."""

    def __init__(self, fields: dict[str, Any], count: int | None, error: str | None) -> None:
        super().__init__()
        self.fields = fields
        self.count = count
        self.error = error


def count_preview(fields: dict[str, Any], probe: AllowList | None, candidates: pl.DataFrame) -> int:
    """New entry: candidates it would hide that no entry hides yet. Edited entry
    (``probe`` None): candidates it matches on its own."""
    from detectors.curate.allowlist import AllowList

    store = probe if probe is not None else AllowList(Path("allowlist.toml"))
    return store.preview(fields, candidates)


class AllowEntryScreen(ModalScreen[dict[str, Any] | None]):
    """Suggestions (when from a candidate), the fields, the preview, the first error."""

    KEYMAP_WHERE = "entry"
    BINDINGS = keymap.bindings("entry")

    DEFAULT_CSS = """
    AllowEntryScreen {
        align: center middle;
    }
    AllowEntryScreen > #entry-box {
        width: 96;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: thick $primary;
        background: $surface;
        padding: 0 1;
        overflow-y: auto;
    }
    AllowEntryScreen .entry-title {
        width: 100%;
        color: $primary;
        text-style: bold;
    }
    AllowEntryScreen .entry-subject {
        width: 100%;
        color: $foreground;
    }
    AllowEntryScreen OptionList, AllowEntryScreen OptionList:focus {
        height: auto;
        max-height: 6;
        margin-bottom: 1;
        border: none;
        padding: 0;
    }
    AllowEntryScreen #entry-preview {
        height: auto;
        margin-top: 1;
        color: $accent;
        text-style: bold;
    }
    AllowEntryScreen > .entry-preview--warning {
        color: $text-muted;
        text-style: none;
    }
    AllowEntryScreen #entry-error {
        height: auto;
        color: $error;
        text-style: bold;
    }
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {"entry-preview--warning"}

    def __init__(
        self,
        title: str,
        fields: dict[str, Any],
        *,
        candidates: pl.DataFrame,
        probe: AllowList | None = None,
        subject: str = "",
        suggestions: Sequence[Suggestion] = (),
    ) -> None:
        """``probe``: a snapshot of the allow-list for a new entry's preview (None when
        editing an existing entry). ``subject`` is printable text (already sanitized)."""
        super().__init__()
        self.title_text = title
        self.initial = dict(fields)
        self.candidates = candidates
        self.probe = probe
        self.subject = subject
        self.suggestions = list(suggestions)
        self.preview_count: int | None = None
        self._suggested_reason = fields.get("reason")
        self._fields = dict(fields)
        if C_ALLOWED in candidates.columns:
            self._not_allowed = candidates.filter(~pl.col(C_ALLOWED).fill_null(False)).height
        else:
            self._not_allowed = candidates.height

    def compose(self) -> ComposeResult:
        with Vertical(id="entry-box"):
            yield Label(Text(self.title_text, end=""), classes="entry-title")
            if self.subject:
                yield Static(Text(self.subject, end=""), classes="entry-subject")
            if self.suggestions:
                yield OptionList(
                    *[Option(Text(label, end="")) for label, _ in self.suggestions],
                    id="suggestions",
                )
            yield AllowEntryForm(self.initial, id="entry-form")
            yield Static(id="entry-preview")
            yield Static(id="entry-error")
        yield Footer()

    def on_mount(self) -> None:
        if self.suggestions:
            self.query_one(OptionList).focus()
        else:
            self.query_one(AllowEntryForm).focus_field("reason")

    # --- choosing a suggestion ----------------------------------------------------------

    @on(OptionList.OptionHighlighted)
    def _suggestion_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        index = event.option_index
        if not 0 <= index < len(self.suggestions):
            return
        _, fields = self.suggestions[index]
        form = self.query_one(AllowEntryForm)
        current = form.values()  # what the boxes hold now (messages may still be queued)
        chosen = dict(fields)
        reason = current.get("reason")
        if reason and reason != self._suggested_reason:
            chosen["reason"] = reason  # the analyst's own words survive a change of mind
        self._suggested_reason = fields.get("reason")
        if current.get("expires"):
            chosen["expires"] = current["expires"]
        form.fields = chosen

    @on(OptionList.OptionSelected)
    def _suggestion_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.query_one(AllowEntryForm).focus_field("reason")

    # --- the preview --------------------------------------------------------------------

    @on(AllowEntryForm.Changed)
    def _fields_changed(self, event: AllowEntryForm.Changed) -> None:
        event.stop()
        self._fields = event.fields
        self._run_preview(dict(event.fields))

    @work(thread=True, exclusive=True, group="entry-preview", exit_on_error=False)
    def _run_preview(self, fields: dict[str, Any]) -> None:
        try:
            count: int | None = count_preview(fields, self.probe, self.candidates)
            error = None
        except InputError as exc:
            count, error = None, exc.message
        if not get_current_worker().is_cancelled:
            self.post_message(PreviewReady(fields, count, error))

    @on(PreviewReady)
    def _show_preview(self, event: PreviewReady) -> None:
        if event.fields != self._fields:
            return  # typed on since; a newer preview is coming
        self.preview_count = event.count
        if event.count is None:
            text = Text(f"Preview: {visible(event.error)}", end="")
        elif self.probe is not None:
            text = Text(
                f"Would hide {event.count:,} of the {self._not_allowed:,} candidates "
                "not allow-listed yet",
                end="",
            )
        else:
            text = Text(f"Matches {event.count:,} candidates on its own", end="")
        warn = self.get_component_rich_style("entry-preview--warning")
        if event.fields.get("domain"):
            text.append(f"\n{DOMAIN_WARNING}", warn)
        if mmdb_missing(event.fields, self.candidates):
            text.append(f"\n{NO_MMDB}", warn)
        self.query_one("#entry-preview", Static).update(text)

    # --- saving -------------------------------------------------------------------------

    @on(AllowEntryForm.Submitted)
    def _submitted(self, event: AllowEntryForm.Submitted) -> None:
        event.stop()
        self.action_save()

    def action_save(self) -> None:
        form = self.query_one(AllowEntryForm)
        fields = form.values()
        from detectors.curate.session import check_entry

        problem = check_entry(fields)
        if problem is not None:
            form.invalid = problem.field
            self.query_one("#entry-error", Static).update(Text(visible(problem), end=""))
            if problem.field in KEYS:
                form.focus_field(problem.field)
            return
        self.dismiss(fields)

    def action_cancel(self) -> None:
        self.dismiss(None)
