"""The Spark strategy: hunts' per-pair work in executors, ranking on the driver.

Why this seam. Every hunt is already split in two (``hunts.spec.Stages``) for input
bigger than memory: ``partial`` runs on the events of some devices and returns
something small, ``combine`` joins those and applies what needs everyone. The
partitioned strategy runs ``partial`` per device partition on disk; this one runs the
very same function per device group inside Spark executors (``applyInArrow``), on a
``PairContext`` built there from the group's canonical events, whose population answers
from facts Spark computed over all events (``facts``). The pair index, deltas and
every statistic are therefore computed by the same numpy code in both engines, which
is what makes the scores equal, not merely close.

What comes back to the driver: each group's partial results (candidate rows and
per-pair summaries, as data: ``codec``), the facts, and for the ranking a slice: every
outbound event to a candidate's address, plus the other outbound events that can count
devices per process, port, domain or user agent, reduced to their distinct keys
(``evidence_slice``). ``rare_destinations`` runs on the driver over the servers' events
and the events to the addresses they reached: all it asks of everyone is answered by
that slice.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa

from detectors.base import schema as S
from detectors.base.config import Config
from detectors.base.errors import Cancelled, InputError
from detectors.base.progress import NULL_PROGRESS, Progress
from detectors.hunts.registry import get, params_for
from detectors.pairs.context import PairContext
from detectors.pairs.population import INPUT_ROW
from detectors.run.outcome import DetectorOutcome, run_detector
from detectors.run.spark.codec import decode, encode
from detectors.run.spark.facts import Facts, KnownPopulation, compute_facts
from detectors.run.spark.read import SparkInput, collect_events, conform_events, read_inputs

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

GROUP = "__group"
_RESULT_SCHEMA = "group int, detector string, kind string, blob binary"
PARTIAL, SKIPPED, FAILED, DUPLICATES = "partial", "skipped", "error", "duplicates"
RARE_DESTINATIONS = "rare_destinations"  # runs on the driver (see the module docstring)


@dataclass(frozen=True)
class GroupJob:
    """What every executor needs to run the partial stages (broadcast once)."""

    detectors: tuple[str, ...]
    config: Config
    names: pl.DataFrame
    app: pl.DataFrame
    device_info: pl.DataFrame | None
    facts: Facts


# --- in an executor ---------------------------------------------------------------------------


def run_group(table: pa.Table, job: GroupJob) -> pa.Table:
    """Every chosen detector's ``partial`` over one device group's events."""
    from detectors.load import _without_duplicates
    from detectors.run.partitioned import _Progressing, _run_partial

    group = int(table.column(GROUP)[0].as_py()) if table.num_rows else -1
    collected = pl.from_arrow(table)
    assert isinstance(collected, pl.DataFrame)
    events, dropped = _without_duplicates(conform_events(collected).drop(INPUT_ROW))
    dataset = PairContext(
        events=events,
        names=job.names,
        app=job.app,
        device_info=job.device_info,
        population=KnownPopulation(events.lazy(), job.names, job.facts),
    )
    rows: list[dict[str, Any]] = [
        {"group": group, "detector": "", "kind": DUPLICATES, "blob": str(dropped).encode()}
    ]
    for name in job.detectors:
        item = _Progressing(DetectorOutcome(name))
        _run_partial(item, dataset, job.config, NULL_PROGRESS)
        outcome = item.outcome
        if outcome.skipped is not None:
            kind, blob = SKIPPED, outcome.skipped.encode()
        elif outcome.error is not None:
            kind, blob = FAILED, outcome.error.encode()
        else:
            kind, blob = PARTIAL, encode(item.partials[0])
        rows.append({"group": group, "detector": name, "kind": kind, "blob": blob})
    schema = pa.schema(
        [
            ("group", pa.int32()),
            ("detector", pa.string()),
            ("kind", pa.string()),
            ("blob", pa.binary()),
        ]
    )
    return pa.Table.from_pylist(rows, schema=schema)


# --- on the driver ----------------------------------------------------------------------------


def group_count(spark: SparkSession, events: int, partition_events: int) -> int:
    """Device groups: enough for every core, each at most ``partition_events`` events."""
    cores = max(1, int(spark.sparkContext.defaultParallelism))
    return max(cores, math.ceil(events / max(1, partition_events)))


def _grouped(events: DataFrame, groups: int) -> DataFrame:
    """Each event's device group: a hash of the device name (no name: group 0), so a
    device's events, and a name's, always meet in one group (as partitions on disk)."""
    from pyspark.sql import functions as F

    name = F.col(S.DEVICE_NAME)
    bucket = F.when(name.isNull(), F.lit(0)).otherwise(F.pmod(F.xxhash64(name), F.lit(groups)))
    return events.withColumn(GROUP, bucket.cast("int"))


def run_partials(
    events: DataFrame, job: GroupJob, groups: int
) -> tuple[dict[str, list[Any]], dict[str, DetectorOutcome], int]:
    """The partial stages in executors: partials per detector (in group order), the
    outcomes of detectors that skipped or failed somewhere, and duplicates dropped."""
    spark = events.sparkSession
    shared = spark.sparkContext.broadcast(job)

    def apply(table: pa.Table) -> pa.Table:
        return run_group(table, shared.value)

    rows = (
        _grouped(events, groups)
        .groupBy(GROUP)
        .applyInArrow(apply, _RESULT_SCHEMA)
        .toArrow()
        .to_pylist()
    )
    rows.sort(key=lambda r: (r["group"], r["detector"]))
    partials: dict[str, list[Any]] = {name: [] for name in job.detectors}
    outcomes = {name: DetectorOutcome(name) for name in job.detectors}
    duplicates = 0
    for row in rows:
        blob = bytes(row["blob"])
        outcome = outcomes.get(row["detector"])
        if row["kind"] == DUPLICATES:
            duplicates += int(blob.decode())
        elif outcome is None:
            continue
        elif row["kind"] == SKIPPED:
            outcome.skipped = outcome.skipped or blob.decode()
        elif row["kind"] == FAILED:
            outcome.error = outcome.error or blob.decode()
        else:
            stages = get(row["detector"]).stages
            assert stages is not None
            partials[row["detector"]].append(decode(blob, stages.partial.__module__))
    return partials, outcomes, duplicates


def combine_all(
    partials: Mapping[str, list[Any]],
    outcomes: dict[str, DetectorOutcome],
    whole: PairContext,
    config: Config,
    progress: Progress,
) -> None:
    """Each detector's ``combine`` on the driver, as the partitioned strategy does."""
    for name, parts in partials.items():
        outcome = outcomes[name]
        if outcome.skipped is not None or outcome.error is not None:
            continue
        stages = get(name).stages
        assert stages is not None
        began = time.perf_counter()
        try:
            outcome.hits = stages.combine(parts, whole, params_for(config, name), progress)
        except (Cancelled, InputError):
            raise
        except Exception as exc:  # one detector's bug must not lose the others
            outcome.error = f"{type(exc).__name__}: {exc}"
        outcome.seconds += time.perf_counter() - began


