"""What the detail pane says about one candidate, computed without a screen.

Three questions an analyst asks after "is it periodic?": what do its intervals look
like (``interval_stats``), when did it connect (``pair_times``), and what does the rest
of the data know about the destination (``DestinationIndex``: how many devices and
processes talk to the address and to its domain, names seen, first/last seen, optional
offline ASN/geo). The per-destination tables are built once per dataset with plain
group-bys; looking one candidate up afterwards only filters small frames, so the TUI
can redraw the pane on every cursor move.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from detectors.base import schema as S
from detectors.base.domains import registered_domain, registered_domains
from detectors.base.netclass import classify_ip
from detectors.pairs.context import PairContext
from detectors.pairs.index import P_TS
from detectors.pairs.population import DEVICE_KEY

# --- interval statistics ------------------------------------------------------------


@dataclass(frozen=True)
class IntervalStats:
    """Summary of one pair's intervals between distinct connection times.

    ``stdev_s`` is the sample standard deviation (n - 1), as Kusto's ``series_stats``;
    ``jitter_pct`` = stdev / mean x 100 (seed 001). Percentiles interpolate linearly
    between order statistics (numpy's default), so p50 equals the median.
    """

    intervals: int  # = distinct connection times - 1
    median_s: float | None = None
    mean_s: float | None = None
    stdev_s: float | None = None
    jitter_pct: float | None = None
    p5_s: float | None = None
    p50_s: float | None = None
    p95_s: float | None = None
    min_s: float | None = None
    max_s: float | None = None


def interval_stats(deltas: Sequence[float] | np.ndarray) -> IntervalStats:
    """Statistics of a list of intervals in seconds (empty when fewer than one)."""
    values = np.asarray(deltas, dtype=np.float64)
    values = values[np.isfinite(values)]
    n = int(values.size)
    if n == 0:
        return IntervalStats(intervals=0)
    mean = float(values.mean())
    stdev = float(values.std(ddof=1)) if n > 1 else None
    jitter = stdev / mean * 100.0 if stdev is not None and mean > 0 else None
    p5, p50, p95 = (float(v) for v in np.percentile(values, [5, 50, 95]))
    return IntervalStats(
        intervals=n,
        median_s=p50,
        mean_s=mean,
        stdev_s=stdev,
        jitter_pct=jitter,
        p5_s=p5,
        p50_s=p50,
        p95_s=p95,
        min_s=float(values.min()),
        max_s=float(values.max()),
    )


# --- one pair's connection times -----------------------------------------------------


def _equals(column: str, value: Any) -> pl.Expr:
    """Equality that treats a null key (Zeek has no process) as matching null."""
    return pl.col(column).eq_missing(pl.lit(value))


def pair_times(
    pairs: pl.DataFrame,
    device: str | None,
    process: str | None,
    remote_ip: str | None,
    remote_port: int | None,
) -> np.ndarray:
    """Distinct, sorted connection times of one candidate, as ``datetime64[us]``.

    A candidate is keyed by device, process, address and port; the pair index also
    splits by account and device id, so every matching pair row is merged. ``device``
    matches either the device name or the device id (Zeek keys by originating IP).
    """
    if pairs.height == 0:
        return np.array([], dtype="datetime64[us]")
    device_match = _equals(S.DEVICE_NAME, device) | _equals(S.DEVICE_ID, device)
    rows = pairs.filter(
        device_match
        & _equals(S.PROCESS, process)
        & _equals(S.REMOTE_IP, remote_ip)
        & _equals(S.REMOTE_PORT, remote_port)
    )
    if rows.height == 0:
        return np.array([], dtype="datetime64[us]")
    times = rows.select(pl.col(P_TS).explode().dt.replace_time_zone(None)).to_series()
    stamps = times.drop_nulls().unique().sort().to_numpy()
    return stamps.astype("datetime64[us]")


def deltas_of(times: np.ndarray) -> np.ndarray:
    """Seconds between consecutive times, microsecond precision."""
    if times.size < 2:
        return np.array([], dtype=np.float64)
    return np.diff(times).astype("timedelta64[us]").astype(np.int64) / 1e6


# --- score composition ----------------------------------------------------------------


@dataclass(frozen=True)
class EvidenceItem:
    """One line of a candidate's score composition: what was measured, points given."""

    name: str
    value: Any
    points: float | None


def evidence_items(evidence: object) -> list[EvidenceItem]:
    """The ``evidence`` cell as a list, whether the scorer stored structs or JSON text."""
    if evidence is None:
        return []
    if isinstance(evidence, str):
        try:
            evidence = json.loads(evidence)
        except ValueError:
            return [EvidenceItem("evidence", evidence, None)]
    if isinstance(evidence, Mapping):
        evidence = [evidence]
    if hasattr(evidence, "to_list"):
        evidence = evidence.to_list()
    items = []
    for entry in evidence if isinstance(evidence, (list, tuple)) else [evidence]:
        if isinstance(entry, Mapping):
            points = entry.get("points")
            items.append(
                EvidenceItem(
                    str(entry.get("name", "")),
                    entry.get("value"),
                    float(points) if isinstance(points, (int, float)) else None,
                )
            )
        elif entry is not None:
            items.append(EvidenceItem(str(entry), None, None))
    return items


# --- the destination ------------------------------------------------------------------

_DEVICE = "device_key"
D_DEVICES = "devices"
D_PROCESSES = "processes"
D_FIRST = "first_seen"
D_LAST = "last_seen"
D_ADDRESSES = "addresses"
D_DOMAIN = "domain"
D_NAMES = "names"
D_DOMAINS = "domains"


@dataclass(frozen=True)
class Destination:
    """Everything the data (and an optional offline GeoIP file) says about an address."""

    ip: str | None
    ip_class: str
    names: list[str] = field(default_factory=list)
    domain: str | None = None
    devices_to_ip: int = 0
    processes_to_ip: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    devices_to_domain: int | None = None
    processes_to_domain: int | None = None
    addresses_of_domain: int | None = None
    geo: dict[str, str] = field(default_factory=dict)


def _talking_triples(events: pl.LazyFrame) -> pl.LazyFrame:
    """Each distinct (address, device, process) of the events with a remote address (a
    listening socket has none worth counting), and its first and last time: every figure
    of the index follows from these, whatever the number of events."""
    talking = pl.col(S.REMOTE_IP).is_not_null() & pl.col(S.ACTION).ne_missing(
        pl.lit(S.ACTION_LISTENING)
    )
    return (
        events.filter(talking)
        .group_by(S.REMOTE_IP, DEVICE_KEY.alias(_DEVICE), S.PROCESS)
        .agg(pl.col(S.TIMESTAMP).min().alias(D_FIRST), pl.col(S.TIMESTAMP).max().alias(D_LAST))
    )


def _distinct(frame: pl.DataFrame, by: str, column: str) -> pl.DataFrame:
    return frame.select(by, column).drop_nulls(column).unique()


def _devices_per(frame: pl.DataFrame, by: str, *more: pl.Expr) -> pl.DataFrame:
    return frame.group_by(by).agg(pl.col(_DEVICE).drop_nulls().n_unique().alias(D_DEVICES), *more)


def _counted(pieces: list[pl.DataFrame], by: str, name: str) -> pl.DataFrame:
    """Distinct (``by``, value) rows of every piece, counted per ``by`` (processes and
    addresses are shared between pieces, so their rows are made distinct again)."""
    rows = pl.concat(pieces).unique()
    return rows.group_by(by).agg(pl.len().cast(pl.UInt32).alias(name))


@dataclass
class _Tally:
    """The index's counts, gathered piece by piece: devices add up (a piece's devices
    are its own), processes and addresses are distinct rows counted at the end."""

    address_devices: list[pl.DataFrame] = field(default_factory=list)
    address_processes: list[pl.DataFrame] = field(default_factory=list)
    domain_devices: list[pl.DataFrame] = field(default_factory=list)
    domain_processes: list[pl.DataFrame] = field(default_factory=list)
    domain_addresses: list[pl.DataFrame] = field(default_factory=list)

    def add(self, triples: pl.DataFrame, ip_domains: pl.DataFrame) -> None:
        first, last = pl.col(D_FIRST).min(), pl.col(D_LAST).max()
        self.address_devices.append(_devices_per(triples, S.REMOTE_IP, first, last))
        self.address_processes.append(_distinct(triples, S.REMOTE_IP, S.PROCESS))
        named = triples.select(S.REMOTE_IP, _DEVICE, S.PROCESS).join(ip_domains, on=S.REMOTE_IP)
        self.domain_devices.append(_devices_per(named, D_DOMAIN))
        self.domain_processes.append(_distinct(named, D_DOMAIN, S.PROCESS))
        self.domain_addresses.append(_distinct(named, D_DOMAIN, S.REMOTE_IP))

    def by_address(self) -> pl.DataFrame:
        devices = (
            pl.concat(self.address_devices)
            .group_by(S.REMOTE_IP)
            .agg(pl.col(D_DEVICES).sum(), pl.col(D_FIRST).min(), pl.col(D_LAST).max())
        )
        processes = _counted(self.address_processes, S.REMOTE_IP, D_PROCESSES)
        return (
            devices.join(processes, on=S.REMOTE_IP, how="left")
            .select(
                S.REMOTE_IP,
                pl.col(D_DEVICES).cast(pl.UInt32),
                pl.col(D_PROCESSES).fill_null(0),
                D_FIRST,
                D_LAST,
            )
            .sort(S.REMOTE_IP)
        )

    def by_domain(self) -> pl.DataFrame:
        devices = (
            pl.concat(self.domain_devices)
            .group_by(D_DOMAIN)
            .agg(pl.col(D_DEVICES).sum().cast(pl.UInt32))
        )
        processes = _counted(self.domain_processes, D_DOMAIN, D_PROCESSES)
        addresses = _counted(self.domain_addresses, D_DOMAIN, D_ADDRESSES)
        return (
            devices.join(processes, on=D_DOMAIN, how="left")
            .join(addresses, on=D_DOMAIN, how="left")
            .select(
                D_DOMAIN,
                D_DEVICES,
                pl.col(D_PROCESSES).fill_null(0),
                pl.col(D_ADDRESSES).fill_null(0),
            )
            .sort(D_DOMAIN)
        )


class DestinationIndex:
    """Per-address and per-domain prevalence, built once per dataset.

    "Devices" counts distinct device names (ids, such as Zeek's originating address,
    when a source has no name), as the scoring counts them; a domain's figures cover
    every address any name of that registered domain was seen for (RemoteUrl, DNS
    answers, HTTP Host, TLS SNI).
    """

    def __init__(self, dataset: PairContext, mmdb_path: Path | None = None) -> None:
        # Asked of everyone: a dataset opened as partitions holds no events in memory,
        # and its figures are those of every partition, as the scoring's. Each
        # partition is reduced to its (address, device, process) triples alone, and
        # those to small counts: never every partition's triples at once.
        population = dataset.everyone()
        names = dataset.names_by_ip()
        exploded = names.explode("names").rename({"names": S.NAME})
        exploded = exploded.with_columns(registered_domains(exploded[S.NAME]).alias(D_DOMAIN))
        self.names = exploded.group_by(S.NAME_IP).agg(
            pl.col(S.NAME).drop_nulls().unique().sort().alias(D_NAMES),
            pl.col(D_DOMAIN).drop_nulls().unique().sort().alias(D_DOMAINS),
        )
        ip_domains = exploded.select(pl.col(S.NAME_IP).alias(S.REMOTE_IP), D_DOMAIN)
        ip_domains = ip_domains.drop_nulls().unique()
        tally = _Tally()
        for triples in population.per_device(_talking_triples):
            tally.add(triples, ip_domains)
        self.by_ip = tally.by_address()
        self.by_domain = tally.by_domain()
        self.window: tuple[datetime | None, datetime | None] = population.time_bounds()
        self._geo = GeoLookup(mmdb_path) if mmdb_path else None

    def describe(self, ip: str | None, domain: str | None = None) -> Destination:
        """The destination of a candidate; ``domain`` defaults to the first one seen."""
        ip_row = self.by_ip.filter(_equals(S.REMOTE_IP, ip))
        name_row = self.names.filter(_equals(S.NAME_IP, ip))
        names: list[str] = name_row[D_NAMES][0].to_list() if name_row.height else []
        domains: list[str] = name_row[D_DOMAINS][0].to_list() if name_row.height else []
        if not domain:
            domain = domains[0] if domains else None
        else:  # the scorer may hand a host name; prevalence is per registered domain
            domain = registered_domain(domain) or domain
        found = ip_row.row(0, named=True) if ip_row.height else {}
        dest = Destination(
            ip=ip,
            ip_class=classify_ip(ip),
            names=names,
            domain=domain,
            devices_to_ip=int(found.get(D_DEVICES, 0)),
            processes_to_ip=int(found.get(D_PROCESSES, 0)),
            first_seen=found.get(D_FIRST),
            last_seen=found.get(D_LAST),
            geo=self._geo.lookup(ip) if self._geo and ip else {},
        )
        if domain:
            dom_row = self.by_domain.filter(pl.col(D_DOMAIN) == domain)
            got = dom_row.row(0, named=True) if dom_row.height else {}
            dest = dataclasses.replace(
                dest,
                devices_to_domain=int(got.get(D_DEVICES, 0)),
                processes_to_domain=int(got.get(D_PROCESSES, 0)),
                addresses_of_domain=int(got.get(D_ADDRESSES, 0)),
            )
        return dest


def same_destination(columns: Sequence[str], remote_ip: str | None, domain: str | None) -> pl.Expr:
    """True for candidates to this address, or to this registered domain (by any host
    name of it): the group a campaign's members share, as the detail pane, the ``C``
    group filter and the campaign count all read it."""
    same = pl.col(S.C_REMOTE_IP).eq_missing(pl.lit(remote_ip, dtype=pl.String))
    if domain and S.C_DOMAIN in columns:
        name = pl.col(S.C_DOMAIN).cast(pl.String).str.to_lowercase()
        wanted = domain.lower()
        same = same | (name == wanted) | name.str.ends_with("." + wanted)
    return same.fill_null(False)


def campaign_devices(candidates: pl.DataFrame, remote_ip: str | None, domain: str | None) -> int:
    """How many devices are candidates to this destination (1 when only this one)."""
    if candidates.height == 0 or S.C_REMOTE_IP not in candidates.columns:
        return 0
    group = candidates.filter(same_destination(candidates.columns, remote_ip, domain))
    return int(group.get_column(S.C_DEVICE).drop_nulls().n_unique())


def sharing_candidates(
    candidates: pl.DataFrame,
    remote_ip: str | None,
    domain: str | None,
    exclude: Mapping[str, Any],
    limit: int = 10,
) -> pl.DataFrame:
    """Other candidates to the same address or domain, best first (a campaign's spread)."""
    if candidates.height == 0 or S.C_REMOTE_IP not in candidates.columns:
        return candidates.head(0)
    same = same_destination(candidates.columns, remote_ip, domain)
    itself = pl.lit(True)
    for key in S.CANDIDATE_KEY:
        if key in candidates.columns:
            itself = itself & pl.col(key).eq_missing(pl.lit(exclude.get(key)))
    others = candidates.filter(same & ~itself)
    if S.C_SCORE in others.columns:
        others = others.sort(S.C_SCORE, descending=True, nulls_last=True)
    return others.head(limit)


# --- everything the detail pane shows ---------------------------------------------------

C_PERIOD = S.C_PERIOD


@dataclass(frozen=True)
class CandidateDetail:
    """One candidate, explained: its times, interval statistics, evidence, destination."""

    row: dict[str, Any]
    times: np.ndarray  # datetime64[us], distinct and sorted
    deltas: np.ndarray  # seconds
    stats: IntervalStats
    sleep_s: float | None  # the period estimate when a detector gave one, else the median
    evidence: list[EvidenceItem]
    destination: Destination
    sharing: pl.DataFrame
    window: tuple[datetime | None, datetime | None]
    campaign_devices: int = 0  # devices that are candidates to this destination


def describe_candidate(
    row: Mapping[str, Any],
    pairs: pl.DataFrame,
    index: DestinationIndex,
    candidates: pl.DataFrame,
) -> CandidateDetail:
    """Gather the detail of one candidate row (a dict from the candidates frame)."""
    times = pair_times(
        pairs,
        row.get(S.C_DEVICE),
        row.get(S.C_PROCESS),
        row.get(S.C_REMOTE_IP),
        row.get(S.C_REMOTE_PORT),
    )
    deltas = deltas_of(times)
    stats = interval_stats(deltas)
    period = row.get(C_PERIOD)
    sleep = float(period) if isinstance(period, (int, float)) and period > 0 else stats.median_s
    destination = index.describe(row.get(S.C_REMOTE_IP), row.get(S.C_DOMAIN))
    sharing = sharing_candidates(candidates, destination.ip, destination.domain, row)
    return CandidateDetail(
        row=dict(row),
        times=times,
        deltas=deltas,
        stats=stats,
        sleep_s=sleep,
        evidence=evidence_items(row.get(S.C_EVIDENCE)),
        destination=destination,
        sharing=sharing,
        window=index.window,
        campaign_devices=campaign_devices(candidates, destination.ip, destination.domain),
    )


# --- optional offline ASN / geo ----------------------------------------------------------


class GeoLookup:
    """ASN and country from a local MaxMind ``.mmdb`` file, never from the network.

    Silently does nothing when the ``maxminddb`` package or the file is missing or
    unreadable: enrichment is a nicety, not a reason to stop a hunt.
    """

    def __init__(self, path: Path) -> None:
        self._reader: Any = None
        try:
            import maxminddb

            self._reader = maxminddb.open_database(str(path))
        except Exception:  # ImportError, OSError, InvalidDatabaseError: all mean "none"
            self._reader = None

    @property
    def available(self) -> bool:
        """True when the file was opened: ASN columns can be filled."""
        return self._reader is not None

    def asn_frame(self, ips: Sequence[str]) -> pl.DataFrame:
        """``remote_ip``, ``asn`` (Int64), ``org`` for each distinct address given: one
        reader call per address, never per candidate (candidates join on it)."""
        rows = []
        for ip in dict.fromkeys(ips):
            found = self.lookup(ip)
            asn = found.get("asn", "").removeprefix("AS")
            rows.append((ip, int(asn) if asn.isdigit() else None, found.get("org")))
        schema = {S.C_REMOTE_IP: pl.String, S.C_ASN: pl.Int64, S.C_ORG: pl.String}
        return pl.DataFrame(rows, schema=schema, orient="row")

    def lookup(self, ip: str) -> dict[str, str]:
        if self._reader is None:
            return {}
        try:
            record = self._reader.get(ip)
        except (ValueError, TypeError):
            return {}
        if not isinstance(record, Mapping):
            return {}
        found: dict[str, str] = {}
        if "autonomous_system_number" in record:
            found["asn"] = f"AS{record['autonomous_system_number']}"
        if "autonomous_system_organization" in record:
            found["org"] = str(record["autonomous_system_organization"])
        country = record.get("country") or record.get("registered_country")
        if isinstance(country, Mapping) and country.get("iso_code"):
            found["country"] = str(country["iso_code"])
        return found


def with_asn(candidates: pl.DataFrame, geo: GeoLookup | None) -> pl.DataFrame:
    """Candidates with ``asn`` and ``org`` columns from a local mmdb, for allow-list
    entries by network owner; unchanged when there is no readable mmdb (so an entry by
    ``asn``/``org`` matches nothing, as the entry form says)."""
    if geo is None or not geo.available or S.C_REMOTE_IP not in candidates.columns:
        return candidates
    # a proxied candidate's owner is its first server's (its remote end is a host name)
    key = pl.col(S.C_REMOTE_IP).cast(pl.String)
    if isinstance(candidates.schema.get(S.C_SERVER_IPS), pl.List):
        key = pl.coalesce(pl.col(S.C_SERVER_IPS).list.first().cast(pl.String), key)
    base = candidates.drop([c for c in (S.C_ASN, S.C_ORG) if c in candidates.columns])
    base = base.with_columns(key.alias("_owner_ip"))
    ips = base.get_column("_owner_ip").drop_nulls().unique().sort()
    owners = geo.asn_frame(ips.to_list()).rename({S.C_REMOTE_IP: "_owner_ip"})
    right = owners.cast({"_owner_ip": pl.String})
    joined = base.join(right, on="_owner_ip", how="left", maintain_order="left")
    return joined.drop("_owner_ip")
