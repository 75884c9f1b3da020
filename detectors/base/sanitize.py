"""Make attacker-influenced text inert before it reaches a terminal or a spreadsheet.

Domain names, URLs and process names in telemetry are written by the adversary we
hunt. Control characters (ESC, BEL, CR, backspace, OSC), bidi overrides and
zero-width characters are shown as visible ``\\xNN``/``\\u....`` escapes, so nothing
moves the cursor, recolours the screen or reorders what the analyst reads. Markup
(``[bold]``) is a separate concern: the TUI passes text as ``rich.text.Text``.

Three renderings, one per kind of output:

- ``visible``: for eyes (table, ``--explain``, messages); lossy, cut when huge.
- ``json_safe``: JSON text whose unsafe characters are ``\\uXXXX`` escapes, so the
  document is inert on a terminal *and* decodes to the exact original strings.
- ``csv_cell``: CSV text for spreadsheets: escaped like ``visible`` (never cut) and a
  leading ``= + - @`` neutralised with ``'`` so Excel or LibreOffice never runs a
  formula an attacker wrote into a process name.
"""

from __future__ import annotations

import unicodedata

_MAX_FIELD = 4096  # a 1 MB URL is shown cut, with its real length said
_FORMULA_START = ("=", "+", "-", "@")  # OWASP's list (TAB and CR are escaped anyway)


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _unsafe(ch: str) -> bool:
    category = unicodedata.category(ch)
    # Cc: C0/C1 controls; Cf: format chars (bidi overrides, zero-width, BOM);
    # Zl/Zp: line and paragraph separators; Cs/Co/Cn: surrogates, private, unassigned.
    return category in {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"}


def is_inert(text: str) -> bool:
    """True when no character of ``text`` can steer a terminal or reorder what is shown."""
    return (text.isascii() and text.isprintable()) or not any(_unsafe(ch) for ch in text)


def visible(text: object, limit: int | None = _MAX_FIELD) -> str:
    """A printable, single-line rendering of any telemetry value (None is empty)."""
    if text is None:
        return ""
    value = str(text)
    if limit is not None and len(value) > limit:
        value = f"{value[:limit]}… ({len(value):,} chars)"
    if value.isascii() and value.isprintable():
        return value
    return "".join(_escape(ch) if _unsafe(ch) else ch for ch in value)


def _json_escape(ch: str) -> str:
    code = ord(ch)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000  # JSON spells astral characters as a UTF-16 surrogate pair
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def json_safe(document: str) -> str:
    """JSON text with every unsafe character written as a ``\\u`` escape.

    ``json.dumps(..., ensure_ascii=False)`` already escapes C0 controls but leaves DEL,
    C1 controls (``\\x9b`` is CSI on some terminals), bidi overrides and zero-width
    characters raw. Outside strings JSON holds only ASCII punctuation, so escaping
    anywhere in the text is escaping inside strings: ``json.loads`` gives back the
    exact original values.
    """
    if document.isascii() and all(ch >= " " or ch in "\n\r\t" for ch in document):
        return document.replace("\x7f", "\\u007f")
    return "".join(
        _json_escape(ch) if _unsafe(ch) and ch not in "\n\r\t" else ch for ch in document
    )


def csv_cell(text: str) -> str:
    """A text cell safe to open in a spreadsheet or print: escaped, never a formula."""
    value = visible(text, limit=None)
    if value.startswith(_FORMULA_START):
        return "'" + value
    return value


def toml_basic_string(text: str) -> str:
    """``text`` as a TOML basic string (with its quotes) that is inert on a terminal.

    tomlkit escapes C0 controls but writes C1 controls (``\\x9b`` is CSI), bidi
    overrides and zero-width characters raw, so ``cat allowlist.toml`` would replay
    what an attacker put in a domain name. Here every character ``visible`` would
    escape is a TOML ``\\u``/``\\U`` escape: the file reads back to the exact string.
    """
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch < " " or ch == "\x7f" or (not ch.isascii() and _unsafe(ch)):
            code = ord(ch)
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'