def _sliced(frame: DataFrame, names: pl.DataFrame, facts: Facts, source: SparkInput) -> PairContext:
    """Spark rows collected into a PairContext whose population knows the facts."""
    from detectors.load import _without_duplicates

    rows = collect_events(frame)
    events, _ = _without_duplicates(rows.drop(INPUT_ROW))
    population = KnownPopulation(rows.lazy(), names, facts)
    return PairContext(
        events=events,
        names=names,
        app=source.app,
        device_info=source.device_info,
        files=list(source.files),
        warnings=list(source.warnings),
        population=population,
    )


def server_slice(source: SparkInput, facts: Facts, config: Config) -> PairContext:
    """What ``rare_destinations`` reads: servers' events and events to their addresses."""
    from pyspark.sql import functions as F

    from detectors.hunts.rare_destinations import servers

    events = source.events
    info = source.device_info
    now = facts.bounds[1]
    if info is None or now is None:
        return _sliced(events.limit(0), source.names, facts, source)
    params = params_for(config, RARE_DESTINATIONS)
    chosen = servers(info, now - timedelta(days=params.lookback_days), params)
    on_server = F.col(S.DEVICE_NAME).isin(chosen)
    reached = events.filter(on_server).select(S.REMOTE_IP).distinct().withColumn("_hit", F.lit(1))
    joined = events.join(F.broadcast(reached), S.REMOTE_IP, "left")
    wanted = joined.filter(on_server | F.col("_hit").isNotNull()).drop("_hit")
    return _sliced(wanted, source.names, facts, source)


