"""Detector ``rare_destinations``: new, rare destinations of servers running third-party
software (seed 004, Cyb3rMonk's "Suspicious Network Connections - Supply Chain Attack").

The seed's steps, kept in order:

1. Servers: DeviceInfo rows of the lookback with a non-empty OSPlatform, a DeviceType
   other than "Workstation" (an empty type counts as a server, as ``<>`` does in KQL)
   and an OSPlatform other than macOS.
2. Third-party companies: ``InitiatingProcessVersionInfoCompanyName`` values seen on
   fewer than ``third_party_max_servers`` distinct servers. An empty company is a value
   like any other, as in KQL (software without version info on few servers is exactly
   the unknown software the seed wants). Servers that ran such software are in scope.
3. Baseline: per (server, remote IP, port) in the lookback, count, first and last seen,
   over *all* of the server's connections (not only the third-party process's).
4. Keep those first seen within ``new_within_days`` of the end of the data.
5. Prevalence: distinct devices (any device, not only servers; DeviceId, else the name)
   that contacted the remote IP in the last ``prevalence_days``, over every event type;
   keep prevalence < ``max_prevalence``. URLs seen for the IP in that time are evidence.

Deviations, each on purpose:

* "Now" is the last timestamp in the data, not the query time: files on disk end in
  the past, and ``ago()`` would make every old export empty.
* Non-public destinations are dropped with ``netclass.public_mask`` (private, loopback,
  link-local, reserved, ...). The seed dropped every IPv4-mapped IPv6 (``::ffff:``)
  address because RemoteIPType "FourToSixMapping" hides whether the IPv4 inside is
  public; loaders normalise mapped addresses to IPv4, so we classify that IPv4 instead.
* The seed ends with ``make_set(Details) by DeviceName``: one row per server. We keep
  one row per (server, remote IP, port) so rows merge with the other detectors'
  candidates on (device, process, remote IP, port); the candidate list groups by device.
* ``score`` (the seed has none) grows as prevalence falls: 1.0 for one device (or no
  recent events), down to 1/(max_prevalence − 1) just under the limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import polars as pl

from detectors.base import schema as S
from detectors.base.errors import DetectorSkipped, InputError
from detectors.base.netclass import public_mask
from detectors.base.progress import Progress
from detectors.hunts.spec import register, register_stages
from detectors.pairs.context import PairContext
from detectors.pairs.population import Population

NAME = "rare_destinations"

E_COUNT = "count"  # events from the server to this IP and port in the lookback
E_PREVALENCE = "prevalence"  # distinct devices contacting the IP in the prevalence window
E_URLS = "urls"  # RemoteUrl values seen for the IP in the prevalence window
E_COMPANIES = "companies"  # third-party companies whose software put the server in scope

OUTPUT_SCHEMA: dict[str, pl.DataType] = {
    **S.CANDIDATE_BASE_SCHEMA,
    E_COUNT: pl.Int64(),
    E_PREVALENCE: pl.Int64(),
    E_URLS: pl.List(pl.String()),
    E_COMPANIES: pl.List(pl.String()),
}


def _doc(text: str) -> dict[str, str]:
    return {"doc": text}


@dataclass(frozen=True)
class RareDestinationParams:
    """The seed's query parameters, with its defaults."""

    lookback_days: float = field(
        default=14.0,
        metadata=_doc(
            "Days of history for the server list, the companies and the baseline. Longer = "
            "fewer destinations look new (precision), more data to scan."
        ),
    )
    new_within_days: float = field(
        default=1.0,
        metadata=_doc(
            "A destination is new when first seen within this many days of the data's end. "
            "Longer = more recall, more noise."
        ),
    )
    third_party_max_servers: int = field(
        default=10,
        metadata=_doc(
            "A company seen on fewer servers than this is third-party. Higher = more servers "
            "in scope (recall), more noise."
        ),
    )
    prevalence_days: float = field(
        default=5.0,
        metadata=_doc("Days over which prevalence (distinct devices per remote IP) is counted."),
    )
    max_prevalence: int = field(
        default=6,
        metadata=_doc(
            "Keep destinations contacted by fewer devices than this. Higher = more recall, "
            "less precision."
        ),
    )
    exclude_actions: tuple[str, ...] = field(
        default=(S.ACTION_LISTENING, S.ACTION_INBOUND),
        metadata=_doc(
            "ActionTypes ignored for the server baseline. The seed drops only listening "
            "sockets; we also drop inbound connections, or every internet scanner that "
            "touches a web server becomes a 'new rare destination'. Set to "
            '["ListeningConnectionCreated"] for the seed\'s behaviour.'
        ),
    )
    workstation_type: str = field(
        default="Workstation",
        metadata=_doc("DeviceInfo DeviceType that marks a workstation (not a server)."),
    )
    excluded_os: tuple[str, ...] = field(
        default=("macOS",),
        metadata=_doc("OSPlatform values never treated as servers."),
    )


