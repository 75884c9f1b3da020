"""Context facts about candidates, computed once over the whole dataset.

Timing says a pair is periodic; context says whether periodic is suspicious here: how
many devices reach the destination (RITA's prevalence modifier), whether it has a
name at all, which process calls it and whether that process is a living-off-the-land
binary, whether the port or the user agent is rare, whether the TLS has no SNI or the
HTTP no Host header, whether the destination is the binary's vendor, whether it is
new, whether the traffic is a scan. Every fact is a group-by over the events,
joined to the candidate keys; ``scoring`` turns facts into points.

Explicit proxies: a candidate whose remote end is a private address with names seen
for its own connections (Defender's RemoteUrl, Zeek's CONNECT target) is a connection
through a proxy. Its names and its prevalence are those of the real destination
(its own names), not of the proxy, which every proxied program shares.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

import polars as pl

from detectors.base import schema as S
from detectors.base.domains import host_of, registered_domain, registered_domains
from detectors.base.netclass import PUBLIC, ip_class_expr
from detectors.pairs import icmp
from detectors.pairs.context import PairContext
from detectors.pairs.population import DEVICE_KEY, INPUT_ROW, Population
from detectors.rank import infrastructure

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

LOLBINS_RESOURCE = "data/lolbins.toml"

# Connection states that mean nobody answered (Defender, then Zeek conn_state).
FAILED_STATES = (
    S.ACTION_FAILED, S.ACTION_FAILED_AGG, "S0", "REJ", "RSTOS0", "RSTRH", "SH", "SHR", "OTH",
)  # fmt: skip
_NOT_OUTBOUND = (S.ACTION_INBOUND, S.ACTION_LISTENING)
# The population's key for the three whole-input answers ``context_facts`` needs (public
# devices, any company, outbound time bounds): a strategy that computed them elsewhere
# (Spark) remembers them under this key and they are not queried again.
OUTBOUND_SUMMARY = "outbound_summary"


def not_outbound_actions() -> tuple[str, ...]:
    """Action types that are not a device going out (for strategies that filter alike)."""
    return _NOT_OUTBOUND


_CORPORATE_WORDS = {
    "inc", "llc", "ltd", "limited", "corp", "corporation", "co", "company", "gmbh", "ag",
    "sa", "sas", "bv", "nv", "plc", "pty", "srl", "spa", "oy", "ab", "as", "kk", "the",
}  # fmt: skip

# Fact columns (scoring reads these).
F_HOSTS = "hosts"
F_IP_DEVICES = "ip_devices"
F_VIA_PROXY = "via_proxy_named"  # a private remote with names of its own (proxy not re-keyed)
F_PROXY = S.C_VIA_PROXY  # the proxy a re-keyed destination was reached through
F_DIRECTION = S.C_DIRECTION  # outbound | inbound (placed events)
F_SERVER_IPS = S.C_SERVER_IPS  # addresses the proxy's linked connections reached
F_ICMP = S.C_ICMP  # "icmp/8 echo": ICMP types of the candidate's rows (never a port)
_PLACED_EXTRA = (S.PROXY_SERVER, S.ICMP_TYPE)
F_SERVED_SOURCES = "served_sources"  # inbound: external sources our port answered
F_NAMES = "names"
F_DOMAIN = "domain"
F_DOMAIN_DEVICES = "domain_devices"
F_PROCESS_DEVICES = "process_devices"
F_LOLBIN = "lolbin"
F_SYSTEM_PROCESS = "system_process"
F_PORT_DEVICES = "port_devices"
F_PROCESS_PORT_SHARE = "process_port_share"
F_COMPANY_MISSING = "company_missing"
F_BYTES_COV = "bytes_cov"
F_RARE_UA = "rare_user_agent"
F_RARE_UA_DEVICES = "rare_user_agent_devices"
F_MISSING_HOST = "missing_host"
F_TLS_NO_SNI = "tls_no_sni"
F_SCANNING = "scanning"
F_FAILED_ONLY = "failed_only"
F_OWN_CONNECTIONS = "own_connections"
F_NEW_DESTINATION = "new_destination"
F_IP_FIRST_SEEN = "ip_first_seen"
F_VENDOR_DOMAIN = "vendor_domain"
F_DEVICE_ID = "seen_device_id"
F_ACCOUNT = "seen_account"

_DEV = "_device"
# A number per device in memory (the device itself on disk): what the population
# counts distinct devices by (see ``device_keys_query``).
_DEV_KEY = "_device_key"
_NAME = "_name"
_DOMAIN = "_domain"
_KEY3 = [S.C_DEVICE, S.C_PROCESS, S.C_REMOTE_IP]


@dataclass(frozen=True)
class ProcessLists:
    """The shipped (or a user's) lists of LOLBins and injection-target system processes."""

    lolbins: frozenset[str]
    system_processes: frozenset[str]


@functools.lru_cache(maxsize=1)
def default_process_lists() -> ProcessLists:
    text = resources.files("detectors.rank").joinpath(LOLBINS_RESOURCE).read_text(encoding="utf-8")
    data = tomllib.loads(text)
    return ProcessLists(
        frozenset(n.lower() for n in data.get("lolbins", {}).get("names", [])),
        frozenset(n.lower() for n in data.get("system_processes", {}).get("names", [])),
    )


_EVENT_COLUMNS = [
    S.TIMESTAMP, S.DEVICE_ID, S.ACCOUNT, S.PROCESS, S.ACTION, S.REMOTE_IP, S.REMOTE_PORT,
    S.REMOTE_URL, S.BYTES_OUT, S.BYTES_IN, S.COMPANY, S.UID, S.CONNECTIONS, S.PROTOCOL,
    S.LOCAL_IP,
]  # fmt: skip


def _outbound(population: Population) -> pl.Expr:
    """Events with a remote end that a pair can be made of: the device's own outbound
    ones, and (placed events) inbound ones turned round to our host."""
    own = ~pl.col(S.ACTION).is_in(list(_NOT_OUTBOUND)).fill_null(False)
    if population.placed:
        own = own | (pl.col(S.DIRECTION) == S.DIR_INBOUND).fill_null(False)
    return pl.col(S.REMOTE_IP).is_not_null() & own


def _outbound_rows(population: Population) -> pl.Expr:
    """``_outbound`` as a filter: in memory, a mask computed once and remembered.

    The merge's queries each select the outbound events; evaluated in each, the test
    cost about 0.01 s of CPU per query at 2M events. A population on disk (or known in
    advance) is asked query by query, so there it stays an expression.
    """
    if population.streaming:
        return _outbound(population)

    def compute() -> pl.Series:
        return population.collect(population.events.select(_outbound(population))).to_series()

    mask: pl.Series = population.remember("outbound_rows", compute)
    return pl.lit(mask)


def device_keys_query(population: Population) -> pl.LazyFrame | None:
    """Per event, a number standing for its device (``_DEV``): equal numbers, equal
    devices; None for a population on disk, which is counted by the devices themselves.

    The merge counts distinct devices per address, process, port and domain over
    millions of rows (a common destination among the candidates brings every one of
    its events). Over numbers those counts cost a third to a half of what they cost
    over the names (at 10M events: the public (device, port) pairs 0.72 -> 0.25 s, a
    common domain's devices 1.2 -> 0.5 s); naming every event's device once costs
    0.37 s (one thread: ``context_facts`` asks it beside the queries that count no
    devices). The numbers are the codes of a categorical: exact, no hash to collide.
    Not remembered: 4 bytes an event, asked once per merge, let go after it.
    """
    if population.streaming:
        return None
    return population.events.select(DEVICE_KEY.cast(pl.Categorical).to_physical().alias(_DEV_KEY))


def _placed_columns(population: Population) -> list[str]:
    if not population.placed:
        return []
    # added by placement when there is something to say (egress linked, ICMP rows)
    have = population.events.collect_schema().names()
    return [S.DIRECTION, S.VIA_PROXY, *(c for c in _PLACED_EXTRA if c in have)]


def outbound_events(population: Population, keys: pl.DataFrame | None = None) -> pl.LazyFrame:
    """Events that go out to a remote address, with a device column and a public flag.

    Lazy on purpose: each fact's query reads only the columns it needs (from memory, or
    from every partition on disk), where collecting the outbound rows once would copy a
    dozen columns of every event.

    ``_DEV_KEY`` is what distinct devices are counted by: the number per device of
    ``keys`` (``device_keys_query``'s answer, set beside the events by a horizontal
    concat, which no filter passes below), else the device itself.
    """
    events = population.events
    if keys is not None:
        events = pl.concat([events, keys.lazy()], how="horizontal")
    ev = events.filter(_outbound_rows(population)).select(
        DEVICE_KEY.alias(_DEV),
        *([] if keys is None else [_DEV_KEY]),
        *_EVENT_COLUMNS,
        *_placed_columns(population),
        population.is_public().alias("_public"),
    )
    return ev if keys is not None else ev.with_columns(pl.col(_DEV).alias(_DEV_KEY))


def candidate_events_query(population: Population, pairs: pl.DataFrame) -> pl.LazyFrame:
    """The outbound events of the given (device, address) pairs (``candidate_events``)."""
    device = DEVICE_KEY.alias(_DEV)
    # The candidates' addresses first (a set test on one column): the device name is
    # then made, and the two-column join done, for their rows only, not every event's.
    addresses = pairs.get_column(S.REMOTE_IP).unique().implode()
    return (
        population.events.filter(_outbound_rows(population) & pl.col(S.REMOTE_IP).is_in(addresses))
        .with_columns(device)
        .join(pairs.unique().lazy(), on=[_DEV, S.REMOTE_IP], how="semi", nulls_equal=True)
    )


def candidate_events(population: Population, rows: pl.DataFrame) -> pl.DataFrame:
    """``candidate_events_query``'s rows in input order, with the public flag.

    Exact repeats are dropped: a loaded dataset has none, but the population of a
    partitioned input is scanned as written (each partition was deduplicated alone).
    """
    if INPUT_ROW in rows.columns:  # partitions on disk: back to the input's row order
        rows = rows.sort(INPUT_ROW).drop(INPUT_ROW)
    fields = [c for c in rows.columns if c not in (S.SOURCE_FILE, _DEV)]
    rows = rows.unique(subset=fields, keep="first", maintain_order=True)
    return rows.with_columns(population.is_public().alias("_public")).select(
        _DEV, *_EVENT_COLUMNS, *_placed_columns(population), "_public"
    )


def _join(left: pl.DataFrame, right: pl.DataFrame, on: list[str]) -> pl.DataFrame:
    return left.join(right, on=on, how="left", nulls_equal=True)


def _per_candidate(keys: pl.DataFrame, events: pl.DataFrame, aggs: list[pl.Expr]) -> pl.DataFrame:
    """Aggregate a candidate's own events: by the full key, or by (device, process,
    remote IP) for candidates without a port (aggregated reports)."""
    ev = events.rename({_DEV: S.C_DEVICE}) if _DEV in events.columns else events
    full = ev.group_by(S.CANDIDATE_KEY).agg(aggs)
    triple = ev.group_by(_KEY3).agg(aggs)
    with_port = keys.filter(pl.col(S.C_REMOTE_PORT).is_not_null())
    without = keys.filter(pl.col(S.C_REMOTE_PORT).is_null())
    parts = [_join(with_port, full, S.CANDIDATE_KEY), _join(without, triple, _KEY3)]
    return pl.concat(parts, how="vertical_relaxed")


def _candidate_names(keys: pl.DataFrame, ev: pl.DataFrame, app: pl.DataFrame) -> pl.DataFrame:
    """Names seen on a candidate's own connections, most frequent first."""
    from_url = ev.filter(pl.col(S.REMOTE_URL).is_not_null()).select(
        pl.col(_DEV), S.PROCESS, S.REMOTE_IP, S.REMOTE_PORT, pl.col(S.REMOTE_URL).alias(_NAME)
    )
    from_app = (
        ev.filter(pl.col(S.UID).is_not_null())
        .select(_DEV, S.PROCESS, S.REMOTE_IP, S.REMOTE_PORT, S.UID)
        .join(
            app.select(S.APP_UID, pl.coalesce(S.APP_SNI, S.APP_HOST).alias(_NAME)).filter(
                pl.col(_NAME).is_not_null()
            ),
            left_on=S.UID,
            right_on=S.APP_UID,
            how="inner",
        )
        .drop(S.UID)
    )
    seen = pl.concat([from_url, from_app], how="vertical_relaxed")
    if seen.height:
        hosts = {v: host_of(v) for v in seen.get_column(_NAME).unique().drop_nulls().to_list()}
        seen = seen.with_columns(
            pl.col(_NAME).replace_strict(hosts, default=None, return_dtype=pl.String())
        ).filter(pl.col(_NAME).is_not_null())
    # Most frequent first (group_by keeps the row order inside each group).
    ranked = (
        seen.group_by(_DEV, S.PROCESS, S.REMOTE_IP, S.REMOTE_PORT, _NAME)
        .len()
        .sort(["len", _NAME], descending=[True, False])
    )
    counted = _per_candidate(keys, ranked, [pl.col(_NAME).alias("_own")])
    return counted.with_columns(
        pl.col("_own")
        .list.unique(maintain_order=True)
        .fill_null(pl.lit([], dtype=pl.List(pl.String)))
    )


def _domain_devices(
    ev: pl.LazyFrame,
    app: pl.DataFrame,
    ip_names: pl.DataFrame,
    wanted: list[str],
    streaming: bool = False,
) -> tuple[list[pl.LazyFrame], Callable[[list[pl.DataFrame]], pl.DataFrame]]:
    """Devices per registered domain (of ``wanted``), from RemoteUrl, Zeek names, names by IP.

    As the queries over the events and what makes the counts of their answers, so
    that ``context_facts`` asks them together with its other counts.
    """
    schema = {_DOMAIN: pl.String(), F_DOMAIN_DEVICES: pl.UInt32()}
    if not wanted:
        return [], lambda _: pl.DataFrame(schema=schema)

    def with_domain(frame: pl.DataFrame) -> pl.DataFrame:
        frame = frame.filter(pl.col(_NAME).is_not_null()).unique()
        return frame.with_columns(registered_domains(frame.get_column(_NAME)).alias(_DOMAIN))

    # Only URLs of a wanted domain matter: find them among the distinct names first, so
    # the (device, URL) pairs are collected for those rows alone. The names by address
    # hold every event's URL (and side-table names, which match no URL: harmless), so
    # no pass over the events is needed to list them.
    urls = ip_names.get_column("names").explode().drop_nulls().unique()
    urls = urls.filter(registered_domains(urls).is_in(wanted))
    # The (address, name) rows of those URLs alone: deduplicating and looking up every
    # address's every name cost 0.5 s at 10M events, for rows dropped right after.
    ip_domains = with_domain(
        ip_names.explode("names")
        .rename({"names": _NAME})
        .filter(pl.col(_NAME).is_in(urls.implode()))
    ).filter(pl.col(_DOMAIN).is_in(wanted))
    # One pass over the outbound events for both the wanted URLs and the public
    # addresses with a wanted name (each alone cost a pass over every row).
    by_url = pl.col(S.REMOTE_URL).is_in(urls.implode()).fill_null(False)
    by_ip = pl.col(S.REMOTE_IP).is_in(ip_domains.get_column(S.NAME_IP).implode()).fill_null(False)
    # The devices of each distinct (URL, address, public), not one distinct row per
    # (device, URL, address, public): the few groups keep the strings, the devices are
    # numbers (``device_keys_query``), and they meet their domains only at the count
    # (10M events with a common domain among the candidates: 0.45 s against 1.2 s).
    # polars' streaming engine gathers a group's devices 3x slower than it makes
    # distinct rows, so on disk the distinct rows come back and are grouped here.
    groups_by = [S.REMOTE_URL, S.REMOTE_IP, "_public"]

    def devices_of(query: pl.LazyFrame, by: list[str]) -> pl.LazyFrame:
        if streaming:
            return query.select(*by, _DEV_KEY).unique()
        return query.group_by(by).agg(pl.col(_DEV_KEY).unique())

    def grouped(answer: pl.DataFrame, by: list[str]) -> pl.DataFrame:
        return answer.group_by(by).agg(_DEV_KEY) if streaming else answer

    queries = [devices_of(ev.filter(by_url | by_ip), groups_by)]
    app_names = with_domain(
        app.select(S.APP_UID, pl.coalesce(S.APP_SNI, S.APP_HOST).alias(_NAME))
    ).filter(pl.col(_DOMAIN).is_in(wanted))
    if app_names.height:  # else no Zeek names of a wanted domain: no pass for none
        on_app = (
            ev.filter(pl.col(S.UID).is_not_null())
            .select(_DEV_KEY, S.UID)
            .join(app_names.lazy(), left_on=S.UID, right_on=S.APP_UID)
        )
        queries.append(devices_of(on_app, [_DOMAIN]))

    def count(answers: list[pl.DataFrame]) -> pl.DataFrame:
        groups = grouped(answers[0], groups_by)
        from_app = [grouped(answer, [_DOMAIN]) for answer in answers[1:]]
        url_groups = groups.filter(by_url)
        from_url = url_groups.select(
            registered_domains(url_groups.get_column(S.REMOTE_URL)).alias(_DOMAIN), _DEV_KEY
        )
        from_ip = (
            groups.filter(pl.col("_public") & by_ip)
            .join(
                ip_domains.select(S.NAME_IP, _DOMAIN).unique(),
                left_on=S.REMOTE_IP,
                right_on=S.NAME_IP,
            )
            .select(_DOMAIN, _DEV_KEY)
        )
        both = pl.concat([from_url, *from_app, from_ip], how="vertical_relaxed")
        return (
            both.explode(_DEV_KEY)
            .filter(pl.col(_DOMAIN).is_in(wanted))
            .group_by(_DOMAIN)
            .agg(pl.col(_DEV_KEY).n_unique().alias(F_DOMAIN_DEVICES))
        )

    return queries, count


def _company_tokens(company: str) -> set[str]:
    words = [w for w in "".join(c if c.isalnum() else " " for c in company.lower()).split()]
    words = [w for w in words if w not in _CORPORATE_WORDS]
    if not words:
        return set()
    return {"".join(words), words[0]}


def _vendor_domain(companies: pl.Series, domains: pl.Series) -> pl.Series:
    """True when the domain's label is the company's name (the vendor phoning home)."""
    out = []
    for company, domain in zip(companies.to_list(), domains.to_list(), strict=True):
        if not company or not domain:
            out.append(False)
            continue
        label = domain.split(".", 1)[0].replace("-", "")
        out.append(label in _company_tokens(company))
    return pl.Series(F_VENDOR_DOMAIN, out, dtype=pl.Boolean())


def _names_and_domain(
    keys: pl.DataFrame, own_ev: pl.DataFrame, app: pl.DataFrame, ip_names: pl.DataFrame
) -> pl.DataFrame:
    """Per candidate key: its names (its own, then for public addresses every name of
    the IP), whether it is a connection through a proxy, and its registered domain."""
    facts = _join(keys, _candidate_names(keys, own_ev, app), S.CANDIDATE_KEY)
    facts = _join(
        facts, ip_names.rename({S.NAME_IP: S.C_REMOTE_IP, "names": "_ip_names"}), [S.C_REMOTE_IP]
    )
    public = ip_class_expr(S.C_REMOTE_IP, facts) == PUBLIC
    facts = facts.with_columns(public.alias("_public"))
    if S.VIA_PROXY in own_ev.columns:  # re-keyed to a proxied host: that host is the destination
        rekeyed = own_ev.get_column(S.VIA_PROXY).is_not_null()
    else:
        rekeyed = pl.Series([False] * own_ev.height, dtype=pl.Boolean)
    facts = facts.with_columns(
        (
            ~pl.col("_public")
            & (pl.col("_own").list.len() > 0)
            & ~pl.col(S.C_REMOTE_IP).is_in(own_ev.get_column(S.REMOTE_IP).filter(rekeyed).implode())
        ).alias(F_VIA_PROXY),
        pl.when(pl.col("_public"))
        .then(pl.concat_list(pl.col("_own"), pl.col("_ip_names").fill_null([])))
        .otherwise(pl.col("_own"))
        .list.unique()
        .list.sort()
        .alias(F_NAMES),
    )
    # The domain: the commonest name on the candidate's own connections, else the
    # first (sorted) name of the address with a registered domain.
    own_first = facts.get_column("_own").list.first()
    names = facts.get_column(F_NAMES)
    # The public-suffix lookup once per distinct name, not once per list element.
    distinct = names.explode().drop_nulls().unique().to_list()
    domain_of = {name: registered_domain(name) for name in distinct}
    any_domain = names.list.eval(
        pl.element().replace_strict(domain_of, default=None, return_dtype=pl.String()).drop_nulls()
    ).list.first()
    return facts.with_columns(
        pl.coalesce(registered_domains(own_first), any_domain).alias(F_DOMAIN)
    )


def context_facts(
    dataset: PairContext,
    keys: pl.DataFrame,
    *,
    rare_share: float = 0.02,
    rare_floor_devices: int = 2,
    scan_min_ports: int = 10,
    new_after_share: float = 0.25,
    new_min_span_s: float = 86400.0,
    lists: ProcessLists | None = None,
    infrastructure_file: str | None = None,
) -> pl.DataFrame:
    """One row of facts per candidate key (``schema.CANDIDATE_KEY``, port may be null)."""
    lists = lists or default_process_lists()
    infra = infrastructure.load(infrastructure_file)
    keys = keys.select(S.CANDIDATE_KEY).unique(maintain_order=True)
    population = dataset.everyone()  # counts over every event, even for one partition
    plain = outbound_events(population)  # for the queries that count no devices
    processes = keys.get_column(S.C_PROCESS).drop_nulls().unique().to_list()
    ports = keys.get_column(S.C_REMOTE_PORT).drop_nulls().unique().to_list()
    pairs = keys.select(pl.col(S.C_DEVICE).alias(_DEV), pl.col(S.C_REMOTE_IP).alias(S.REMOTE_IP))
    # Counts over everyone, but only for the candidates' addresses, processes, ports
    # and domains; per-candidate facts from the candidates' own (device, address)
    # events. The queries go to polars together, in two rounds: first the device
    # numbers (one thread) beside the queries that need none (the candidates' own
    # events, from which their domains follow), then every count of devices.
    summary = population.known(OUTBOUND_SUMMARY)
    summary_queries = [
        population.events.select(pl.col(S.COMPANY).is_not_null().any()),
        plain.select(
            pl.col(S.TIMESTAMP).min().alias("start"),
            (pl.col(S.TIMESTAMP).max() - pl.col(S.TIMESTAMP).min())
            .dt.total_microseconds()
            .alias("us"),
            pl.len().alias("rows"),
        ),
    ]
    numbering = device_keys_query(population)
    first = population.collect_all(
        [
            candidate_events_query(population, pairs),
            infrastructure.resolvers_query(
                population.events, population.placed, infra.resolver_min_clients
            ),
            _served_query(plain, population.placed),
            *(summary_queries if summary is None else []),
            *([] if numbering is None else [numbering]),
        ]
    )
    numbers = None if numbering is None else first.pop()
    own_rows, resolvers, served, *asked = first
    ev = outbound_events(population, numbers)
    own_ev = candidate_events(population, own_rows)
    ip_names = dataset.names_by_ip()
    named = _names_and_domain(keys, own_ev, dataset.app, ip_names)
    wanted = named.get_column(F_DOMAIN).drop_nulls().unique().to_list()
    domain_queries, domain_count = _domain_devices(
        ev, dataset.app, ip_names, wanted, population.streaming
    )
    (ip_stats, process_port_devices, device_ports, *domain_answers) = population.collect_all(
        [
            ev.filter(pl.col(S.REMOTE_IP).is_in(keys.get_column(S.C_REMOTE_IP).unique().to_list()))
            .group_by(S.REMOTE_IP)
            .agg(
                pl.col(_DEV_KEY).n_unique().alias(F_IP_DEVICES),
                pl.col(S.TIMESTAMP).min().alias(F_IP_FIRST_SEEN),
            ),
            # Distinct (process, port, device): devices per process and per (process,
            # port) both follow, from one pass over the processes' rows.
            ev.filter(pl.col(S.PROCESS).is_in(processes))
            .select(S.PROCESS, S.REMOTE_PORT, _DEV_KEY)
            .unique(),
            # Distinct (device, port) of public rows: both the devices per port and
            # the number of devices, from one pass (each alone hashed every row).
            ev.filter(pl.col("_public")).select(_DEV_KEY, S.REMOTE_PORT).unique(),
            *domain_queries,
        ]
    )
    if summary is not None:
        hosts_count, any_company, bounds = summary
        hosts = max(1, hosts_count.item())
    else:
        any_company, bounds = asked
        hosts = max(1, device_ports.get_column(_DEV_KEY).n_unique())
    process_devices = process_port_devices.group_by(S.PROCESS).agg(
        pl.col(_DEV_KEY).n_unique().alias(F_PROCESS_DEVICES)
    )
    process_port = (
        process_port_devices.group_by(S.PROCESS, S.REMOTE_PORT)
        .agg(pl.col(_DEV_KEY).n_unique().alias("_pp"))
        .rename({S.PROCESS: S.C_PROCESS, S.REMOTE_PORT: S.C_REMOTE_PORT})
    )
    port_devices = (
        device_ports.filter(pl.col(S.REMOTE_PORT).is_in(ports))
        .group_by(S.REMOTE_PORT)
        .agg(pl.col(_DEV_KEY).n_unique().alias(F_PORT_DEVICES))
    )
    rare_devices = max(float(rare_floor_devices), rare_share * hosts)
    facts = _join(keys, ip_stats.rename({S.REMOTE_IP: S.C_REMOTE_IP}), [S.C_REMOTE_IP])
    facts = facts.with_columns(pl.lit(hosts).alias(F_HOSTS))
    facts = _join(facts, named, S.CANDIDATE_KEY)
    facts = _join(facts, domain_count(domain_answers).rename({_DOMAIN: F_DOMAIN}), [F_DOMAIN])

    # The process: how many devices run it, and the lists.
    facts = _join(facts, process_devices.rename({S.PROCESS: S.C_PROCESS}), [S.C_PROCESS])
    lower = pl.col(S.C_PROCESS).str.to_lowercase()
    facts = facts.with_columns(
        lower.is_in(list(lists.lolbins)).fill_null(False).alias(F_LOLBIN),
        lower.is_in(list(lists.system_processes)).fill_null(False).alias(F_SYSTEM_PROCESS),
    )

    # The port: devices using it anywhere, and the share of the process's devices.
    facts = _join(facts, port_devices.rename({S.REMOTE_PORT: S.C_REMOTE_PORT}), [S.C_REMOTE_PORT])
    facts = _join(facts, process_port, [S.C_PROCESS, S.C_REMOTE_PORT]).with_columns(
        (pl.col("_pp") / pl.col(F_PROCESS_DEVICES)).alias(F_PROCESS_PORT_SHARE)
    )

    # The candidate's own events: company, bytes, failures.
    has_company = bool(any_company.item())
    bytes_out = pl.col(S.BYTES_OUT).cast(pl.Float64)
    q10, q90 = bytes_out.quantile(0.1), bytes_out.quantile(0.9)
    trimmed = bytes_out.filter((bytes_out >= q10) & (bytes_out <= q90))
    own_events = _per_candidate(
        keys,
        own_ev,
        [
            (pl.col(S.COMPANY).is_null() | (pl.col(S.COMPANY) == ""))
            .all()
            .alias(F_COMPANY_MISSING),
            pl.col(S.COMPANY).drop_nulls().first().alias("_company"),
            (trimmed.std() / trimmed.mean()).alias(F_BYTES_COV),
            pl.col(S.BYTES_OUT).is_not_null().sum().alias("_with_bytes"),
            pl.col(S.DEVICE_ID).drop_nulls().first().alias(F_DEVICE_ID),
            pl.col(S.ACCOUNT).drop_nulls().first().alias(F_ACCOUNT),
            *_placed_facts(population),
            pl.col(S.PROTOCOL).drop_nulls().first().alias(infrastructure.I_PROTOCOL),
            pl.col(S.LOCAL_IP).drop_nulls().first().alias(infrastructure.I_LOCAL_IP),
            # Dead C2: every connection failed (Defender ConnectionFailed, Zeek S0/REJ/...).
            pl.col(S.ACTION).is_in(list(FAILED_STATES)).fill_null(False).all().alias(F_FAILED_ONLY),
            pl.col(S.CONNECTIONS).fill_null(1).sum().cast(pl.Int64).alias(F_OWN_CONNECTIONS),
        ],
    )
    facts = _join(facts, own_events, S.CANDIDATE_KEY).with_columns(
        (pl.col(F_COMPANY_MISSING) & pl.lit(has_company)).alias(F_COMPANY_MISSING),
        pl.when(pl.col("_with_bytes") >= 3).then(pl.col(F_BYTES_COV)).alias(F_BYTES_COV),
    )

    facts = facts.with_columns(
        _vendor_domain(facts.get_column("_company"), facts.get_column(F_DOMAIN))
    )
    facts = _app_facts(facts, keys, population, ev, own_ev, dataset.app, rare_devices)
    facts = _scanning(facts, own_ev, scan_min_ports)

    # New: the address was first seen well after the data starts (RITA's first seen).
    span_us = bounds.item(0, "us") if bounds.item(0, "rows") else None
    if span_us is not None and span_us / 1e6 >= new_min_span_s:
        cutoff = pl.lit(bounds.item(0, "start")) + pl.duration(
            microseconds=int(span_us * new_after_share)
        )
        new = pl.col(F_IP_FIRST_SEEN) >= cutoff
    else:
        new = pl.lit(False)
    facts = facts.with_columns(new.fill_null(False).alias(F_NEW_DESTINATION))
    facts = facts.with_columns(pl.lit(rare_devices).alias("rare_devices"))
    facts = _join(facts, served, [S.C_DEVICE, S.C_REMOTE_PORT]).with_columns(
        pl.when(pl.col(F_DIRECTION) == S.DIR_INBOUND).then(pl.col(F_SERVED_SOURCES))
    )
    facts = facts.with_columns(
        infrastructure.infrastructure_facts(
            facts.with_columns(pl.col(F_DIRECTION).alias(infrastructure.I_DIRECTION)),
            infra,
            resolvers.get_column(S.REMOTE_IP),
        )
    )
    return facts.drop(
        infrastructure.I_PROTOCOL,
        infrastructure.I_LOCAL_IP,
        "_own",
        "_ip_names",
        "_public",
        "_pp",
        "_company",
        "_with_bytes",
    )


def _served_query(ev: pl.LazyFrame, placed: bool) -> pl.LazyFrame:
    """Per (our host, served port): distinct external sources it answered (inbound rows
    that did not fail). A public service answers hundreds (scanners, crawlers, uptime
    checks); an implant's listener polled by its controller answers one."""
    schema = {S.C_DEVICE: pl.String(), S.C_REMOTE_PORT: pl.Int32(), F_SERVED_SOURCES: pl.UInt32()}
    if not placed:
        return pl.LazyFrame(schema=schema)
    answered = (pl.col(S.DIRECTION) == S.DIR_INBOUND) & ~pl.col(S.ACTION).is_in(
        list(FAILED_STATES)
    ).fill_null(False)
    return (
        ev.filter(answered)
        .group_by(pl.col(_DEV).alias(S.C_DEVICE), pl.col(S.REMOTE_PORT).alias(S.C_REMOTE_PORT))
        .agg(pl.col(S.REMOTE_IP).n_unique().cast(pl.UInt32).alias(F_SERVED_SOURCES))
    )


def _placed_facts(population: Population) -> list[pl.Expr]:
    """A candidate's direction and proxy, from its own events (null when never placed)."""
    none = [
        pl.lit(None, pl.String).alias(F_PROXY),
        pl.lit(None, pl.String).alias(F_DIRECTION),
        pl.lit(None, pl.List(pl.String)).alias(F_SERVER_IPS),
        pl.lit(None, pl.String).alias(F_ICMP),
    ]
    if not population.placed:
        return none
    have = population.events.collect_schema().names()
    servers = pl.col(S.PROXY_SERVER).drop_nulls().unique().sort()
    return [
        pl.col(S.VIA_PROXY).drop_nulls().first().alias(F_PROXY),
        pl.col(S.DIRECTION).drop_nulls().first().alias(F_DIRECTION),
        servers.alias(F_SERVER_IPS) if S.PROXY_SERVER in have else none[2],
        icmp.labels().alias(F_ICMP) if S.ICMP_TYPE in have else none[3],
    ]


def _app_facts(
    facts: pl.DataFrame,
    keys: pl.DataFrame,
    population: Population,
    ev: pl.LazyFrame,
    own_ev: pl.DataFrame,
    app: pl.DataFrame,
    rare: float,
) -> pl.DataFrame:
    """Zeek http/ssl facts: rare user agent, HTTP without Host, TLS without SNI."""
    joined = (
        own_ev.filter(pl.col(S.UID).is_not_null())
        .select(_DEV, S.PROCESS, S.REMOTE_IP, S.REMOTE_PORT, S.UID)
        .join(app, left_on=S.UID, right_on=S.APP_UID, how="inner")
    )
    agents = joined.get_column(S.APP_USER_AGENT).drop_nulls().unique().to_list()
    ua_schema = {S.APP_USER_AGENT: pl.String(), "_ua_devices": pl.UInt32()}
    if agents:
        ua_devices = population.collect(
            ev.filter(pl.col(S.UID).is_not_null())
            .select(_DEV_KEY, S.UID)
            .join(
                app.filter(pl.col(S.APP_USER_AGENT).is_in(agents))
                .select(S.APP_UID, S.APP_USER_AGENT)
                .lazy(),
                left_on=S.UID,
                right_on=S.APP_UID,
            )
            .group_by(S.APP_USER_AGENT)
            .agg(pl.col(_DEV_KEY).n_unique().alias("_ua_devices"))
        )
    else:  # no user agent on the candidates' own rows: no pass over every event for none
        ua_devices = pl.DataFrame(schema=ua_schema)
    joined = joined.join(ua_devices, on=S.APP_USER_AGENT, how="left")
    is_http = pl.col(S.APP_KIND) == "http"
    not_connect = pl.col(S.APP_METHOD).str.to_uppercase().ne_missing(pl.lit("CONNECT"))
    rare_ua = joined.filter(pl.col("_ua_devices") <= rare).sort("_ua_devices", S.APP_USER_AGENT)
    per = _per_candidate(
        keys,
        joined,
        [
            (is_http & not_connect & pl.col(S.APP_HOST).is_null()).any().alias(F_MISSING_HOST),
            ((pl.col(S.APP_KIND) == "ssl") & pl.col(S.APP_SNI).is_null()).any().alias(F_TLS_NO_SNI),
        ],
    )
    per_ua = _per_candidate(
        keys,
        rare_ua,
        [
            pl.col(S.APP_USER_AGENT).first().alias(F_RARE_UA),
            pl.col("_ua_devices").first().alias(F_RARE_UA_DEVICES),
        ],
    )
    facts = _join(facts, per, S.CANDIDATE_KEY)
    facts = _join(facts, per_ua, S.CANDIDATE_KEY)
    return facts.with_columns(
        pl.col(F_MISSING_HOST).fill_null(False), pl.col(F_TLS_NO_SNI).fill_null(False)
    )


def _scanning(facts: pl.DataFrame, ev: pl.DataFrame, min_ports: int) -> pl.DataFrame:
    """Failed-only, zero-byte traffic from one device to many ports of one address."""
    failed = pl.col(S.ACTION).is_in(list(FAILED_STATES)).fill_null(False)
    empty = (pl.col(S.BYTES_OUT).fill_null(0) + pl.col(S.BYTES_IN).fill_null(0)) == 0
    per = ev.group_by(_DEV, S.REMOTE_IP).agg(
        pl.col(S.REMOTE_PORT).n_unique().alias("_ports"),
        (failed & empty).all().alias("_failed_empty"),
    )
    scans = per.filter((pl.col("_ports") >= min_ports) & pl.col("_failed_empty")).select(
        pl.col(_DEV).alias(S.C_DEVICE),
        pl.col(S.REMOTE_IP).alias(S.C_REMOTE_IP),
        pl.lit(True).alias(F_SCANNING),
    )
    return _join(facts, scans, [S.C_DEVICE, S.C_REMOTE_IP]).with_columns(
        pl.col(F_SCANNING).fill_null(False)
    )
