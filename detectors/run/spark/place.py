"""Network placement on Spark: the decisions from evidence gathered in executors, the
rows placed there by the same polars function a run in memory uses.

Placement (``pairs.network``) needs two answers about every event before any row can be
placed: which address:port is a proxy, which public address a sensor watches. Each is
taken from small evidence (distinct rows) that every Arrow batch yields on its own;
Spark keeps the distinct ones and the driver decides, as the partitioned strategy does
partition by partition. The decisions go back to the executors with the function, and
every batch is placed there (``network.annotated``: a per-row transform), before the
events are grouped by device, so a turned-round inbound row meets our host's group.

Exact repeats are dropped per device group, after placing; a run in memory drops them
before. Placing can make two different rows equal (an inbound row's ephemeral port is
dropped), so each row carries a hash of its fields as loaded (``LOADED_ROW``): rows
equal after placing are repeats only when they were equal before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa

from detectors.base import schema as S
from detectors.base.config import NetworkSettings
from detectors.pairs.egress import EgressCount
from detectors.pairs.network import (
    LINK_COLUMNS,
    PROXY_COLUMNS,
    Decisions,
    annotated,
    decide_monitored,
    decide_proxies,
    link,
    missing_evidence,
    monitored_evidence,
    named_rows_to,
    proxy_evidence,
)
from detectors.pairs.population import INPUT_ROW
from detectors.pairs.proxy import X_ENDPOINT, proxy_targets
from detectors.rank.evidence import FAILED_STATES
from detectors.run.spark.read import conform_events

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

LOADED_ROW = "__loaded_row"  # a hash of the row's fields as loaded (see the docstring)
# after the canonical ones, in the order a run in memory gives them
PLACED_COLUMNS = (LOADED_ROW, S.VIA_PROXY, S.ICMP_TYPE, S.DIRECTION, S.PROXY_SERVER)
_SENSOR_COLUMNS = (S.DEVICE_ID, S.LOCAL_IP, S.PROCESS, S.REMOTE_IP)
_ARROW = {
    pl.Datetime: pa.timestamp("us", tz="UTC"),
    pl.String: pa.string(),
    pl.Int32: pa.int32(),
    pl.Int64: pa.int64(),
}


def _arrow_schema(
    columns: Sequence[str], extra: Sequence[tuple[str, pa.DataType]] = ()
) -> pa.Schema:
    fields = [pa.field(c, _ARROW[type(S.EVENT_SCHEMA[c])]) for c in columns]
    return pa.schema([*fields, *(pa.field(name, kind) for name, kind in extra)])


def placed_schema() -> pa.Schema:
    """The Arrow schema of placed events in Spark: canonical, input row, placement."""
    extra = [(INPUT_ROW, pa.int64()), (LOADED_ROW, pa.int64())]
    extra += [(S.VIA_PROXY, pa.string()), (S.ICMP_TYPE, pa.int32()), (S.DIRECTION, pa.string())]
    return _arrow_schema(list(S.EVENT_SCHEMA), extra)


def conform_placed(frame: pl.DataFrame) -> pl.DataFrame:
    """``read.conform_events`` keeping the placement columns (input order)."""
    present = [c for c in PLACED_COLUMNS if c in frame.columns]
    if not present:
        return conform_events(frame)
    frame = frame.sort(INPUT_ROW)
    types = {LOADED_ROW: pl.Int64, S.ICMP_TYPE: pl.Int32, S.VIA_PROXY: pl.String}
    extras = frame.select(present).cast({c: t for c, t in types.items() if c in present})
    return conform_events(frame).with_columns(extras)


def collect_placed(frame: DataFrame) -> pl.DataFrame:
    """Spark rows of (placed) events as a polars frame, input order."""
    collected = pl.from_arrow(frame.toArrow())
    assert isinstance(collected, pl.DataFrame)
    return conform_placed(collected)


def _mapped(
    events: DataFrame, function: Callable[[pl.DataFrame], pl.DataFrame], schema: pa.Schema
) -> DataFrame:
    """``function`` over every Arrow batch of ``events`` (in executors), as ``schema``."""
    from pyspark.sql.pandas.types import from_arrow_schema

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            frame = pl.from_arrow(batch)
            assert isinstance(frame, pl.DataFrame)
            out = function(conform_events(frame)).select(schema.names)
            yield from out.to_arrow().cast(schema).to_batches()

    return events.mapInArrow(run, from_arrow_schema(schema))


def _distinct(
    events: DataFrame, function: Callable[[pl.DataFrame], pl.DataFrame], columns: Sequence[str]
) -> pl.DataFrame:
    """The distinct rows ``function`` finds in the batches, on the driver."""
    schema = _arrow_schema(columns)
    table = _mapped(events, function, schema).distinct().toArrow()
    found = pl.from_arrow(table)
    assert isinstance(found, pl.DataFrame)
    return found.cast({c: S.EVENT_SCHEMA[c] for c in columns})


def decide_in_spark(events: DataFrame, app: pl.DataFrame, settings: NetworkSettings) -> Decisions:
    """``network.decide`` with Spark gathering the evidence: proxies, then monitored hosts."""
    targets = proxy_targets(app)
    evidence = _distinct(events, lambda f: proxy_evidence(f, targets, settings), PROXY_COLUMNS)
    extra = missing_evidence(evidence, targets, settings)
    if extra:  # a CONNECT to a public address: its named rows from every batch
        more = _distinct(events, lambda f: named_rows_to(f, extra), PROXY_COLUMNS)
        evidence = pl.concat([evidence, more])
    proxies = decide_proxies(evidence, targets, settings)
    endpoints = proxies.get_column(X_ENDPOINT).to_list()
    sensor = _distinct(events, lambda f: monitored_evidence(f, targets, endpoints), _SENSOR_COLUMNS)
    return Decisions(settings, targets, proxies, decide_monitored(sensor, settings))


def place_in_spark(events: DataFrame, decisions: Decisions) -> DataFrame:
    """Every event placed (in executors), external-only rows kept and marked."""
    fields = [c for c in S.EVENT_SCHEMA if c != S.SOURCE_FILE]

    def place(frame: pl.DataFrame) -> pl.DataFrame:
        loaded = pl.struct(fields).hash().reinterpret(signed=True).alias(LOADED_ROW)
        return annotated(frame.with_columns(loaded), decisions)

    return _mapped(events, place, placed_schema())


def link_in_spark(
    placed: DataFrame, app: pl.DataFrame, decisions: Decisions
) -> tuple[DataFrame, EgressCount, int]:
    """A proxy's egress linked (``network.link``) over the rows it reads, collected to
    the driver (exact repeats dropped first, as in memory); the answer, keyed by
    ``LOADED_ROW`` (shared by repeats), joined back in Spark; and how many exact
    repeats went with the egress rows set aside (no device group sees them)."""
    from pyspark.sql import functions as F

    wanted = F.col(S.VIA_PROXY).isNotNull() | F.col(S.LOCAL_IP).isin(decisions.addresses)
    table = placed.filter(wanted).select(INPUT_ROW, LOADED_ROW, *LINK_COLUMNS).toArrow()
    rows = pl.from_arrow(table)
    assert isinstance(rows, pl.DataFrame)
    every = rows.with_columns(pl.col(S.TIMESTAMP).cast(S.EVENT_SCHEMA[S.TIMESTAMP]))
    rows = every.sort(INPUT_ROW).unique(LOADED_ROW, keep="first", maintain_order=True)
    links = link(rows.drop(INPUT_ROW), app, decisions, LOADED_ROW)
    gone = every.get_column(LOADED_ROW).is_in(links.dropped.implode())
    repeats = int(gone.sum()) - links.dropped.len()
    spark = placed.sparkSession
    dropped = spark.createDataFrame(
        [(int(v),) for v in links.dropped.to_list()], f"{LOADED_ROW} long"
    )
    servers = spark.createDataFrame(
        [(int(r), v) for r, v in links.servers.iter_rows()],
        f"{LOADED_ROW} long, {S.PROXY_SERVER} string",
    )
    joined = placed.join(F.broadcast(dropped), LOADED_ROW, "left_anti").join(
        F.broadcast(servers), LOADED_ROW, "left"
    )
    return joined, links.count, repeats


def outside() -> Column:
    """Spark's condition for external-only rows (set aside, counted)."""
    return _is(S.DIRECTION, S.DIR_EXTERNAL_ONLY)


