"""The one step that places loaded events in the site's network, before any pair exists.

Order matters: proxies are found and their clients' rows re-keyed to the proxied host
first (``detectors.pairs.proxy``), so a re-keyed row's direction is judged on the host it
was for; then protocol, monitored hosts and direction (``detectors.pairs.topology``), and
inbound rows are turned round to our host. Rows with neither end ours (transit a
sensor saw) are set aside: no hunt ranks them and no device count includes them;
how many there were is said, not hidden.

What was decided from the data (inferred monitored hosts, detected proxies) comes
back as lines for the user, so a wrong guess can be corrected in ``[network]``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import polars as pl

from detectors.base import schema as S
from detectors.base.config import NetworkSettings
from detectors.pairs.egress import EgressCount, link_egress
from detectors.pairs.proxy import (
    PROXY_SCHEMA,
    X_ENDPOINT,
    connect_endpoints,
    describe_proxies,
    detect_proxies,
    endpoint_expr,
    may_be_proxy,
    proxy_targets,
    rekey,
    to_endpoints,
)
from detectors.pairs.topology import (
    M_IP,
    MONITORED_SCHEMA,
    annotate,
    describe_monitored,
    infer_monitored,
    protocol_expr,
    sensor_rows,
)

if TYPE_CHECKING:
    from detectors.pairs.context import PairContext


@dataclass
class Placed:
    """Events with ``direction`` and ``via_proxy``, and what was found on the way."""

    events: pl.DataFrame
    monitored: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=MONITORED_SCHEMA))
    proxies: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=PROXY_SCHEMA))
    external_only: int = 0
    egress: EgressCount = field(default_factory=EgressCount)

    def notes(self) -> list[str]:
        """One line per finding the user may want to correct."""
        lines = describe_monitored(self.monitored) + describe_proxies(self.proxies)
        if self.external_only:
            lines.append(
                f"{self.external_only:,} connections with neither end in our network set "
                "aside (declare [network] internal or monitored if some are ours)"
            )
        return lines + self.egress.notes()


def is_placed(events: pl.DataFrame) -> bool:
    """True when the events already carry the topology columns."""
    return S.DIRECTION in events.columns and S.VIA_PROXY in events.columns


def place(events: pl.DataFrame, app: pl.DataFrame, settings: NetworkSettings) -> Placed:
    """Proxies re-keyed, protocol normalised, direction given, inbound oriented: the
    decisions taken from ``events`` themselves and applied to them (a run in memory)."""
    if is_placed(events):
        return Placed(events)
    targets = proxy_targets(app)  # what each Zeek uid asked a proxy for: read once
    proxies = detect_proxies(events, targets, settings)
    events = rekey(events, targets, proxies.get_column(X_ENDPOINT).to_list())
    monitored = infer_monitored(events, settings)
    decisions = Decisions(settings, targets, proxies, monitored)
    events, external_only = _finish(events, decisions)
    endpoints = proxies.get_column(X_ENDPOINT).to_list()
    events, egress = link_egress(events, app, endpoints, settings.proxy_egress_window_ms)
    return Placed(events, monitored, proxies, external_only, egress)


# --- decide once, apply anywhere --------------------------------------------------------------
#
# A run that never holds every event at once (device partitions on disk, Spark) takes the
# same decisions from small evidence gathered piece by piece, then applies them to each
# piece. Every step of ``apply`` is a per-row transform given the decisions, so the rows
# come out as a run in memory places them, however the input was cut.

# The columns proxy detection reads (``proxy.detect_proxies``), and those monitored-host
# inference reads after re-keying (``topology.infer_monitored`` on sensor rows).
PROXY_COLUMNS = (S.DEVICE_ID, S.REMOTE_IP, S.REMOTE_PORT, S.REMOTE_URL, S.UID)
MONITORED_COLUMNS = (
    S.DEVICE_ID,
    S.LOCAL_IP,
    S.PROCESS,
    S.UID,
    S.REMOTE_IP,
    S.REMOTE_PORT,
    S.REMOTE_URL,
    S.REMOTE_IP_TYPE,
)


@dataclass(frozen=True)
class Decisions:
    """What placement decided about the whole input: small, picklable, the same for every
    piece it is applied to."""

    settings: NetworkSettings
    targets: pl.DataFrame  # ``proxy.proxy_targets``: what each Zeek uid asked a proxy for
    proxies: pl.DataFrame  # ``proxy.PROXY_SCHEMA``
    monitored: pl.DataFrame  # ``topology.MONITORED_SCHEMA``
    # Facts about the whole input that placing it piece by piece needs (None: not known):
    from_proxy: bool | None = None  # some row comes from a proxy's address (egress to link)
    icmp: bool | None = None  # some row is ICMP (the pieces then all keep ``icmp_type``)

    @property
    def endpoints(self) -> list[str]:
        return self.proxies.get_column(X_ENDPOINT).to_list()

    @property
    def addresses(self) -> list[str]:
        """The proxies' addresses (the local address of their own connections)."""
        return [e.rpartition(":")[0].strip("[]") for e in self.endpoints]

    def notes(self, external_only: int, egress: EgressCount) -> list[str]:
        return Placed(pl.DataFrame(), self.monitored, self.proxies, external_only, egress).notes()


