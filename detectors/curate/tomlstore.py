"""Hand-editable TOML files of ``[[name]]`` tables, edited without mangling them.

The allow-list and the triage marks are files an analyst also edits by hand, so an
edit must leave the rest of the file byte for byte as it was. ``TableFile`` splits the
text into a preamble (what comes before the first table) and one segment per table:
the comment lines directly above its header, the header, its body and the blank lines
after it. An edit appends, changes or removes one segment; a changed table's text is
produced by tomlkit (its comments and spacing survive) and re-read with tomllib before
it is accepted, so a rendering bug can never reach the disk.

``TomlStore`` adds the edit log and the save: atomic, with a ``.bak`` of the previous
version, and aware of other writers. It remembers the digest of the bytes it loaded;
if the file changed on disk since, the pending edits are re-applied, in order, on top
of the new content. An edit that no longer applies (its table was changed or removed
by someone else) raises the store's conflict error and nothing is written.
"""

from __future__ import annotations

import getpass
import hashlib
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import String, StringType, Trivia

from detectors.base.atomic import (
    WriteError,
    atomic_write_bytes,
    check_target,
    locked,
    os_error,
    update_bytes,
)
from detectors.base.errors import InputError
from detectors.base.sanitize import toml_basic_string

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_BOM = "\ufeff"

# --- errors ------------------------------------------------------------------------------


class StoreConflict(InputError):
    """A pending edit cannot be re-applied on the file as it now is on disk.

    ``edit`` is the edit that failed. The caller can ``reload()`` (drop the edits),
    ``save(skip_conflicts=True)`` (keep the other side for these) or
    ``save(overwrite=True)`` (replace the file with this version).
    """

    def __init__(self, message: str, *, file: str | None = None, edit: Edit | None = None):
        super().__init__(message, file=file)
        self.edit = edit


class StoreSaveError(InputError):
    """The file could not be written (read-only, disk full...); the edits are kept."""


class EditConflict(Exception):
    """Raised by an edit whose target is gone or changed; the store reports it as its conflict."""


@dataclass(frozen=True)
class Edit:
    """One operation in a store's edit log; ``description`` is what the user is told."""

    description: str


# --- reading a file's structure -----------------------------------------------------------

_BLANK = "blank"
_COMMENT = "comment"
_HEADER = "header"  # [[name]]: one of our tables
_OTHER_HEADER = "other-header"  # any other [table] or [[table]]
_KEY = "key"
_CONTINUED = "continued"  # inside a multi-line string or array


@dataclass(frozen=True)
class _Line:
    kind: str
    key: str | None = None


def split_lines(text: str) -> list[str]:
    """Lines with their ``\\n`` kept: only ``\\n`` ends a TOML line (str.splitlines is wrong)."""
    if not text:
        return []
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _after_basic_string(s: str, i: int) -> int:
    """Index after the closing quote of a one-line basic string whose content starts at i."""
    while i < len(s):
        if s[i] == "\\":
            i += 2
            continue
        if s[i] == '"':
            return i + 1
        i += 1
    return len(s)


def _after_literal_string(s: str, i: int) -> int:
    end = s.find("'", i)
    return len(s) if end < 0 else end + 1


def _find_unescaped(s: str, token: str, i: int) -> int:
    while True:
        j = s.find(token, i)
        if j < 0:
            return -1
        backslashes = 0
        while j - backslashes > 0 and s[j - backslashes - 1] == "\\":
            backslashes += 1
        if backslashes % 2 == 0:
            return j
        i = j + 1


def _scan_value(s: str, i: int, state: str | None, depth: int) -> tuple[str | None, int]:
    """Walk a value's text; return the multi-line string left open (if any) and bracket depth."""
    n = len(s)
    while i < n:
        if state is not None:
            end = _find_unescaped(s, state, i) if state == '"""' else s.find(state, i)
            if end < 0:
                return state, depth
            i = end + 3
            while i < n and s[i] == state[0]:  # up to two quotes may end the content
                i += 1
            state = None
            continue
        c = s[i]
        if c == "#":
            break
        if s.startswith('"""', i) or s.startswith("'''", i):
            state = s[i : i + 3]
            i += 3
        elif c == '"':
            i = _after_basic_string(s, i + 1)
        elif c == "'":
            i = _after_literal_string(s, i + 1)
        else:
            if c in "[{":
                depth += 1
            elif c in "]}":
                depth -= 1
            i += 1
    return state, depth