def placed_counts() -> Column:
    """Rows the evidence counts only over placed events, beyond the candidates' own:
    inbound rows that were answered (``evidence._served_query``: distinct sources per
    served port of our host)."""
    from pyspark.sql import functions as F

    failed = F.coalesce(F.col(S.ACTION).isin(list(FAILED_STATES)), F.lit(False))
    return _is(S.DIRECTION, S.DIR_INBOUND) & ~failed


def resolver_rows() -> Column:
    """Rows ``infrastructure.resolvers_query`` counts: internal DNS (port 53)."""
    from pyspark.sql import functions as F

    return _is(S.DIRECTION, S.DIR_INTERNAL) & F.coalesce(F.col(S.REMOTE_PORT) == 53, F.lit(False))


def _is(column: str, value: str) -> Column:
    from pyspark.sql import functions as F

    return F.coalesce(F.col(column) == value, F.lit(False))


def count_outside(placed: DataFrame) -> tuple[int, int]:
    """External-only rows set aside: how many distinct ones, and how many exact repeats
    among them (a run in memory drops those with the other repeats, before placing)."""
    from pyspark.sql import functions as F

    fields = [c for c in placed.columns if c not in (S.SOURCE_FILE, INPUT_ROW)]
    grouped = placed.filter(outside()).groupBy(*fields).count()
    row = grouped.agg(F.count(F.lit(1)), F.sum("count")).first()
    distinct, rows = (int(row[0] or 0), int(row[1] or 0)) if row is not None else (0, 0)
    return distinct, rows - distinct


def drop_loaded(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.drop(LOADED_ROW, strict=False)