def empty_output() -> pl.DataFrame:
    return pl.DataFrame(schema=OUTPUT_SCHEMA)


def _validate(params: RareDestinationParams) -> None:
    for name in ("lookback_days", "new_within_days", "prevalence_days"):
        if getattr(params, name) <= 0:
            raise InputError(f"[detectors.{NAME}] {name} must be positive")
    if params.max_prevalence < 1 or params.third_party_max_servers < 1:
        raise InputError(
            f"[detectors.{NAME}] max_prevalence and third_party_max_servers must be at least 1"
        )


def servers(device_info: pl.DataFrame, since: datetime, params: RareDestinationParams) -> list[str]:
    """Device names DeviceInfo calls servers (step 1 of the seed)."""
    ts = pl.col(S.DI_TIMESTAMP)
    platform = pl.col(S.DI_OS_PLATFORM)
    kind = pl.col(S.DI_DEVICE_TYPE).fill_null("")
    chosen = device_info.filter(
        (ts.is_null() | (ts > since))
        & platform.is_not_null()
        & (platform != "")
        & (kind != params.workstation_type)
        & ~platform.is_in(list(params.excluded_os))
        & pl.col(S.DI_DEVICE_NAME).is_not_null()
    )
    return chosen.get_column(S.DI_DEVICE_NAME).unique().sort().to_list()


def _server_rows(since: datetime, names: list[str], params: RareDestinationParams) -> pl.Expr:
    """The seed's repeated filter but for the public check: lookback, servers, no listening."""
    action = pl.col(S.ACTION)
    return (
        (pl.col(S.TIMESTAMP) > since)
        & pl.col(S.DEVICE_NAME).is_in(names)
        & (action.is_null() | ~action.is_in(list(params.exclude_actions)))
        & pl.col(S.REMOTE_IP).is_not_null()
    )


def _server_events(
    events: pl.DataFrame, since: datetime, names: list[str], params: RareDestinationParams
) -> pl.DataFrame:
    """The seed's repeated filter: lookback, servers, no listening, public destinations."""
    frame = events.filter(_server_rows(since, names, params))
    if frame.height:
        frame = frame.filter(public_mask(frame, S.REMOTE_IP, S.REMOTE_IP_TYPE))
    return frame.with_columns(pl.col(S.COMPANY).fill_null(""))


def rare_companies(
    population: Population, server_rows: pl.Expr, params: RareDestinationParams
) -> pl.Series:
    """Companies seen on fewer than ``third_party_max_servers`` servers, over all events.

    Asked of the whole input: in a partitioned run each partition holds some servers.
    """
    query = (
        population.events.filter(server_rows & population.is_public())
        .group_by(pl.col(S.COMPANY).fill_null(""))
        .agg(pl.col(S.DEVICE_NAME).n_unique().alias("_servers"))
        .filter(pl.col("_servers") < params.third_party_max_servers)
        .select(S.COMPANY)
    )
    # every partition asks the same question: remember the answer
    key = ("rare_companies", str(server_rows), params.third_party_max_servers)
    result: pl.Series = population.remember(key, lambda: population.collect(query).to_series())
    return result