def _isin(frame: DataFrame, column: str, values: Sequence[Any], flag: str) -> DataFrame:
    """``frame`` with ``flag`` set where ``column`` is one of ``values`` (a broadcast join,
    where a long ``isin`` list would be planned row by row)."""
    from pyspark.sql import functions as F

    kind = dict(frame.dtypes)[column]
    known = frame.sparkSession.createDataFrame([(v,) for v in values], f"{column} {kind}")
    known = known.distinct().withColumn(flag, F.lit(True))
    return frame.join(F.broadcast(known), column, "left")


def _wanted_names(
    own: pl.DataFrame, ips: list[str], names: pl.DataFrame, app: pl.DataFrame
) -> tuple[list[str], list[str], list[str]]:
    """What the evidence can ask about beyond the candidates' addresses: the URLs, the
    HTTP/TLS uids and the addresses that share a registered domain with a candidate's
    names, and the uids of user agents seen on the candidates' addresses (a superset of
    what ``rank.evidence`` queries, built from the names the driver already holds)."""
    from detectors.base.domains import registered_domains

    uids = own.get_column(S.UID).drop_nulls().unique()
    app_names = app.select(S.APP_UID, pl.coalesce(S.APP_SNI, S.APP_HOST).alias("_n")).filter(
        pl.col("_n").is_not_null()
    )
    candidate_names = pl.concat(
        [
            own.get_column(S.REMOTE_URL).drop_nulls(),
            app_names.filter(pl.col(S.APP_UID).is_in(uids.implode())).get_column("_n"),
            names.filter(pl.col(S.NAME_IP).is_in(ips)).get_column(S.NAME),
        ]
    ).unique()
    domains = registered_domains(candidate_names).drop_nulls().unique()
    every_url = names.get_column(S.NAME).unique()
    urls = every_url.filter(registered_domains(every_url).is_in(domains.implode()))
    named = names.filter(registered_domains(names.get_column(S.NAME)).is_in(domains.implode()))
    by_domain = app_names.filter(
        registered_domains(app_names.get_column("_n")).is_in(domains.implode())
    ).get_column(S.APP_UID)
    agents = app.filter(pl.col(S.APP_UID).is_in(uids.implode())).get_column(S.APP_USER_AGENT)
    by_agent = app.filter(pl.col(S.APP_USER_AGENT).is_in(agents.drop_nulls().implode()))
    wanted_uids = pl.concat([by_domain, by_agent.get_column(S.APP_UID)]).drop_nulls().unique()
    return (
        urls.drop_nulls().to_list(),
        wanted_uids.to_list(),
        named.get_column(S.NAME_IP).drop_nulls().unique().to_list(),
    )