def proxy_evidence(
    events: pl.DataFrame, targets: pl.DataFrame, settings: NetworkSettings
) -> pl.DataFrame:
    """The distinct rows of ``events`` that proxy detection looks at (``PROXY_COLUMNS``):
    rows whose uid asked a proxy for a target, named rows (a URL and an endpoint) to an
    endpoint that may be a proxy (declared, internal) and, of the other named rows, one
    per device.

    ``detect_proxies`` counts distinct devices and names per endpoint that may be a
    proxy, and every device with named traffic: over the union of every piece's
    evidence it answers as over all events (a CONNECT seen to a public address needs
    that address's named rows too: ``decide`` gathers them, ``named_rows_to``). One row
    per device for the rest keeps the evidence small: at 100M events the named rows to
    public servers were gigabytes.
    """
    url = pl.col(S.REMOTE_URL)
    keyed = pl.col(S.REMOTE_IP).is_not_null() & pl.col(S.REMOTE_PORT).is_not_null()
    named = (url.is_not_null() & (url != "") & keyed).fill_null(False)
    asked = pl.col(S.UID).is_in(targets.get_column(S.APP_UID).implode()).fill_null(False)
    rows = events.filter(named | asked).select(*PROXY_COLUMNS, asked.alias("_asked"))
    whole = rows.get_column("_asked") | may_be_proxy(rows, settings.proxies, settings)
    others = rows.filter(~whole).unique(S.DEVICE_ID, keep="first", maintain_order=True)
    return pl.concat([rows.filter(whole), others]).select(PROXY_COLUMNS).unique()


def named_rows_to(events: pl.DataFrame, endpoints: Sequence[str]) -> pl.DataFrame:
    """The distinct ``PROXY_COLUMNS`` rows to ``endpoints`` (see ``proxy_evidence``)."""
    return events.filter(to_endpoints(endpoints)).select(PROXY_COLUMNS).unique()


def missing_evidence(
    evidence: pl.DataFrame, targets: pl.DataFrame, settings: NetworkSettings
) -> list[str]:
    """CONNECT-seen endpoints whose named rows ``proxy_evidence`` did not keep whole."""
    seen = connect_endpoints(evidence, targets)
    kept = may_be_proxy(seen, settings.proxies, settings)
    return seen.filter(~kept).select(endpoint_expr()).to_series().to_list()


def decide_proxies(
    evidence: pl.DataFrame, targets: pl.DataFrame, settings: NetworkSettings
) -> pl.DataFrame:
    """The proxies, from every piece's ``proxy_evidence`` together."""
    rows = evidence.unique() if evidence.height else evidence
    return detect_proxies(rows, targets, settings)


def monitored_evidence(
    events: pl.DataFrame, targets: pl.DataFrame, proxies: Sequence[str]
) -> pl.DataFrame:
    """The distinct sensor rows, re-keyed through ``proxies``, that monitored-host
    inference counts (it counts distinct addresses per address, nothing more)."""
    sensor = events.filter(sensor_rows()).select(MONITORED_COLUMNS)
    rekeyed = rekey(sensor, targets, proxies).filter(pl.col(S.REMOTE_IP).is_not_null())
    return rekeyed.select(S.DEVICE_ID, S.LOCAL_IP, S.PROCESS, S.REMOTE_IP).unique()


