"""Tell a file's format from its content (never from its name), so exports can be renamed.

Reads the first 256 KiB (gunzipped if the file is gzip):

- ``PAR1`` magic: Parquet; its column names decide Defender network events or DeviceInfo.
- ``#separator`` / ``#fields`` first line: Zeek TSV.
- a JSON document whose opening holds ``"Results": [`` or ``"Schema": [``: Defender API
  JSON (DeviceInfo if it names DeviceType/OSPlatform and not RemoteIP).
- JSON Lines, by the keys of the first object (nested objects count as dotted keys):
  ``id.orig_h``/``id.resp_h`` (or ``ts`` with ``uid``/``fuid``/``_path``) Zeek JSON;
  ``@timestamp`` Elastic ECS; Defender column names DeviceNetworkEvents or DeviceInfo.
- anything else that is text with a header of two or more fields: a CSV; Defender
  column names make it a Defender export or DeviceInfo, otherwise it needs ``[mapping]``.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from pathlib import Path
from typing import Any

from detectors.base.errors import InputError
from detectors.load import mde
from detectors.load.common import first_line_of
from detectors.load.tables import looks_like_api_json
from detectors.load.text import GZIP_MAGIC, sniff_delimiter, split_fields
from detectors.load.windows import is_evtx, looks_like_windows

MDE_CSV = "mde-csv"
MDE_JSON = "mde-json"
MDE_JSONL = "mde-jsonl"
MDE_PARQUET = "mde-parquet"
DEVICEINFO = "deviceinfo"
ZEEK_TSV = "zeek-tsv"
ZEEK_JSON = "zeek-json"
ECS = "ecs"
CSV_MAPPED = "csv-mapped"
WINDOWS_EVTX = "windows-evtx"
WINDOWS_JSON = "windows-json"

SOURCE_FORMATS: tuple[str, ...] = (
    MDE_CSV,
    MDE_JSON,
    MDE_JSONL,
    MDE_PARQUET,
    DEVICEINFO,
    ZEEK_TSV,
    ZEEK_JSON,
    ECS,
    CSV_MAPPED,
    WINDOWS_EVTX,
    WINDOWS_JSON,
)

HEAD_BYTES = 256 << 10
_DEVICEINFO_MARKERS = {"DeviceType", "OSPlatform"}
_MDE_MARKERS = set(mde.COLUMNS) | {"InitiatingProcessCommandLine", "ReportId"}
_EXPECTED = (
    "expected a Defender CSV/JSON/Parquet export, a Zeek log, Elastic ECS NDJSON, "
    "Windows Sysmon/Security events (EVTX or JSON) or a CSV described by [mapping]"
)
_UNKNOWN = f"unrecognised format: {_EXPECTED}; --source-format forces one"


def read_head(path: Path, size: int = HEAD_BYTES) -> bytes:
    """The first ``size`` bytes of the content, gunzipped when the file is gzip."""
    with path.open("rb") as handle:
        head = handle.read(size)
    if head.startswith(GZIP_MAGIC):
        try:
            with gzip.open(path, "rb") as handle:
                return handle.read(size)
        except (OSError, EOFError, zlib.error) as exc:
            raise InputError(f"broken gzip file: {exc}", file=str(path)) from None
    return head


def _binary(head: bytes) -> bool:
    """NULs in the header line, or more than a few in the head: not a text export.

    A stray NUL inside one field (an attacker can put one in a URL) must not make a
    whole export unreadable, so one or two NULs past the first line are tolerated.
    """
    nuls = head.count(b"\x00")
    return nuls > 0 and (b"\x00" in head.split(b"\n", 1)[0] or nuls * 256 > len(head))


def _text(head: bytes, path: Path) -> str:
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError("UTF-16 text is not supported: save the file as UTF-8", file=str(path))
    if _binary(head):
        raise InputError(f"binary data, not a supported format: {_EXPECTED}", file=str(path))
    try:
        # a multi-byte character may be cut at the end of the head: ignore only that
        return head.decode("utf-8", errors="strict" if len(head) < HEAD_BYTES else "ignore")
    except UnicodeDecodeError:
        raise InputError(
            f"binary data (not UTF-8 text), not a supported format: {_EXPECTED}", file=str(path)
        ) from None


def _columns_kind(columns: set[str]) -> str | None:
    """``"mde"``, ``"deviceinfo"`` or None from a set of column names."""
    if "RemoteIP" not in columns and columns & _DEVICEINFO_MARKERS:
        return DEVICEINFO
    if len(columns & _MDE_MARKERS) >= 3:
        return "mde"
    return None


def _flat_keys(obj: dict[str, Any]) -> set[str]:
    """Keys of a JSON object with nested objects spelled as dotted paths (both kept).

    Iterative, so a hostile document nested a thousand levels deep cannot exhaust the stack.
    """
    keys = set()
    pending: list[tuple[str, dict[str, Any]]] = [("", obj)]
    while pending:
        prefix, current = pending.pop()
        for key, value in current.items():
            keys.add(prefix + key)
            if isinstance(value, dict):
                pending.append((prefix + key + ".", value))
    return keys


def container_of(path: Path) -> str:
    """``"parquet"``, ``"json"`` (one document), ``"jsonl"`` or ``"csv"``, from the content."""
    head = read_head(path)
    if head.startswith(b"PAR1"):
        return "parquet"
    text = _text(head, path).lstrip("\ufeff").lstrip()
    if text.startswith("{"):
        return "json" if looks_like_api_json(text[:HEAD_BYTES]) else "jsonl"
    return "csv"


def sniff_format(path: Path, head: bytes | None = None) -> str:
    """One of ``SOURCE_FORMATS`` for ``path``; InputError naming the file when unknown.

    ``head`` is the file's first ``HEAD_BYTES`` (``read_head``) when the caller has them.
    """
    path = Path(path)
    head = read_head(path) if head is None else head
    if not head.strip():
        raise InputError("file is empty", file=str(path))
    if head.startswith(b"PAR1"):
        return _sniff_parquet(path)
    if is_evtx(head):
        return WINDOWS_EVTX
    if head.removeprefix(b"\xef\xbb\xbf").lstrip().startswith((b"#separator", b"#fields")):
        return ZEEK_TSV  # decided on the bytes: rotated logs come by the thousand
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) and _windows_utf16(head):
        return WINDOWS_JSON  # Windows PowerShell 5.1 writes ConvertTo-Json output as UTF-16
    text = _text(head, path).lstrip("\ufeff")
    body = text.lstrip()
    if body.startswith(("#separator", "#fields")):
        return ZEEK_TSV
    if body.startswith("{"):
        return _sniff_json(body, path)
    if body.startswith("[") and _windows_array(body):
        return WINDOWS_JSON
    if body.startswith("["):
        raise InputError(f"a JSON array is not a supported layout; {_UNKNOWN}", file=str(path))
    return _sniff_csv(text, path)


def _windows_array(body: str) -> bool:
    """A pretty-printed ``Get-WinEvent | ConvertTo-Json``: its first object's keys."""
    keys = set(re.findall(r'^\s{0,8}"(\w+)"\s*:', body[:65536], flags=re.MULTILINE))
    return looks_like_windows(keys)