def _outside_quotes(s: str, wanted: str) -> int:
    """Index of the first ``wanted`` character not inside a quoted key, or -1."""
    i = 0
    while i < len(s):
        c = s[i]
        if c == '"':
            i = _after_basic_string(s, i + 1)
        elif c == "'":
            i = _after_literal_string(s, i + 1)
        elif c == wanted:
            return i
        else:
            i += 1
    return -1


def _first_key(key_text: str) -> str:
    """The first part of a (maybe quoted, maybe dotted) key, as tomllib reads it."""
    try:
        parsed = tomllib.loads(f"{key_text} = 0")
    except tomllib.TOMLDecodeError:
        return key_text.strip()
    return next(iter(parsed))


def _is_our_header(line: str, name: str) -> bool:
    end = _outside_quotes(line, "#")
    header = line if end < 0 else line[:end]
    try:
        return tomllib.loads(header) == {name: [{}]}
    except tomllib.TOMLDecodeError:
        return False


def _classify(lines: list[str], name: str) -> list[_Line]:
    """What each physical line is; the text is already known to be valid TOML."""
    kinds: list[_Line] = []
    state: str | None = None
    depth = 0
    for raw in lines:
        body = raw.rstrip("\n").rstrip("\r")
        if state is not None or depth > 0:
            kinds.append(_Line(_CONTINUED))
            state, depth = _scan_value(body, 0, state, depth)
            continue
        stripped = body.lstrip(" \t")
        if not stripped.strip(" \t"):
            kinds.append(_Line(_BLANK))
        elif stripped.startswith("#"):
            kinds.append(_Line(_COMMENT))
        elif stripped.startswith("["):
            kinds.append(_Line(_HEADER if _is_our_header(stripped, name) else _OTHER_HEADER))
        else:
            eq = _outside_quotes(stripped, "=")
            kinds.append(_Line(_KEY, _first_key(stripped[:eq]) if eq >= 0 else None))
            if eq >= 0:
                state, depth = _scan_value(stripped, eq + 1, None, 0)
    return kinds


def _segment_starts(kinds: list[_Line], headers: list[int]) -> list[int]:
    """Where each table's segment begins: at the comment lines directly above its header.

    A comment block that reaches the top of the file stays in the preamble: it is more
    likely about the file than about the first table, and keeping text is the safe side.
    """
    starts = []
    for n, header in enumerate(headers):
        start = header
        while start > 0 and kinds[start - 1].kind == _COMMENT:
            start -= 1
        if n == 0 and start == 0:
            start = header
        starts.append(start)
    return starts


def _toml_error(exc: Exception, text: str, file: str | None) -> InputError:
    """tomllib's message with its position turned into our ``line N`` (3.11 has no lineno)."""
    message = str(exc)
    line = None
    match = re.search(r"\s*\(at line (\d+), column (\d+)\)\s*$", message)
    if match:
        line = int(match.group(1))
        message = f"{message[: match.start()]} (column {match.group(2)})"
    elif message.endswith("(at end of document)"):
        line = max(1, len(split_lines(text)))
        message = message[: -len("(at end of document)")] + "(at the end of the file)"
    return InputError(f"invalid TOML: {message}", file=file, line=line)


# --- one file of tables -------------------------------------------------------------------


@dataclass(frozen=True)
class TableText:
    """One ``[[name]]`` table: its verbatim text and what tomllib reads from it."""

    text: str
    values: dict[str, Any]
    header: int  # 0-based line of the [[name]] header within ``text``
    key_lines: dict[str, int]  # 0-based line of each top-level key within ``text``
    line_count: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "line_count", len(split_lines(self.text)))


