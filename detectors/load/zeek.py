"""Zeek logs, TSV (plain or gzip) or JSON Lines: conn → events, dns/http/ssl → names and app.

TSV is read with polars using the file's own header: the ``#separator`` (any single
character, ``\\x09`` by default), ``#set_separator`` (splits dns answers), ``#fields``
(column names), and ``#unset_field`` / ``#empty_field`` (``-`` / ``(empty)``), which
both become null. Comment lines, including the ``#close`` footer, are skipped. JSON
uses the same field names, flat (``"id.orig_h"``) or nested (``"id": {"orig_h"}``).

conn.log fields → events (``ts`` and ``id.resp_h`` required):

| Zeek | canonical |
|---|---|
| ts (epoch seconds, µs kept) | timestamp |
| id.orig_h | device_id, device_name and local_ip (Zeek knows hosts, not devices) |
| id.orig_p / id.resp_h / id.resp_p | local_port / remote_ip / remote_port |
| proto | protocol |
| orig_bytes / resp_bytes | bytes_out / bytes_in |
| uid | uid |
| conn_state | action: the raw Zeek state (SF, S0, REJ, ...), not a Defender ActionType |

Process, account and company are null; connections is 1.

dns.log: each IP in ``answers`` → names (ip, ``query``, "dns").
http.log: names (``id.resp_h``, ``host`` without its port, "http_host") and app rows
(``uid``, "http", ``user_agent``, ``host``, ``method``). A CONNECT request names its
target (``uri``, else ``host``) for the proxy's address with source "connect", and the
app row's host is that target.
ssl.log: names (``id.resp_h``, ``server_name``, "ssl_sni") and app rows (``uid``, "ssl",
``server_name``).
Any other log (files, x509, weird, ...) is skipped with a warning.
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from detectors.base import schema as S
from detectors.base.errors import InputError
from detectors.base.netclass import INVALID, classify_ip, normalize_ip
from detectors.load import fields as F
from detectors.load.common import (
    LoadedFile,
    RawTable,
    TimestampSpec,
    conform_to,
    finish_events,
    reading,
    timestamp_spec,
)
from detectors.load.tables import jsonl_table
from detectors.load.timestamps import epoch_text, text_timestamp
from detectors.load.zeek_tsv import read_header, tsv_table

CONN = "conn"
DNS = "dns"
HTTP = "http"
SSL = "ssl"
USED_LOGS = (CONN, DNS, HTTP, SSL)

TS = "ts"
UID = "uid"
ORIG_H = "id.orig_h"
ORIG_P = "id.orig_p"
RESP_H = "id.resp_h"
RESP_P = "id.resp_p"
PROTO = "proto"
ORIG_BYTES = "orig_bytes"
RESP_BYTES = "resp_bytes"
CONN_STATE = "conn_state"
QUERY = "query"
ANSWERS = "answers"
HOST = "host"
URI = "uri"
METHOD = "method"
USER_AGENT = "user_agent"
SERVER_NAME = "server_name"
PATH_FIELD = "_path"

_FIELDS_BY_LOG = {
    CONN: (TS, UID, ORIG_H, ORIG_P, RESP_H, RESP_P, PROTO, ORIG_BYTES, RESP_BYTES, CONN_STATE),
    DNS: (QUERY, ANSWERS),
    HTTP: (UID, RESP_H, HOST, URI, METHOD, USER_AGENT),
    SSL: (UID, RESP_H, SERVER_NAME),
}
# fields only one of the used logs has, to recognise a JSON log without a _path
_MARKERS = {CONN: {CONN_STATE}, DNS: {"qtype", ANSWERS, "rcode"}, HTTP: {METHOD, "status_code"},
            SSL: {SERVER_NAME, "cipher"}}  # fmt: skip
_NAME_PATTERN = re.compile(r"^(conn|dns|http|ssl)(?![a-z0-9])", re.IGNORECASE)


def _log_of_json(path: Path, table: RawTable) -> str:
    if PATH_FIELD in table.schema:
        with reading(path):
            head = table.frame.select(PATH_FIELD).head(1000).collect().to_series()
            first = head.drop_nulls().first()
        if first:
            return str(first)
    by_name = _log_of_name(path)
    if by_name in USED_LOGS:
        return by_name
    for log, markers in _MARKERS.items():
        if any(F.has(table.schema, marker) for marker in markers):
            return log
    return by_name


def _log_of_name(path: Path) -> str:
    """``conn.log``, ``conn.00:00:00-01:00:00.log.gz``, ``dns_eth0.json`` → conn, dns."""
    match = _NAME_PATTERN.match(path.name)
    return match.group(1).lower() if match else path.name.split(".")[0] or path.name


def load_zeek(path: Path, flavour: str) -> LoadedFile:
    """Load one Zeek log; ``flavour`` is "tsv" or "json"."""
    if flavour == "tsv":
        header = read_header(path)
        log = header.path or _log_of_name(path)
        set_separator = header.set_separator
        if log not in USED_LOGS:
            return _skipped(log)
        table = tsv_table(path, header, _FIELDS_BY_LOG[log])
    else:
        table = jsonl_table(path)
        log = _log_of_json(path, table)
        set_separator = ","
        if log not in USED_LOGS:
            return _skipped(log)
        keep = F.top_columns(table.schema, _FIELDS_BY_LOG[log])
        table = RawTable(
            table.frame.select(keep),
            {c: table.schema[c] for c in keep},
            table.locate,
            table.convention,
            table.warnings,
        )
    if log == CONN:
        return _conn(path, table, table.schema)
    if log == DNS:
        return _dns(path, table, table.schema, set_separator)
    if log == HTTP:
        return _http(path, table, table.schema)
    return _ssl(path, table, table.schema)


def _skipped(log: str) -> LoadedFile:
    return LoadedFile(
        warnings=[f"Zeek {log} log skipped: only conn, dns, http and ssl logs are used"]
    )


def _conn(path: Path, table: RawTable, schema: dict[str, pl.DataType]) -> LoadedFile:
    _require_fields(schema, [TS, RESP_H], path)
    if table.schema[TS] == pl.String:
        # TSV (and JSON with string times): exact decimal seconds; ISO text as a fallback
        seconds = epoch_text(pl.col(TS), "s")
        full = pl.coalesce(seconds, text_timestamp(pl.col(TS)))
        timestamp = TimestampSpec(TS, seconds, full)
    else:
        timestamp = timestamp_spec(table, TS, path, number_unit="s")
    orig = F.text(schema, ORIG_H)
    columns = {
        S.DEVICE_ID: orig,
        S.DEVICE_NAME: orig,
        S.LOCAL_IP: orig,
        S.LOCAL_PORT: F.integer(schema, ORIG_P, pl.Int32()),
        S.REMOTE_IP: F.text(schema, RESP_H),
        S.REMOTE_PORT: F.integer(schema, RESP_P, pl.Int32()),
        S.PROTOCOL: F.text(schema, PROTO),
        S.BYTES_OUT: F.integer(schema, ORIG_BYTES, pl.Int64()),
        S.BYTES_IN: F.integer(schema, RESP_BYTES, pl.Int64()),
        S.UID: F.text(schema, UID),
        S.ACTION: F.text(schema, CONN_STATE),
        S.CONNECTIONS: pl.lit(1, pl.Int64),
    }
    events, warnings = finish_events(table, columns, timestamp, path)
    return LoadedFile(events=events, warnings=warnings)


def _require_fields(schema: dict[str, pl.DataType], names: list[str], path: Path) -> None:
    for name in names:
        if not F.has(schema, name):
            raise InputError(f"missing required field '{name}'", file=str(path), field=name)


def _names(frame: pl.DataFrame) -> pl.DataFrame:
    """Names rows with the IP normalised (per distinct value) and blanks dropped."""
    frame = frame.filter(pl.col(S.NAME_IP).is_not_null() & pl.col(S.NAME).is_not_null())
    distinct = frame.get_column(S.NAME_IP).unique().to_list()
    mapping = {ip: normalize_ip(ip) for ip in distinct}
    frame = frame.with_columns(pl.col(S.NAME_IP).replace_strict(mapping, return_dtype=pl.String))
    return conform_to(frame, S.NAMES_SCHEMA).unique(maintain_order=True)


def _dns(
    path: Path, table: RawTable, schema: dict[str, pl.DataType], set_separator: str
) -> LoadedFile:
    _require_fields(schema, [QUERY, ANSWERS], path)
    with reading(path):
        pairs = (
            table.frame.select(
                F.text(schema, QUERY).alias(S.NAME),
                F.text_list(schema, ANSWERS, set_separator).alias(S.NAME_IP),
            )
            .explode(S.NAME_IP)
            .collect()
        )
    answers = pairs.get_column(S.NAME_IP).drop_nulls().unique().to_list()
    addresses = [a for a in answers if classify_ip(a) != INVALID]  # CNAMEs are not addresses
    pairs = pairs.filter(pl.col(S.NAME_IP).is_in(addresses)).with_columns(
        pl.lit("dns").alias(S.NAME_SOURCE)
    )
    return LoadedFile(names=_names(pairs))


def _host_only(host: pl.Expr) -> pl.Expr:
    """``example.com:8080`` → ``example.com``; ``[2001:db8::1]:443`` → ``2001:db8::1``."""
    bracketed = host.str.extract(r"^\[([^\]]+)\]", 1)
    one_colon = host.str.count_matches(":") == 1
    return (
        pl.when(bracketed.is_not_null())
        .then(bracketed)
        .when(one_colon)
        .then(host.str.replace(r":\d*$", ""))
        .otherwise(host)
    )


def _http(path: Path, table: RawTable, schema: dict[str, pl.DataType]) -> LoadedFile:
    _require_fields(schema, [RESP_H], path)
    method = F.text(schema, METHOD)
    host = _host_only(F.text(schema, HOST))
    is_connect = (method.str.to_uppercase() == "CONNECT").fill_null(False)
    target = pl.coalesce(_host_only(F.text(schema, URI)), host)
    seen_host = pl.when(is_connect).then(target).otherwise(host)
    with reading(path):
        rows = table.frame.select(
            F.text(schema, UID).alias(S.APP_UID),
            F.text(schema, USER_AGENT).alias(S.APP_USER_AGENT),
            seen_host.alias(S.APP_HOST),
            method.alias(S.APP_METHOD),
            F.text(schema, RESP_H).alias(S.NAME_IP),
            pl.when(is_connect)
            .then(pl.lit("connect"))
            .otherwise(pl.lit("http_host"))
            .alias(S.NAME_SOURCE),
        ).collect()
    names = _names(rows.select(S.NAME_IP, pl.col(S.APP_HOST).alias(S.NAME), S.NAME_SOURCE))
    app = conform_to(rows.with_columns(pl.lit("http").alias(S.APP_KIND)), S.APP_SCHEMA)
    return LoadedFile(names=names, app=app)


def _ssl(path: Path, table: RawTable, schema: dict[str, pl.DataType]) -> LoadedFile:
    _require_fields(schema, [RESP_H], path)
    with reading(path):
        rows = table.frame.select(
            F.text(schema, UID).alias(S.APP_UID),
            F.text(schema, SERVER_NAME).alias(S.APP_SNI),
            F.text(schema, RESP_H).alias(S.NAME_IP),
        ).collect()
    names = _names(
        rows.select(
            S.NAME_IP, pl.col(S.APP_SNI).alias(S.NAME), pl.lit("ssl_sni").alias(S.NAME_SOURCE)
        )
    )
    # Every TLS connection is an app row: one without SNI is itself evidence.
    with_uid = rows.filter(pl.col(S.APP_UID).is_not_null())
    app = conform_to(with_uid.with_columns(pl.lit("ssl").alias(S.APP_KIND)), S.APP_SCHEMA)
    return LoadedFile(names=names, app=app)