def third_party_servers(
    frame: pl.DataFrame, params: RareDestinationParams, rare: pl.Series | None = None
) -> pl.DataFrame:
    """Per server: the third-party companies whose software it ran (step 2).

    ``rare`` is the third-party companies when known from the whole input; otherwise
    they are counted over ``frame``.
    """
    if rare is None:
        rare = (
            frame.group_by(S.COMPANY)
            .agg(pl.col(S.DEVICE_NAME).n_unique().alias("_servers"))
            .filter(pl.col("_servers") < params.third_party_max_servers)
            .get_column(S.COMPANY)
        )
    return (
        frame.filter(pl.col(S.COMPANY).is_in(rare.implode()))
        .group_by(S.DEVICE_NAME)
        .agg(pl.col(S.COMPANY).unique().sort().alias(E_COMPANIES))
    )


def prevalence(population: Population, ips: pl.Series, since: datetime) -> pl.DataFrame:
    """Per remote IP: distinct devices and URLs since ``since``, over every event (step 5)."""
    device = pl.coalesce(pl.col(S.DEVICE_ID), pl.col(S.DEVICE_NAME))
    url = pl.col(S.REMOTE_URL)

    query = (
        population.events.filter(
            (pl.col(S.TIMESTAMP) > since) & pl.col(S.REMOTE_IP).is_in(ips.implode())
        )
        .group_by(S.REMOTE_IP)
        .agg(
            device.n_unique().cast(pl.Int64).alias(E_PREVALENCE),
            url.filter(url.is_not_null() & (url != "")).unique().sort().alias(E_URLS),
        )
    )
    return population.collect(query)


def shared_prevalence(
    population: Population,
    ips: pl.Series,
    since: datetime,
    server_rows: pl.Expr,
    new_since: datetime,
    third_party: pl.Series,
) -> pl.DataFrame:
    """``prevalence`` of ``ips``; on disk, answered from one remembered query.

    Each partition asks about its own few new destinations, and each question scanned
    every partition: a pass over the whole input per partition. On disk the population
    is asked once, about the addresses of every (server, address, port) of the public
    ``server_rows`` of servers that run ``third_party`` software, first seen after
    ``new_since`` (what the partitions will ask: a wider set held addresses that every
    device reaches, whose URL lists cost memory), and each partition picks its rows; an
    address outside that set (its server's earlier rows were not public, say) is asked
    directly. Addresses are counted one by one,
    so the rows are those a direct question gives.
    """
    if not population.streaming:
        return prevalence(population, ips, since)

    public = population.is_public()  # not inside ``remember``: it may remember itself

    def compute() -> tuple[pl.Series, pl.DataFrame]:
        first = pl.col(S.TIMESTAMP).min()
        rows = population.events.filter(server_rows & public)
        company = pl.col(S.COMPANY).fill_null("")
        in_scope = rows.filter(company.is_in(third_party.implode())).select(S.DEVICE_NAME)
        query = (
            rows.join(in_scope.unique(), on=S.DEVICE_NAME, how="semi")
            .group_by(S.DEVICE_NAME, S.REMOTE_IP, S.REMOTE_PORT)
            .agg(first.alias("_first"))
            .filter(pl.col("_first") > new_since)
            .select(pl.col(S.REMOTE_IP).unique())
        )
        asked = population.collect(query).to_series()
        return asked, prevalence(population, asked, since)

    key = ("prevalence", since, new_since, str(server_rows), tuple(third_party.sort().to_list()))
    asked, answers = population.remember(key, compute)
    picked = answers.filter(pl.col(S.REMOTE_IP).is_in(ips.implode()))
    missing = ips.filter(~ips.is_in(asked.implode()))
    if missing.len():
        picked = pl.concat([picked, prevalence(population, missing, since)])
    return picked