def decide_monitored(evidence: pl.DataFrame, settings: NetworkSettings) -> pl.DataFrame:
    """The monitored hosts, from every piece's ``monitored_evidence`` together."""
    if not evidence.height:
        evidence = pl.DataFrame(schema=_schema((S.DEVICE_ID, S.LOCAL_IP, S.PROCESS, S.REMOTE_IP)))
    return infer_monitored(evidence.unique(), settings)


def decide(
    pieces: Callable[[Sequence[str]], Iterable[pl.DataFrame]],
    app: pl.DataFrame,
    settings: NetworkSettings,
) -> Decisions:
    """The decisions over an input seen piece by piece, in two passes: ``pieces(columns)``
    yields every piece's events (at least ``columns``) each time it is called.

    Proxies first (their clients' rows are re-keyed before monitored hosts are inferred,
    as in memory), then monitored hosts; the second pass also finds whether any row
    comes from a proxy's address and whether any is ICMP (``Decisions.from_proxy``,
    ``icmp``).
    """
    targets = proxy_targets(app)
    found = [proxy_evidence(piece, targets, settings) for piece in pieces(PROXY_COLUMNS)]
    evidence = pl.concat(found) if found else pl.DataFrame(schema=_schema(PROXY_COLUMNS))
    extra = missing_evidence(evidence, targets, settings)
    if extra:  # a CONNECT to a public address: its named rows from every piece
        found = [named_rows_to(piece, extra) for piece in pieces(PROXY_COLUMNS)]
        evidence = pl.concat([evidence, *found])
    proxies = decide_proxies(evidence, targets, settings)
    decisions = Decisions(settings, targets, proxies, pl.DataFrame(), False, False)
    seen = []
    for piece in pieces((*MONITORED_COLUMNS, S.PROTOCOL)):
        seen.append(monitored_evidence(piece, targets, decisions.endpoints))
        from_proxy = piece.select(pl.col(S.LOCAL_IP).is_in(decisions.addresses).any()).item()
        decisions = replace(
            decisions,
            from_proxy=decisions.from_proxy or bool(from_proxy),
            icmp=decisions.icmp or has_icmp(piece),
        )
    sensor = pl.concat(seen) if seen else pl.DataFrame()
    return replace(decisions, monitored=decide_monitored(sensor, settings))


def _schema(columns: Sequence[str]) -> dict[str, pl.DataType]:
    return {c: S.EVENT_SCHEMA[c] for c in columns}


def annotated(events: pl.DataFrame, decisions: Decisions) -> pl.DataFrame:
    """``events`` re-keyed and given protocol and direction, inbound rows turned round;
    external-only rows kept (marked). A per-row transform given the decisions."""
    if is_placed(events):
        return events
    events = _with_icmp_type(rekey(events, decisions.targets, decisions.endpoints))
    return annotate(events, decisions.settings, decisions.monitored.get_column(M_IP).to_list())


def apply(events: pl.DataFrame, decisions: Decisions) -> tuple[pl.DataFrame, int]:
    """``events`` placed by ``decisions``, and how many external-only rows were set aside;
    a proxy's egress not yet linked (``link``), ``icmp_type`` always present."""
    if is_placed(events):
        return events, 0
    events = _with_icmp_type(rekey(events, decisions.targets, decisions.endpoints))
    return _finish(events, decisions)


def _with_icmp_type(events: pl.DataFrame) -> pl.DataFrame:
    """An ``icmp_type`` column where annotating puts one (in memory it appears only when
    some row is ICMP; a piece without any would lack it: see ``has_icmp``)."""
    if S.ICMP_TYPE in events.columns:
        return events
    return events.with_columns(pl.lit(None, pl.Int32).alias(S.ICMP_TYPE))


def has_icmp(events: pl.DataFrame) -> bool:
    """Whether placing gives ``events`` an ``icmp_type`` column (some row is ICMP): pieces
    keep the column only when some piece has an ICMP row, as a run in memory."""
    distinct = events.select(pl.col(S.PROTOCOL).unique())  # a handful of texts, not rows
    return bool(distinct.select((protocol_expr() == S.PROTO_ICMP).fill_null(False).any()).item())


# --- a proxy's egress, linked across pieces ----------------------------------------------------
#
# Linking (``egress.link_egress``) pairs a proxy's own connection with the client's proxied
# one: two devices, so two pieces. It reads only those two kinds of rows, so it runs once
# over them gathered from every piece (keyed by a row id), and its answer (rows set
# aside, servers for client rows) is applied to each piece by that id.

