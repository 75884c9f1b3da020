"""Make attacker-influenced text inert before it reaches a terminal.

Domain names, URLs and process names in telemetry are written by the adversary we
hunt. Control characters (ESC, BEL, CR, backspace, OSC), bidi overrides and
zero-width characters are shown as visible ``\\xNN``/``\\u....`` escapes, so nothing
moves the cursor, recolours the screen or reorders what the analyst reads. Markup
(``[bold]``) is a separate concern: the TUI passes text as ``rich.text.Text``.
"""

from __future__ import annotations

import unicodedata

_MAX_FIELD = 4096  # a 1 MB URL is shown cut, with its real length said


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _unsafe(ch: str) -> bool:
    category = unicodedata.category(ch)
    # Cc: C0/C1 controls; Cf: format chars (bidi overrides, zero-width, BOM);
    # Zl/Zp: line and paragraph separators; Cs/Co/Cn: surrogates, private, unassigned.
    return category in {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"}


def visible(text: object, limit: int = _MAX_FIELD) -> str:
    """A printable, single-line rendering of any telemetry value."""
    if text is None:
        return ""
    value = str(text)
    if len(value) > limit:
        value = f"{value[:limit]}… ({len(value):,} chars)"
    if value.isascii() and value.isprintable():
        return value
    return "".join(_escape(ch) if _unsafe(ch) else ch for ch in value)
