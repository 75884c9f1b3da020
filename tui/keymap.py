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
    where: str  # app | main | params | log
    footer: bool = False
    palette: bool = True  # offered in the command palette


KEYS: tuple[Key, ...] = (
    # main screen: the candidate list
    Key(
        "slash",
        "/",
        "focus_filter",
        "Filter",
        "Filter by device, process, IP or domain",
        "main",
        True,
    ),
    Key("escape", "Esc", "clear_filter", "Clear", "Clear the filter / restore the detail", "main"),
    Key("s", "s", "next_sort", "Sort", "Sort by the next column", "main", True),
    Key("S", "S", "reverse_sort", "Reverse", "Reverse the sort order", "main"),
    Key(
        "d",
        "d",
        "next_detector",
        "Detector",
        "Show one detector's candidates (cycles)",
        "main",
        True,
    ),
    Key("plus,equals_sign", "+", "score_up", "Score+", "Raise the minimum score by 0.1", "main"),
    Key("minus", "-", "score_down", "Score-", "Lower the minimum score by 0.1", "main"),
    Key("a", "a", "toggle_allowed", "Allowed", "Show or hide allow-listed candidates", "main"),
    Key(
        "m",
        "m",
        "next_mark",
        "Mark",
        "Filter by triage mark: all, unmarked, marked, suspicious, escalate, benign",
        "main",
    ),
    Key(
        "z",
        "z / Enter",
        "zoom_detail",
        "Zoom",
        "Maximise the detail pane (Esc restores)",
        "main",
        True,
    ),
    Key("f", "f", "focus_facts", "Facts", "Move focus to the facts, to scroll them", "main"),
    Key("x", "x", "reset_filters", "Reset", "Clear every filter", "main"),
    # anywhere
    Key("r", "r", "rerun", "Rerun", "Run the detectors again", "app", True),
    Key("c", "c", "cancel_run", "Cancel", "Cancel loading or the running detectors", "app"),
    Key("p", "p", "parameters", "Params", "Edit detector parameters", "app", True),
    Key("l", "l", "show_log", "Log", "Log of errors, warnings and skips", "app", True),
    Key("t", "t", "next_theme", "Theme", "Next theme (remembered in the config)", "app", True),
    Key("question_mark,f1", "? / F1", "help", "Help", "List every key", "app", True),
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
)

# Textual's own keys, listed so the help screen is complete.
BUILTIN_KEYS: tuple[tuple[str, str], ...] = (
    ("Ctrl+P", "Command palette: every action, theme and filter by name"),
    ("Ctrl+Q", "Quit (running work is cancelled)"),
    ("Tab / Shift+Tab", "Move focus between the table, the filter and the facts"),
    ("↑ ↓ j k", "Move in the table"),
    ("PgUp PgDn Home End g G", "Page / jump in the table"),
    ("← →", "Scroll the table sideways"),
    ("click a header", "Sort by that column (again to reverse)"),
)


def bindings(where: str) -> list[BindingType]:
    """The Textual bindings for one screen (or the app)."""
    return [
        Binding(k.keys, k.action, k.short, show=k.footer, tooltip=k.description)
        for k in KEYS
        if k.where == where
    ]
