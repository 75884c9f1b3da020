"""One ranked list: every detector's hits merged per candidate, scored 0..1 with reasons.

A candidate is one (device, process, remote IP, remote port) (``schema.CANDIDATE_KEY``;
for Zeek the process is null and the device is the originating IP). Its score is a
sum of points, each an ``evidence`` entry {name, value, points}, clipped to 0..1:

* timing: ``w_timing`` x the strongest timing evidence (the best score among the
  detectors that hit), plus ``w_agreement`` for each further timing detector;
* context, from ``detectors.rank.evidence``: RITA's prevalence modifier (+0.15 rare,
  -0.15 common), rare registered domain, no name at all, LOLBin or system process,
  rare port, unsigned binary, steady bytes, new destination, Zeek's rare user agent,
  HTTP without Host, TLS without SNI, the vendor's own domain (minus), scanning (minus).

The ``aggregated`` detector has no port (hourly reports carry none): its hits join
every candidate of the same (device, process, remote IP) that another detector found,
and stand alone with a null port otherwise.

Weights are parameters (``[scoring]`` in the config). Defaults were tuned on the
sample data and argued from what the evidence means; the README lists them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import polars as pl

from detectors.base import schema as S
from detectors.pairs.context import PairContext
from detectors.rank import evidence as E
from detectors.rank import infrastructure

# Merged-list columns beyond the schema's C_* constants.
C_NAMES = S.C_NAMES
C_PERIOD = S.C_PERIOD
C_PREVALENCE = "prevalence_devices"
C_DEVICE_ID = "device_id"

RARE_DESTINATIONS = "rare_destinations"
DNS_BEACONS = "dns_beacons"  # its remote is a registered domain, not an address
DNS_DOMAIN_DEVICES = "domain_query_devices"
DNS_RARE_TYPES = "rare_type_share"
DNS_ENTROPY = "entropy_bits"
CONTEXT_DETECTORS = frozenset({RARE_DESTINATIONS})  # hits that say "unusual", not "periodic"
PERIOD_SOURCES = ("periodicity", DNS_BEACONS)
PORTLESS_DETECTORS = frozenset(
    {"aggregated"}
)  # hourly reports carry no port at all  # detectors whose period_s is an estimated sleep

EVIDENCE_TYPE = pl.List(
    pl.Struct({"name": pl.String(), "value": pl.String(), "points": pl.Float64()})
)

MERGED_SCHEMA: dict[str, pl.DataType] = {
    S.C_DEVICE: pl.String(),
    S.C_PROCESS: pl.String(),
    S.C_REMOTE_IP: pl.String(),
    S.C_REMOTE_PORT: pl.Int32(),
    S.C_SCORE: pl.Float64(),
    S.C_DETECTORS: pl.List(pl.String()),
    S.C_CONNECTIONS: pl.Int64(),
    S.C_FIRST_SEEN: pl.Datetime("us", "UTC"),
    S.C_LAST_SEEN: pl.Datetime("us", "UTC"),
    S.C_DOMAIN: pl.String(),
    C_NAMES: pl.List(pl.String()),
    S.C_INTERVAL: pl.Float64(),
    C_PERIOD: pl.Float64(),
    S.C_JITTER: pl.Float64(),
    C_PREVALENCE: pl.Int64(),
    S.C_EVIDENCE: EVIDENCE_TYPE,
    S.C_ACCOUNT: pl.String(),
    C_DEVICE_ID: pl.String(),
    S.C_DIRECTION: pl.String(),
    S.C_VIA_PROXY: pl.String(),
    S.C_SERVER_IPS: pl.List(pl.String()),
    S.C_ICMP: pl.String(),
}


def _w(default: float, doc: str) -> Any:
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class ScoreWeights:
    """Points each piece of evidence adds (negative: subtracts); thresholds they use."""

    w_timing: float = _w(
        0.40,
        "Points for the strongest timing evidence, x its strength 0..1 (see "
        "timing_hit_floor). Periodicity is necessary, not damning: updaters are periodic too.",
    )
    timing_hit_floor: float = _w(
        0.5,
        "Timing strength of a detector hit with score 0: passing a detector's thresholds "
        "is evidence in itself; strength = floor + (1 - floor) x the detector's score.",
    )
    w_agreement: float = _w(
        0.03,
        "Per further timing detector that agrees. Small: clean benign schedules satisfy "
        "every detector, while lossy, slow or jittery beacons only satisfy some.",
    )
    max_agreement: float = _w(0.06, "Cap on the agreement points.")
    w_rare_destination_detector: float = _w(
        0.10,
        "The rare_destinations detector hit: a new, rare destination of a server "
        "running third-party software (seed 004, supply-chain shape).",
    )
    w_ip_rare: float = _w(
        0.15, "RITA's prevalence modifier: the remote IP is reached by few devices."
    )
    w_ip_common: float = _w(
        -0.15, "RITA's prevalence modifier: the remote IP is reached by most devices."
    )
    rare_share: float = _w(0.02, "'Few devices' = at most this share of hosts (RITA: 2 %) ...")
    rare_floor_devices: int = field(
        default=2,
        metadata={
            "doc": "... or at most this many devices, so a small network still has "
            "rare destinations (2 % of 30 hosts is under one device)."
        },
    )
    common_share: float = _w(0.5, "'Most devices' = at least this share of hosts (RITA: 50 %).")
    w_infrastructure: float = _w(
        -0.30,
        "An infrastructure service (NTP, DNS forwarding from a resolver, a monitoring "
        "agent; data/infrastructure.toml): periodic by design. Shown with its reason.",
    )
    w_public_service: float = _w(
        -0.15,
        "Inbound: our port answers many external sources (public_service_sources or more): "
        "a public service that uptime checkers and crawlers poll.",
    )
    public_service_sources: float = _w(20, "See w_public_service.")
    w_private_listener: float = _w(
        0.10,
        "Inbound: our port answered no external source but this one (and at most one "
        "other): a listener someone polls privately, as a controller polls an implant.",
    )
    w_domain_rare: float = _w(0.05, "The registered domain is reached by few devices.")
    w_domain_common: float = _w(-0.10, "The registered domain is reached by most devices.")
    w_direct_ip: float = _w(
        0.10,
        "No name was ever seen for the address (no DNS, SNI, Host or RemoteUrl): "
        "software people install uses names.",
    )
    w_lolbin: float = _w(
        0.15, "The process is a living-off-the-land binary (detectors/rank/data/lolbins.toml)."
    )
    w_system_process: float = _w(
        0.10, "A Windows system process (an injection target) calls a rare destination."
    )
    w_process_rare: float = _w(
        0.0,
        "The process runs on few devices. 0 by default: rare processes are mostly "
        "installed third-party agents, so rarity alone is not suspicious (shown only).",
    )
    w_unusual_port: float = _w(
        0.05,
        "The port is rare across the data, or rare for the process (used by at "
        "most process_port_share of the devices running it).",
    )
    process_port_share: float = _w(0.1, "See w_unusual_port; needs the process on 5+ devices.")
    w_unsigned: float = _w(
        0.10,
        "The binary has no company in its version info (renamed or home-made); "
        "only when the data carries company names at all.",
    )
    w_bytes_steady: float = _w(
        0.05,
        "Bytes sent per connection barely vary (trimmed CoV <= bytes_cov_max, "
        "Elastic's bytes test); needs bytes (Zeek, ECS, some exports).",
    )
    bytes_cov_max: float = _w(0.1, "See w_bytes_steady (Elastic's default is 0.05).")
    w_new_destination: float = _w(
        0.05,
        "The address was first seen after new_after_share of the data's span "
        "(RITA's first-seen modifier).",
    )
    new_after_share: float = _w(0.25, "See w_new_destination.")
    w_rare_user_agent: float = _w(
        0.10, "Zeek http.log: the user agent is used by few devices (RITA's modifier)."
    )
    w_missing_host: float = _w(
        0.10, "Zeek http.log: HTTP requests without a Host header (RITA's modifier)."
    )
    w_tls_no_sni: float = _w(0.10, "Zeek ssl.log: TLS without a server name.")
    w_vendor_domain: float = _w(
        -0.25,
        "The domain's label is the binary's company (fabrikam.com for 'Fabrikam, "
        "Inc.'): software calling its own vendor. Lookalikes (vendor-updates.com) do "
        "not match.",
    )
    w_scanning: float = _w(
        -0.30,
        "Failed-only, zero-byte traffic from the device to scan_min_ports or more "
        "ports of the address: a scan, not a beacon.",
    )
    scan_min_ports: int = field(default=10, metadata={"doc": "See w_scanning."})
    infrastructure_file: str | None = field(
        default=None,
        metadata={
            "doc": "The infrastructure services list (TOML); unset: the shipped "
            'detectors/rank/data/infrastructure.toml; "": none.'
        },
    )
    few_failed_max_score: float = _w(
        0.30,
        "Highest score of a pair whose only connections are a handful of failures "
        "(fewer than few_failed_connections): a dead C2 shows as a steady run of "
        "failures, one or two failed attempts are a typo or a blocked ad.",
    )
    few_failed_connections: int = field(
        default=6,
        metadata={"doc": "See few_failed_max_score (the periodicity hunt's min_events)."},
    )
    pinned_max_connections: int = field(
        default=42,
        metadata={
            "doc": "Long sleeps with at most this many connections (a week of 4-hourly "
            "calls) have their timing judged by how tightly the connections pin the "
            "sleep (see pinned_max_width), not by a p-value few connections cannot reach."
        },
    )
    pinned_max_width: float = _w(
        0.25,
        "Widest 95 % interval of the sleep, relative to the sleep, that counts as "
        "pinned: timing strength is then at least 1 - width. 0.25 is +-12.5 %, within "
        "the 10-50 % jitter implants add, far narrower than Poisson gaps (which rarely "
        "pass the hunts at all).",
    )
    w_dns_tunnel: float = _w(
        0.10,
        "dns_beacons: the queries carry data (at least half TXT/NULL/CNAME, or labels "
        "of dns_entropy_bits or more per character: encoded bytes) (Farnham & Atlasis 2013).",
    )
    dns_entropy_bits: float = _w(
        3.5, "See w_dns_tunnel: hex approaches 4 bits a character, words stay under 3.5."
    )
    campaign_rare: bool = field(
        default=True,
        metadata={
            "doc": "A destination every one of whose devices beacons to it (2 to "
            "campaign_max_devices of them) counts as rare for the prevalence modifier: "
            "nobody else goes there. False: only rare_floor_devices / rare_share decide."
        },
    )
    campaign_max_devices: int = field(
        default=5,
        metadata={
            "doc": "Campaign: when two or more devices are timing candidates to one "
            "destination that at most this many devices reach at all (and not most of "
            "the fleet), each member is lifted to the group's best score: one implant, "
            "several victims, found once. A lift, not a bonus, so benign agents on a "
            "few servers rank where they did. 0 turns it off."
        },
    )


def weights_from_config(config: object) -> ScoreWeights:
    """The scoring weights from the config's [scoring] table (defaults when absent)."""
    from detectors.hunts.registry import params_from_table

    table = getattr(config, "scoring", None) or {}
    path = getattr(config, "path", None)
    return params_from_table(
        ScoreWeights, table, file=str(path) if path else None, section="scoring"
    )


