"""Detector ``buckets``: Elastic's network beaconing framework (seed 003).

Follows the pivot transform of elastic/integrations ``packages/beaconing`` (package
1.3.x; the statistics are in ``detectors.stats.elastic``). Connections in a window of
``number_buckets_in_range × time_bucket_length`` (6 h by default) ending at the last
event are counted per bucket, newest bucket first. A group is tested only when its
active span covers at least ``2 × min_number_periods`` buckets and at least
``min_number_periods + 1`` buckets are non-empty (the script's early return). Then:

* count test: truncated std/mean of the bucket counts ≤ ``max_beaconing_count_rv``
  (only when more than ``floor(min_not_empty × span)`` buckets are non-empty) — beacons
  faster than a bucket;
* periodic test: averaged autocovariance ≥ ``min_beaconing_count_autocovariance`` —
  beacons slower than a bucket;
* bytes tests: truncated CoV of the mean bytes out (and, separately, in) per bucket
  ≤ ``max_beaconing_bytes_cov`` (only with more than ``min_number_periods`` buckets of
  non-zero bytes).

``beaconing_score`` = (count or periodic) + bytes out + bytes in, 0–3, as Elastic; a
group is reported when any test passes (Elastic's ``is_beaconing``, which its
"Statistical Model Detected C2 Beaconing Activity" rule alerts on).

Choices of ours, each because the product needs them:

* Grouping. Elastic groups host + process and lists the destination IPs. Candidates
  here are keyed by (device, process, remote IP, port) so they merge with the other
  detectors, so the tests run per destination. They also run per host + process, which
  catches a beacon that rotates addresses (no single destination beats the tests):
  when only the host + process level passes, its top ``number_destination_ips``
  destinations are reported with ``level = "host_process"`` and the host-level numbers.
* Missing bytes. Defender has no byte counts: then the bytes tests are *skipped*
  (``bytes_*_test`` null, listed in ``skipped_tests``), not failed as in Elastic, and
  ``score = beaconing_score / max_beaconing_score`` is out of 1 instead of 3.
* Window. ``window_end`` defaults to the last event in the data (Elastic uses "now").
  To look at a whole day, widen the buckets: ``time_bucket_length = 240`` × 360 = 24 h.
* Known-benign filters are data (``detectors/hunts/data/known_benign.toml``), not code; the
  Microsoft blocks apply only to the Microsoft processes Elastic scopes them to.
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from detectors.base import schema as S
from detectors.base.domains import hosts
from detectors.base.errors import InputError
from detectors.base.progress import Progress
from detectors.hunts.spec import register, register_stages
from detectors.pairs.context import PairContext
from detectors.pairs.index import connection_events
from detectors.stats import elastic

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

NAME = "buckets"

# --- evidence columns ------------------------------------------------------------------
E_LEVEL = "level"  # "destination" or "host_process": which grouping passed the tests
E_SCORE = "beaconing_score"  # Elastic's 0-3
E_MAX_SCORE = "max_beaconing_score"  # 1 + one per bytes test that could run
E_COUNT_TEST = "count_test"
E_PERIODIC_TEST = "periodic_test"
E_BYTES_OUT_TEST = "bytes_out_test"  # null = skipped (no byte counts)
E_BYTES_IN_TEST = "bytes_in_test"
E_SKIPPED = "skipped_tests"
E_COUNT_RV = "count_rv"  # truncated std/mean of bucket counts (null: test not run)
E_AUTOCOV = "periodic_autocov"
E_PERIOD = "best_period_s"
E_BYTES_OUT_COV = "bytes_out_cov"
E_BYTES_IN_COV = "bytes_in_cov"
E_NOT_EMPTY = "not_empty_frac"  # non-empty buckets / active span
E_SPAN = "active_span_s"
E_HP_SCORE = "host_process_score"  # beaconing_score of the host+process group
E_HP_DESTINATIONS = "host_process_destinations"  # distinct remote IPs of that group

LEVEL_DESTINATION = "destination"
LEVEL_HOST_PROCESS = "host_process"

OUTPUT_SCHEMA: dict[str, pl.DataType] = {
    **S.CANDIDATE_BASE_SCHEMA,
    E_LEVEL: pl.String(),
    E_SCORE: pl.Int64(),
    E_MAX_SCORE: pl.Int64(),
    E_COUNT_TEST: pl.Boolean(),
    E_PERIODIC_TEST: pl.Boolean(),
    E_BYTES_OUT_TEST: pl.Boolean(),
    E_BYTES_IN_TEST: pl.Boolean(),
    E_SKIPPED: pl.List(pl.String()),
    E_COUNT_RV: pl.Float64(),
    E_AUTOCOV: pl.Float64(),
    E_PERIOD: pl.Float64(),
    E_BYTES_OUT_COV: pl.Float64(),
    E_BYTES_IN_COV: pl.Float64(),
    E_NOT_EMPTY: pl.Float64(),
    E_SPAN: pl.Float64(),
    E_HP_SCORE: pl.Int64(),
    E_HP_DESTINATIONS: pl.Int64(),
}

KNOWN_BENIGN_RESOURCE = "data/known_benign.toml"


def _doc(text: str) -> dict[str, str]:
    return {"doc": text}


@dataclass(frozen=True)
class BucketParams:
    """Elastic's transform parameters (its defaults) plus the knobs this product adds."""

    time_bucket_length: float = field(
        default=60.0,
        metadata=_doc(
            "Seconds per bucket. Longer buckets widen the window (240 × 360 = 24 h) and "
            "reach slower beacons, but blur beacons faster than a bucket into the count test."
        ),
    )
    number_buckets_in_range: int = field(
        default=360,
        metadata=_doc("Buckets in the window. More buckets give better estimates and cost more."),
    )
    min_number_periods: int = field(
        default=6,
        metadata=_doc(
            "Repeats needed: the span must cover 2× this many buckets, this + 1 buckets must "
            "be non-empty, and the longest period tried is span / this. Lower = more recall."
        ),
    )
    max_beaconing_bytes_cov: float = field(
        default=0.05,
        metadata=_doc(
            "Max truncated CoV of mean bytes per bucket (each direction). Higher = more "
            "recall, less precision."
        ),
    )
    max_beaconing_count_rv: float = field(
        default=0.1,
        metadata=_doc(
            "Max truncated std/mean of bucket counts (fast-beacon test; Elastic calls it "
            "relative variance). Higher = more recall, less precision."
        ),
    )
    min_beaconing_count_autocovariance: float = field(
        default=0.7,
        metadata=_doc(
            "Min averaged autocovariance of bucket counts (slow-beacon test). Lower = more "
            "recall, less precision."
        ),
    )
    max_jitter: float = field(
        default=0.0,
        metadata=_doc(
            "Jitter allowed as a fraction of the period (0-1) in the periodic test. Higher "
            "catches jittered beacons and also more irregular benign traffic."
        ),
    )
    min_not_empty: float = field(
        default=0.5,
        metadata=_doc(
            "The count test runs only when more than this fraction of the active span's "
            "buckets are non-empty; sparse traffic goes to the periodic test only."
        ),
    )
    truncate_at: tuple[float, float] = field(
        default=(0.1, 0.8),
        metadata=_doc(
            "Lower and upper order statistics kept for the CoV/RV tests: ignores occasional "
            "bursts; keeping too little makes the tests unreliable."
        ),
    )
    number_destination_ips: int = field(
        default=10,
        metadata=_doc(
            "Destinations reported for a host+process that beacons only as a whole "
            "(top by connections)."
        ),
    )
    min_beaconing_count: int | None = field(
        default=None,
        metadata=_doc(
            "Min connections in the window before a group is tested. Unset = "
            "min_number_periods + 1, the fewest Elastic's non-empty-bucket rule allows; "
            "raise it to skip sparse pairs (precision, speed)."
        ),
    )
    window_end: datetime | str | None = field(
        default=None,
        metadata=_doc(
            "End of the window (ISO 8601, UTC if no zone). Unset = the last event in the data."
        ),
    )
    group_by_process: bool = field(
        default=True,
        metadata=_doc(
            "Test each process separately (Elastic). Off: per device and destination, "
            "which catches a beacon hopping between processes but mixes benign apps in."
        ),
    )
    known_benign_file: str | None = field(
        default=None,
        metadata=_doc(
            "TOML of known-benign processes, networks and domains. Unset = the shipped "
            'Elastic defaults; "" = no filter (more recall, more noise).'
        ),
    )
    public_only: bool = field(
        default=True,
        metadata=_doc("Only public destinations (Elastic). Off also tests internal traffic."),
    )
    actions: tuple[str, ...] = field(
        default=(S.ACTION_SUCCESS, S.ACTION_REQUEST, S.ACTION_FAILED),
        metadata=_doc(
            "Defender ActionTypes counted as connections (failed ones too: C2 that is down "
            "still beacons). Rows from other sources count whatever their action."
        ),
    )