def _table_from_text(text: str, name: str) -> TableText:
    """Read one segment on its own; it must hold exactly one [[name]] table."""
    lines = split_lines(text)
    kinds = _classify(lines, name)
    headers = [i for i, k in enumerate(kinds) if k.kind == _HEADER]
    before = [k for k in kinds[: headers[0]] if k.kind not in (_BLANK, _COMMENT)] if headers else []
    if len(headers) != 1 or before or any(k.kind == _OTHER_HEADER for k in kinds):
        raise ValueError(f"segment does not hold exactly one [[{name}]] table")
    values = tomllib.loads(text)[name][0]
    key_lines: dict[str, int] = {}
    for i, kind in enumerate(kinds):
        if kind.kind == _KEY and kind.key is not None:
            key_lines.setdefault(kind.key, i)
    return TableText(text, values, headers[0], key_lines)


def _toml_item(value: Any) -> Any:
    """A tomlkit item; strings (often copied from telemetry) keep unsafe characters escaped."""
    if isinstance(value, str):
        quoted = toml_basic_string(value)
        return String(StringType.SLB, value, quoted[1:-1], Trivia())
    if isinstance(value, (list, tuple)):
        array = tomlkit.array()
        for element in value:
            array.append(_toml_item(element))
        return array
    return tomlkit.item(value)


def render_table(name: str, values: Mapping[str, Any]) -> str:
    """A new ``[[name]]`` table, rendered by tomlkit in the order of ``values``."""
    doc = tomlkit.document()
    table = tomlkit.table()
    for key, value in values.items():
        table.add(key, _toml_item(value))
    aot = tomlkit.aot()
    aot.append(table)
    doc.append(name, aot)
    return doc.as_string()


def _ends_with_blank_line(text: str) -> bool:
    lines = split_lines(text)
    return bool(lines) and not lines[-1].strip()