def _windows_utf16(head: bytes) -> bool:
    text = head[: len(head) // 2 * 2].decode("utf-16", errors="ignore").lstrip("\ufeff")
    return text.lstrip().startswith(("[", "{")) and _windows_array(text)


def _sniff_parquet(path: Path) -> str:
    import pyarrow as pa  # Parquet only: text inputs never load pyarrow
    import pyarrow.parquet as pq

    try:
        columns = set(pq.read_schema(path).names)  # pyarrow: see tables.parquet_table
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InputError(f"broken Parquet file: {first_line_of(exc)}", file=str(path)) from None
    kind = _columns_kind(columns)
    if kind == DEVICEINFO:
        return DEVICEINFO
    if kind == "mde":
        return MDE_PARQUET
    raise InputError(f"Parquet without Defender columns; {_UNKNOWN}", file=str(path))


def _sniff_json(body: str, path: Path) -> str:
    if looks_like_api_json(body):
        names = set(re.findall(r'"(\w+)"', body))
        return DEVICEINFO if _columns_kind(names) == DEVICEINFO else MDE_JSON
    line = body.split("\n", 1)[0]
    if line.rstrip() == "{" and _windows_array(body):
        return WINDOWS_JSON  # one event, pretty-printed by ConvertTo-Json
    try:
        first = json.loads(line)
    except (ValueError, RecursionError):
        raise InputError(
            f"the first line is not a JSON object; {_UNKNOWN}", file=str(path)
        ) from None
    if not isinstance(first, dict):
        raise InputError(_UNKNOWN, file=str(path))
    keys = _flat_keys(first)
    if looks_like_windows(keys):
        return WINDOWS_JSON
    if keys & {"id.orig_h", "id.resp_h"} or ("ts" in keys and keys & {"uid", "fuid", "_path"}):
        return ZEEK_JSON
    if "@timestamp" in keys:
        return ECS
    kind = _columns_kind(keys)
    if kind == DEVICEINFO:
        return DEVICEINFO
    if kind == "mde":
        return MDE_JSONL
    raise InputError(f"JSON Lines with unknown fields; {_UNKNOWN}", file=str(path))


def _sniff_csv(text: str, path: Path) -> str:
    header = text.split("\n", 1)[0].rstrip("\r")
    fields = split_fields(header, sniff_delimiter(header))
    columns = {f.strip() for f in fields}
    kind = _columns_kind(columns)
    if kind == DEVICEINFO:
        return DEVICEINFO
    if kind == "mde":
        return MDE_CSV
    printable = all(ch.isprintable() or ch in "\t\r\n" for ch in text[:4096])
    if len(fields) >= 2 and printable:
        return CSV_MAPPED
    raise InputError(_UNKNOWN, file=str(path))
