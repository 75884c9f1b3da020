"""Every key the app answers to, in one table: bindings, help screen, command palette.

One list keeps the footer, the ``?`` screen, the palette and the README's key map from
drifting apart. ``where`` says which screen owns the binding ("app" works everywhere
a text box does not take the key).
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding, BindingType


@dataclass(frozen=True)
class Key:
    keys: str  # Textual key names, comma-separated
    label: str  # how the help screen writes the key
    action: str
    short: str  # footer text
    description: str
    where: str  # app | main | params | log | allowlist | entry | note | export | confirm
    footer: bool = False
    palette: bool = True  # offered in the command palette


KEYS: tuple[Key, ...] = (
    # main screen: the candidate list
    Key(
        "slash",
        "/",
        "focus_filter",
        "Filter",
        "Filter by device, process, IP or domain (Enter keeps it, Esc clears it)",
        "main",
        True,
    ),
    Key("n", "n", "next_match", "Next", "Next candidate matching the filter", "main"),
    Key("N", "N", "previous_match", "Prev", "Previous candidate matching the filter", "main"),
    Key(
        "escape",
        "Esc",
        "back",
        "Back",
        "Back: leave the zoom, return focus to the table, then clear the filter",
        "main",
    ),
    Key(
        "z,enter",
        "z / Enter",
        "zoom_detail",
        "Zoom",
        "Zoom the detail pane; the same key (or Esc) returns to the table",
        "main",
        True,
    ),
    Key("s", "s", "pick_sort", "Sort", "Sort by a column: pick it from a list", "main", True),
    Key("S", "S", "reverse_sort", "Reverse", "Reverse the sort order", "main"),
    Key(
        "d",
        "d",
        "next_detector",
        "Detector",
        "Show one detector's candidates (cycles)",
        "main",
    ),
    Key("plus,equals_sign", "+", "score_up", "Score+", "Raise the minimum score by 0.1", "main"),
    Key("minus", "-", "score_down", "Score-", "Lower the minimum score by 0.1", "main"),
    Key(
        "a",
        "a",
        "toggle_allowed",
        "Allowed",
        "Show or hide allow-listed candidates (the header counts them)",
        "main",
    ),
    Key(
        "M",
        "M",
        "next_mark",
        "By mark",
        "Filter by triage mark: all, unmarked, marked, suspicious, escalate, benign",
        "main",
    ),
    Key(
        "f",
        "f",
        "focus_facts",
        "Facts",
        "Move focus to the facts to scroll them (Esc back)",
        "main",
    ),
    Key(
        "C",
        "C",
        "campaign",
        "Campaign",
        "Show only the candidates to the highlighted one's destination (its campaign "
        "group: same address or domain); again to show all",
        "main",
    ),
    Key("x", "x", "reset_filters", "Reset", "Clear every filter", "main"),
    # main screen: triage the highlighted candidate (saved at once to the triage file)
    Key("m", "m", "edit_note", "Note", "Edit the candidate's mark and note", "main", True),
    Key(
        "exclamation_mark",
        "!",
        "mark('suspicious')",
        "Suspicious",
        "Mark the candidate suspicious (! in the M column)",
        "main",
    ),
    Key(
        "e",
        "e",
        "mark('escalate')",
        "Escalate",
        "Mark the candidate for escalation (E in the M column)",
        "main",
    ),
    Key(
        "b",
        "b",
        "mark('benign')",
        "Benign",
        "Mark the candidate benign (B in the M column)",
        "main",
    ),
    Key(
        "u",
        "u",
        "mark('unreviewed')",
        "Unreviewed",
        "Set the candidate back to unreviewed (its note stays)",
        "main",
    ),
    Key(
        "A",
        "A",
        "allow_candidate",
        "Allow",
        "Allow-list the candidate: by pair, IP, /24, domain, process or device",
        "main",
        True,
    ),
    Key(
        "E",
        "E",
        "export",
        "Export",
        "Export the view to CSV/JSON, or a Markdown report of escalated candidates",
        "main",
    ),
    Key(
        "q", "q", "quit", "Quit", "Quit (asks first only if edits could not be saved)", "main", True
    ),
    # anywhere
    Key("question_mark,f1", "? / F1", "help", "Help", "List every key", "app", True),
    Key("r", "r", "rerun", "Rerun", "Run the detectors again", "app"),
    Key("c", "c", "cancel_run", "Cancel", "Cancel loading or the running detectors", "app"),
    Key("p", "p", "parameters", "Params", "Edit detector parameters", "app"),
    Key("l", "l", "show_log", "Log", "Log of errors, warnings and skips", "app"),
    Key("t", "t", "next_theme", "Theme", "Next theme (remembered in the config)", "app"),
    Key(
        "L",
        "L",
        "show_allowlist",
        "Allow-list",
        "Allow-list entries: hits, edit, disable, delete",
        "app",
    ),
    Key(
        "ctrl+s",
        "Ctrl+S",
        "save_now",
        "Save",
        "Save unsaved allow-list and triage edits again",
        "app",
    ),
    # parameters screen
    Key(
        "ctrl+r",
        "Ctrl+R",
        "apply",
        "Apply+run",
        "Apply the parameters and run again",
        "params",
        True,
    ),
    Key(
        "ctrl+s", "Ctrl+S", "save", "Save", "Save the parameters to the config file", "params", True
    ),
    Key(
        "ctrl+d",
        "Ctrl+D",
        "defaults",
        "Defaults",
        "Reset every field to its default",
        "params",
        True,
    ),
    Key("escape", "Esc", "close", "Close", "Close without applying", "params", True, False),
    # log and help screens
    Key("escape,q", "Esc / q", "close", "Close", "Close this screen", "log", True, False),
    # allow-list screen
    Key(
        "e",
        "Enter / e",
        "edit_entry",
        "Edit",
        "Edit the entry: reason, expiry, match keys",
        "allowlist",
        True,
    ),
    Key(
        "n,insert",
        "n / Ins",
        "new_entry",
        "New",
        "Write a new entry from scratch: match keys, reason, expiry (with a preview)",
        "allowlist",
        True,
    ),
    Key(
        "space", "Space", "toggle_entry", "On/off", "Disable or enable the entry", "allowlist", True
    ),
    Key(
        "delete,d",
        "Del / d",
        "delete_entry",
        "Delete",
        "Delete the entry (asks first)",
        "allowlist",
        True,
    ),
    Key(
        "ctrl+r",
        "Ctrl+R",
        "reload",
        "Reload",
        "Read the allow-list file again (after fixing it by hand)",
        "allowlist",
        True,
    ),
    Key(
        "escape,q", "Esc / q", "close", "Close", "Back to the candidates", "allowlist", True, False
    ),
    # allow-list entry editor (from a candidate, or editing an entry)
    Key("ctrl+s", "Ctrl+S / Enter", "save", "Save", "Save the entry", "entry", True),
    Key("escape", "Esc", "cancel", "Cancel", "Close without saving", "entry", True, False),
    # mark and note editor
    Key("ctrl+s", "Ctrl+S", "save", "Save", "Save the mark and note", "note", True),
    Key("escape", "Esc", "cancel", "Cancel", "Close without saving", "note", True, False),
    # export
    Key("ctrl+s", "Ctrl+S / Enter", "save", "Write", "Write the file", "export", True),
    Key("escape", "Esc", "cancel", "Cancel", "Close without writing", "export", True, False),
    # questions (delete?, conflicts)
    Key("left", "←", "focus_previous", "Previous", "Previous answer", "confirm", False, False),
    Key("right", "→", "focus_next", "Next", "Next answer", "confirm", False, False),
    Key(
        "escape",
        "Esc",
        "cancel",
        "Cancel",
        "Cancel (Enter picks the answer)",
        "confirm",
        True,
        False,
    ),
)

# Textual's own keys, listed so the help screen is complete.
BUILTIN_KEYS: tuple[tuple[str, str], ...] = (
    ("Ctrl+P", "Command palette: every action, theme and filter by name"),
    ("Ctrl+Q", "Quit (running work is cancelled; unsaved edits are asked about)"),
    ("Tab / Shift+Tab", "Move focus between the table, the filter and the facts"),
    ("↑ ↓ j k", "Move in the table"),
    ("PgUp PgDn", "Page up / down in the table"),
    ("Home End g G", "First / last row of the table"),
    ("← →", "Scroll the table sideways"),
    ("click a header", "Sort by that column (again to reverse)"),
)


def label_of(action: str, where: str = "main") -> str:
    """How the help screen writes the key for ``action`` (so text naming a key follows
    the table)."""
    return next(k.label for k in KEYS if k.action == action and k.where == where)


def bindings(where: str) -> list[BindingType]:
    """The Textual bindings for one screen (or the app)."""
    return [
        Binding(k.keys, k.action, k.short, show=k.footer, tooltip=k.description)
        for k in KEYS
        if k.where == where
    ]


# The same action in the tools analysts already know (for docs/keys.md): VisiData, htop,
# less. "–" where the tool has no such action.
ELSEWHERE: dict[str, tuple[str, str, str]] = {
    "quit": ("q (sheet) / gq", "q / F10", "q"),
    "help": ("Ctrl+H / F1", "? / F1 / h", "h"),
    "focus_filter": ("| (select by regex)", "\\ (filter) / F4", "& (filter lines)"),
    "next_match": ("n", "–", "n"),
    "previous_match": ("N", "–", "N"),
    "back": ("q (back one sheet)", "Esc", "–"),
    "zoom_detail": ("Enter (dive into row)", "Enter / F2 (detail)", "–"),
    "pick_sort": ("[ ] (sort by column)", "F6 / > (sort picker)", "–"),
    "reverse_sort": ("[ vs ] (direction)", "I (invert)", "–"),
    "edit_note": ("e (edit cell)", "–", "–"),
    "export": ("Ctrl+S (save sheet)", "–", "s (save)"),
    "rerun": ("Ctrl+R (reload)", "–", "R (repaint)"),
}

# Keys that move in the table: ours, then VisiData, htop, less.
MOTION: tuple[tuple[str, str, str, str, str], ...] = (
    ("Move in the table", "↑ ↓ j k", "↑ ↓ j k", "↑ ↓", "↑ ↓ j k"),
    ("Page", "PgUp PgDn", "PgUp PgDn", "PgUp PgDn", "b Space / PgUp PgDn"),
    ("First / last row", "Home End g G", "gk gj / Home End", "Home End", "g G / < >"),
)
