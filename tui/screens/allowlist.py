"""``L``: the allow-list, entry by entry: what it matches, how many candidates, since when.

The app owns the allow-list and sets ``entries``, ``hits`` and ``state``; this screen
asks for changes with messages (edit, enable/disable, delete after a yes, reload) and
the app saves each one at once. Expired entries (they no longer apply) and disabled
ones are marked in words, not only in colour. Every value is shown as plain text:
an entry may hold a device or domain name copied from telemetry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label, Static

from detectors.base.sanitize import visible
from tui import keymap
from tui.screens.confirm import ConfirmScreen

if TYPE_CHECKING:
    from detectors.curate.allowlist import AllowEntry


@dataclass(frozen=True)
class AllowListState:
    """The file behind the list: where, whether it read, whether edits wait to be saved."""

    path: str = ""
    error: str | None = None
    unsaved: bool = False
    today: date | None = None  # for "expired" (None: today, UTC)


def entry_state(entry: AllowEntry, today: date | None = None) -> str:
    """on / off / expired: why an entry does or does not apply."""
    if entry.is_expired(today):
        return "expired"
    return "on" if entry.enabled else "off"


def match_text(entry: AllowEntry) -> str:
    return " ".join(f"{key}={visible(value)}" for key, value in entry.match_fields().items())


class AllowListScreen(Screen[None]):
    """A table of entries and a line about the file."""

    KEYMAP_WHERE = "allowlist"
    BINDINGS: ClassVar[list[BindingType]] = keymap.bindings("allowlist")

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "allow-list-screen--expired",
        "allow-list-screen--off",
        "allow-list-screen--dead",
    }

    DEFAULT_CSS = """
    AllowListScreen > .allow-title {
        height: 1;
        width: 100%;
        background: $panel;
        color: $primary;
        text-style: bold;
        padding: 0 1;
    }
    AllowListScreen > #allow-state {
        height: auto;
        padding: 0 1;
        color: $text-muted;
    }
    AllowListScreen > #allow-state.-error {
        color: $error;
        text-style: bold;
    }
    AllowListScreen > #allow-state.-unsaved {
        color: $warning;
        text-style: bold;
    }
    AllowListScreen > DataTable {
        height: 1fr;
        background: $surface;
    }
    AllowListScreen > .allow-list-screen--expired { color: $warning; text-style: bold; }
    AllowListScreen > .allow-list-screen--off { color: $text-disabled; }
    AllowListScreen > .allow-list-screen--dead { color: $text-muted; }
    """

    entries: reactive[tuple[AllowEntry, ...]] = reactive((), always_update=True, init=False)
    hits: reactive[dict[AllowEntry, int]] = reactive(dict, always_update=True, init=False)
    state: reactive[AllowListState] = reactive(AllowListState, always_update=True, init=False)

    class EditRequested(Message):
        def __init__(self, entry: AllowEntry) -> None:
            super().__init__()
            self.entry = entry

    class NewRequested(Message):
        """``n``: write a new entry from scratch (not from a candidate)."""

    class ToggleRequested(Message):
        def __init__(self, entry: AllowEntry, enabled: bool) -> None:
            super().__init__()
            self.entry = entry
            self.enabled = enabled

    class DeleteRequested(Message):
        """Sent after the user said yes."""

        def __init__(self, entry: AllowEntry) -> None:
            super().__init__()
            self.entry = entry

    class ReloadRequested(Message):
        pass

    def compose(self) -> ComposeResult:
        yield Label(
            Text("Allow-list (Enter edits, Space disables, Del deletes, Esc back)", end=""),
            classes="allow-title",
        )
        yield Static(id="allow-state")
        yield DataTable(cursor_type="row", zebra_stripes=True, id="allow-table")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("#", "state", "matches", "match keys", "reason", "expires", "added")
        self._ready = True
        self._redraw()
        table.focus()

    def watch_entries(self) -> None:
        self._redraw()

    def watch_hits(self) -> None:
        self._redraw()

    def watch_state(self) -> None:
        self._redraw()

    # --- drawing --------------------------------------------------------------------------

    def _cell(self, value: str, style: str | None = None) -> Text:
        text = Text(value, end="", no_wrap=True, overflow="ellipsis")
        if style:
            text.stylize(self.get_component_rich_style(f"allow-list-screen--{style}"))
        return text

    def _redraw(self) -> None:
        if not getattr(self, "_ready", False):
            return
        self._show_state()
        table = self.query_one(DataTable)
        at = table.cursor_row
        table.clear()
        today = self.state.today
        for entry in self.entries:
            state = entry_state(entry, today)
            hits = self.hits.get(entry)
            style = None if state == "on" else state
            added = entry.added.strftime("%Y-%m-%d") if entry.added else "–"
            if entry.added_by:
                added += f" by {visible(entry.added_by)}"
            table.add_row(
                self._cell(str(entry.number)),
                self._cell(state.upper() if state != "on" else state, style),
                self._cell("…" if hits is None else f"{hits:,}", "dead" if hits == 0 else style),
                self._cell(match_text(entry), style),
                self._cell(visible(entry.reason), style),
                self._cell(entry.expires.isoformat() if entry.expires else "–", style),
                self._cell(added, style),
                key=str(entry.index),
            )
        if self.entries:
            table.move_cursor(row=max(0, min(at, len(self.entries) - 1)))

    def _show_state(self) -> None:
        state = self.state
        box = self.query_one("#allow-state", Static)
        box.set_class(bool(state.error), "-error")
        box.set_class(state.unsaved and not state.error, "-unsaved")
        if state.error:
            box.update(
                Text(
                    f"Not applied: {visible(state.error)}. The file is left as it is: "
                    "fix it by hand, then Ctrl+R reloads it.",
                    end="",
                )
            )
            return
        entries = self.entries
        off = sum(1 for e in entries if not e.enabled)
        expired = sum(1 for e in entries if e.is_expired(state.today))
        parts = [visible(state.path), f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}"]
        if off:
            parts.append(f"{off} disabled")
        if expired:
            parts.append(f"{expired} expired (no longer applied)")
        if state.unsaved:
            parts.append("UNSAVED edits (Ctrl+S retries)")
        box.update(Text(" · ".join(parts), end=""))

    # --- which entry --------------------------------------------------------------------

    def current_entry(self) -> AllowEntry | None:
        table = self.query_one(DataTable)
        if not self.entries or table.row_count == 0:
            return None
        row = table.cursor_row
        return self.entries[row] if 0 <= row < len(self.entries) else None

    # --- actions (keys in tui/keymap.py) --------------------------------------------------

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_edit_entry()

    def action_edit_entry(self) -> None:
        entry = self.current_entry()
        if entry is not None:
            self.post_message(self.EditRequested(entry))

    def action_new_entry(self) -> None:
        self.post_message(self.NewRequested())

    def action_toggle_entry(self) -> None:
        entry = self.current_entry()
        if entry is not None:
            self.post_message(self.ToggleRequested(entry, not entry.enabled))

    def action_delete_entry(self) -> None:
        entry = self.current_entry()
        if entry is None:
            return

        def answered(choice: str | None) -> None:
            if choice == "delete":
                self.post_message(self.DeleteRequested(entry))

        self.app.push_screen(
            ConfirmScreen(
                f"Delete allow-list entry #{entry.number}?",
                f"{match_text(entry)}\nreason: {visible(entry.reason)}\n\n"
                "Candidates it hides will show again. Disabling it (Space) keeps it in the file.",
                [("delete", "Delete"), ("cancel", "Cancel")],
            ),
            answered,
        )

    def action_reload(self) -> None:
        self.post_message(self.ReloadRequested())

    def action_close(self) -> None:
        self.dismiss(None)
