"""The one exception type for mistakes a user can make, rendered as one line."""

from __future__ import annotations


class InputError(Exception):
    """Bad input from the user: a file, a config, an allow-list or an argument.

    Carries where the problem is so the CLI and the TUI can say it in one line,
    e.g. ``events.csv: row 12, column Timestamp: cannot parse '2026-13-01'``.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        row: int | None = None,
        field: str | None = None,
        line: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.row = row
        self.field = field
        self.line = line

    def __str__(self) -> str:
        where = []
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.field is not None:
            where.append(f"field {self.field}")
        text = self.message
        if where:
            text = f"{', '.join(where)}: {text}"
        if self.file:
            text = f"{self.file}: {text}"
        return " ".join(text.split())  # one line, whatever the message held


class UsageError(InputError):
    """A wrong argument rather than bad data (an unknown format, a rank out of range).

    The CLI exits 2 for it, as for any usage error, so a script can tell the two apart.
    """


class Cancelled(Exception):
    """Raised between stages when the caller asked a run to stop."""


class DetectorSkipped(Exception):
    """A detector cannot run on this data (e.g. no DeviceInfo); the run goes on without it."""