# --- known-benign filters --------------------------------------------------------------


@dataclass(frozen=True)
class NetworkRule:
    """Destination blocks to ignore, for every process or only for the listed ones."""

    description: str
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    processes: frozenset[str] | None  # lower-case names; None = every process


@dataclass(frozen=True)
class KnownBenign:
    """The parsed known-benign file: lower-case process names, network rules, domains."""

    processes: frozenset[str] = frozenset()
    networks: tuple[NetworkRule, ...] = ()
    domains: tuple[str, ...] = ()


def _string_list(value: Any, where: str, file: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(f"{where} must be a list of strings", file=file)
    return list(value)


def _check_keys(table: Any, allowed: set[str], where: str, file: str) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise InputError(f"{where} must be a table", file=file)
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise InputError(f"unknown key {where}.{unknown[0]}", file=file)
    return table


def parse_known_benign(data: dict[str, Any], file: str) -> KnownBenign:
    """Validate a known-benign table; mistakes name the key and the file."""
    _check_keys(data, {"processes", "networks", "domains"}, "(top level)", file)
    processes = _check_keys(data.get("processes", {}), {"names"}, "processes", file)
    names = _string_list(processes.get("names", []), "processes.names", file)
    rules = []
    raw_rules = data.get("networks", [])
    if not isinstance(raw_rules, list):
        raise InputError("networks must be an array of tables ([[networks]])", file=file)
    for number, raw in enumerate(raw_rules, start=1):
        where = f"networks[{number}]"
        rule = _check_keys(raw, {"description", "cidrs", "processes"}, where, file)
        blocks = []
        for text in _string_list(rule.get("cidrs", []), f"{where}.cidrs", file):
            try:
                blocks.append(ipaddress.ip_network(text.strip(), strict=False))
            except ValueError:
                raise InputError(
                    f"{where}.cidrs: '{text}' is not a CIDR block", file=file
                ) from None
        scoped = rule.get("processes")
        only = (
            None
            if scoped is None
            else frozenset(p.lower() for p in _string_list(scoped, f"{where}.processes", file))
        )
        rules.append(NetworkRule(str(rule.get("description", "")), tuple(blocks), only))
    domains = _check_keys(data.get("domains", {}), {"names"}, "domains", file)
    domain_names = _string_list(domains.get("names", []), "domains.names", file)
    return KnownBenign(
        processes=frozenset(n.lower() for n in names),
        networks=tuple(rules),
        domains=tuple(d.strip().strip(".").lower() for d in domain_names if d.strip()),
    )


def load_known_benign(path: str | None) -> KnownBenign:
    """None = the shipped defaults, "" = no filters, otherwise the user's TOML file."""
    if path == "":
        return KnownBenign()
    if path is None:
        resource = resources.files("detectors.hunts").joinpath(KNOWN_BENIGN_RESOURCE)
        text, file = resource.read_text(encoding="utf-8"), "known_benign.toml (shipped)"
    else:
        source = Path(path).expanduser()
        file = str(source)
        try:
            text = source.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(
                f"cannot read the known-benign file: {exc.strerror}", file=file
            ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"not valid TOML: {exc}", file=file) from None
    return parse_known_benign(data, file)


def _ips_in_networks(ips: Sequence[str], networks: Sequence[Any]) -> list[str]:
    """The addresses (of a distinct list) inside any of the blocks.

    IPv4 is checked for all addresses and blocks at once on integers; IPv6 (rare) one
    address at a time.
    """
    v4_ips: list[str] = []
    v4_values: list[int] = []
    v6: list[tuple[str, ipaddress.IPv6Address]] = []
    for text in ips:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            continue
        if isinstance(address, ipaddress.IPv4Address):
            v4_ips.append(text)
            v4_values.append(int(address))
        else:
            v6.append((text, address))
    inside: list[str] = []
    v4_blocks = [n for n in networks if n.version == 4]
    if v4_ips and v4_blocks:
        values = np.array(v4_values, dtype=np.int64)[:, None]
        low = np.array([int(n.network_address) for n in v4_blocks], dtype=np.int64)
        high = np.array([int(n.broadcast_address) for n in v4_blocks], dtype=np.int64)
        hit = ((values >= low) & (values <= high)).any(axis=1)
        inside.extend(str(ip) for ip in np.asarray(v4_ips, dtype=object)[hit])
    v6_blocks = [n for n in networks if n.version == 6]
    inside.extend(text for text, address in v6 if any(address in n for n in v6_blocks))
    return inside


def _benign_domain_ips(names: pl.DataFrame, domains: Sequence[str]) -> list[str]:
    """Remote IPs every one of whose names is a listed domain or a subdomain of one."""
    if not domains or names.height == 0:
        return []
    host = hosts(names.get_column(S.NAME)).alias("host")
    matched = pl.lit(False)
    for domain in domains:
        matched = matched | (pl.col("host") == domain) | pl.col("host").str.ends_with(f".{domain}")
    per_ip = (
        names.select(pl.col(S.NAME_IP), host)
        .filter(pl.col("host").is_not_null())
        .group_by(S.NAME_IP)
        .agg(matched.fill_null(False).all().alias("benign"))
    )
    return per_ip.filter(pl.col("benign")).get_column(S.NAME_IP).to_list()


def known_benign_mask(events: pl.DataFrame, names: pl.DataFrame, benign: KnownBenign) -> pl.Series:
    """True for events the known-benign filters drop (by process, network or domain)."""
    process = pl.col(S.PROCESS).str.to_lowercase()
    drop = pl.lit(False)
    if benign.processes:
        drop = drop | process.is_in(list(benign.processes)).fill_null(False)
    distinct = events.get_column(S.REMOTE_IP).drop_nulls().unique().to_list()
    for rule in benign.networks:
        inside = pl.col(S.REMOTE_IP).is_in(_ips_in_networks(distinct, rule.networks))
        if rule.processes is not None:
            inside = inside & process.is_in(list(rule.processes)).fill_null(False)
        drop = drop | inside.fill_null(False)
    domain_ips = _benign_domain_ips(names, benign.domains)
    if domain_ips:
        drop = drop | pl.col(S.REMOTE_IP).is_in(domain_ips).fill_null(False)
    return events.select(drop.alias("known_benign")).to_series()


# --- event selection and buckets -------------------------------------------------------

_BUCKET = "_bucket"
_GID = "_gid"
_N = "_n"
_OUT = "_out"
_IN = "_in"
_HAS_OUT = "_has_out"
_HAS_IN = "_has_in"
_EVENTS = "_events"


def connection_rows(
    events: pl.DataFrame, actions: Sequence[str], public_only: bool = True
) -> pl.DataFrame:
    """Connection records: Defender rows of the chosen actions, any row of other sources."""
    return connection_events(events, actions, public_only)


def _as_utc(value: datetime | str) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InputError(f"window_end: cannot parse '{value}' as a date and time") from None
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def _window_end(dataset: PairContext, params: BucketParams) -> datetime | None:
    """The configured end, else the last event of the whole input."""
    if params.window_end is not None:
        return _as_utc(params.window_end)
    return dataset.everyone().time_bounds()[1]


def _recent(events: pl.DataFrame, end: datetime, params: BucketParams) -> pl.DataFrame:
    """The events inside the window, cut before anything else copies columns.

    ``bucket_events`` keeps ages 0 .. buckets x length - 1 µs; this keeps exactly those
    times, so selecting connections afterwards handles a window's rows, not the input's.
    """
    span_us = round(params.time_bucket_length * 1_000_000) * params.number_buckets_in_range
    start = end - timedelta(microseconds=span_us)
    ts = pl.col(S.TIMESTAMP)
    return events.filter((ts <= end) & (ts > start))


def bucket_events(frame: pl.DataFrame, end: datetime, params: BucketParams) -> pl.DataFrame:
    """Events in the window with their bucket: ``floor((end − t) / length)``, 0 = newest."""
    length_us = round(params.time_bucket_length * 1_000_000)
    age = (
        pl.lit(end, dtype=pl.Datetime("us", "UTC")) - pl.col(S.TIMESTAMP)
    ).dt.total_microseconds()
    return (
        frame.with_columns((age // length_us).alias(_BUCKET))
        .filter(pl.col(_BUCKET).is_between(0, params.number_buckets_in_range - 1))
        .with_columns(pl.col(_BUCKET).cast(pl.Int64))
    )


def _validate(params: BucketParams) -> None:
    problems = []
    if params.time_bucket_length <= 0:
        problems.append("time_bucket_length must be positive")
    if params.number_buckets_in_range < 2:
        problems.append("number_buckets_in_range must be at least 2")
    if params.min_number_periods < 1:
        problems.append("min_number_periods must be at least 1")
    if not 0.0 <= params.max_jitter <= 1.0:
        problems.append("max_jitter must be between 0 and 1")
    if not 0.0 <= params.min_not_empty <= 1.0:
        problems.append("min_not_empty must be between 0 and 1")
    low_high = params.truncate_at
    if len(low_high) != 2 or not 0.0 <= low_high[0] <= low_high[1] <= 1.0:
        problems.append("truncate_at must be [lower, upper] with 0 <= lower <= upper <= 1")
    if params.number_destination_ips < 0:
        problems.append("number_destination_ips must not be negative")
    if problems:
        raise InputError(f"[detectors.{NAME}] {problems[0]}")


# --- the tests per group ---------------------------------------------------------------

_CHUNK_GROUPS = 8192
_BEACONING = "_beaconing"

_TESTED_SCHEMA: dict[str, pl.DataType] = {
    E_SCORE: pl.Int64(),
    E_MAX_SCORE: pl.Int64(),
    E_COUNT_TEST: pl.Boolean(),
    E_PERIODIC_TEST: pl.Boolean(),
    E_BYTES_OUT_TEST: pl.Boolean(),
    E_BYTES_IN_TEST: pl.Boolean(),
    E_COUNT_RV: pl.Float64(),
    E_AUTOCOV: pl.Float64(),
    E_PERIOD: pl.Float64(),
    E_BYTES_OUT_COV: pl.Float64(),
    E_BYTES_IN_COV: pl.Float64(),
    E_NOT_EMPTY: pl.Float64(),
    E_SPAN: pl.Float64(),
    _BEACONING: pl.Boolean(),
}


def _where(values: np.ndarray, ran: np.ndarray) -> pl.Series:
    """``values`` where the test ran, null elsewhere (and NaN becomes null)."""
    series = pl.Series(values)
    if series.dtype.is_float():
        series = series.fill_nan(None)
    return pl.select(pl.when(pl.Series(ran)).then(series)).to_series()


def _chunk_tests(
    counts: np.ndarray,
    out_sum: np.ndarray,
    in_sum: np.ndarray,
    has_out: np.ndarray,
    has_in: np.ndarray,
    params: BucketParams,
) -> pl.DataFrame:
    """Elastic's tests on a (groups × buckets) chunk: one result row per group."""
    lower, upper = params.truncate_at
    periods = params.min_number_periods
    present = counts > 0
    not_empty = present.sum(axis=1)
    first, stop = elastic.active_span(counts)
    span = stop - first

    count_ran = not_empty > np.floor(params.min_not_empty * span)
    count_stats = elastic.truncated_stats(counts, lower, upper)
    count_test = count_ran & elastic.low_variation(count_stats, params.max_beaconing_count_rv)
    with np.errstate(invalid="ignore", divide="ignore"):
        count_rv = count_stats.std / np.abs(count_stats.mean)

    autocov, period = elastic.periodic_score(counts, periods, params.max_jitter)
    finite = np.isfinite(autocov)
    periodic_test = finite & (
        np.where(finite, autocov, 0.0) >= params.min_beaconing_count_autocovariance
    )

    passed, ran, cov = {}, {}, {}
    for label, sums, has in (("out", out_sum, has_out), ("in", in_sum, has_in)):
        means = np.divide(sums, counts, out=np.zeros_like(sums), where=present)
        stats = elastic.truncated_stats(means, lower, upper)
        ran[label] = has & ((means != 0).sum(axis=1) > periods)
        passed[label] = ran[label] & elastic.low_variation(stats, params.max_beaconing_bytes_cov)
        with np.errstate(invalid="ignore", divide="ignore"):
            cov[label] = stats.std / np.abs(stats.mean)

    timing = count_test | periodic_test
    score = timing.astype(np.int64) + passed["out"] + passed["in"]
    columns = {
        E_SCORE: pl.Series(score),
        E_MAX_SCORE: pl.Series(1 + has_out.astype(np.int64) + has_in.astype(np.int64)),
        E_COUNT_TEST: pl.Series(count_test),
        E_PERIODIC_TEST: pl.Series(periodic_test),
        E_BYTES_OUT_TEST: _where(passed["out"], has_out),
        E_BYTES_IN_TEST: _where(passed["in"], has_in),
        E_COUNT_RV: _where(count_rv, count_ran),
        E_AUTOCOV: _where(autocov, finite),
        E_PERIOD: _where(period * params.time_bucket_length, period > 0),
        E_BYTES_OUT_COV: _where(cov["out"], ran["out"]),
        E_BYTES_IN_COV: _where(cov["in"], ran["in"]),
        E_NOT_EMPTY: pl.Series(not_empty / np.maximum(span, 1)),
        E_SPAN: pl.Series(span * params.time_bucket_length),
        _BEACONING: pl.Series(timing | passed["out"] | passed["in"]),
    }
    return pl.DataFrame(
        [series.alias(name).cast(_TESTED_SCHEMA[name]) for name, series in columns.items()]
    )


def group_tests(
    window: pl.DataFrame,
    keys: list[str],
    params: BucketParams,
    progress: Progress,
    share: tuple[float, float] = (0.0, 1.0),
) -> pl.DataFrame:
    """Elastic's tests for every group of ``keys`` that passes the script's gates.

    Per-bucket counts and byte sums come from one polars group-by; qualifying groups are
    numbered and scattered into dense ``(groups × buckets)`` matrices, a chunk at a time,
    so every statistic is one numpy call per chunk. Progress moves through ``share`` of
    the detector's bar.
    """
    periods = params.min_number_periods
    min_events = (
        params.min_beaconing_count if params.min_beaconing_count is not None else periods + 1
    )
    per_bucket = window.group_by([*keys, _BUCKET]).agg(
        pl.len().alias(_N),
        pl.col(S.BYTES_OUT).sum().cast(pl.Float64).alias(_OUT),
        pl.col(S.BYTES_IN).sum().cast(pl.Float64).alias(_IN),
        pl.col(S.BYTES_OUT).is_not_null().any().alias(_HAS_OUT),
        pl.col(S.BYTES_IN).is_not_null().any().alias(_HAS_IN),
    )
    groups = (
        per_bucket.group_by(keys)
        .agg(
            pl.len().alias("_not_empty"),
            pl.col(_N).sum().alias(_EVENTS),
            (pl.col(_BUCKET).max() - pl.col(_BUCKET).min() + 1).alias("_span"),
            pl.col(_HAS_OUT).any(),
            pl.col(_HAS_IN).any(),
        )
        .filter(
            (pl.col("_not_empty") >= periods + 1)
            & (pl.col("_span") >= 2 * periods)
            & (pl.col(_EVENTS) >= min_events)
        )
        .sort(keys, nulls_last=True)
        .with_row_index(_GID)
        .with_columns(pl.col(_GID).cast(pl.Int64))
    )
    if groups.height == 0:
        return pl.concat([groups, pl.DataFrame(schema=_TESTED_SCHEMA)], how="horizontal")
    cells = per_bucket.join(
        groups.select([*keys, _GID]), on=keys, how="inner", nulls_equal=True
    ).sort(_GID)
    gid = cells.get_column(_GID).to_numpy()
    bucket = cells.get_column(_BUCKET).to_numpy()
    n = cells.get_column(_N).to_numpy().astype(np.float64)
    out = cells.get_column(_OUT).fill_null(0.0).to_numpy()
    inb = cells.get_column(_IN).fill_null(0.0).to_numpy()
    has_out = groups.get_column(_HAS_OUT).to_numpy()
    has_in = groups.get_column(_HAS_IN).to_numpy()
    width = params.number_buckets_in_range
    parts = []
    total = groups.height
    for begin in range(0, total, _CHUNK_GROUPS):
        end = min(begin + _CHUNK_GROUPS, total)
        lo, hi = np.searchsorted(gid, [begin, end])
        rows = gid[lo:hi] - begin
        shape = (end - begin, width)
        counts, out_sum, in_sum = np.zeros(shape), np.zeros(shape), np.zeros(shape)
        counts[rows, bucket[lo:hi]] = n[lo:hi]
        out_sum[rows, bucket[lo:hi]] = out[lo:hi]
        in_sum[rows, bucket[lo:hi]] = inb[lo:hi]
        parts.append(
            _chunk_tests(counts, out_sum, in_sum, has_out[begin:end], has_in[begin:end], params)
        )
        done = share[0] + (share[1] - share[0]) * end / total
        progress.report(NAME, done, f"{end:,} of {total:,} {'/'.join(keys)} groups tested")
    tested = pl.concat(parts)
    return pl.concat([groups, tested], how="horizontal")


# --- output ----------------------------------------------------------------------------


def _destination_summary(window: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """Per destination key: connections, first/last seen and the most frequent process."""
    summary = window.group_by(keys).agg(
        pl.col(S.CONNECTIONS).fill_null(1).sum().alias(S.C_CONNECTIONS),
        pl.col(S.TIMESTAMP).min().alias(S.C_FIRST_SEEN),
        pl.col(S.TIMESTAMP).max().alias(S.C_LAST_SEEN),
        pl.len().alias(_EVENTS),
    )
    if S.PROCESS in keys:
        return summary
    commonest = (
        window.group_by([*keys, S.PROCESS])
        .agg(pl.len().alias("_uses"))
        .sort([*keys, "_uses", S.PROCESS], descending=[False] * len(keys) + [True, False])
        .group_by(keys, maintain_order=True)
        .agg(pl.col(S.PROCESS).first())
    )
    return summary.join(commonest, on=keys, how="left", nulls_equal=True)


def _skipped_expr() -> pl.Expr:
    out = pl.when(pl.col(E_BYTES_OUT_TEST).is_null()).then(pl.lit("bytes_out"))
    inb = pl.when(pl.col(E_BYTES_IN_TEST).is_null()).then(pl.lit("bytes_in"))
    return pl.concat_list([out, inb]).list.drop_nulls().alias(E_SKIPPED)


def _to_candidates(frame: pl.DataFrame, level: str) -> pl.DataFrame:
    score = pl.col(E_SCORE).cast(pl.Float64) / pl.col(E_MAX_SCORE).cast(pl.Float64)
    shaped = frame.with_columns(
        pl.lit(NAME).alias(S.C_DETECTOR),
        pl.col(S.DEVICE_NAME).alias(S.C_DEVICE),
        score.alias(S.C_SCORE),
        pl.lit(level).alias(E_LEVEL),
        _skipped_expr(),
    )
    return shaped.select([pl.col(name).cast(dtype) for name, dtype in OUTPUT_SCHEMA.items()])


def empty_output() -> pl.DataFrame:
    return pl.DataFrame(schema=OUTPUT_SCHEMA)


@register(
    NAME, "Elastic's bucketed beaconing tests: count variation, periodicity, bytes", BucketParams
)
def run(dataset: PairContext, params: BucketParams, progress: Progress) -> pl.DataFrame:
    """Candidates from Elastic's tests, per destination and per host + process."""
    _validate(params)
    benign = load_known_benign(params.known_benign_file)
    progress.report(NAME, 0.0, "selecting connection events")
    end = _window_end(dataset, params)
    if end is None:
        return empty_output()
    recent = _recent(dataset.events, end, params)
    frame = connection_rows(recent, params.actions, params.public_only)
    window = bucket_events(frame, end, params)
    if window.height and (benign.processes or benign.networks or benign.domains):
        names = pl.DataFrame(schema={S.NAME_IP: pl.String(), S.NAME: pl.String()})
        if benign.domains:  # names cost a pass over every event: only when needed
            names = dataset.names_by_ip().explode("names").rename({"names": S.NAME})
        window = window.filter(~known_benign_mask(window, names, benign))
    if window.height == 0:
        return empty_output()

    host_keys = [S.DEVICE_NAME, S.PROCESS] if params.group_by_process else [S.DEVICE_NAME]
    dest_keys = [*host_keys, S.REMOTE_IP, S.REMOTE_PORT]
    dest = group_tests(window, dest_keys, params, progress, (0.1, 0.6))
    host = group_tests(window, host_keys, params, progress, (0.6, 0.9))
    spread = window.group_by(host_keys).agg(
        pl.col(S.REMOTE_IP).n_unique().cast(pl.Int64).alias(E_HP_DESTINATIONS)
    )
    host_score = host.select([*host_keys, pl.col(E_SCORE).alias(E_HP_SCORE)])
    summary = (
        _destination_summary(window, dest_keys)
        .join(host_score, on=host_keys, how="left", nulls_equal=True)
        .join(spread, on=host_keys, how="left", nulls_equal=True)
    )

    stat_columns = [c for c in dest.columns if c not in {*dest_keys, _GID, _EVENTS}]
    flagged = dest.filter(pl.col(_BEACONING)).select([*dest_keys, *stat_columns])
    by_destination = flagged.join(summary, on=dest_keys, how="inner", nulls_equal=True)

    host_hits = host.filter(pl.col(_BEACONING)).select(
        [*host_keys, *[c for c in stat_columns if c in host.columns]]
    )
    top = (
        summary.join(host_hits.select(host_keys), on=host_keys, how="semi", nulls_equal=True)
        .join(flagged.select(dest_keys), on=dest_keys, how="anti", nulls_equal=True)
        .sort([_EVENTS, S.REMOTE_IP, S.REMOTE_PORT], descending=[True, False, False])
        .group_by(host_keys, maintain_order=True)
        .head(params.number_destination_ips)
    )
    by_host = top.join(host_hits, on=host_keys, how="inner", nulls_equal=True)

    result = pl.concat(
        [
            _to_candidates(by_destination, LEVEL_DESTINATION),
            _to_candidates(by_host, LEVEL_HOST_PROCESS),
        ]
    )
    progress.report(NAME, 1.0, f"{result.height:,} candidates")
    return result.sort(
        [S.C_SCORE, S.C_DEVICE, S.C_PROCESS, S.C_REMOTE_IP, S.C_REMOTE_PORT],
        descending=[True, False, False, False, False],
        nulls_last=True,
    )


def combine(
    parts: list[pl.DataFrame], dataset: PairContext, params: BucketParams, progress: Progress
) -> pl.DataFrame:
    """Partitions hold whole hosts (every group is one host), so only the order is shared."""
    return pl.concat(parts, how="vertical").sort(
        [S.C_SCORE, S.C_DEVICE, S.C_PROCESS, S.C_REMOTE_IP, S.C_REMOTE_PORT],
        descending=[True, False, False, False, False],
        nulls_last=True,
    )


register_stages(NAME, run, combine)