LINK_COLUMNS = (S.TIMESTAMP, S.LOCAL_IP, S.REMOTE_IP, S.UID, S.REMOTE_URL, S.VIA_PROXY, S.DIRECTION)


@dataclass(frozen=True)
class Links:
    """Egress linking's answer for every piece, by row id."""

    dropped: pl.Series  # ids of the proxy's connections linked to a client's (set aside)
    servers: pl.DataFrame  # (id, ``proxy_server``) of the client rows that got a server
    count: EgressCount


def link_rows(placed: pl.DataFrame, decisions: Decisions, row: str) -> pl.DataFrame:
    """The rows of a placed piece linking reads: proxied client rows and rows from a
    proxy's address (``row`` and ``LINK_COLUMNS``)."""
    wanted = pl.col(S.VIA_PROXY).is_not_null() | pl.col(S.LOCAL_IP).is_in(decisions.addresses)
    return placed.filter(wanted.fill_null(False)).select(row, *LINK_COLUMNS)


def link(rows: pl.DataFrame, app: pl.DataFrame, decisions: Decisions, row: str) -> Links:
    """Link egress over every piece's ``link_rows``, given in input order (ties are
    broken by position, as in memory), each row named by its ``row`` id."""
    window = decisions.settings.proxy_egress_window_ms
    out, count = link_egress(rows, app, decisions.endpoints, window)
    ids = rows.get_column(row)
    dropped = ids.filter(~ids.is_in(out.get_column(row).implode()))
    servers = out.filter(pl.col(S.PROXY_SERVER).is_not_null()).select(row, S.PROXY_SERVER)
    return Links(dropped, servers, count)


def no_links(decisions: Decisions) -> Links:
    """Linking's answer when no row comes from a proxy's address: nothing to link."""
    window = decisions.settings.proxy_egress_window_ms
    empty = pl.Series(dtype=pl.UInt64)
    return Links(empty, pl.DataFrame(), EgressCount(window_ms=window))


def apply_links(placed: pl.DataFrame, links: Links, row: str) -> pl.DataFrame:
    """A placed piece with its linked egress set aside and its clients' servers."""
    if not links.servers.width:  # nothing linked: every row's server is null
        return placed.with_columns(pl.lit(None, pl.String).alias(S.PROXY_SERVER))
    placed = placed.filter(~pl.col(row).is_in(links.dropped.implode()))
    return placed.join(links.servers, on=row, how="left", maintain_order="left")


def _finish(events: pl.DataFrame, decisions: Decisions) -> tuple[pl.DataFrame, int]:
    """Re-keyed events annotated, and external-only rows set aside (counted)."""
    monitored = decisions.monitored.get_column(M_IP).to_list()
    events = annotate(events, decisions.settings, monitored)
    outside = (pl.col(S.DIRECTION) == S.DIR_EXTERNAL_ONLY).fill_null(False)
    external_only = int(events.select(outside.sum()).item())
    if external_only:
        events = events.filter(~outside)
    return events, external_only


def place_context(context: PairContext, settings: NetworkSettings) -> PairContext:
    """Place the context's events in the network (in place) and say what was found.

    The findings go to the context's ``warnings``. New settings (the TUI's parameters,
    ``--internal``) place the events as loaded again; the same settings do nothing.
    Every index built from the old events is dropped: the pairs change with the keys.
    A partitioned or Spark input (a streaming population) is placed by its strategy,
    which applies ``decide`` and ``apply`` piece by piece.
    """
    if context.population is not None and context.population.streaming:
        return context
    if context.placed_with is None and is_placed(context.events):
        return context  # placed by whoever built the events
    wanted = settings if settings.enabled else None
    if context.placed_with == wanted:
        return context
    if context.loaded_events is None:
        context.loaded_events = context.events
    for line in context.placement_notes:
        if line in context.warnings:
            context.warnings.remove(line)
    if wanted is None:
        context.events, notes = context.loaded_events, []
    else:
        placed = place(context.loaded_events, context.app, settings)
        context.events, notes = placed.events, placed.notes()
    context.warnings.extend(notes)
    context.placement_notes = notes
    context.placed_with = wanted
    context._connections = None
    context._pair_cache.clear()
    context.population = None
    return context
