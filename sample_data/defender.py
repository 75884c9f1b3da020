"""The scenario as Microsoft Defender advanced-hunting exports (DeviceNetworkEvents, DeviceInfo).

Defender logs one row per connection it noticed, hourly ``*AggregatedReport`` rows for
chatty pairs (``AdditionalFields.uniqueEventsAggregated``), listening sockets, inbound
accepts and a few inspected DNS exchanges. It logs no byte counts. Timestamps are Kusto's
ISO form with 7 fractional digits (100 ns ticks) and ``Z``.

Rows are first laid out and ordered with numbers only; text columns are gathered from
small lookup tables at the very end, which keeps ten million rows quick.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from . import conns as C
from .clock import DAY
from .programs import PROGRAMS
from .simulate import Scenario
from .world import AD_DOMAIN, APP_DNS, APP_INBOUND, EGRESS_IP, PROCESS_NAMES, PROCESSES

COLUMNS = (
    "Timestamp",
    "DeviceId",
    "DeviceName",
    "ActionType",
    "RemoteIP",
    "RemotePort",
    "RemoteUrl",
    "LocalIP",
    "LocalPort",
    "Protocol",
    "RemoteIPType",
    "InitiatingProcessFileName",
    "InitiatingProcessAccountDomain",
    "InitiatingProcessAccountName",
    "InitiatingProcessVersionInfoCompanyName",
    "AdditionalFields",
)
DEVICE_INFO_COLUMNS = (
    "Timestamp",
    "DeviceId",
    "DeviceName",
    "DeviceType",
    "OSPlatform",
    "OSVersion",
    "OSBuild",
    "PublicIP",
)
PROG_COLUMN = "_prog"  # kept beside the export columns to count rows per program
CONNECTIONS_COLUMN = "_connections"
BATCH_ROWS = 500_000  # rows rendered to text at once
INGEST_JITTER_S = 3.0  # rows reach the table a little out of order
NS_PER_DAY = 86_400_000_000_000

# what a planned row is
KIND = "kind"
KIND_CONNECTION, KIND_REPORT, KIND_LISTENING = 0, 1, 2
REQUEST = "request"  # Defender called the attempt ConnectionRequest


def kusto_times(ns: pl.Series) -> pl.Series:
    """Epoch nanoseconds as ``2026-11-20T00:00:00.6899290Z`` (7 digits: Kusto's 100 ns ticks).

    Dates and clock times come from lookup tables (a few days, 86,400 seconds), which
    is several times faster than formatting every value.
    """
    if ns.len() == 0 or ns.null_count() == ns.len():
        return pl.Series(ns.name, [None] * ns.len(), dtype=pl.String)
    first_day = int(ns.min()) // NS_PER_DAY  # type: ignore[arg-type]
    last_day = int(ns.max()) // NS_PER_DAY  # type: ignore[arg-type]
    dates = _date_table(first_day, last_day)
    clock = _clock_table()
    frame = pl.DataFrame({"ns": ns})
    col = pl.col("ns")
    return frame.select(
        pl.concat_str(
            [
                _gather(dates, col // NS_PER_DAY - first_day),
                _gather(clock, col % NS_PER_DAY // 1_000_000_000),
                (col % 1_000_000_000 // 100 + 10_000_000).cast(pl.String).str.slice(1),
                pl.lit("Z"),
            ]
        ).alias(ns.name)
    ).to_series()


@functools.lru_cache(maxsize=1)
def _clock_table() -> pl.Series:
    return pl.Series([f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}." for s in range(86400)])


@functools.lru_cache(maxsize=8)
def _date_table(first_day: int, last_day: int) -> pl.Series:
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    days = range(first_day, last_day + 1)
    return pl.Series([(epoch + timedelta(days=d)).strftime("%Y-%m-%dT") for d in days])


def _gather(table: pl.Series, index: pl.Expr) -> pl.Expr:
    """Gather from a small table by an integer column (nulls stay null)."""
    return index.map_batches(lambda s: table.gather(s.cast(pl.UInt32)), return_dtype=table.dtype)


def _text(values: Sequence[str | None] | np.ndarray, index: pl.Expr) -> pl.Expr:
    return _gather(pl.Series(values=list(values), dtype=pl.String), index)


def _ip_type(ip: str) -> str:
    return "Private" if ipaddress.ip_address(ip).is_private else "Public"


# --- the plan: every row as numbers, in export order ----------------------------------
def plan(sc: Scenario, rng: np.random.Generator) -> pl.DataFrame:
    """Every DeviceNetworkEvents row as numbers (connections, hourly reports, listeners),
    in export order; ``render`` makes the text."""
    logged = sc.conns.filter(pl.col(C.DEFENDER) == C.DEF_ROW)
    # macOS sensors report most outbound attempts as ConnectionRequest
    mac = sc.devices.is_mac[logged.get_column(C.DEVICE).to_numpy()]
    request = rng.random(logged.height) < np.where(mac, 0.6, 0.05)
    connections = logged.select(
        C.T_NS, C.DEVICE, C.PROC, C.DEST, C.PROG, C.APP, C.OK, C.LOCAL_PORT, C.URL,
        pl.lit(KIND_CONNECTION, pl.Int8).alias(KIND), pl.Series(REQUEST, request),
        pl.lit(1, pl.Int64).alias(C.AGG_CONNECTIONS),
    )  # fmt: skip
    reports = sc.reports.select(
        pl.col(C.AGG_FIRST_NS).alias(C.T_NS), C.DEVICE, C.PROC, C.DEST, C.PROG,
        pl.lit(-1, pl.Int8).alias(C.APP), C.OK, pl.lit(None, pl.Int32).alias(C.LOCAL_PORT),
        pl.lit(True).alias(C.URL), pl.lit(KIND_REPORT, pl.Int8).alias(KIND),
        pl.lit(False).alias(REQUEST), C.AGG_CONNECTIONS, C.AGG_FIRST_NS, C.AGG_LAST_NS,
    )  # fmt: skip
    plan = pl.concat([connections, reports, _listeners(sc, rng)], how="diagonal_relaxed")
    ingest = plan.get_column(C.T_NS).to_numpy() + np.rint(
        rng.uniform(0, INGEST_JITTER_S, plan.height) * 1e9
    ).astype(np.int64)
    return plan[np.argsort(ingest, kind="stable")]


def _listeners(sc: Scenario, rng: np.random.Generator) -> pl.DataFrame:
    """RPC (135) and SMB (445) listeners announced once a day on every Windows device."""
    days = int(np.ceil(sc.span_s / DAY))
    device = np.repeat(np.arange(sc.devices.count), days * 2)
    day = np.tile(np.repeat(np.arange(days), 2), sc.devices.count)
    which = np.tile(np.array([0, 1]), sc.devices.count * days)
    t = np.minimum(day * DAY + rng.uniform(0, DAY, device.size), sc.span_s - 1)
    windows = ~sc.devices.is_mac[device]
    procs = np.array([PROCESS_NAMES.index("svchost.exe"), PROCESS_NAMES.index("System")])
    return pl.DataFrame(
        {
            C.T_NS: sc.start_ns + np.floor(t[windows] * 1e7).astype(np.int64) * 100,
            C.DEVICE: device[windows].astype(np.int32),
            C.PROC: procs[which[windows]].astype(np.int16),
            C.PROG: np.full(int(windows.sum()), -1, dtype=np.int16),
            C.LOCAL_PORT: np.array([135, 445], dtype=np.int32)[which[windows]],
            KIND: np.full(int(windows.sum()), KIND_LISTENING, dtype=np.int8),
        }
    )


# --- the text ---------------------------------------------------------------------------
def _account(sc: Scenario) -> tuple[pl.Expr, pl.Expr]:
    """(AccountDomain, AccountName): users sign in to the domain; services run as NT AUTHORITY."""
    kinds = [PROCESSES[p].account for p in PROCESS_NAMES]
    is_user = _gather(pl.Series([k == "user" for k in kinds]), pl.col(C.PROC))
    user = _text(sc.devices.users, pl.col(C.DEVICE))
    domain = pl.when(is_user).then(pl.lit(AD_DOMAIN)).otherwise(pl.lit("nt authority"))
    return domain, pl.when(is_user).then(user).otherwise(_text(kinds, pl.col(C.PROC)))


def _report_fields(part: pl.DataFrame) -> pl.Series:
    """AdditionalFields of the aggregated-report rows (null elsewhere), formatted only
    where needed: ``{"uniqueEventsAggregated":N,"firstSeen":"...","lastSeen":"..."}``."""
    where = np.flatnonzero((part.get_column(KIND) == KIND_REPORT).to_numpy())
    reports = part[where]
    text = pl.concat_str(
        [
            pl.lit('{"uniqueEventsAggregated":'),
            reports.get_column(C.AGG_CONNECTIONS).cast(pl.String),
            pl.lit(',"firstSeen":"'),
            kusto_times(reports.get_column(C.AGG_FIRST_NS)),
            pl.lit('","lastSeen":"'),
            kusto_times(reports.get_column(C.AGG_LAST_NS)),
            pl.lit('"}'),
        ]
    )
    fields = pl.Series("fields", [None] * part.height, dtype=pl.String)
    return fields.scatter(where, pl.select(text).to_series()) if where.size else fields


def render(part: pl.DataFrame, sc: Scenario) -> pl.DataFrame:
    """The export's columns for a slice of the plan: Timestamp still as epoch nanoseconds
    (``t_ns``), plus the helper columns ``_prog`` and ``_connections``."""
    kind, app, dest = pl.col(KIND), pl.col(C.APP), pl.col(C.DEST)
    report, listening = kind == KIND_REPORT, kind == KIND_LISTENING
    dns, inbound = app == APP_DNS, app == APP_INBOUND
    port = _gather(pl.Series([d.port for d in sc.dests], dtype=pl.Int32), dest)
    domain = _text([d.domain for d in sc.dests], dest)
    action = (
        pl.when(report & pl.col(C.OK)).then(pl.lit("ConnectionSuccessAggregatedReport"))
        .when(report).then(pl.lit("ConnectionFailedAggregatedReport"))
        .when(listening).then(pl.lit("ListeningConnectionCreated"))
        .when(dns).then(pl.lit("DnsConnectionInspected"))
        .when(inbound).then(pl.lit("InboundConnectionAccepted"))
        .when(~pl.col(C.OK)).then(pl.lit("ConnectionFailed"))
        .when(pl.col(REQUEST)).then(pl.lit("ConnectionRequest"))
        .otherwise(pl.lit("ConnectionSuccess"))
    )  # fmt: skip
    report_fields = pl.lit(_report_fields(part))
    dns_fields = pl.concat_str(
        [pl.lit('{"direction":"Out","query":"'), domain, pl.lit('","qtype":"A","rcode":"NOERROR"}')]
    )
    domain_name, account_name = _account(sc)
    companies = [PROCESSES[p].company or None for p in PROCESS_NAMES]
    return part.select(
        pl.col(C.T_NS),
        pl.col(C.PROG).alias(PROG_COLUMN),
        pl.col(C.AGG_CONNECTIONS).alias(CONNECTIONS_COLUMN),
        _text(sc.devices.ids, pl.col(C.DEVICE)).alias("DeviceId"),
        _text(sc.devices.names, pl.col(C.DEVICE)).alias("DeviceName"),
        action.alias("ActionType"),
        pl.when(listening)
        .then(pl.lit(None, pl.String))
        .when(dns)
        .then(pl.lit(sc.dns_server))
        .otherwise(_text([d.ip for d in sc.dests], dest))
        .alias("RemoteIP"),
        pl.when(listening)
        .then(pl.lit(None, pl.Int32))
        .when(dns)
        .then(pl.lit(53, pl.Int32))
        .when(inbound)
        .then(pl.col(C.LOCAL_PORT))
        .otherwise(port)
        .alias("RemotePort"),
        pl.when(pl.col(C.URL) & ~listening).then(domain).alias("RemoteUrl"),
        pl.when(listening)
        .then(pl.lit("0.0.0.0"))
        .otherwise(_text(sc.devices.ips, pl.col(C.DEVICE)))
        .alias("LocalIP"),
        pl.when(inbound).then(port).otherwise(pl.col(C.LOCAL_PORT)).alias("LocalPort"),
        pl.when(dns).then(pl.lit("Udp")).otherwise(pl.lit("Tcp")).alias("Protocol"),
        pl.when(listening)
        .then(pl.lit(None, pl.String))
        .when(dns)
        .then(pl.lit("Private"))
        .otherwise(_text([_ip_type(d.ip) for d in sc.dests], dest))
        .alias("RemoteIPType"),
        _text(list(PROCESS_NAMES), pl.col(C.PROC)).alias("InitiatingProcessFileName"),
        domain_name.alias("InitiatingProcessAccountDomain"),
        account_name.alias("InitiatingProcessAccountName"),
        _text(companies, pl.col(C.PROC)).alias("InitiatingProcessVersionInfoCompanyName"),
        pl.when(report)
        .then(report_fields)
        .when(dns)
        .then(dns_fields)
        .when(action == "ConnectionSuccess")
        .then(pl.lit(None, pl.String))
        .otherwise(pl.lit("{}"))
        .alias("AdditionalFields"),
    )


def write_events(plan: pl.DataFrame, sc: Scenario, path: Path, fmt: str = "csv") -> None:
    """The export as Defender's portal writes it (CSV) or as a data-lake Parquet file.

    Rendered a batch at a time, so ten million rows never sit in memory as text.
    """
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"unknown Defender output format {fmt!r} (csv or parquet)")
    batches = (plan.slice(start, BATCH_ROWS) for start in range(0, max(plan.height, 1), BATCH_ROWS))
    if fmt == "csv":
        with path.open("wb") as out:
            for k, part in enumerate(batches):
                frame = render(part, sc)
                stamp = kusto_times(frame.get_column(C.T_NS)).alias("Timestamp")
                frame.select(pl.lit(stamp), *COLUMNS[1:]).write_csv(out, include_header=k == 0)
        return
    stamp_us = pl.from_epoch(pl.col(C.T_NS) // 1000, time_unit="us").dt.replace_time_zone("UTC")
    writer: pq.ParquetWriter | None = None
    try:
        for part in batches:
            table = render(part, sc).select(stamp_us.alias("Timestamp"), *COLUMNS[1:]).to_arrow()
            if writer is None:
                writer = pq.ParquetWriter(
                    path, table.schema, compression="zstd", write_statistics=False
                )
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()


def device_info(sc: Scenario, rng: np.random.Generator) -> pl.DataFrame:
    """DeviceInfo: each device reports at least once a day, some twice."""
    days = int(np.ceil(sc.span_s / DAY))
    device = np.repeat(np.arange(sc.devices.count), days)
    day = np.tile(np.arange(days), sc.devices.count)
    twice = rng.random(device.size) < 0.3
    device = np.concatenate([device, device[twice]])
    day = np.concatenate([day, day[twice]])
    t = np.minimum(day * DAY + rng.uniform(0, DAY, device.size), sc.span_s - 1)
    t_ns = sc.start_ns + np.floor(t * 1e7).astype(np.int64) * 100
    order = np.lexsort((device, t_ns))
    frame = pl.DataFrame({C.T_NS: t_ns[order], C.DEVICE: device[order]})
    os_rows = [sc.devices.os_table[i] for i in sc.devices.os]
    dev = pl.col(C.DEVICE)
    server = sc.devices.is_server
    return frame.select(
        pl.lit(kusto_times(frame.get_column(C.T_NS))).alias("Timestamp"),
        _text(sc.devices.ids, dev).alias("DeviceId"),
        _text(sc.devices.names, dev).alias("DeviceName"),
        _text(np.where(server, "Server", "Workstation"), dev).alias("DeviceType"),
        _text([o[0] for o in os_rows], dev).alias("OSPlatform"),
        _text([o[1] for o in os_rows], dev).alias("OSVersion"),
        _text([o[2] or None for o in os_rows], dev).alias("OSBuild"),
        pl.lit(EGRESS_IP).alias("PublicIP"),
    )


def counts_per_program(plan: pl.DataFrame) -> dict[int, tuple[int, int]]:
    """Program index -> (Defender rows, connections those rows stand for)."""
    per = (
        plan.filter(pl.col(C.PROG) >= 0)
        .group_by(C.PROG)
        .agg(pl.len().alias("rows"), pl.col(C.AGG_CONNECTIONS).sum().alias("conns"))
    )
    out = {k: (0, 0) for k in range(len(PROGRAMS))}
    for k, rows, conns in per.iter_rows():
        out[int(k)] = (int(rows), int(conns))
    return out