@dataclass(frozen=True)
class TableFile:
    """A TOML file that holds only comments and ``[[name]]`` tables, split for editing.

    Immutable: every edit returns a new ``TableFile`` whose ``text`` differs from the
    old one only inside the edited table's segment (and, for an append, at the end).
    """

    name: str
    preamble: str = ""
    tables: tuple[TableText, ...] = ()
    newline: str = "\n"

    @property
    def text(self) -> str:
        return self.preamble + "".join(t.text for t in self.tables)

    @classmethod
    def parse(cls, text: str, name: str, *, file: str | None = None) -> TableFile:
        """Split ``text``; broken TOML or any other structure is an InputError with a line."""
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise _toml_error(exc, text, file) from None
        lines = split_lines(text)
        kinds = _classify(lines, name)
        headers: list[int] = []
        for i, kind in enumerate(kinds):
            if kind.kind == _OTHER_HEADER:
                raise InputError(
                    f"unexpected table {lines[i].strip()}: this file holds only [[{name}]] tables",
                    file=file,
                    line=i + 1,
                )
            if kind.kind == _KEY and not headers:
                raise InputError(
                    f"unknown key '{kind.key}' outside any [[{name}]] table",
                    file=file,
                    line=i + 1,
                    field=kind.key,
                )
            if kind.kind == _HEADER:
                headers.append(i)
        unexpected = sorted(set(doc) - {name})
        if unexpected:
            raise InputError(f"unknown key '{unexpected[0]}'", file=file, field=unexpected[0])
        parsed = doc.get(name, [])
        if not isinstance(parsed, list) or len(parsed) != len(headers):
            raise InputError(
                f"cannot find the [[{name}]] tables: write each [[{name}]] header on its own line",
                file=file,
            )
        newline = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
        if not headers:
            return cls(name, text, (), newline)
        starts = _segment_starts(kinds, headers)
        tables = []
        for n, start in enumerate(starts):
            end = starts[n + 1] if n + 1 < len(starts) else len(lines)
            try:
                table = _table_from_text("".join(lines[start:end]), name)
            except (ValueError, tomllib.TOMLDecodeError):
                table = None
            if table is None or table.values != parsed[n]:
                raise InputError(
                    f"cannot separate this [[{name}]] table from the next one safely",
                    file=file,
                    line=headers[n] + 1,
                )
            tables.append(table)
        return cls(name, "".join(lines[: starts[0]]), tuple(tables), newline)

    def header_lines(self) -> list[int]:
        """1-based line of every table's header in ``text``."""
        lines = []
        offset = len(split_lines(self.preamble))
        for table in self.tables:
            lines.append(offset + table.header + 1)
            offset += table.line_count
        return lines

    def key_lines(self, index: int, header_line: int) -> dict[str, int]:
        """1-based line of each key of table ``index`` whose header is at ``header_line``."""
        table = self.tables[index]
        return {k: header_line - table.header + off for k, off in table.key_lines.items()}

    def _with_newlines(self, text: str) -> str:
        return re.sub(r"(?<!\r)\n", "\r\n", text) if self.newline == "\r\n" else text

    def append(self, values: Mapping[str, Any], new_file_comment: str = "") -> TableFile:
        """A new table at the end; everything before it stays byte-identical."""
        rendered = self._with_newlines(render_table(self.name, values))
        table = _checked(rendered, self.name, dict(values))
        preamble, tables = self.preamble, list(self.tables)
        text = self.text
        if not text.strip():
            comment = "".join(f"# {line}".rstrip() + "\n" for line in new_file_comment.splitlines())
            preamble += self._with_newlines(comment + "\n" if comment else "")
        else:
            separator = "" if text.endswith("\n") else self.newline
            if not _ends_with_blank_line(text + separator):
                separator += self.newline
            if tables:
                tables[-1] = replace(tables[-1], text=tables[-1].text + separator)
            else:
                preamble += separator
        return replace(self, preamble=preamble, tables=(*tables, table))

    def change(
        self, index: int, set_values: Mapping[str, Any], unset: Iterable[str] = ()
    ) -> TableFile:
        """Set and remove keys of one table through tomlkit; its other text is kept."""
        old = self.tables[index]
        unset = [key for key in unset if key in old.values]
        if not set_values and not unset:
            return self
        # tomlkit edits the table up to its last key; the comment and blank lines after it
        # (often about the next table) stay where they are, and new keys go above them.
        lines = split_lines(old.text)
        last = _last_key_line(old.text, self.name)
        core, tail = "".join(lines[: last + 1]), "".join(lines[last + 1 :])
        if any(key not in old.values for key in set_values) and not core.endswith("\n"):
            core += self.newline
        try:
            doc = tomlkit.parse(core)
            table = doc[self.name][0]
            for key in unset:
                del table[key]
            for key, value in set_values.items():
                table[key] = _toml_item(value)
            text = self._with_newlines(doc.as_string()) + tail
        except (TOMLKitError, KeyError, IndexError) as exc:
            raise InputError(f"cannot edit this [[{self.name}]] table: {exc}") from None
        expected = {k: v for k, v in old.values.items() if k not in unset}
        expected.update(set_values)
        tables = list(self.tables)
        tables[index] = _checked(text, self.name, expected)
        return replace(self, tables=tuple(tables))

    def remove(self, index: int) -> TableFile:
        """Drop one table: its header, its keys and the comments directly above the header.

        The comment and blank lines after its last key are not the table's (often they
        are about the next table, or ``# end of file``): they stay, joined to the text
        before, so every byte outside the removed entry is kept. Only blank lines with
        no comment among them go with the table: they merely separate it from the next.
        """
        old = self.tables[index]
        tail = "".join(split_lines(old.text)[_last_key_line(old.text, self.name) + 1 :])
        if not tail.strip():
            tail = ""
        tables = list(self.tables[:index])
        preamble = self.preamble
        if tail and tables:
            tables[-1] = replace(tables[-1], text=tables[-1].text + tail)
        elif tail:
            preamble += tail
        return replace(self, preamble=preamble, tables=(*tables, *self.tables[index + 1 :]))