def _commonest_process(frame: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """The most frequent process per key (ties: alphabetical; null if none known)."""
    return (
        frame.filter(pl.col(S.PROCESS).is_not_null())
        .group_by([*keys, S.PROCESS])
        .agg(pl.len().alias("_uses"))
        .sort([*keys, "_uses", S.PROCESS], descending=[False] * len(keys) + [True, False])
        .group_by(keys, maintain_order=True)
        .agg(pl.col(S.PROCESS).first())
    )


@register(
    NAME, "New, rare destinations of servers that run third-party software", RareDestinationParams
)
def run(dataset: PairContext, params: RareDestinationParams, progress: Progress) -> pl.DataFrame:
    """Rows per (server, remote IP, port) first seen lately and contacted by few devices."""
    _validate(params)
    if dataset.device_info is None:
        raise DetectorSkipped(
            "needs a DeviceInfo export: add a Defender DeviceInfo file (DeviceName, "
            "DeviceType, OSPlatform) to tell servers from workstations"
        )
    events = dataset.events
    population = dataset.everyone()  # "now", companies and prevalence: the whole input
    now = population.time_bounds()[1]
    if not isinstance(now, datetime):
        return empty_output()
    progress.report(NAME, 0.0, "finding servers")
    since = now - timedelta(days=params.lookback_days)
    server_names = servers(dataset.device_info, since, params)
    scoped = _server_events(events, since, server_names, params)
    third_party = rare_companies(population, _server_rows(since, server_names, params), params)
    in_scope = third_party_servers(scoped, params, third_party)
    progress.report(NAME, 0.4, f"{in_scope.height:,} servers run third-party software")

    keys = [S.DEVICE_NAME, S.REMOTE_IP, S.REMOTE_PORT]
    server_events = scoped.filter(
        pl.col(S.DEVICE_NAME).is_in(in_scope.get_column(S.DEVICE_NAME).implode())
    )
    baseline = server_events.group_by(keys).agg(
        pl.len().cast(pl.Int64).alias(E_COUNT),
        pl.col(S.CONNECTIONS).fill_null(1).sum().cast(pl.Int64).alias(S.C_CONNECTIONS),
        pl.col(S.TIMESTAMP).min().alias(S.C_FIRST_SEEN),
        pl.col(S.TIMESTAMP).max().alias(S.C_LAST_SEEN),
    )
    new_since = now - timedelta(days=params.new_within_days)
    new = baseline.filter(pl.col(S.C_FIRST_SEEN) > new_since)
    spread = shared_prevalence(
        population,
        new.get_column(S.REMOTE_IP).unique(),
        now - timedelta(days=params.prevalence_days),
        _server_rows(since, server_names, params),
        new_since,
        third_party,
    )
    progress.report(NAME, 0.8, f"{new.height:,} new destinations")

    rare = new.join(spread, on=S.REMOTE_IP, how="left").filter(
        pl.col(E_PREVALENCE).is_null() | (pl.col(E_PREVALENCE) < params.max_prevalence)
    )
    steps = max(params.max_prevalence - 1, 1)
    score = (
        pl.when(pl.col(E_PREVALENCE).is_null())
        .then(1.0)
        .otherwise((params.max_prevalence - pl.col(E_PREVALENCE)) / steps)
        .clip(0.0, 1.0)
    )
    result = (
        rare.join(_commonest_process(server_events, keys), on=keys, how="left", nulls_equal=True)
        .join(in_scope, on=S.DEVICE_NAME, how="left")
        .with_columns(
            pl.lit(NAME).alias(S.C_DETECTOR),
            pl.col(S.DEVICE_NAME).alias(S.C_DEVICE),
            score.alias(S.C_SCORE),
            pl.col(E_URLS).fill_null(pl.lit([], dtype=pl.List(pl.String()))),
        )
        .select([pl.col(name).cast(dtype) for name, dtype in OUTPUT_SCHEMA.items()])
        .sort(
            [S.C_SCORE, S.C_DEVICE, S.C_REMOTE_IP, S.C_REMOTE_PORT],
            descending=[True, False, False, False],
            nulls_last=True,
        )
    )
    progress.report(NAME, 1.0, f"{result.height:,} candidates")
    return result


def combine(
    parts: list[pl.DataFrame],
    dataset: PairContext,
    params: RareDestinationParams,
    progress: Progress,
) -> pl.DataFrame:
    """Partitions hold whole servers and ask the population for the rest: only order."""
    return pl.concat(parts, how="vertical").sort(
        [S.C_SCORE, S.C_DEVICE, S.C_REMOTE_IP, S.C_REMOTE_PORT],
        descending=[True, False, False, False],
        nulls_last=True,
    )


register_stages(NAME, run, combine)
