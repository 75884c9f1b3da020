"""Defender for Endpoint ``DeviceNetworkEvents`` (CSV export, API JSON, JSON Lines, Parquet).

Columns read (any order, extra columns ignored; ``Timestamp`` and ``RemoteIP`` required):

| Defender column | canonical | notes |
|---|---|---|
| Timestamp | timestamp | ISO text (7 fractional digits truncated to µs) or a datetime |
| DeviceId, DeviceName | device_id, device_name | |
| ActionType | action | all 8 types plus the two ``*AggregatedReport`` types |
| RemoteIP, LocalIP | remote_ip, local_ip | IPv4-mapped IPv6 becomes IPv4 |
| RemotePort, LocalPort | remote_port, local_port | |
| RemoteUrl | remote_url | |
| Protocol, RemoteIPType | protocol, remote_ip_type | |
| InitiatingProcessFileName | process | |
| InitiatingProcessAccountDomain / Name | account | ``domain\\name``, or the name alone |
| InitiatingProcessVersionInfoCompanyName | company | |
| AdditionalFields | connections | ``uniqueEventsAggregated`` on aggregated rows, else 1 |

Defender logs no byte counts, so bytes_out/bytes_in are null.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from detectors.base import schema as S
from detectors.load import tables
from detectors.load.common import (
    LoadedFile,
    RawTable,
    finish_events,
    integer,
    require,
    text,
    timestamp_spec,
)

TIMESTAMP = "Timestamp"
DEVICE_ID = "DeviceId"
DEVICE_NAME = "DeviceName"
ACTION_TYPE = "ActionType"
REMOTE_IP = "RemoteIP"
REMOTE_PORT = "RemotePort"
REMOTE_URL = "RemoteUrl"
LOCAL_IP = "LocalIP"
LOCAL_PORT = "LocalPort"
PROTOCOL = "Protocol"
REMOTE_IP_TYPE = "RemoteIPType"
PROCESS = "InitiatingProcessFileName"
ACCOUNT_NAME = "InitiatingProcessAccountName"
ACCOUNT_DOMAIN = "InitiatingProcessAccountDomain"
COMPANY = "InitiatingProcessVersionInfoCompanyName"
ADDITIONAL_FIELDS = "AdditionalFields"
UNIQUE_EVENTS = "uniqueEventsAggregated"

COLUMNS = (
    TIMESTAMP,
    DEVICE_ID,
    DEVICE_NAME,
    ACTION_TYPE,
    REMOTE_IP,
    REMOTE_PORT,
    REMOTE_URL,
    LOCAL_IP,
    LOCAL_PORT,
    PROTOCOL,
    REMOTE_IP_TYPE,
    PROCESS,
    ACCOUNT_NAME,
    ACCOUNT_DOMAIN,
    COMPANY,
    ADDITIONAL_FIELDS,
)
REQUIRED = [TIMESTAMP, REMOTE_IP]

CONTAINERS = ("csv", "json", "jsonl", "parquet")


def read_table(path: Path, container: str, columns: tuple[str, ...]) -> RawTable:
    """The wanted Defender columns of a file in one of the four export containers."""
    if container == "csv":
        return tables.csv_table(path, columns)
    if container == "json":
        return tables.api_json_table(path, columns)
    if container == "jsonl":
        return tables.jsonl_table(path, columns)
    if container == "parquet":
        return tables.parquet_table(path, columns)
    raise ValueError(f"unknown Defender container {container!r}")


def account(schema: dict[str, pl.DataType]) -> pl.Expr:
    """``domain\\name`` as Defender's own UI shows it; the name alone without a domain."""
    name = text(ACCOUNT_NAME, schema)
    domain = text(ACCOUNT_DOMAIN, schema)
    both = pl.concat_str([domain, pl.lit("\\"), name])
    return pl.when(domain.is_not_null() & name.is_not_null()).then(both).otherwise(name)


def unique_events(schema: dict[str, pl.DataType], rows: pl.Expr) -> pl.Expr:
    """``AdditionalFields.uniqueEventsAggregated`` on ``rows``, the field JSON text or an object.

    Other rows' fields are masked to null before the JSON is read, so only the rows
    that need the count are parsed.
    """
    dtype = schema.get(ADDITIONAL_FIELDS)
    value = pl.when(rows).then(pl.col(ADDITIONAL_FIELDS))
    if isinstance(dtype, pl.Struct):
        if UNIQUE_EVENTS not in {f.name for f in dtype.fields}:
            return pl.lit(None, pl.Int64)
        return value.struct.field(UNIQUE_EVENTS).cast(pl.Int64, strict=False)
    if dtype is None:
        return pl.lit(None, pl.Int64)
    return (
        value.cast(pl.String).str.json_path_match(f"$.{UNIQUE_EVENTS}").cast(pl.Int64, strict=False)
    )


def connections(schema: dict[str, pl.DataType]) -> pl.Expr:
    """Aggregated-report rows count ``uniqueEventsAggregated`` connections, others one.

    An aggregated row without the field stays null: the count is unknown, not 1.
    """
    action = text(ACTION_TYPE, schema)
    aggregated = action.str.ends_with(S.AGGREGATED_SUFFIX).fill_null(False)
    return (
        pl.when(aggregated).then(unique_events(schema, aggregated)).otherwise(pl.lit(1, pl.Int64))
    )


def canonical_columns(schema: dict[str, pl.DataType]) -> dict[str, pl.Expr]:
    return {
        S.DEVICE_ID: text(DEVICE_ID, schema),
        S.DEVICE_NAME: text(DEVICE_NAME, schema),
        S.ACCOUNT: account(schema),
        S.PROCESS: text(PROCESS, schema),
        S.ACTION: text(ACTION_TYPE, schema),
        S.LOCAL_IP: text(LOCAL_IP, schema),
        S.LOCAL_PORT: integer(LOCAL_PORT, schema, pl.Int32()),
        S.REMOTE_IP: text(REMOTE_IP, schema),
        S.REMOTE_PORT: integer(REMOTE_PORT, schema, pl.Int32()),
        S.REMOTE_IP_TYPE: text(REMOTE_IP_TYPE, schema),
        S.PROTOCOL: text(PROTOCOL, schema),
        S.REMOTE_URL: text(REMOTE_URL, schema),
        S.CONNECTIONS: connections(schema),
        S.COMPANY: text(COMPANY, schema),
    }


def load_mde(path: Path, container: str) -> LoadedFile:
    """Load DeviceNetworkEvents from ``container`` ("csv", "json", "jsonl" or "parquet")."""
    table = read_table(path, container, COLUMNS)
    require(table.schema, REQUIRED, path)
    timestamp = timestamp_spec(table, TIMESTAMP, path)
    events, warnings = finish_events(table, canonical_columns(table.schema), timestamp, path)
    return LoadedFile(events=events, warnings=warnings)