def evidence_slice(source: SparkInput, facts: Facts, hits: Iterable[pl.DataFrame]) -> PairContext:
    """What the ranking reads, in two parts (the module docstring says why):

    * every outbound event to a candidate's address, whole: the candidates' own events,
      the addresses' device counts and first sightings, and what the charts draw;
    * for the device counts per process, port, domain and user agent, the other
      outbound events that can count, reduced to the distinct (device, process, port,
      address, URL, uid) they carry: a count of distinct devices is the same over them.

    The context's events are the first part; its population answers from both.
    """
    from pyspark.sql import functions as F

    from detectors.rank.evidence import not_outbound_actions

    present = [h.select(S.CANDIDATE_KEY) for h in hits if h.height]
    keys = pl.concat(present) if present else pl.DataFrame(schema=dict.fromkeys(S.CANDIDATE_KEY))
    ips = keys.get_column(S.C_REMOTE_IP).drop_nulls().unique().to_list()
    processes = keys.get_column(S.C_PROCESS).drop_nulls().unique().to_list()
    ports = [int(p) for p in keys.get_column(S.C_REMOTE_PORT).drop_nulls().unique().to_list()]
    action = F.col(S.ACTION)
    outbound = source.events.filter(
        F.col(S.REMOTE_IP).isNotNull()
        & (action.isNull() | ~action.isin(list(not_outbound_actions())))
    )
    flagged = _isin(outbound, S.REMOTE_IP, ips, "_own")
    own = collect_events(flagged.filter(F.col("_own").isNotNull()).drop("_own"))
    names = pl.concat(
        [
            source.names.select(S.NAME_IP, S.NAME),
            facts.url_names.select(
                pl.col(S.REMOTE_IP).alias(S.NAME_IP), pl.col(S.REMOTE_URL).alias(S.NAME)
            ),
        ]
    )
    urls, uids, named_ips = _wanted_names(own, ips, names, source.app)
    rest = flagged.filter(F.col("_own").isNull()).drop("_own")
    rest = _isin(
        _isin(_isin(rest, S.REMOTE_URL, urls, "_url"), S.UID, uids, "_uid"),
        S.REMOTE_IP,
        named_ips,
        "_named",
    )
    counted = (
        F.col(S.PROCESS).isin(processes)
        | F.col(S.REMOTE_PORT).isin(ports)
        | F.col("_url").isNotNull()
        | F.col("_uid").isNotNull()
        | F.col("_named").isNotNull()
    )
    reduced = (
        rest.filter(counted)
        .select(
            S.DEVICE_NAME,
            S.DEVICE_ID,
            S.PROCESS,
            S.REMOTE_PORT,
            S.REMOTE_IP,
            S.REMOTE_IP_TYPE,
            F.when(F.col("_url").isNotNull(), F.col(S.REMOTE_URL)).alias(S.REMOTE_URL),
            F.when(F.col("_uid").isNotNull(), F.col(S.UID)).alias(S.UID),
        )
        .distinct()
    )
    table = pl.from_arrow(reduced.toArrow())
    assert isinstance(table, pl.DataFrame)
    others = (
        S.conform(table, "")
        .collect()
        .with_columns(
            pl.lit(None, pl.String).alias(S.SOURCE_FILE), pl.lit(None, pl.Int64).alias(INPUT_ROW)
        )
    )
    from detectors.load import _without_duplicates

    events, _ = _without_duplicates(own.drop(INPUT_ROW))
    everyone = pl.concat([own, others.select(own.columns)], how="vertical")
    return PairContext(
        events=events,
        names=source.names,
        app=source.app,
        device_info=source.device_info,
        files=list(source.files),
        warnings=list(source.warnings),
        population=KnownPopulation(everyone.lazy(), source.names, facts),
    )


def validate_params(config: Config, names: Sequence[str]) -> None:
    """A mistake in a detector's parameters is the user's: said before Spark starts."""
    for name in names:
        params_for(config, name)


