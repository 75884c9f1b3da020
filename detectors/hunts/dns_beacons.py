"""Detector ``dns_beacons``: DNS tunnels and DNS beacons from the DNS query log.

A DNS C2 channel (Cobalt Strike's DNS beacon, dnscat2, Sliver's DNS transport) asks
the internal resolver for a fresh subdomain of one rare registered domain at the
implant's sleep: the connection logs only show the device talking to its resolver,
which every device does. Zeek's dns.log keeps every query (``PairContext.dns``); per
device and registered domain this hunt measures, with ``detectors.stats.dns``:

* the query cadence: the renewal test on the query times (``stats.renewal``: a sleep
  drawn uniformly with up to 50 % jitter still tests), which must be significant after
  the Benjamini-Hochberg false-discovery rate over every (device, domain) tested;
* ``distinct_share``: distinct names / queries (a tunnel never asks one name twice;
  an updater asks the same few names again and again), at least ``min_distinct_share``;
* the domain's prevalence: at most ``max_domain_devices`` devices ask for it at all
  (a CDN or SaaS domain with unique per-client names is asked by everyone);
* ``rare_type_share`` (TXT, NULL, CNAME) and ``entropy_bits`` of the subdomain labels:
  not required (a DNS beacon may use A records and words), but they raise the score.

A candidate's remote is the registered domain, its port 53, its process null (DNS
logs have none) and its ``resolver`` column the server the queries went to: the path.
Defender's DeviceNetworkEvents has no query rows (DnsQueryResponse events live in
DeviceEvents), so Defender exports give this hunt nothing to read.

Needs the whole DNS table at once (prevalence over every device). The DNS table is a
side table kept in memory by every strategy (one row per query, no bigger than the
names), so on partitioned input the hunt does nothing per partition and runs once on
the whole table when the partitions are combined.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from detectors.base import schema as S
from detectors.base.domains import registered_domains_of_hosts
from detectors.base.progress import Progress
from detectors.hunts.spec import register, register_stages
from detectors.pairs.context import PairContext
from detectors.stats import dns as D
from detectors.stats.periodogram import benjamini_hochberg
from detectors.stats.renewal import RenewalSettings

NAME = "dns_beacons"

RESOLVER = "resolver"
DOMAIN_DEVICES = "domain_query_devices"  # devices asking for the domain at all
Q_VALUE = "q_value"
DNS_PORT = 53

# Reverse lookups and local names are never a tunnel's registered domain.
_NEVER = (".arpa", ".local", ".localhost", ".internal")


@dataclass(frozen=True)
class DnsBeaconParams:
    """Parameters of the dns_beacons detector."""

    min_queries: int = field(
        default=8,
        metadata={
            "doc": "Fewest queries per device and registered domain; the renewal test "
            "needs a handful of intervals to say anything."
        },
    )
    min_distinct_share: float = field(
        default=0.8,
        metadata={
            "doc": "Least share of distinct names among the queries (1.0: every name "
            "asked once, the tunnel signature); lower also hunts beacons that repeat "
            "names, and the caches of ordinary software."
        },
    )
    max_domain_devices: int = field(
        default=3,
        metadata={
            "doc": "Most devices that may ask for the registered domain at all: a "
            "tunnel's domain is rare; a CDN's unique per-client names are everyone's."
        },
    )
    max_p_value: float = field(
        default=0.01,
        metadata={
            "doc": "Largest false-discovery rate (Benjamini-Hochberg over every device "
            "and domain tested) of the cadence test."
        },
    )
    pause_factor: float = field(
        default=4.0,
        metadata={
            "doc": "A gap of more than this many sleeps is a pause (night, weekend), "
            "not jitter (as in the periodicity hunt)."
        },
    )
    internal_suffixes: tuple[str, ...] = field(
        default=(),
        metadata={
            "doc": "Domain suffixes of the site itself (e.g. corp.example), never "
            "hunted: their host names are many and asked by few devices each."
        },
    )


def empty_result() -> pl.DataFrame:
    schema = dict(S.CANDIDATE_BASE_SCHEMA)
    schema.update(
        {
            S.C_DOMAIN: pl.String(),
            RESOLVER: pl.String(),
            D.QUERIES: pl.Int64(),
            D.DISTINCT_SHARE: pl.Float64(),
            D.RARE_TYPE_SHARE: pl.Float64(),
            D.ENTROPY_BITS: pl.Float64(),
            S.C_PERIOD: pl.Float64(),
            D.SPREAD: pl.Float64(),
            D.CADENCE_P: pl.Float64(),
            Q_VALUE: pl.Float64(),
            DOMAIN_DEVICES: pl.Int64(),
        }
    )
    return pl.DataFrame(schema=schema)


def dns_score(
    cadence_p: pl.Expr, distinct: pl.Expr, rare_types: pl.Expr, entropy: pl.Expr
) -> pl.Expr:
    """0..1: half the cadence's significance (full at p <= 1e-10), the rest the tunnel.

    The tunnel half: distinct names (0.2, from the 0.8 floor up), TXT/NULL/CNAME share
    (0.15) and label entropy (0.15, full at 4 bits a character: hex data).
    """
    significance = (-(cadence_p.clip(1e-300, 1.0).log10()) / 10).clip(0.0, 1.0)
    return (
        0.5 * significance
        + 0.2 * distinct.clip(0.0, 1.0)
        + 0.15 * rare_types.clip(0.0, 1.0)
        + 0.15 * (entropy / 4).clip(0.0, 1.0)
    )


def queries_with_domains(dns: pl.DataFrame, params: DnsBeaconParams) -> pl.DataFrame:
    """The queries with their registered domain; reverse, local and the site's own left out."""
    rows = dns.filter(pl.col(S.DNS_QUERY).is_not_null() & pl.col(S.DNS_DEVICE).is_not_null())
    rows = rows.with_columns(
        registered_domains_of_hosts(rows.get_column(S.DNS_QUERY)).alias(S.C_DOMAIN)
    )
    never = [*_NEVER, *(f".{s.lower().strip('.')}" for s in params.internal_suffixes)]
    dotted = pl.concat_str([pl.lit("."), pl.col(S.C_DOMAIN)])
    excluded = pl.any_horizontal([dotted.str.ends_with(s) for s in never])
    return rows.filter(pl.col(S.C_DOMAIN).is_not_null() & ~excluded)


