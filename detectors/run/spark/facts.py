"""Population facts computed in Spark, and the Population that answers from them.

A hunt running on one device group (in an executor) or the ranking on the driver asks
the ``Population`` about every event: when the data starts and ends, which addresses
are public, which have URLs, which names each address has, and (for the evidence)
how many devices go out to public addresses. Spark computes each answer once over all
events; executors and the driver get them as a ``KnownPopulation``, whose answers are
remembered before anyone asks. Each answer is the same polars result the local
``Population`` query returns, built from Spark's distinct values by the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import polars as pl

from detectors.base import schema as S
from detectors.base.netclass import public_addresses
from detectors.pairs.population import Population
from detectors.rank.evidence import OUTBOUND_SUMMARY, not_outbound_actions

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_DEV = "_device"


def _utc(micros: int | None) -> datetime | None:
    return None if micros is None else _EPOCH + timedelta(microseconds=int(micros))


@dataclass(frozen=True)
class Facts:
    """Answers about every event, picklable (shipped to executors)."""

    bounds: tuple[datetime | None, datetime | None]
    public: list[str]
    url_addresses: list[str]
    url_names: pl.DataFrame  # distinct (ip, remote_url) of events with a URL
    public_devices: int
    any_company: bool
    outbound_start: datetime | None
    outbound_span_us: int | None
    outbound_rows: int


def compute_facts(events: DataFrame) -> Facts:
    """Every fact in four Spark jobs over the cached events: one aggregate row, the
    distinct addresses (with whether any of their events had a URL), the distinct
    (address, URL) pairs, and the devices going out to public addresses."""
    from pyspark.sql import functions as F

    ts = F.unix_micros(F.col(S.TIMESTAMP))
    action = F.col(S.ACTION)
    own = action.isNull() | ~action.isin(list(not_outbound_actions()))
    placed = S.DIRECTION in events.columns  # as ``evidence``: inbound rows turned round count
    if placed:
        own = own | F.coalesce(F.col(S.DIRECTION) == S.DIR_INBOUND, F.lit(False))
    out = F.col(S.REMOTE_IP).isNotNull() & own
    row = events.select(
        F.min(ts),
        F.max(ts),
        F.max(F.col(S.COMPANY).isNotNull()),
        F.min(F.when(out, ts)),
        F.max(F.when(out, ts)),
        F.count(F.when(out, F.lit(1))),
    ).first()
    assert row is not None
    first, last, company, start, end, rows = row
    url = F.col(S.REMOTE_URL)
    addresses = events.groupBy(S.REMOTE_IP).agg(F.max(url.isNotNull()).alias("_url")).collect()
    public = public_addresses(pl.Series(S.REMOTE_IP, [r[0] for r in addresses], dtype=pl.String))
    url_addresses = [r[0] for r in addresses if r[1]]
    pairs = events.filter(url.isNotNull() & (url != "")).select(S.REMOTE_IP, S.REMOTE_URL)
    url_names = pl.from_arrow(pairs.distinct().toArrow())
    assert isinstance(url_names, pl.DataFrame)
    public_df = events.sparkSession.createDataFrame(
        [(ip,) for ip in public], f"{S.REMOTE_IP} string"
    )
    device = F.coalesce(F.col(S.DEVICE_NAME), F.col(S.DEVICE_ID))
    if placed:  # public means hunted: outbound or inbound (``Population.is_public``)
        hunted = F.col(S.DIRECTION).isin(list(S.HUNTED_DIRECTIONS))
        going_out = events.filter(out & F.coalesce(hunted, F.lit(False)))
    else:
        going_out = events.filter(out).join(F.broadcast(public_df), S.REMOTE_IP, "left_semi")
    devices = going_out.select(F.countDistinct(device)).first()
    assert devices is not None
    return Facts(
        bounds=(_utc(first), _utc(last)),
        public=public,
        url_addresses=url_addresses,
        url_names=url_names.cast({S.REMOTE_IP: pl.String, S.REMOTE_URL: pl.String}),
        public_devices=int(devices[0]),
        any_company=bool(company),
        outbound_start=_utc(start),
        outbound_span_us=None if start is None else int(end - start),
        outbound_rows=int(rows),
    )


def _names_by_ip(facts: Facts, names: pl.DataFrame) -> pl.DataFrame:
    """``Population.names_by_ip`` from the distinct (ip, URL) pairs and the side table."""
    from_events = facts.url_names.select(
        pl.col(S.REMOTE_IP).alias(S.NAME_IP),
        pl.col(S.REMOTE_URL).alias(S.NAME),
        pl.lit("remote_url").alias(S.NAME_SOURCE),
    )
    both = pl.concat([names, from_events], how="vertical_relaxed")
    return both.group_by(S.NAME_IP).agg(pl.col(S.NAME).unique().sort().alias("names"))


def _outbound_summary(facts: Facts) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The three whole-input frames ``evidence.context_facts`` would query."""
    hosts = pl.DataFrame({_DEV: [facts.public_devices]}, schema={_DEV: pl.UInt32})
    company = pl.DataFrame({S.COMPANY: [facts.any_company]})
    bounds = pl.DataFrame(
        {
            "start": [facts.outbound_start],
            "us": [facts.outbound_span_us],
            "rows": [facts.outbound_rows],
        },
        schema={"start": pl.Datetime("us", "UTC"), "us": pl.Int64, "rows": pl.UInt32},
    )
    return hosts, company, bounds


class KnownPopulation(Population):
    """A ``Population`` whose answers about every event are known in advance.

    ``events`` is what the holder has (one device group, or the driver's slice of
    candidate-related rows); questions outside the known ones are asked of it.
    """

    def __init__(self, events: pl.LazyFrame, names: pl.DataFrame, facts: Facts) -> None:
        # Marked streaming, as the partitions' population is: the run loop then leaves
        # the events unplaced in the network (placing needs every event at once).
        super().__init__(events, names, streaming=True)
        self._answers.update(
            {
                "bounds": facts.bounds,
                "public": facts.public,
                "url_addresses": pl.Series(S.REMOTE_IP, facts.url_addresses, dtype=pl.String),
                "names_by_ip": _names_by_ip(facts, self.names),
                OUTBOUND_SUMMARY: _outbound_summary(facts),
            }
        )


def known_population(events: pl.DataFrame, names: pl.DataFrame, facts: Facts) -> Any:
    return KnownPopulation(events.lazy(), names, facts)
