"""The fields of one allow-list entry: match keys, reason and expiry, one line each.

The parent sets ``fields`` (raw values, e.g. from a suggestion or an existing entry);
every change posts ``Changed`` with the values to use, Enter posts ``Submitted``.

Prefilled values come from telemetry, which may hold escapes and control characters:
the boxes show them through ``sanitize.visible``, and a box left as it was filled
gives back the raw value, so the entry still matches the exact name it was made from.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Input, Label

from detectors.base.sanitize import visible

# (key, label, placeholder): match keys first, then what the analyst writes.
FIELDS: tuple[tuple[str, str, str], ...] = (
    ("device", "device", "exact device name"),
    ("process", "process", "file name, e.g. svchost.exe"),
    ("remote_ip", "remote IP", "address or CIDR, e.g. 203.0.113.0/24"),
    ("remote_port", "remote port", "0-65535"),
    ("domain", "domain", "example.com or *.example.com"),
    ("detector", "detector", "only this detector's hits"),
    ("asn", "AS number", "e.g. 13335 or AS13335 (needs a local mmdb)"),
    ("org", "AS org", "the AS organisation's whole name (needs a local mmdb)"),
    ("reason", "reason", "why this traffic is fine (required)"),
    ("expires", "expires", "YYYY-MM-DD (optional: applies through that day)"),
)
KEYS = tuple(key for key, _, _ in FIELDS)


def field_id(key: str) -> str:
    return f"allow-field--{key}"


class AllowEntryForm(Vertical):
    """Compact rows of label + box; no widget outside it reads the boxes."""

    DEFAULT_CSS = """
    AllowEntryForm {
        height: auto;
    }
    AllowEntryForm > Horizontal {
        height: 1;
        margin-bottom: 0;
    }
    AllowEntryForm .allow-field-label {
        width: 13;
        color: $text-muted;
    }
    AllowEntryForm Input {
        width: 1fr;
        height: 1;
        border: none;
        padding: 0 1;
        background: $boost;
    }
    AllowEntryForm Input:focus {
        border: none;
        background: $panel;
        text-style: bold;
    }
    AllowEntryForm Input.-invalid {
        border: none;
        background: $error 30%;
    }
    """

    fields: reactive[dict[str, Any]] = reactive(dict, always_update=True, init=False)
    invalid: reactive[str | None] = reactive(None, init=False)
    """The key the last check complained about (its box is highlighted)."""

    class Changed(Message):
        def __init__(self, fields: dict[str, Any]) -> None:
            super().__init__()
            self.fields = fields

    class Submitted(Message):
        """Enter in any box."""

    def __init__(self, fields: dict[str, Any] | None = None, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._raw: dict[str, Any] = {}
        self._shown: dict[str, str] = {}
        self._initial = dict(fields or {})

    def compose(self) -> ComposeResult:
        for key, label, placeholder in FIELDS:
            with Horizontal():
                yield Label(Text(label, end=""), classes="allow-field-label")
                yield Input(placeholder=placeholder, id=field_id(key), select_on_focus=False)

    def on_mount(self) -> None:
        self.fields = self._initial

    def watch_fields(self, fields: dict[str, Any]) -> None:
        for key in KEYS:
            raw = fields.get(key)
            shown = "" if raw is None else visible(raw)
            self._raw[key] = raw
            self._shown[key] = shown
            box = self.query_one(f"#{field_id(key)}", Input)
            with box.prevent(Input.Changed):
                box.value = shown
        self.post_message(self.Changed(self.values()))

    def watch_invalid(self, key: str | None) -> None:
        for name in KEYS:
            self.query_one(f"#{field_id(name)}", Input).set_class(name == key, "-invalid")

    def values(self) -> dict[str, Any]:
        """What to save: a box left as filled gives its raw value; empty means absent."""
        out: dict[str, Any] = {}
        for key in KEYS:
            text = self.query_one(f"#{field_id(key)}", Input).value
            if text == self._shown.get(key) and self._raw.get(key) is not None:
                out[key] = self._raw[key]
            elif text.strip():
                out[key] = text.strip()
        return out

    def focus_field(self, key: str) -> None:
        self.query_one(f"#{field_id(key)}", Input).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.Changed(self.values()))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(self.Submitted())