@register(
    NAME, "DNS beacons: unique subdomains of a rare domain at a steady cadence", DnsBeaconParams
)
def run(dataset: PairContext, params: DnsBeaconParams, progress: Progress) -> pl.DataFrame:
    """(device, registered domain) pairs that look like a DNS beacon, best first."""
    if dataset.dns.is_empty():
        progress.report(NAME, 1.0, "no DNS query log (Zeek dns.log) in the input")
        return empty_result()
    progress.report(NAME, 0.1, f"{dataset.dns.height} DNS queries")
    rows = queries_with_domains(dataset.dns, params)
    prevalence = rows.group_by(S.C_DOMAIN).agg(
        pl.col(S.DNS_DEVICE).n_unique().cast(pl.Int64).alias(DOMAIN_DEVICES)
    )
    per_pair = rows.group_by(S.DNS_DEVICE, S.C_DOMAIN).agg(pl.len().alias("_n"))
    tested = per_pair.filter(pl.col("_n") >= params.min_queries).select(S.DNS_DEVICE, S.C_DOMAIN)
    rows = rows.join(tested, on=[S.DNS_DEVICE, S.C_DOMAIN], how="semi")
    if rows.is_empty():
        progress.report(NAME, 1.0, "no device asked any domain often enough")
        return empty_result()
    progress.report(NAME, 0.4, f"testing {tested.height} device-domain pairs")
    stats = D.dns_pair_stats(
        rows,
        device=S.DNS_DEVICE,
        domain=S.C_DOMAIN,
        query=S.DNS_QUERY,
        qtype=S.DNS_QTYPE,
        time=S.DNS_TIME,
        settings=RenewalSettings(pause_factor=params.pause_factor),
    )
    p = stats.get_column(D.CADENCE_P).fill_nan(1.0).fill_null(1.0).to_numpy()
    stats = stats.with_columns(pl.Series(Q_VALUE, benjamini_hochberg(np.asarray(p))))
    described = rows.group_by(S.DNS_DEVICE, S.C_DOMAIN).agg(
        pl.col(S.DNS_RESOLVER).drop_nulls().mode().sort().first().alias(RESOLVER),
        pl.col(S.DNS_TIME).min().alias(S.C_FIRST_SEEN),
        pl.col(S.DNS_TIME).max().alias(S.C_LAST_SEEN),
    )
    hits = (
        stats.join(prevalence, on=S.C_DOMAIN, how="left")
        .join(described, on=[S.DNS_DEVICE, S.C_DOMAIN], how="left")
        .filter(
            (pl.col(Q_VALUE) <= params.max_p_value)
            & (pl.col(D.DISTINCT_SHARE) >= params.min_distinct_share)
            & (pl.col(DOMAIN_DEVICES) <= params.max_domain_devices)
        )
    )
    result = hits.select(
        pl.lit(NAME).alias(S.C_DETECTOR),
        pl.col(S.DNS_DEVICE).alias(S.C_DEVICE),
        pl.lit(None, pl.String).alias(S.C_PROCESS),
        pl.col(S.C_DOMAIN).alias(S.C_REMOTE_IP),
        pl.lit(DNS_PORT, pl.Int32).alias(S.C_REMOTE_PORT),
        dns_score(
            pl.col(D.CADENCE_P),
            pl.col(D.DISTINCT_SHARE),
            pl.col(D.RARE_TYPE_SHARE),
            pl.col(D.ENTROPY_BITS),
        ).alias(S.C_SCORE),
        pl.col(D.QUERIES).cast(pl.Int64).alias(S.C_CONNECTIONS),
        S.C_FIRST_SEEN,
        S.C_LAST_SEEN,
        S.C_DOMAIN,
        RESOLVER,
        pl.col(D.QUERIES).cast(pl.Int64),
        D.DISTINCT_SHARE,
        D.RARE_TYPE_SHARE,
        D.ENTROPY_BITS,
        pl.col(D.SLEEP).alias(S.C_PERIOD),
        D.SPREAD,
        D.CADENCE_P,
        Q_VALUE,
        DOMAIN_DEVICES,
    )
    result = result.cast(empty_result().schema).sort(
        [S.C_SCORE, *S.CANDIDATE_KEY], descending=[True, False, False, False, False]
    )
    progress.report(NAME, 1.0, f"{result.height} DNS beacons")
    return result


def _nothing_per_partition(
    dataset: PairContext, params: DnsBeaconParams, progress: Progress
) -> None:
    """The DNS table is not partitioned: nothing to do per device partition."""
    return None


def _on_the_whole_table(
    partials: list[None], dataset: PairContext, params: DnsBeaconParams, progress: Progress
) -> pl.DataFrame:
    return run(dataset, params, progress)


register_stages(NAME, _nothing_per_partition, _on_the_whole_table)