@dataclass
class SparkStrategy:
    """The run loop's strategy on Spark (see the module docstring).

    ``context`` reads the inputs in Spark and computes the population facts; the
    context it returns holds the side tables and answers for everyone, with no events.
    ``hunts`` runs the partial stages in executors and combines them here; before its
    outcomes are handed over it fills the context with the candidates' slice of events,
    which the merge ranks and the TUI charts. ``close`` releases the cached events.
    """

    paths: Sequence[str]
    source_format: str | None = None
    master: str | None = None
    conf: tuple[str, ...] = ()
    groups: int | None = None
    spark: SparkSession | None = None
    source: SparkInput | None = None
    facts: Facts | None = None
    timings: dict[str, float] = field(default_factory=dict)
    total: int = 0  # events read
    used_groups: int = 0

    def _session(self) -> SparkSession:
        if self.spark is None:
            from detectors.run.spark.session import parse_conf, spark_session

            self.spark = spark_session(self.master, parse_conf(self.conf))
        return self.spark

    def context(self, config: Config, progress: Progress) -> PairContext:
        from detectors.run.spark.session import spark_errors

        with spark_errors():
            return self._context(config, progress)

    def _context(self, config: Config, progress: Progress) -> PairContext:
        spark = self._session()
        began = time.perf_counter()
        progress.report("load", 0.0, "reading in Spark")
        source = read_inputs(
            spark, [str(p) for p in self.paths], self.source_format, config.mapping
        )
        self.source = source
        self.total = source.events.count()
        self.timings["read"] = time.perf_counter() - began
        progress.report("load", 1.0, f"{self.total:,} events in {len(source.files)} files")
        began = time.perf_counter()
        progress.report("facts", 0.0, "population facts")
        self.facts = compute_facts(source.events)
        self.timings["facts"] = time.perf_counter() - began
        warnings = list(source.warnings)
        if config.network_settings().enabled:  # placing needs every event at once
            warnings.append(
                "the Spark engine does not place events in the network yet: [network] is "
                "not applied (public remote addresses are hunted, as with enabled = false)"
            )
        return PairContext(
            names=source.names,
            app=source.app,
            device_info=source.device_info,
            files=list(source.files),
            warnings=warnings,
            population=KnownPopulation(S.empty_events().lazy(), source.names, self.facts),
        )

    def hunts(
        self, context: PairContext, config: Config, names: Sequence[str], progress: Progress
    ) -> Iterator[DetectorOutcome]:
        """Partial stages in executors, combined here; outcomes come at the end."""
        from detectors.run.spark.session import spark_errors

        with spark_errors():
            outcomes = self._hunts(context, config, names, progress)
        for name in names:
            yield outcomes[name]

    def _hunts(
        self, context: PairContext, config: Config, names: Sequence[str], progress: Progress
    ) -> dict[str, DetectorOutcome]:
        source, facts = self.source, self.facts
        assert source is not None and facts is not None and self.spark is not None, "context()"
        validate_params(config, names)
        began = time.perf_counter()
        in_executors = [n for n in names if n != RARE_DESTINATIONS and get(n).stages is not None]
        count = self.groups or group_count(
            self.spark, self.total, config.engine_settings().partition_events
        )
        self.used_groups = count
        job = GroupJob(
            tuple(in_executors), config, source.names, source.app, source.device_info, facts
        )
        progress.report("detect", 0.0, f"{', '.join(in_executors)} over {count} device groups")
        partials, outcomes, duplicates = run_partials(source.events, job, count)
        combine_all(partials, outcomes, context, config, progress)
        self.timings["detect"] = time.perf_counter() - began
        began = time.perf_counter()
        for name in names:
            if name in outcomes:
                continue
            if get(name).stages is None:
                outcomes[name] = DetectorOutcome(name, skipped="cannot run on Spark")
                continue
            progress.report("detect", 0.9, f"{name} on the driver")
            piece = server_slice(source, facts, config)
            outcomes[name] = run_detector(piece, config, name, progress)
        self.timings["driver hunts"] = time.perf_counter() - began
        began = time.perf_counter()
        progress.report("merge", 0.0, "collecting the candidates' events")
        hits = [outcomes[n].hits for n in names if outcomes[n].hits is not None]
        ranked = evidence_slice(source, facts, [h for h in hits if h is not None])
        context.events = ranked.events
        context.population = ranked.population
        if duplicates:
            context.warnings.append(
                f"{duplicates} duplicate event rows dropped (identical in every field)"
            )
        self.timings["slice"] = time.perf_counter() - began
        return outcomes

    def close(self) -> None:
        """Release the events Spark cached (the session stays for the next run)."""
        if self.source is not None:
            with contextlib.suppress(Exception):  # a lost JVM has nothing left to release
                self.source.release()