def _last_key_line(text: str, name: str) -> int:
    """0-based line where a table's own text ends: its last key (or its header)."""
    kinds = _classify(split_lines(text), name)
    header = next(i for i, k in enumerate(kinds) if k.kind == _HEADER)
    return max((i for i, k in enumerate(kinds) if k.kind in (_KEY, _CONTINUED)), default=header)


def _checked(text: str, name: str, expected: dict[str, Any]) -> TableText:
    """Re-read an edited table with tomllib; anything unexpected stops the edit, unsaved."""
    try:
        table = _table_from_text(text, name)
    except (ValueError, tomllib.TOMLDecodeError):
        table = None
    if table is None or table.values != expected:
        raise InputError(
            f"this edit would not read back as intended, so it was not made; "
            f"edit the [[{name}]] table by hand"
        )
    return table


# --- reading values, with the file and line in every error -------------------------------


@dataclass(frozen=True)
class Where:
    """Where a table came from, so an error can name the file, the line and the key."""

    file: str | None = None
    line: int | None = None  # the table's header
    key_lines: Mapping[str, int] = field(default_factory=dict)

    def error(self, message: str, key: str | None = None) -> InputError:
        line = self.key_lines.get(key, self.line) if key else self.line
        return InputError(message, file=self.file, line=line, field=key)


def unknown_keys(values: Mapping[str, Any], known: Iterable[str], where: Where) -> None:
    known = tuple(known)
    for key in values:
        if key not in known:
            raise where.error(f"unknown key '{key}' (known: {', '.join(known)})", key)


def read_text(values: Mapping[str, Any], key: str, where: Where) -> str | None:
    """A non-empty string (stripped), or None when the key is absent."""
    value = values.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise where.error(f"{key} must be a non-empty string", key)
    return value.strip()


def read_port(values: Mapping[str, Any], where: Where, key: str = "remote_port") -> int | None:
    value = values.get(key)
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise where.error(f"{key} must be a port number 0-65535, not {value!r}", key)
    return value


def read_day(values: Mapping[str, Any], key: str, where: Where) -> date | None:
    """A TOML date (or a date-time's day, or text like 2027-02-23)."""
    value = values.get(key)
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise where.error(f"{key} must be a date like 2027-02-23, not {value!r}", key)


def read_instant(values: Mapping[str, Any], key: str, where: Where) -> datetime | None:
    """A date-time, made timezone-aware (a local date-time is taken as UTC)."""
    value = values.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise where.error(f"{key} must be a date-time, not {value!r}", key) from None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    raise where.error(f"{key} must be a date-time, not {value!r}", key)


def utc_now() -> datetime:
    """Now, in UTC, to the second (what ``added`` and ``updated`` record)."""
    return datetime.now(timezone.utc).replace(microsecond=0)


def login_name() -> str:
    """Who is editing (``added_by``, ``analyst``); never fails, even without a passwd entry."""
    try:
        name = getpass.getuser()
    except Exception:  # KeyError / OSError when the uid has no name
        name = ""
    return name or "unknown"


# --- the store: an edit log over a TableFile, saved atomically ---------------------------

M = TypeVar("M")  # a store's model (the allow-list's entries, the triage marks)
P = TypeVar("P")  # one table, validated
S = TypeVar("S", bound="TomlStore[Any]")


def _digest(raw: bytes | None) -> str | None:
    return None if raw is None else hashlib.sha256(raw).hexdigest()


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _decode(raw: bytes | None, file: str) -> tuple[str, bool]:
    if raw is None:
        return "", False
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (byte {exc.start})", file=file) from None
    if text.startswith(_BOM):
        return text[1:], True
    return text, False


