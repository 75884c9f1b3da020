"""Elastic Common Schema network events as NDJSON (one document per line, optionally gzip).

Fields read, nested (``{"source": {"ip": ...}}``) or dotted (``"source.ip"``), either
way in any row (``@timestamp`` and ``destination.ip`` required):

| ECS field | canonical |
|---|---|
| @timestamp (ISO text of any precision; a number is epoch milliseconds) | timestamp |
| host.id, else host.name | device_id |
| host.name | device_name |
| user.name (``user.domain\\user.name`` when a domain is given) | account |
| process.name | process |
| event.action | action (ECS's own words, e.g. ``connection_attempted``) |
| source.ip / source.port | local_ip / local_port |
| destination.ip / destination.port | remote_ip / remote_port |
| network.transport | protocol |
| source.bytes / destination.bytes | bytes_out / bytes_in |
| url.domain, else destination.domain | remote_url |

Zeek shipped through Filebeat's zeek module (``event.dataset`` ``zeek.connection``,
``zeek.session_id``, ``zeek.connection.state``) or Security Onion (``event.module``
``zeek``, ``event.dataset`` ``conn``, ``log.id.uid``, ``connection.state``) is ECS too:
the uid and the Zeek state are read, and documents of Zeek's other logs (dns, http,
ssl, weird...), which also carry source and destination, are not connections and are
dropped with a count.

``source`` is taken as the device and ``destination`` as the remote end, as ECS defines
them for the connection's initiator; inbound events therefore keep their ECS meaning.
Connections is 1 per document.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from detectors.base import schema as S
from detectors.base.errors import InputError
from detectors.load import fields as F
from detectors.load.common import LoadedFile, RawTable, finish_events, reading, timestamp_spec
from detectors.load.tables import jsonl_table

TIMESTAMP = "@timestamp"
REQUIRED = (TIMESTAMP, "destination.ip")
PATHS = (
    TIMESTAMP,
    "host.id",
    "host.name",
    "user.name",
    "user.domain",
    "process.name",
    "event.action",
    "source.ip",
    "source.port",
    "source.bytes",
    "destination.ip",
    "destination.port",
    "destination.bytes",
    "destination.domain",
    "network.transport",
    "url.domain",
    "event.dataset",
    "event.module",
    "zeek.session_id",
    "log.id.uid",
    "zeek.connection.state",
    "connection.state",
)
# Zeek datasets that are connections, as Filebeat and Security Onion name them
ZEEK_CONNECTION_DATASETS = ("zeek.connection", "zeek.conn", "conn", "connection")


def _account(schema: dict[str, pl.DataType]) -> pl.Expr:
    name = F.text(schema, "user.name")
    domain = F.text(schema, "user.domain")
    both = pl.concat_str([domain, pl.lit("\\"), name])
    return pl.when(domain.is_not_null() & name.is_not_null()).then(both).otherwise(name)


def load_ecs(path: Path) -> LoadedFile:
    table = jsonl_table(path)
    schema = table.schema
    for path_name in REQUIRED:
        if not F.has(schema, path_name):
            raise InputError(
                f"missing required field '{path_name}'", file=str(path), field=path_name
            )
    keep = F.top_columns(schema, PATHS)
    projected = RawTable(
        table.frame.select(keep),
        {c: schema[c] for c in keep},
        table.locate,
        table.convention,
        table.warnings,
    )
    columns = {
        S.DEVICE_ID: F.text(schema, "host.id", "host.name"),
        S.DEVICE_NAME: F.text(schema, "host.name"),
        S.ACCOUNT: _account(schema),
        S.PROCESS: F.text(schema, "process.name"),
        S.ACTION: F.text(schema, "zeek.connection.state", "connection.state", "event.action"),
        S.UID: F.text(schema, "zeek.session_id", "log.id.uid"),
        S.LOCAL_IP: F.text(schema, "source.ip"),
        S.LOCAL_PORT: F.integer(schema, "source.port", pl.Int32()),
        S.REMOTE_IP: F.text(schema, "destination.ip"),
        S.REMOTE_PORT: F.integer(schema, "destination.port", pl.Int32()),
        S.PROTOCOL: F.text(schema, "network.transport"),
        S.BYTES_OUT: F.integer(schema, "source.bytes", pl.Int64()),
        S.BYTES_IN: F.integer(schema, "destination.bytes", pl.Int64()),
        S.REMOTE_URL: F.text(schema, "url.domain", "destination.domain"),
        S.CONNECTIONS: pl.lit(1, pl.Int64),
    }
    projected, dropped = _connections_only(projected, path)
    timestamp = timestamp_spec(projected, TIMESTAMP, path, number_unit="ms")
    events, warnings = finish_events(projected, columns, timestamp, path)
    return LoadedFile(events=events, warnings=dropped + warnings)


def _connections_only(table: RawTable, path: Path) -> tuple[RawTable, list[str]]:
    """Without documents of Zeek's non-connection logs (Filebeat / Security Onion)."""
    dataset = F.text(table.schema, "event.dataset").str.to_lowercase()
    module = F.text(table.schema, "event.module").str.to_lowercase()
    zeek = dataset.str.starts_with("zeek.") | (module == "zeek")
    other = (zeek & ~dataset.is_in(list(ZEEK_CONNECTION_DATASETS))).fill_null(False)
    if not (F.has(table.schema, "event.dataset")):
        return table, []
    with reading(path):
        count = table.frame.select(other.sum()).collect().item()
    if not count:
        return table, []
    kept = RawTable(
        table.frame.filter(~other), table.schema, table.locate, table.convention, table.warnings
    )
    return kept, [f"{count} documents of Zeek logs other than conn skipped (not connections)"]