def weight_docs() -> list[tuple[str, Any, str]]:
    """(name, default, description) of every weight, for the README and the TUI."""
    return [(f.name, f.default, str(f.metadata.get("doc", ""))) for f in fields(ScoreWeights)]


def empty_candidates() -> pl.DataFrame:
    return pl.DataFrame(schema=MERGED_SCHEMA)


# --- merging the detectors' rows ------------------------------------------------------

_OPTIONAL = {
    S.C_INTERVAL: pl.Float64(),
    S.C_JITTER: pl.Float64(),
    C_PERIOD: pl.Float64(),
    S.C_ACCOUNT: pl.String(),
    C_DEVICE_ID: pl.String(),
    "p_value": pl.Float64(),
    "jitter_kind": pl.String(),
    "missed_fraction": pl.Float64(),
    "schedule": pl.String(),
    "sleep_ci_low_s": pl.Float64(),
    "sleep_ci_high_s": pl.Float64(),
    "burst_size": pl.Float64(),
    # dns_beacons: the domain's prevalence in the DNS log and the tunnel figures
    DNS_DOMAIN_DEVICES: pl.Int64(),
    DNS_RARE_TYPES: pl.Float64(),
    DNS_ENTROPY: pl.Float64(),
}
_KEY3 = [S.C_DEVICE, S.C_PROCESS, S.C_REMOTE_IP]


