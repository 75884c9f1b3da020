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

dns.log: each IP in ``answers`` → names (ip, ``query``, "dns"); every query with a time
→ the dns table (``ts``, ``id.orig_h`` as the device, ``query``, ``qtype_name``,
``id.resp_h`` as the resolver), which the dns_beacons hunt reads: a DNS tunnel's
queries go to the internal resolver, so conn.log alone never shows its domain.
http.log: names (``id.resp_h``, ``host`` without its port, "http_host") and app rows
(``uid``, "http", ``user_agent``, ``host``, ``method``, ``uri``). A CONNECT request names its
target (``uri``, else ``host``) for the proxy's address with source "connect", and the
app row's host is that target.
ssl.log: names (``id.resp_h``, ``server_name``, "ssl_sni") and app rows (``uid``, "ssl",
``server_name``).
Any other log (files, x509, weird, ...) is skipped with a warning.
"""

from __future__ import annotations

import io
import json
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
    merge_loaded,
    reading,
    timestamp_spec,
)
from detectors.load.tables import jsonl_table
from detectors.load.text import open_text
from detectors.load.timestamps import epoch_text, text_timestamp, timestamp_for
from detectors.load.zeek_tsv import (
    SOURCE_PATH,
    ZeekHeader,
    read_header,
    repeats_other_fields,
    segments,
    tsv_table,
)

CONN = "conn"
DNS = "dns"
HTTP = "http"
SSL = "ssl"
USED_LOGS = (CONN, DNS, HTTP, SSL)
# Written by the open-connections package for connections still open at rotation: the
# same fields as the closed log; a connection in both is counted once, as closed.
OPEN_PREFIX = "open_"

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
QTYPE_NAME = "qtype_name"
ANSWERS = "answers"
HOST = "host"
URI = "uri"
METHOD = "method"
USER_AGENT = "user_agent"
SERVER_NAME = "server_name"
PATH_FIELD = "_path"
STREAM_FIELD = "@stream"  # json-streaming-logs and Corelight's name for _path

_FIELDS_BY_LOG = {
    CONN: (TS, UID, ORIG_H, ORIG_P, RESP_H, RESP_P, PROTO, ORIG_BYTES, RESP_BYTES, CONN_STATE),
    DNS: (TS, ORIG_H, RESP_H, QUERY, QTYPE_NAME, ANSWERS),
    HTTP: (UID, RESP_H, HOST, URI, METHOD, USER_AGENT),
    SSL: (UID, RESP_H, SERVER_NAME),
}
# fields only one of the used logs has, to recognise a JSON log without a _path
_MARKERS = {CONN: {CONN_STATE}, DNS: {"qtype", ANSWERS, "rcode"}, HTTP: {METHOD, "status_code"},
            SSL: {SERVER_NAME, "cipher"}}  # fmt: skip
_NAME_PATTERN = re.compile(r"^((?:open_)?[a-z0-9_]*?[a-z0-9]+)(?=[._-]|$)", re.IGNORECASE)
_USED_NAME = re.compile(r"^((?:open_)?(?:conn|dns|http|ssl))(?![a-z0-9])", re.IGNORECASE)
# Pipelines that cannot write a dot in a key (Splunk, Logstash) write id_orig_h
_UNDERSCORED = {"id_orig_h": ORIG_H, "id_orig_p": ORIG_P, "id_resp_h": RESP_H, "id_resp_p": RESP_P}


def used_log(kind: str) -> str | None:
    """conn/dns/http/ssl for a log this loader reads (open_conn counts as conn), else None."""
    base = kind[len(OPEN_PREFIX) :] if kind.startswith(OPEN_PREFIX) else kind
    return base if base in USED_LOGS else None


def _log_of_name(path: Path) -> str:
    """``conn.log``, ``conn.00:00:00-01:00:00.log.gz``, ``dns_eth0.json`` → conn, dns."""
    used = _USED_NAME.match(path.name)
    if used:
        return used.group(1).lower()
    match = _NAME_PATTERN.match(path.name)
    return match.group(1).lower() if match else path.name.split(".")[0] or path.name


def _log_of_keys(path: Path, first: dict[str, object], keys: set[str]) -> str:
    for key in (PATH_FIELD, STREAM_FIELD):
        if isinstance(first.get(key), str) and first[key]:
            return str(first[key]).lower()
    by_name = _log_of_name(path)
    if used_log(by_name):
        return by_name
    for log, markers in _MARKERS.items():
        if keys & markers:
            return log
    return by_name


def _log_of_json(path: Path, table: RawTable) -> str:
    for key in (PATH_FIELD, STREAM_FIELD):
        if key in table.schema and table.schema[key] == pl.String:
            with reading(path):
                head = table.frame.select(key).head(1000).collect().to_series()
            first = head.drop_nulls().first()
            if first:
                return str(first).lower()
    present = {m for markers in _MARKERS.values() for m in markers if F.has(table.schema, m)}
    return _log_of_keys(path, {}, present)


def log_of_header(header: ZeekHeader, path: Path) -> str:
    """The log kind a TSV header says (``#path``), else the file name's."""
    return (header.path or _log_of_name(path)).lower()


def log_kind(path: Path, flavour: str) -> str:
    """Which Zeek log a file holds (``conn``, ``open_conn``, ``weird``...), cheaply."""
    if flavour == "tsv":
        return log_of_header(read_header(path), path)
    with open_text(path) as handle:
        line = handle.readline().lstrip("\ufeff")
    try:
        first = json.loads(line)
    except (ValueError, RecursionError):
        first = {}
    first = first if isinstance(first, dict) else {}
    return _log_of_keys(path, first, set(first))


def load_zeek(path: Path, flavour: str) -> LoadedFile:
    """Load one Zeek log; ``flavour`` is "tsv" or "json"."""
    if flavour == "tsv":
        header = read_header(path)
        log = (header.path or _log_of_name(path)).lower()
        if used_log(log) is None:
            return _skipped(log)
        wanted = _FIELDS_BY_LOG[used_log(log) or CONN]
        if repeats_other_fields(path, header):
            return merge_loaded(
                [
                    _load_table(path, tsv_table(path, h, wanted, io.BytesIO(b), o), log, h)
                    for h, b, o in segments(path)
                ]
            )
        return _load_table(path, tsv_table(path, header, wanted), log, header)
    table = _underscored_ids(jsonl_table(path))
    log = _log_of_json(path, table)
    if used_log(log) is None:
        return _skipped(log)
    keep = F.top_columns(table.schema, _FIELDS_BY_LOG[used_log(log) or CONN])
    table = RawTable(
        table.frame.select(keep),
        {c: table.schema[c] for c in keep},
        table.locate,
        table.convention,
        table.warnings,
    )
    return _load_table(path, table, log, ZeekHeader())


def load_zeek_many(
    paths: list[Path],
    header: ZeekHeader,
    log: str,
    contents: list[bytes | None] | None = None,
) -> LoadedFile:
    """Zeek TSV files of one log with the same header, read in one scan (rotated logs).

    ``contents``: each file's text when the caller already read all of it (else None).
    Row ``source_file`` says which file each row came from. Errors are not located
    here: the caller re-reads the files one by one to name the file and line.
    """
    wanted = _FIELDS_BY_LOG[used_log(log) or CONN]
    table = tsv_table(paths[0], header, wanted, paths, contents=contents)
    return _load_table(paths[0], table, log, header)


def _underscored_ids(table: RawTable) -> RawTable:
    renames = {
        old: new
        for old, new in _UNDERSCORED.items()
        if old in table.schema and not F.has(table.schema, new)
    }
    if not renames:
        return table
    schema = {renames.get(c, c): d for c, d in table.schema.items()}
    frame = table.frame.rename(renames)
    return RawTable(frame, schema, table.locate, table.convention, table.warnings)


def _load_table(path: Path, table: RawTable, log: str, header: ZeekHeader) -> LoadedFile:
    base = used_log(log)
    if base == CONN:
        loaded = _conn(path, table, table.schema)
    elif base == DNS:
        loaded = _dns(path, table, table.schema, header.set_separator)
    elif base == HTTP:
        loaded = _http(path, table, table.schema)
    else:
        loaded = _ssl(path, table, table.schema)
    loaded.still_open = log.startswith(OPEN_PREFIX)
    return loaded


def _skipped(log: str) -> LoadedFile:
    return LoadedFile(
        warnings=[f"Zeek {log} log skipped: only conn, dns, http and ssl logs are used"],
        skipped=f"Zeek {log} logs",
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
    if SOURCE_PATH in schema:
        columns[S.SOURCE_FILE] = pl.col(SOURCE_PATH)
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
    queries, warnings = _dns_queries(path, table, schema)
    return LoadedFile(names=_names(pairs), dns=queries, warnings=warnings)


def _dns_queries(
    path: Path, table: RawTable, schema: dict[str, pl.DataType]
) -> tuple[pl.DataFrame | None, list[str]]:
    """One row per query (``schema.DNS_SCHEMA``); None when the log has no ``ts``.

    A row whose time does not parse is left out and counted in one warning: the names
    it answered are still used, and one bad line should not cost the whole log.
    """
    if not F.has(schema, TS):
        return None, []
    if schema[TS] == pl.String:
        time = pl.coalesce(epoch_text(pl.col(TS), "s"), text_timestamp(pl.col(TS)))
    else:
        time = timestamp_for(pl.col(TS), schema[TS], number_unit="s")
    with reading(path):
        rows = table.frame.select(
            time.alias(S.DNS_TIME),
            F.text(schema, ORIG_H).alias(S.DNS_DEVICE),
            F.text(schema, QUERY).alias(S.DNS_QUERY),
            F.text(schema, QTYPE_NAME).alias(S.DNS_QTYPE),
            F.text(schema, RESP_H).alias(S.DNS_RESOLVER),
        ).collect()
    asked = rows.filter(pl.col(S.DNS_QUERY).is_not_null() & pl.col(S.DNS_DEVICE).is_not_null())
    kept = asked.filter(pl.col(S.DNS_TIME).is_not_null())
    warnings = []
    if kept.height < asked.height:
        warnings.append(
            f"{asked.height - kept.height} dns.log rows without a readable ts left out of "
            "the DNS query table"
        )
    return conform_to(kept, S.DNS_SCHEMA), warnings


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
            F.text(schema, URI).alias(S.APP_URI),
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