class TomlStore(Generic[M]):
    """A ``[[TABLE]]`` file with an edit log; subclasses give ``_build`` and ``_apply``.

    ``_build(file)`` validates a ``TableFile`` and returns the subclass's model (raising
    InputError with file/line/key); ``_apply(file, edit)`` returns the file with one edit
    done, raising ``EditConflict`` when the edit's target is not there. The same
    ``_apply`` runs when the edit is made and again when it is re-applied on a file that
    changed on disk, so both paths cannot drift apart.
    """

    TABLE: ClassVar[str] = ""
    NEW_FILE_COMMENT: ClassVar[str] = ""  # written at the top when the store creates the file
    conflict_error: ClassVar[type[StoreConflict]] = StoreConflict
    save_error: ClassVar[type[StoreSaveError]] = StoreSaveError
    # A missing folder is created (0700): the default path is in a config folder that
    # may not exist yet, and the file is the analyst's own, not an output.
    MAKE_PARENTS: ClassVar[bool] = True

    def __init__(
        self,
        path: str | Path,
        file: TableFile | None = None,
        *,
        digest: str | None = None,
        bom: bool = False,
    ) -> None:
        self.path = Path(path)
        self._file = file if file is not None else TableFile(self.TABLE)
        self._digest = digest
        self._bom = bom
        self._pending: list[Edit] = []
        self._parsed: dict[int, tuple[TableText, int, int, Any]] = {}
        self._model: M = self._build(self._file)

    @classmethod
    def load(cls: type[S], path: str | Path) -> S:
        """Read the file; a missing file is an empty store (the file appears on the first save)."""
        path = Path(path)
        try:
            raw = _read(path)
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror or exc}", file=str(path)) from None
        text, bom = _decode(raw, str(path))
        file = TableFile.parse(text, cls.TABLE, file=str(path))
        return cls(path, file, digest=_digest(raw), bom=bom)

    @classmethod
    def create(cls, path: str | Path) -> None:
        """Start the file with its new-file comment, unless it exists (then it is kept)."""
        comment = "".join(f"# {line}".rstrip() + "\n" for line in cls.NEW_FILE_COMMENT.splitlines())
        update_bytes(
            path,
            lambda current: current if current is not None else comment.encode("utf-8"),
            make_parents=cls.MAKE_PARENTS,
        )

    # subclass hooks
    def _build(self, file: TableFile) -> M:
        raise NotImplementedError

    def _parse_tables(
        self, file: TableFile, parse: Callable[[Mapping[str, Any], int, Where], P]
    ) -> list[P]:
        """``parse(values, index, where)`` for every table, for ``_build``.

        A table object seen before at the same index and line is not parsed again, so
        an edit costs one table's validation, not the whole file's.
        """
        parsed: dict[int, tuple[TableText, int, int, Any]] = {}
        out: list[P] = []
        for index, (table, line) in enumerate(zip(file.tables, file.header_lines(), strict=True)):
            seen = self._parsed.get(id(table))
            if seen is not None and seen[0] is table and seen[1:3] == (index, line):
                item = seen[3]
            else:
                item = parse(
                    table.values, index, Where(self._where, line, file.key_lines(index, line))
                )
            parsed[id(table)] = (table, index, line, item)
            out.append(item)
        self._parsed = parsed
        return out

    def _parsed_item(self, table: TableText) -> Any | None:
        """What ``_parse_tables`` made of this table object last time, if it saw it."""
        seen = self._parsed.get(id(table))
        return seen[3] if seen is not None and seen[0] is table else None

    @property
    def _where(self) -> str:
        return str(self.path)

    def _apply(self, file: TableFile, edit: Edit) -> TableFile:
        raise NotImplementedError

    @property
    def text(self) -> str:
        """The file's content as it would be saved now."""
        return self._file.text

    @property
    def dirty(self) -> bool:
        """True while there are edits not yet written to disk."""
        return bool(self._pending)

    @property
    def pending(self) -> tuple[str, ...]:
        """What the unsaved edits do, oldest first."""
        return tuple(edit.description for edit in self._pending)

    def changed_on_disk(self) -> bool:
        """Whether someone else wrote the file since it was loaded or saved."""
        try:
            return _digest(_read(self.path)) != self._digest
        except OSError:
            return True

    def reload(self) -> None:
        """Drop the unsaved edits and read the file again."""
        fresh = type(self).load(self.path)
        self._file, self._model, self._digest, self._bom = (
            fresh._file,
            fresh._model,
            fresh._digest,
            fresh._bom,
        )
        self._pending = []

    def _commit(self, edit: Edit) -> None:
        file = self._apply(self._file, edit)
        model = self._build(file)  # an edit that would make the file invalid changes nothing
        self._file, self._model = file, model
        self._pending.append(edit)

    def _rebase(self, base: TableFile, skip_conflicts: bool) -> tuple[TableFile, list[Edit]]:
        file, skipped = base, []
        for edit in self._pending:
            try:
                file = self._apply(file, edit)
            except EditConflict as exc:
                if not skip_conflicts:
                    raise self.conflict_error(str(exc), file=str(self.path), edit=edit) from None
                skipped.append(edit)
        return file, skipped

    def _disk_version(self, raw: bytes | None) -> tuple[TableFile, bool]:
        """The file as someone else left it; a file that no longer reads is never overwritten."""
        try:
            text, bom = _decode(raw, str(self.path))
            base = TableFile.parse(text, self.TABLE, file=str(self.path))
            self._build(base)
        except InputError as exc:
            raise self.conflict_error(
                f"the file was changed by someone else and is not valid now ({exc}); "
                "fix it, then save again",
                file=str(self.path),
            ) from None
        return base, bom

    def save(self, *, overwrite: bool = False, skip_conflicts: bool = False) -> list[str]:
        """Write the edits, atomically, keeping the previous version as ``.bak``.

        The whole read-merge-write runs under the file's advisory lock
        (``detectors.base.atomic.locked``): the file is re-read under it and, if it changed
        on disk since it was read, the edits are re-applied on top of the new content,
        so a concurrent writer's entries are never lost. ``skip_conflicts`` drops edits
        that no longer apply instead of raising; ``overwrite`` writes this version over
        the other writer's (a file that is not valid TOML is never overwritten). Returns
        the descriptions of skipped edits. A file that must not be written (read-only,
        a device...) or an OSError raises ``save_error``; nothing is half-written and
        the edits stay pending, so a later save retries.
        """
        try:
            if not self._pending and not overwrite:  # at most adopt theirs: nothing written
                return self._save_locked(overwrite, skip_conflicts)
            check_target(self.path, make_parents=self.MAKE_PARENTS)
            with locked(self.path):
                return self._save_locked(overwrite, skip_conflicts)
        except WriteError as exc:
            raise self.save_error(
                f"cannot save: {exc.reason}", file=exc.file or str(self.path)
            ) from None
        except OSError as exc:
            error = os_error(exc, self.path)
            raise self.save_error(f"cannot save: {error.reason}", file=error.file) from None

    def _save_locked(self, overwrite: bool, skip_conflicts: bool) -> list[str]:
        try:
            raw = _read(self.path)
        except OSError as exc:
            raise os_error(exc, self.path, "cannot read before saving") from None
        disk_digest = _digest(raw)
        file, bom = self._file, self._bom
        skipped: list[Edit] = []
        if disk_digest != self._digest:
            base, bom = self._disk_version(raw)
            if not self._pending and not overwrite:  # nothing of ours to write: adopt theirs
                self._file, self._model, self._digest, self._bom = (
                    base,
                    self._build(base),
                    disk_digest,
                    bom,
                )
                return []
            if overwrite:
                bom = self._bom
            else:
                file, skipped = self._rebase(base, skip_conflicts)
        elif not self._pending:
            return []
        model = self._build(file)
        data = ((_BOM if bom else "") + file.text).encode("utf-8")
        self._pending = [e for e in self._pending if not any(e is s for s in skipped)]
        try:
            atomic_write_bytes(self.path, data, backup=True, make_parents=self.MAKE_PARENTS)
        except (WriteError, OSError):
            # Keep the re-applied version as ours so a retry does not apply edits twice.
            self._file, self._model, self._digest, self._bom = file, model, disk_digest, bom
            raise
        self._file, self._model, self._digest, self._bom = file, model, _digest(data), bom
        self._pending = []
        return [edit.description for edit in skipped]