def _detector_rows(per_detector: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """Every hit of every detector in one frame: base columns plus the shared evidence."""
    frames = []
    for name, frame in sorted(per_detector.items()):
        if frame is None or frame.height == 0:
            continue
        cols = []
        for col, dtype in {**S.CANDIDATE_BASE_SCHEMA, **_OPTIONAL}.items():
            if col in frame.columns:
                cols.append(pl.col(col).cast(dtype, strict=False))
            else:
                cols.append(pl.lit(None, dtype=dtype).alias(col))
        frames.append(frame.select(cols).with_columns(pl.lit(name).alias(S.C_DETECTOR)))
    if not frames:
        return pl.DataFrame(schema={**S.CANDIDATE_BASE_SCHEMA, **_OPTIONAL})
    return pl.concat(frames, how="vertical_relaxed")


def _attach_portless(rows: pl.DataFrame) -> pl.DataFrame:
    """Give port-less hits (aggregated reports) the ports other detectors found.

    Only detectors that never see a port (``PORTLESS_DETECTORS``) are spread this way.
    An empty port from any other detector is a value of its own (ICMP, a sensor that
    left the field blank): taking it as a wildcard merged a 150-connection beacon into
    every same-pair candidate that had a port, and it vanished from the list.
    """
    portless_hit = pl.col(S.C_REMOTE_PORT).is_null() & pl.col(S.C_DETECTOR).is_in(
        list(PORTLESS_DETECTORS)
    )
    with_port = rows.filter(~portless_hit)
    portless = rows.filter(portless_hit)
    ports = with_port.filter(pl.col(S.C_REMOTE_PORT).is_not_null())
    ports = ports.select(*_KEY3, S.C_REMOTE_PORT).unique()
    matched = portless.drop(S.C_REMOTE_PORT).join(ports, on=_KEY3, how="inner", nulls_equal=True)
    alone = portless.join(ports, on=_KEY3, how="anti", nulls_equal=True)
    return pl.concat([with_port, matched.select(rows.columns), alone], how="vertical_relaxed")


def _first_from(column: str, preferred: tuple[str, ...] = ()) -> pl.Expr:
    """The value from the preferred detectors first, else from any detector."""
    choices = [
        pl.col(column).filter(pl.col(S.C_DETECTOR) == name).drop_nulls().first()
        for name in preferred
    ]
    return pl.coalesce(*choices, pl.col(column).drop_nulls().first()).alias(column)


def _combine(rows: pl.DataFrame) -> pl.DataFrame:
    """One row per candidate: detectors, timing strength and the descriptive columns."""
    timing = ~pl.col(S.C_DETECTOR).is_in(list(CONTEXT_DETECTORS))
    return (
        rows.sort(S.C_DETECTOR)
        .group_by(S.CANDIDATE_KEY)
        .agg(
            pl.col(S.C_DETECTOR).unique().sort().alias(S.C_DETECTORS),
            pl.col(S.C_SCORE).filter(timing).max().alias("_timing"),
            pl.col(S.C_DETECTOR).filter(timing).n_unique().cast(pl.Int64).alias("_n_timing"),
            pl.col(S.C_DETECTOR)
            .filter(timing)
            .sort_by(pl.col(S.C_SCORE).filter(timing), descending=True)
            .first()
            .alias("_timing_by"),
            pl.col(S.C_CONNECTIONS).max(),
            pl.col(S.C_FIRST_SEEN).min(),
            pl.col(S.C_LAST_SEEN).max(),
            _first_from(S.C_INTERVAL, ("intervals", "periodicity")),
            _first_from(C_PERIOD, PERIOD_SOURCES),
            _first_from(S.C_JITTER, ("periodicity", "intervals")),
            _first_from(S.C_ACCOUNT),
            _first_from(C_DEVICE_ID),
            _first_from("p_value", PERIOD_SOURCES),
            _first_from("jitter_kind", PERIOD_SOURCES),
            _first_from("missed_fraction", PERIOD_SOURCES),
            _first_from("schedule", PERIOD_SOURCES),
            _first_from("sleep_ci_low_s", PERIOD_SOURCES),
            _first_from("sleep_ci_high_s", PERIOD_SOURCES),
            _first_from("burst_size", PERIOD_SOURCES),
            _first_from(DNS_DOMAIN_DEVICES, (DNS_BEACONS,)),
            _first_from(DNS_RARE_TYPES, (DNS_BEACONS,)),
            _first_from(DNS_ENTROPY, (DNS_BEACONS,)),
        )
    )


# --- points ---------------------------------------------------------------------------


def _entry(condition: pl.Expr, name: str, value: pl.Expr, points: pl.Expr | float) -> pl.Expr:
    """One evidence struct where ``condition`` holds, else null (dropped later)."""
    pts = points if isinstance(points, pl.Expr) else pl.lit(float(points))
    struct = pl.struct(
        pl.lit(name).alias("name"),
        value.cast(pl.String).alias("value"),
        pts.cast(pl.Float64).alias("points"),
    )
    return pl.when(condition.fill_null(False)).then(struct)


def _fmt(value: pl.Expr, digits: int = 2) -> pl.Expr:
    return value.round(digits).cast(pl.String)


def _timing_text() -> pl.Expr:
    sleep = pl.when(pl.col(C_PERIOD).is_not_null()).then(
        pl.format(
            ", sleep {} s, jitter {} % ({})",
            _fmt(pl.col(C_PERIOD), 1),
            _fmt(pl.col(S.C_JITTER), 1),
            pl.col("jitter_kind").fill_null("?"),
        )
    )
    # The uncertainty of the sleep (95 % interval of the median one-sleep delta): what
    # a few-connection long sleep can honestly show. Bursts: connections per check-in.
    interval = pl.when(pl.col("sleep_ci_low_s").is_not_null()).then(
        pl.format(
            ", median delta 95 % CI {}-{} s",
            _fmt(pl.col("sleep_ci_low_s"), 1),
            _fmt(pl.col("sleep_ci_high_s"), 1),
        )
    )
    burst = pl.when(pl.col("burst_size") >= 2).then(
        pl.format(", bursts of {}", _fmt(pl.col("burst_size"), 1))
    )
    return pl.format(
        "{} score {}{}{}{}",
        pl.col("_timing_by"),
        _fmt(pl.col("_timing")),
        sleep.fill_null(""),
        interval.fill_null(""),
        burst.fill_null(""),
    )


def _evidence(w: ScoreWeights) -> pl.Expr:
    """Every rule as one expression producing its evidence entry or null."""
    hosts = pl.col(E.F_HOSTS)
    rare = pl.col("rare_devices")
    ip_devices = pl.col(C_PREVALENCE)
    extra_timing = (pl.col("_n_timing") - 1).clip(0, None)
    agreement = (extra_timing * w.w_agreement).clip(None, w.max_agreement)
    proxy = pl.col(E.F_VIA_PROXY).fill_null(False)
    # Prevalence tells rare from common only when the two bands cannot overlap: with
    # a handful of devices "1 of 1" is both, and says nothing (no points either way).
    informative = rare < w.common_share * hosts
    inbound = (pl.col(E.F_DIRECTION) == S.DIR_INBOUND).fill_null(False)
    rekeyed = pl.col(E.F_PROXY).is_not_null()
    # A campaign's destination: every device that reaches it at all beacons to it, and
    # there are at most campaign_max_devices of them. Nobody else has a reason to go
    # there, so it is rare in the sense RITA's modifier means, though the victims
    # outnumber the floor (see campaign_rare).
    campaign_only = (
        pl.lit(w.campaign_rare)
        & (pl.col(C_CAMPAIGN) >= 2)
        & (ip_devices <= pl.col(C_CAMPAIGN))
        & (ip_devices <= w.campaign_max_devices)
    ).fill_null(False)
    ip_rare = informative & ((ip_devices <= rare) | campaign_only)
    ip_common = informative & (ip_devices >= w.common_share * hosts)
    domain_campaign = (
        pl.lit(w.campaign_rare)
        & (pl.col(C_CAMPAIGN) >= 2)
        & (pl.col(E.F_DOMAIN_DEVICES) <= pl.col(C_CAMPAIGN))
        & (pl.col(E.F_DOMAIN_DEVICES) <= w.campaign_max_devices)
    ).fill_null(False)
    domain_rare = informative & ((pl.col(E.F_DOMAIN_DEVICES) <= rare) | domain_campaign)
    domain_common = informative & (pl.col(E.F_DOMAIN_DEVICES) >= w.common_share * hosts)
    port_rare = (informative & (pl.col(E.F_PORT_DEVICES) <= rare)) | (
        (pl.col(E.F_PROCESS_DEVICES) >= 5)
        & (pl.col(E.F_PROCESS_PORT_SHARE) <= w.process_port_share)
    )
    dest_rare = pl.when(proxy).then(domain_rare).otherwise(ip_rare)
    of_hosts = pl.format(" of {} devices", hosts)
    ip_prevalence = pl.format("{}{}", ip_devices, of_hosts)
    domain_prevalence = pl.format(
        "{} on {}{}", pl.col(S.C_DOMAIN), pl.col(E.F_DOMAIN_DEVICES), of_hosts
    )
    return pl.concat_list(
        _entry(
            pl.col("_timing").is_not_null(),
            "timing",
            _timing_text(),
            w.w_timing * pl.col("_strength"),
        ),
        _entry(
            pl.col("_pinned").is_not_null() & pl.col("_timing").is_not_null(),
            "sleep pinned",
            pl.format(
                "{} connections pin the sleep to +-{} % (95 % interval {}-{} s)",
                pl.col(S.C_CONNECTIONS),
                _fmt(pl.col("_pinned") * 50, 1),
                _fmt(pl.col("sleep_ci_low_s"), 0),
                _fmt(pl.col("sleep_ci_high_s"), 0),
            ),
            0.0,
        ),
        _entry(extra_timing > 0, "agreement", pl.col(S.C_DETECTORS).list.join(", "), agreement),
        _entry(
            (pl.col(DNS_RARE_TYPES) >= 0.5) | (pl.col(DNS_ENTROPY) >= w.dns_entropy_bits),
            "DNS tunnel",
            pl.format(
                "{} % TXT/NULL/CNAME, labels {} bits a character",
                _fmt(pl.col(DNS_RARE_TYPES) * 100, 0),
                _fmt(pl.col(DNS_ENTROPY), 2),
            ),
            w.w_dns_tunnel,
        ),
        _entry(
            pl.col(S.C_DETECTORS).list.contains(RARE_DESTINATIONS),
            "new rare destination",
            pl.lit("rare_destinations hit"),
            w.w_rare_destination_detector,
        ),
        # Prevalence of the remote end, named for what it is: the destination address,
        # the source that connects to us (inbound), or the host asked of a proxy.
        *(
            _entry(scope & test, f"{kind} {noun}", ip_prevalence, weight)
            for scope, noun in (
                (~proxy & ~rekeyed & ~inbound, "destination IP"),
                (inbound, "source IP"),
                (rekeyed, "destination host"),
            )
            for kind, test, weight in (
                ("rare", ip_rare, w.w_ip_rare),
                ("common", ip_common, w.w_ip_common),
            )
        ),
        # Behind a proxy the address is the proxy's: judge the named destination.
        _entry(
            proxy & domain_rare, "rare destination behind proxy", domain_prevalence, w.w_ip_rare
        ),
        _entry(
            proxy & domain_common,
            "common destination behind proxy",
            domain_prevalence,
            w.w_ip_common,
        ),
        _entry(domain_rare, "rare domain", domain_prevalence, w.w_domain_rare),
        _entry(domain_common, "common domain", domain_prevalence, w.w_domain_common),
        _entry(
            ~informative,
            "prevalence not used",
            pl.format("only {} devices: rare and common cannot be told apart", hosts),
            0.0,
        ),
        _entry(
            pl.col(E.F_PROXY).is_not_null(),
            "via proxy",
            pl.format("{} (destination named by CONNECT, URL or RemoteUrl)", pl.col(E.F_PROXY)),
            0.0,
        ),
        _entry(
            inbound,
            "inbound",
            pl.format("{} connects to our port {}", pl.col(S.C_REMOTE_IP), pl.col(S.C_REMOTE_PORT)),
            0.0,
        ),
        _entry(
            inbound & (pl.col(E.F_SERVED_SOURCES) >= w.public_service_sources),
            "public service",
            pl.format(
                "our port {} answers {} external sources",
                pl.col(S.C_REMOTE_PORT),
                pl.col(E.F_SERVED_SOURCES),
            ),
            w.w_public_service,
        ),
        _entry(
            inbound & (pl.col(E.F_SERVED_SOURCES) <= 2),
            "private listener",
            pl.format(
                "our port {} answers {} external sources",
                pl.col(S.C_REMOTE_PORT),
                pl.col(E.F_SERVED_SOURCES),
            ),
            w.w_private_listener,
        ),
        _entry(
            pl.col(infrastructure.F_INFRASTRUCTURE).is_not_null(),
            "infrastructure service",
            pl.col(infrastructure.F_INFRASTRUCTURE),
            w.w_infrastructure,
        ),
        _entry(
            (pl.col(C_NAMES).list.len() == 0) & ~inbound,  # an inbound source has none
            "no name",
            pl.lit("no DNS, SNI, Host or URL ever seen for this address"),
            w.w_direct_ip,
        ),
        _entry(
            proxy, "via proxy", pl.format("CONNECT/URL {}", pl.col(C_NAMES).list.join(", ")), 0.0
        ),
        _entry(pl.col(E.F_LOLBIN), "LOLBin", pl.col(S.C_PROCESS), w.w_lolbin),
        _entry(
            pl.col(E.F_SYSTEM_PROCESS) & dest_rare,
            "system process to rare destination",
            pl.col(S.C_PROCESS),
            w.w_system_process,
        ),
        _entry(
            informative & (pl.col(E.F_PROCESS_DEVICES) <= rare) & pl.lit(w.w_process_rare != 0.0),
            "rare process",
            pl.format("{} on {}{}", pl.col(S.C_PROCESS), pl.col(E.F_PROCESS_DEVICES), of_hosts),
            w.w_process_rare,
        ),
        _entry(
            port_rare & pl.col(S.C_REMOTE_PORT).is_not_null(),
            "unusual port",
            pl.format("{} (on {} devices)", pl.col(S.C_REMOTE_PORT), pl.col(E.F_PORT_DEVICES)),
            w.w_unusual_port,
        ),
        _entry(
            pl.col(E.F_COMPANY_MISSING),
            "unsigned",
            pl.lit("no company in version info"),
            w.w_unsigned,
        ),
        _entry(
            pl.col(E.F_BYTES_COV) <= w.bytes_cov_max,
            "steady bytes",
            pl.format("bytes out CoV {}", _fmt(pl.col(E.F_BYTES_COV), 3)),
            w.w_bytes_steady,
        ),
        _entry(
            pl.col(E.F_NEW_DESTINATION),
            "new destination",
            pl.format("first seen {}", pl.col(E.F_IP_FIRST_SEEN).dt.strftime("%Y-%m-%d %H:%M")),
            w.w_new_destination,
        ),
        _entry(
            pl.col(E.F_RARE_UA).is_not_null(),
            "rare user agent",
            pl.format("{} (on {} devices)", pl.col(E.F_RARE_UA), pl.col(E.F_RARE_UA_DEVICES)),
            w.w_rare_user_agent,
        ),
        _entry(
            pl.col(E.F_MISSING_HOST),
            "no Host header",
            pl.lit("HTTP without Host"),
            w.w_missing_host,
        ),
        _entry(pl.col(E.F_TLS_NO_SNI), "no SNI", pl.lit("TLS without server name"), w.w_tls_no_sni),
        _entry(
            pl.col(E.F_VENDOR_DOMAIN),
            "vendor's own domain",
            pl.col(S.C_DOMAIN),
            w.w_vendor_domain,
        ),
        _entry(pl.col(E.F_SCANNING), "scanning", pl.lit("failed, empty, many ports"), w.w_scanning),
    ).list.drop_nulls()


def _points_sum() -> pl.Expr:
    return pl.col(S.C_EVIDENCE).list.eval(pl.element().struct.field("points")).list.sum()


def _campaign_lift(frame: pl.DataFrame, w: ScoreWeights) -> pl.DataFrame:
    """Lift every member of a campaign to its group's best score (see ScoreWeights).

    Members: timing candidates (any device) to one destination (the named host behind
    a proxy, else the address) reached by at most ``campaign_max_devices`` devices,
    two or more of which are candidates, and not by most of the fleet.
    """
    prevalence = pl.col(C_PREVALENCE)
    member = (
        (pl.col(C_CAMPAIGN) >= 2)
        & (prevalence <= w.campaign_max_devices)
        & (prevalence < w.common_share * pl.col(E.F_HOSTS))
        & pl.col("_timing").is_not_null()
    ).fill_null(False)
    frame = frame.with_columns(_points_sum().alias("_points"), member.alias("_member"))
    best = pl.when(pl.col("_member")).then(pl.col("_points")).max().over(_DESTINATION)
    frame = frame.with_columns(best.alias("_best"))
    lift = (pl.col("_best") - pl.col("_points")).clip(0.0, None)
    entry = _entry(
        pl.col("_member") & (lift > 0),
        "campaign",
        pl.format(
            "{} devices beacon to {}; the group's best scores {}",
            pl.col(C_CAMPAIGN),
            pl.col(_DESTINATION),
            _fmt(pl.col("_best")),
        ),
        lift,
    )
    return frame.with_columns(
        pl.concat_list(pl.col(S.C_EVIDENCE), entry).list.drop_nulls().alias(S.C_EVIDENCE)
    )


def _few_failed_cap(w: ScoreWeights) -> pl.Expr:
    """The evidence list with a cap for a handful of failed-only connections.

    A cap, not a fixed penalty, so that score stays the sum of the evidence: the entry
    takes away whatever lifts the pair above ``few_failed_max_score``.
    """
    points = _points_sum()
    few = pl.col(E.F_FAILED_ONLY).fill_null(False) & (
        pl.col(E.F_OWN_CONNECTIONS) < w.few_failed_connections
    )
    cut = (pl.lit(w.few_failed_max_score) - points).clip(None, 0.0)
    entry = _entry(
        few & (cut < 0),
        "few failed connections",
        pl.format("only {} failed connections", pl.col(E.F_OWN_CONNECTIONS)),
        cut,
    )
    return pl.concat_list(pl.col(S.C_EVIDENCE), entry).list.drop_nulls()


_DESTINATION = "_destination"
_DESTINATION_KEY = [_DESTINATION]
C_CAMPAIGN = "_campaign_devices"


def _destination() -> pl.Expr:
    """The destination a candidate reaches: the named host behind a proxy, else the IP."""
    proxy = pl.col(E.F_VIA_PROXY).fill_null(False)
    return pl.when(proxy).then(pl.col(S.C_DOMAIN)).otherwise(pl.col(S.C_REMOTE_IP))


def _campaigns(joined: pl.DataFrame) -> pl.DataFrame:
    """Per destination, how many devices are timing candidates to it."""
    return (
        joined.filter(pl.col("_timing").is_not_null())
        .group_by(_DESTINATION)
        .agg(pl.col(S.C_DEVICE).n_unique().cast(pl.Int64).alias(C_CAMPAIGN))
    )


def _pinned_width(w: ScoreWeights) -> pl.Expr:
    """The sleep's 95 % interval width over the sleep, for few-connection timing hits
    whose interval is at most ``pinned_max_width``; null otherwise.

    A week of 4-hourly calls is 42 connections, of daily ones 7: a p-value that small
    a sample can reach stays far from a chatty program's, though the sleep is known
    to a few per cent. The distribution-free interval of the median (``stats.smalln``)
    is what such a pair can honestly show, so it sets the timing strength.
    """
    low, high = pl.col("sleep_ci_low_s"), pl.col("sleep_ci_high_s")
    middle = (low + high) / 2
    width = (high - low) / middle
    few = pl.col(S.C_CONNECTIONS) <= w.pinned_max_connections
    return pl.when(few & (middle > 0) & (width <= w.pinned_max_width)).then(width)


def _dns_facts(joined: pl.DataFrame) -> pl.DataFrame:
    """dns_beacons candidates: their remote is a registered domain, not an address.

    Its prevalence is the domain's (devices asking for it in the DNS log), its name the
    domain itself; the address facts (all null for a domain) are not used.
    """
    dns = (
        pl.col(S.C_DETECTORS).list.contains(DNS_BEACONS) & pl.col(DNS_DOMAIN_DEVICES).is_not_null()
    )
    return joined.with_columns(
        pl.when(dns).then(pl.col(DNS_DOMAIN_DEVICES)).otherwise(pl.col(C_PREVALENCE))
        .alias(C_PREVALENCE),
        pl.when(dns).then(pl.col(DNS_DOMAIN_DEVICES)).otherwise(pl.col(E.F_DOMAIN_DEVICES))
        .alias(E.F_DOMAIN_DEVICES),
        pl.when(dns).then(pl.col(S.C_REMOTE_IP)).otherwise(pl.col(S.C_DOMAIN)).alias(S.C_DOMAIN),
        pl.when(dns).then(pl.concat_list(pl.col(S.C_REMOTE_IP))).otherwise(pl.col(C_NAMES))
        .alias(C_NAMES),
    )  # fmt: skip


def merge_candidates(
    per_detector: dict[str, pl.DataFrame], dataset: PairContext, weights: ScoreWeights | None = None
) -> pl.DataFrame:
    """Merge every detector's hits into one scored, ranked candidate list (``MERGED_SCHEMA``)."""
    w = weights or ScoreWeights()
    rows = _detector_rows(per_detector)
    if rows.height == 0:
        return empty_candidates()
    combined = _combine(_attach_portless(rows)).with_columns(
        (w.timing_hit_floor + (1 - w.timing_hit_floor) * pl.col("_timing")).alias("_strength")
    )
    combined = combined.with_columns(_pinned_width(w).alias("_pinned")).with_columns(
        pl.max_horizontal(pl.col("_strength"), 1 - pl.col("_pinned")).alias("_strength")
    )
    facts = E.context_facts(
        dataset,
        combined.select(S.CANDIDATE_KEY),
        rare_share=w.rare_share,
        rare_floor_devices=w.rare_floor_devices,
        scan_min_ports=w.scan_min_ports,
        new_after_share=w.new_after_share,
        infrastructure_file=w.infrastructure_file,
    )
    joined = combined.join(facts, on=S.CANDIDATE_KEY, how="left", nulls_equal=True)
    joined = joined.with_columns(
        pl.when(pl.col(E.F_VIA_PROXY).fill_null(False))
        .then(pl.col(E.F_DOMAIN_DEVICES))
        .otherwise(pl.col(E.F_IP_DEVICES))
        .cast(pl.Int64)
        .alias(C_PREVALENCE),
        pl.col(E.F_NAMES).fill_null(pl.lit([], dtype=pl.List(pl.String))).alias(C_NAMES),
        pl.coalesce(C_DEVICE_ID, E.F_DEVICE_ID).alias(C_DEVICE_ID),
        pl.coalesce(S.C_ACCOUNT, E.F_ACCOUNT).alias(S.C_ACCOUNT),
    )
    joined = _dns_facts(joined)
    joined = joined.with_columns(_destination().alias(_DESTINATION))
    joined = joined.join(_campaigns(joined), on=_DESTINATION_KEY, how="left", nulls_equal=True)
    scored = joined.with_columns(_evidence(w).alias(S.C_EVIDENCE))
    if w.campaign_max_devices > 0:
        scored = _campaign_lift(scored, w)
    scored = scored.with_columns(_few_failed_cap(w).alias(S.C_EVIDENCE))
    scored = scored.with_columns(_points_sum().clip(0.0, 1.0).alias(S.C_SCORE))
    ranked = scored.sort(
        [S.C_SCORE, S.C_CONNECTIONS, *S.CANDIDATE_KEY],
        descending=[True, True, False, False, False, False],
        nulls_last=True,
    )
    return ranked.select([pl.col(c).cast(t) for c, t in MERGED_SCHEMA.items()])


# --- explanation ----------------------------------------------------------------------


def _text(value: object) -> str:
    return "-" if value is None else str(value)


def explain(candidate: dict[str, Any]) -> str:
    """The evidence of one candidate row as plain text: what added what to its score."""
    port = candidate.get(S.C_REMOTE_PORT)
    remote = f"{_text(candidate.get(S.C_REMOTE_IP))}:{_text(port)}"
    kinds = candidate.get(S.C_ICMP)
    if kinds:  # ICMP: types, not a port
        remote = f"{_text(candidate.get(S.C_REMOTE_IP))} {kinds}"
    domain = candidate.get(S.C_DOMAIN)
    arrow = "<-" if candidate.get(S.C_DIRECTION) == S.DIR_INBOUND else "->"
    proxy = candidate.get(S.C_VIA_PROXY)
    servers = candidate.get(S.C_SERVER_IPS) or []
    if proxy and servers:  # the addresses the proxy reached for this host
        proxy = f"{proxy} → {', '.join(servers)}"
    head = (
        f"{_text(candidate.get(S.C_DEVICE))}  {_text(candidate.get(S.C_PROCESS))}  {arrow}  "
        f"{remote}"
        + (f"  via proxy {proxy}" if proxy else "")
        + (f"  ({domain})" if domain else "")
    )
    lines = [
        head,
        f"score {float(candidate.get(S.C_SCORE) or 0.0):.2f} = sum of (clipped to 0..1):",
    ]
    for item in candidate.get(S.C_EVIDENCE) or []:
        points = float(item.get("points") or 0.0)
        lines.append(f"  {points:+.2f}  {_text(item.get('name')):<36} {_text(item.get('value'))}")
    detectors = candidate.get(S.C_DETECTORS) or []
    lines.append(f"detectors: {', '.join(detectors) if detectors else '-'}")
    period = candidate.get(C_PERIOD)
    interval = candidate.get(S.C_INTERVAL)
    jitter = candidate.get(S.C_JITTER)
    timing = []
    if period is not None:
        timing.append(f"sleep {period:.1f} s")
    if interval is not None:
        timing.append(f"median interval {interval:.1f} s")
    if jitter is not None:
        timing.append(f"jitter {jitter:.1f} %")
    if timing:
        lines.append("timing: " + ", ".join(timing))
    lines.append(
        f"connections: {_text(candidate.get(S.C_CONNECTIONS))}, "
        f"first {_text(candidate.get(S.C_FIRST_SEEN))}, last {_text(candidate.get(S.C_LAST_SEEN))}"
    )
    lines.append(f"devices reaching the destination: {_text(candidate.get(C_PREVALENCE))}")
    names = candidate.get(C_NAMES) or []
    lines.append(f"names: {', '.join(names) if names else '-'}")
    account = candidate.get(S.C_ACCOUNT)
    if account:
        lines.append(f"account: {account}")
    return "\n".join(lines)
