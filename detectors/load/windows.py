"""Windows network events: Sysmon event 3 and Security event 5156, from EVTX or JSON.

Both say "this process on this host made this connection"; they are read into the
canonical model the same way:

| canonical | Sysmon 3 (NetworkConnect) | Security 5156 (WFP permitted a connection) |
|---|---|---|
| timestamp | EventData ``UtcTime`` (else the record's time) | the record's ``TimeCreated`` |
| device_id, device_name | ``Computer`` (lowercase) | ``Computer`` (lowercase) |
| process | file name of ``Image``, lowercase | file name of ``Application``, lowercase |
| account | ``User`` | null (5156 does not carry one) |
| protocol | ``Protocol`` (``tcp``/``udp``) | ``Protocol`` number: 6 tcp, 17 udp, 1/58 icmp |
| local_ip/port | ``SourceIp``/``SourcePort`` | ``SourceAddress``/``SourcePort`` |
| remote_ip/port | ``DestinationIp``/``DestinationPort`` | ``DestAddress``/``DestPort`` |
| action | ``NetworkConnect`` | ``FilteringPlatformConnection`` |

Only connections the host initiated are its connections: Sysmon rows with
``Initiated`` false and 5156 rows with ``Direction`` ``%%14592`` (Inbound) are dropped
with a count. 5156 writes the application as a kernel path
(``\\device\\harddiskvolume2\\windows\\system32\\svchost.exe``), all lowercase, where
Sysmon writes ``C:\\Windows\\System32\\svchost.exe``; volume numbers do not map to drive
letters without the host's mount table, so both are reduced to the lowercase file name
(``svchost.exe``), which is also how Defender names processes. Event 5158 (a bind, not
a connection) and every other event ID are skipped with a count per ID.

Containers:

- binary ``.evtx``: read with the ``evtx`` package (a maintained Rust parser). A damaged
  chunk ends the read with a warning; the records before it are kept.
- JSON Lines as NXLog writes them (flat ``EventID``, ``Hostname``/``Computer``,
  ``Image``, ``DestinationIp``...), Winlogbeat/ECS (``winlog.event_id``,
  ``winlog.computer_name``, ``winlog.event_data.*``, nested or dotted, ``@timestamp``).
- PowerShell ``Get-WinEvent ... | ConvertTo-Json``: one JSON array (or one object) of
  ``Id``, ``MachineName``, ``TimeCreated`` (``/Date(ms)/`` in Windows PowerShell 5.1,
  ISO text in PowerShell 7) and ``Properties`` (``[{"Value": ...}]`` in the event's
  template order), UTF-8 or the UTF-16 that 5.1's ``>`` writes.

Every value is read as text with an explicit schema, so a number in one record and a
string in the next never stops the read.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Callable
from pathlib import Path

import polars as pl

from detectors.base import schema as S
from detectors.base.errors import InputError
from detectors.load import fields as F
from detectors.load.common import (
    LoadedFile,
    RawTable,
    TimestampSpec,
    finish_events,
    first_line_of,
    reading,
    row_locator,
)
from detectors.load.tables import line_of_record
from detectors.load.text import GZIP_MAGIC
from detectors.load.timestamps import epoch_text, text_timestamp

SYSMON_NETWORK = 3
WFP_PERMITTED = 5156
WFP_BIND = 5158
USED_IDS = (SYSMON_NETWORK, WFP_PERMITTED)
ACTION_SYSMON = "NetworkConnect"
ACTION_WFP = "FilteringPlatformConnection"
INBOUND = ("%%14592", "inbound")
PROTOCOL_NUMBERS = {"6": "tcp", "17": "udp", "1": "icmp", "58": "icmp"}
EVTX_MAGIC = b"ElfFile\x00"

# the logical fields, each with every spelling a shape uses
EVENT_DATA = (
    "UtcTime", "Image", "User", "Protocol", "Initiated", "SourceIp", "SourcePort",
    "DestinationIp", "DestinationPort", "Application", "Direction", "SourceAddress",
    "DestAddress", "DestPort",
)  # fmt: skip
_EVENT_ID = "__event_id"
_COMPUTER = "__computer"
_TIME = "__time"
_RECORD = "__record"  # 0-based place of the record in the file, to name it in errors

# Get-WinEvent's Properties follow the event's template (the XML EventData order).
SYSMON_3_PROPERTIES = (
    "RuleName", "UtcTime", "ProcessGuid", "ProcessId", "Image", "User", "Protocol",
    "Initiated", "SourceIsIpv6", "SourceIp", "SourceHostname", "SourcePort",
    "SourcePortName", "DestinationIsIpv6", "DestinationIp", "DestinationHostname",
    "DestinationPort", "DestinationPortName",
)  # fmt: skip
WFP_5156_PROPERTIES = (
    "ProcessID", "Application", "Direction", "SourceAddress", "SourcePort",
    "DestAddress", "DestPort", "Protocol", "FilterRTID", "LayerName", "LayerRTID",
)  # fmt: skip


def _strings(names: tuple[str, ...]) -> pl.Struct:
    return pl.Struct(dict.fromkeys(names, pl.String()))


_JSONL_SCHEMA: dict[str, pl.DataType] = {
    **dict.fromkeys(
        ("EventID", "Hostname", "Computer", "EventTime", "@timestamp", *EVENT_DATA), pl.String()
    ),
    "winlog": pl.Struct(
        {
            "event_id": pl.String(),
            "computer_name": pl.String(),
            "event_data": _strings(EVENT_DATA),
        }
    ),
    **dict.fromkeys(
        (
            "winlog.event_id",
            "winlog.computer_name",
            *(f"winlog.event_data.{n}" for n in EVENT_DATA),
        ),
        pl.String(),
    ),
}
_EVTX_SCHEMA = pl.Struct(
    {
        "Event": pl.Struct(
            {
                "System": pl.Struct(
                    {
                        "EventID": pl.String(),
                        "Computer": pl.String(),
                        "TimeCreated": pl.Struct(
                            {"#attributes": pl.Struct({"SystemTime": pl.String()})}
                        ),
                    }
                ),
                "EventData": _strings(EVENT_DATA),
            }
        )
    }
)


def is_evtx(head: bytes) -> bool:
    return head.startswith(EVTX_MAGIC)


def looks_like_windows(keys: set[str]) -> bool:
    """JSON keys of a Windows event export (NXLog, Winlogbeat or Get-WinEvent)."""
    if "winlog.event_id" in keys:
        return True
    if "EventID" in keys and keys & {"Image", "DestinationIp", "Application", "DestAddress",
                                     "SourceName", "Channel", "Hostname"}:  # fmt: skip
        return True
    return "Id" in keys and "Properties" in keys and bool(keys & {"MachineName", "ProviderName"})


def load_windows(path: Path, container: str) -> LoadedFile:
    """Sysmon 3 / Security 5156 events of one file; ``container`` is "evtx" or "json"."""
    if container == "evtx":
        table, warnings = _evtx_table(path)
    else:
        table, warnings = _json_table(path)
    return _events(path, table, warnings)


# --- containers -> one table of logical columns (all text) ---------------------------------


def _evtx_table(path: Path) -> tuple[RawTable, list[str]]:
    try:
        import evtx
    except ImportError:  # pragma: no cover - a dependency; said plainly if missing
        raise InputError(
            "reading .evtx needs the 'evtx' package: pip install evtx", file=str(path)
        ) from None
    records: list[str] = []
    warnings = []
    try:
        parser = evtx.PyEvtxParser(str(path))
        for record in parser.records_json():  # the parser yields; only text is kept
            records.append(str(record["data"]))  # type: ignore[index]
    except (RuntimeError, OSError) as exc:
        if not records:
            raise InputError(f"cannot read EVTX: {first_line_of(exc)}", file=str(path)) from None
        warnings.append(
            f"damaged EVTX after record {len(records)}: {first_line_of(exc)}; "
            f"the {len(records)} records before it are loaded"
        )
    raw = pl.Series("raw", records, dtype=pl.String)
    # Only the two event IDs are decoded: a Sysmon log is mostly other events.
    event_id = raw.str.extract(r'"EventID":\s*(?:\{[^}]*"#text":\s*)?"?(\d+)', 1)
    frame = pl.DataFrame({"raw": raw, _EVENT_ID: event_id}).with_row_index(_RECORD)
    wanted = frame.filter(pl.col(_EVENT_ID).is_in([str(i) for i in USED_IDS]))
    decoded = wanted.select(
        pl.col(_RECORD),
        pl.col(_EVENT_ID),
        pl.col("raw").str.json_decode(_EVTX_SCHEMA).struct.field("Event"),
    )
    system = pl.col("Event").struct.field("System")
    data = pl.col("Event").struct.field("EventData")
    table = decoded.select(
        pl.col(_RECORD),
        pl.col(_EVENT_ID),
        system.struct.field("Computer").alias(_COMPUTER),
        system.struct.field("TimeCreated")
        .struct.field("#attributes")
        .struct.field("SystemTime")
        .alias(_TIME),
        *[data.struct.field(name).alias(name) for name in EVENT_DATA],
    )
    others = frame.filter(~pl.col(_EVENT_ID).is_in([str(i) for i in USED_IDS]))
    warnings += _other_ids(others.get_column(_EVENT_ID))
    return _raw(table, "records counted from 1"), warnings


def _json_table(path: Path) -> tuple[RawTable, list[str]]:
    data = path.read_bytes()
    if data.startswith(GZIP_MAGIC):
        data = gzip.decompress(data)
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        data = data.decode("utf-16").encode("utf-8")
    body = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    first_line = body.split(b"\n", 1)[0].rstrip()
    if body.startswith(b"[") or first_line == b"{":  # ConvertTo-Json: pretty-printed
        return _powershell_table(path, body)
    try:
        frame = pl.read_ndjson(io.BytesIO(data), schema=_JSONL_SCHEMA)
    except pl.exceptions.PolarsError as exc:
        raise _json_lines_error(path, data, exc) from None
    schema = dict(frame.schema)
    table = frame.select(
        F.text(schema, "EventID", "winlog.event_id").alias(_EVENT_ID),
        F.text(schema, "Computer", "Hostname", "winlog.computer_name").alias(_COMPUTER),
        F.text(schema, "@timestamp", "EventTime").alias(_TIME),
        *[F.text(schema, name, f"winlog.event_data.{name}").alias(name) for name in EVENT_DATA],
    )

    def locate(index: int) -> dict[str, int]:
        return {"line": line_of_record(path, index, lambda line: not line.strip())}

    return _split_ids(table, locate, "lines counted from 1")


def _powershell_table(path: Path, body: bytes) -> tuple[RawTable, list[str]]:
    shape = {
        "Id": pl.String(),
        "MachineName": pl.String(),
        "TimeCreated": pl.String(),
        "Properties": pl.List(pl.Struct({"Value": pl.String()})),
    }
    try:
        frame = pl.read_json(io.BytesIO(body), schema=shape)
    except pl.exceptions.PolarsError as exc:
        try:
            json.loads(body)
        except json.JSONDecodeError as bad:
            raise InputError(
                f"invalid JSON: {bad.msg} (column {bad.colno})", file=str(path), line=bad.lineno
            ) from None
        raise InputError(f"cannot read: {first_line_of(exc)}", file=str(path)) from None
    values = pl.col("Properties").list.eval(pl.element().struct.field("Value"))
    # Sysmon before schema 4.1 had no RuleName: 17 properties, each one place earlier
    sysmon_shift = pl.when(values.list.len() >= len(SYSMON_3_PROPERTIES)).then(0).otherwise(-1)
    columns = []
    for name in EVENT_DATA:
        options = []
        if name in SYSMON_3_PROPERTIES:
            at = SYSMON_3_PROPERTIES.index(name) + sysmon_shift
            options.append(pl.when(pl.col("Id") == "3").then(values.list.get(at, null_on_oob=True)))
        if name in WFP_5156_PROPERTIES:
            at5156 = WFP_5156_PROPERTIES.index(name)
            options.append(
                pl.when(pl.col("Id") == "5156").then(values.list.get(at5156, null_on_oob=True))
            )
        columns.append(pl.coalesce(options).alias(name))
    millis = pl.col("TimeCreated").str.extract(r"^/Date\((-?\d+)\)/$", 1)
    table = frame.select(
        pl.col("Id").alias(_EVENT_ID),
        pl.col("MachineName").alias(_COMPUTER),
        pl.when(millis.is_not_null())
        .then(pl.concat_str(millis, pl.lit("e-3")))  # marked for the epoch parse below
        .otherwise(pl.col("TimeCreated"))
        .alias(_TIME),
        *columns,
    )
    return _split_ids(table, row_locator, "objects of the array counted from 1")


def _split_ids(
    table: pl.DataFrame, locate: Callable[[int], dict[str, int]], convention: str
) -> tuple[RawTable, list[str]]:
    table = table.with_row_index(_RECORD)
    ids = table.get_column(_EVENT_ID)
    used = ids.is_in([str(i) for i in USED_IDS]).fill_null(False)
    warnings = _other_ids(ids.filter(~used))
    kept = table.filter(used)
    return RawTable(kept.lazy(), dict(kept.schema), locate, convention), warnings


def _raw(frame: pl.DataFrame, convention: str) -> RawTable:
    return RawTable(frame.lazy(), dict(frame.schema), row_locator, convention)


def _other_ids(ids: pl.Series) -> list[str]:
    """One line: ``skipped 355 events of other IDs (1: 227, 10: 60, ...)``."""
    if ids.is_empty():
        return []
    counts = (
        ids.fill_null("none").value_counts().sort(["count", ids.name], descending=[True, False])
    )
    listed = ", ".join(f"{i}: {n}" for i, n in counts.head(8).iter_rows())
    more = ", ..." if counts.height > 8 else ""
    noun = "event" if ids.len() == 1 else "events"
    return [f"skipped {ids.len()} {noun} of other IDs ({listed}{more}); used: 3 and 5156"]


def _json_lines_error(path: Path, data: bytes, exc: Exception) -> InputError:
    for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            json.loads(line)
        except json.JSONDecodeError as bad:
            return InputError(
                f"invalid JSON: {bad.msg} (column {bad.colno})", file=str(path), line=number
            )
        except RecursionError:
            return InputError("invalid JSON: nested too deeply", file=str(path), line=number)
    return InputError(f"cannot read: {first_line_of(exc)}", file=str(path))


# --- logical columns -> canonical events -----------------------------------------------------


def _file_name(column: str) -> pl.Expr:
    """``C:\\Windows\\System32\\svchost.exe``, ``\\device\\harddiskvolume2\\...``: svchost.exe."""
    return pl.col(column).str.split("\\").list.last().str.split("/").list.last().str.to_lowercase()


def _events(path: Path, table: RawTable, warnings: list[str]) -> LoadedFile:
    with reading(path):
        frame = table.frame.collect()
    if frame.is_empty():
        return LoadedFile(warnings=warnings, skipped="Windows logs without event 3 or 5156")
    sysmon = pl.col(_EVENT_ID) == str(SYSMON_NETWORK)
    initiated = pl.col("Initiated").str.to_lowercase().str.strip_chars()
    direction = pl.col("Direction").str.to_lowercase().str.strip_chars()
    inbound = (
        pl.when(sysmon).then(initiated == "false").otherwise(direction.is_in(list(INBOUND)))
    ).fill_null(False)
    frame = frame.with_columns(inbound.alias("__inbound"))
    dropped = int(frame.get_column("__inbound").sum())
    if dropped:
        warnings.append(f"{dropped} inbound connections dropped (only the host's own count)")
        frame = frame.filter(~pl.col("__inbound"))
    protocol = pl.col("Protocol").str.strip_chars().str.to_lowercase()
    # the record's own time when Sysmon's UtcTime is absent; /Date(ms)/ became "<ms>e-3"
    record_ms = pl.col(_TIME).str.extract(r"^(-?\d+)e-3$", 1)
    # a Sysmon UtcTime that does not parse is an error, not a reason to use another time
    stamp = (
        pl.when(sysmon & pl.col("UtcTime").is_not_null())
        .then(text_timestamp(pl.col("UtcTime")))
        .otherwise(pl.coalesce(epoch_text(record_ms, "ms"), text_timestamp(pl.col(_TIME))))
    )
    columns = {
        S.DEVICE_ID: pl.col(_COMPUTER).str.to_lowercase(),
        S.DEVICE_NAME: pl.col(_COMPUTER).str.to_lowercase(),
        S.ACCOUNT: pl.when(sysmon).then(pl.col("User")),
        S.PROCESS: pl.when(sysmon).then(_file_name("Image")).otherwise(_file_name("Application")),
        S.ACTION: pl.when(sysmon).then(pl.lit(ACTION_SYSMON)).otherwise(pl.lit(ACTION_WFP)),
        S.PROTOCOL: protocol.replace(PROTOCOL_NUMBERS),
        S.LOCAL_IP: pl.coalesce(pl.col("SourceIp"), pl.col("SourceAddress")),
        S.LOCAL_PORT: pl.col("SourcePort").str.strip_chars().cast(pl.Int32, strict=False),
        S.REMOTE_IP: pl.coalesce(pl.col("DestinationIp"), pl.col("DestAddress")),
        S.REMOTE_PORT: pl.coalesce(pl.col("DestinationPort"), pl.col("DestPort"))
        .str.strip_chars()
        .cast(pl.Int32, strict=False),
        S.CONNECTIONS: pl.lit(1, pl.Int64),
    }
    frame = frame.with_columns(stamp.alias("__stamp"))
    checked = RawTable(frame.lazy(), dict(frame.schema), table.locate, table.convention)
    spec = TimestampSpec("__stamp", pl.col("__stamp"), pl.col("__stamp"))
    missing = frame.get_column("__stamp").is_null()
    if missing.any():
        row = frame.row(int(missing.arg_true()[0]), named=True)
        source = "UtcTime" if row[_EVENT_ID] == "3" and row["UtcTime"] else "TimeCreated"
        value = row["UtcTime"] if source == "UtcTime" else row[_TIME]
        raise InputError(
            f"cannot parse timestamp {value!r} ({table.convention})",
            file=str(path),
            field=source,
            **table.locate(row[_RECORD]),
        )
    events, more = finish_events(checked, columns, spec, path)
    return LoadedFile(events=events, warnings=warnings + more)
