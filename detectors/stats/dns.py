"""DNS beacon statistics: cadence, unique subdomains, record types and label entropy.

A DNS C2 channel (Cobalt Strike's DNS beacon, dnscat2, Sliver's DNS transport, iodine)
carries its data in the query name, so a device asks for many *unique* subdomains of
one registered domain, at the implant's sleep, often with TXT, NULL or CNAME records
(room for an answer), and with labels that look random (encoded bytes). Through an
internal resolver the connection logs only show the device talking to the resolver;
Zeek's dns.log still has every query. Per device and registered domain this module
measures, with one name each:

* ``queries``: how many queries;
* ``distinct_share``: distinct query names / queries (1.0: every name asked once,
  the tunnel signature; a software updater asks the same few names again and again);
* ``rare_type_share``: share of queries of type TXT, NULL or CNAME;
* ``entropy_bits``: mean Shannon entropy (Shannon 1948) of the subdomain part (the name
  without the registered domain and its dot), in bits per character over the
  characters of that name: ``-sum_c p_c log2 p_c``. Hex-encoded data approaches 4,
  base32 5, words 2.5-3.5; an empty subdomain counts 0;
* the query cadence from ``stats.renewal`` on the query times: ``sleep_s``,
  ``spread``, ``cadence_p``.

References: Born & Gustafson (2010), "Detecting DNS tunnels using character frequency
analysis"; Farnham & Atlasis (2013, SANS), "Detecting DNS tunneling" (unique subdomains
per domain, TXT/NULL share, label entropy).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from detectors.stats.renewal import RenewalSettings, deltas_from_times, renewal_test

RARE_TYPES = ("TXT", "NULL", "CNAME")

QUERIES = "queries"
DISTINCT_SHARE = "distinct_share"
RARE_TYPE_SHARE = "rare_type_share"
ENTROPY_BITS = "entropy_bits"
SLEEP = "sleep_s"
SPREAD = "spread"
CADENCE_P = "cadence_p"


def shannon_entropy(strings: pl.Series) -> pl.Series:
    """Shannon entropy in bits per character of each string (0 for empty or null).

    Vectorised: the strings are exploded into characters once, counted per (row,
    character), and summed per row; no Python loop over strings.
    """
    frame = pl.DataFrame({"s": strings.cast(pl.String).fill_null("")}).with_row_index("row")
    chars = (
        frame.with_columns(pl.col("s").str.split("").alias("c"))
        .explode("c")
        .filter(pl.col("c").is_not_null() & (pl.col("c") != ""))
    )
    counts = chars.group_by("row", "c").len()
    entropy = (
        counts.with_columns((pl.col("len") / pl.col("len").sum().over("row")).alias("p"))
        .group_by("row")
        .agg((-(pl.col("p") * pl.col("p").log(2))).sum().alias("h"))
    )
    out = frame.join(entropy, on="row", how="left").sort("row").get_column("h")
    return out.fill_null(0.0).abs().alias(strings.name)


def subdomain(query: pl.Expr, domain: pl.Expr) -> pl.Expr:
    """The query name without its registered domain and the dot before it ("" if none).

    Case and a trailing root dot are ignored: ``A1b2.Evil.example.`` under
    ``evil.example`` is ``a1b2``.
    """
    q = query.str.to_lowercase().str.strip_suffix(".")
    dom = domain.str.to_lowercase()
    cut = q.str.len_chars() - dom.str.len_chars() - 1
    return (
        pl.when(q.str.ends_with(pl.concat_str([pl.lit("."), dom])))
        .then(q.str.slice(0, cut))
        .otherwise(pl.lit(""))
    )


def dns_pair_stats(
    frame: pl.DataFrame,
    *,
    device: str,
    domain: str,
    query: str,
    qtype: str,
    time: str,
    settings: RenewalSettings | None = None,
) -> pl.DataFrame:
    """Per (device, registered domain): the figures in the module docstring.

    ``frame`` has one row per query: the device, its registered domain (eTLD+1, see
    ``detectors.domains``), the full query name, the record type (a name such as
    "TXT"; Zeek's ``qtype_name``) and the time (a datetime). Rows with a null domain
    are left out.
    """
    rows = frame.filter(pl.col(domain).is_not_null()).with_columns(
        subdomain(pl.col(query), pl.col(domain)).alias("_sub")
    )
    rows = rows.with_columns(shannon_entropy(rows.get_column("_sub")).alias("_entropy"))
    grouped = (
        rows.sort(device, domain, time)
        .group_by(device, domain, maintain_order=True)
        .agg(
            pl.len().alias(QUERIES),
            (pl.col(query).str.to_lowercase().n_unique() / pl.len()).alias(DISTINCT_SHARE),
            pl.col(qtype).str.to_uppercase().is_in(RARE_TYPES).mean().alias(RARE_TYPE_SHARE),
            pl.col("_entropy").mean().alias(ENTROPY_BITS),
            pl.col(time).dt.epoch("us").alias("_us"),
        )
    )
    counts = grouped.get_column("_us").list.len().to_numpy().astype(np.int64)
    times = grouped.get_column("_us").explode().to_numpy().astype(np.float64) / 1e6
    deltas, n_deltas = deltas_from_times(times, counts)
    cadence = renewal_test(deltas, n_deltas, settings)
    return grouped.drop("_us").with_columns(
        pl.Series(SLEEP, cadence["sleep_s"]),
        pl.Series(SPREAD, cadence["spread"]),
        pl.Series(CADENCE_P, cadence["p_value"]),
    )
