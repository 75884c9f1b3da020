"""Detector ``periodicity``: a significance test for periodic connection times.

Our own detector, for what the seeds' per-delta methods miss: beacons whose
connections are partly unlogged (deltas of 2x or 3x the sleep), long sleeps (hours to
a day over multi-day data), beacons that only run in working hours, and Cobalt
Strike's one-sided jitter (sleep x (1 - U(0, j))). For every pair it estimates the
sleep from the deltas read as multiples of a period, tests periodicity with Fisher's
g-test on the periodogram of the counting process and with a deltas test, and
measures jitter and loss (see ``detectors.stats.periodogram``).

A third test survives implant jitter up to 50 % where the periodogram's peak smears:
the renewal test on the deltas (``detectors.stats.timing``: bursts of connections
folded into check-ins first, then ``stats.renewal``). A pair is a candidate when any
of the three is significant (``p_value`` is their Bonferroni combination); when the
periodogram and the deltas test are not significant on their own, or the pair is a
burst beacon, ``period_s`` and ``jitter_pct`` come from the renewal test. Every pair
also gets the 95 % interval of its sleep (``sleep_ci_low_s``/``sleep_ci_high_s``), which
is what a few-connection daily beacon can honestly offer, and its ``burst_size``.

Pauses much longer than the sleep (nights, weekends, a laptop asleep) break the
timeline into active stretches: they count neither as jitter nor as loss, and the
``schedule`` column says whether the pair runs continuously, in a daily window
("workhours") or on and off ("intermittent").
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from detectors.base import schema as S
from detectors.base.config import DEFAULT_WORKERS
from detectors.base.netclass import PUBLIC, classify_ip
from detectors.base.progress import Progress
from detectors.hunts.spec import register, register_stages
from detectors.pairs.context import PairContext
from detectors.pairs.index import P_CONNECTIONS, P_COUNT, P_FIRST, P_LAST, P_TS
from detectors.pairs.population import DEVICE_KEY
from detectors.pairs.table import build_pair_index
from detectors.stats.periodogram import (
    KIND_UNIFORM,
    KINDS,
    PeriodSettings,
    benjamini_hochberg,
    estimate_periods,
)
from detectors.stats.renewal import RenewalSettings
from detectors.stats.segments import segment_ids, segment_median, sorted_deltas
from detectors.stats.timing import TimingSettings, timing_estimates

NAME = "periodicity"

# Evidence columns after the base columns (the merged list and the TUI read these).
PERIOD = "period_s"
JITTER_KIND = "jitter_kind"
P_VALUE = "p_value"
Q_VALUE = "q_value"
FISHER_P = "fisher_p"
DELTAS_P = "deltas_p"
MISSED = "missed_fraction"
SCHEDULE = "schedule"
ACTIVE = "active_fraction"
COUNT = "count"
SPAN = "span_s"
FFT_PERIOD = "fft_period_s"
ACF_LIFT = "acf_lift"
RENEWAL_P = "renewal_p"
SLEEP_CI_LOW = "sleep_ci_low_s"
SLEEP_CI_HIGH = "sleep_ci_high_s"
BURST_SIZE = "burst_size"

SCHEDULE_CONTINUOUS = "continuous"
SCHEDULE_WORKHOURS = "workhours"
SCHEDULE_INTERMITTENT = "intermittent"

_US_PER_S = 1_000_000
_US_PER_HOUR = 3600 * _US_PER_S


@dataclass(frozen=True)
class PeriodicityParams:
    """Parameters of the periodicity detector (defaults tuned on the sample data)."""

    actions: tuple[str, ...] = field(
        default=(S.ACTION_SUCCESS, S.ACTION_REQUEST, S.ACTION_FAILED),
        metadata={
            "doc": "Action types that count as connections; failed ones are beacons "
            "too when the C2 server is down (more recall, a little more noise)."
        },
    )
    min_events: int = field(
        default=6,
        metadata={
            "doc": "Fewest distinct connection times per pair; lower finds "
            "shorter-lived beacons but tests them on little evidence."
        },
    )
    max_p_value: float = field(
        default=0.01,
        metadata={
            "doc": "Largest p-value (g-test, deltas test or renewal test, "
            "Bonferroni-combined) to "
            "report, or the false discovery rate with fdr; higher adds recall and "
            "chance hits."
        },
    )
    fdr: bool = field(
        default=True,
        metadata={
            "doc": "Apply max_p_value to Benjamini-Hochberg q-values over every pair "
            "tested, so 100,000 random pairs do not yield 1,000 chance hits; false "
            "tests each pair alone (more recall on small data, more noise on big)."
        },
    )
    max_jitter_pct: float = field(
        default=60.0,
        metadata={
            "doc": "Largest estimated jitter (% of the sleep) to report; higher "
            "catches noisier beacons and more irregular programs."
        },
    )
    min_span_periods: float = field(
        default=3.0,
        metadata={
            "doc": "The active time must span this many sleeps; 3 lets a 1-day "
            "sleep qualify over 3+ days of data, higher demands more repeats."
        },
    )
    pause_factor: float = field(
        default=4.0,
        metadata={
            "doc": "A delta over this many sleeps is a pause (night, weekend), "
            "not jitter; lower splits beacons with heavy loss into stretches."
        },
    )
    workhours_window_h: float = field(
        default=12.0,
        metadata={
            "doc": "Pairs with pauses whose events all fall in a daily window "
            "this long (UTC hours) are labelled 'workhours'."
        },
    )
    continuous_fraction: float = field(
        default=0.8,
        metadata={
            "doc": "Share of the span that must be active to call the schedule 'continuous'."
        },
    )
    public_only: bool = field(
        default=True,
        metadata={
            "doc": "Only public remote addresses; false also hunts internal "
            "C2 and lateral polling, with many more benign hits."
        },
    )
    include_proxies: bool = field(
        default=True,
        metadata={
            "doc": "Also test connections to explicit proxies (private addresses "
            "with CONNECT targets or RemoteUrl names): C2 through a proxy only "
            "ever shows the proxy's address."
        },
    )
    max_devices: int = field(
        default=10,
        metadata={
            "doc": "Drop a (process, remote IP, port) periodic on more devices "
            "than this (seed 001's prevalence filter); higher keeps "
            "widespread beacons and widespread updaters."
        },
    )
    bins_per_period: float = field(
        default=8.0,
        metadata={
            "doc": "Counting-process bins per sleep for the periodogram; more "
            "resolves jitter better and costs longer FFTs."
        },
    )
    max_fft_bins: int = field(
        default=16384,
        metadata={
            "doc": "Longest series one FFT sees (a power of two); longer data "
            "is tested on its most recent part. Caps the work per pair."
        },
    )


def proxy_addresses(dataset: PairContext) -> list[str]:
    """Non-public remote addresses that connections name a real destination through.

    Zeek's CONNECT requests name their target for the proxy's address; Defender
    writes the requested host in RemoteUrl while RemoteIP is the proxy.
    """
    connect = dataset.names.filter(pl.col(S.NAME_SOURCE) == "connect").get_column(S.NAME_IP)
    named = dataset.everyone().addresses_with_urls()
    candidates = pl.concat([connect, named]).unique().drop_nulls().to_list()
    return sorted(ip for ip in candidates if classify_ip(ip) != PUBLIC)


def connection_pairs(
    dataset: PairContext, params: PeriodicityParams, min_count: int = 1
) -> pl.DataFrame:
    """The pair index of the chosen action types, with other sources' rows and proxies.

    Rows whose action is not a Defender ActionType (Zeek conn_state) are connection
    records whatever ``actions`` says (``pairs.connection_events`` keeps them). Direct
    pairs with fewer than ``min_count`` distinct times are left out.
    """
    if params.public_only:
        pairs = dataset.pairs(params.actions, min_count)  # shared with the other detectors
    else:
        table = dataset.connection_table()
        pairs = table.index(params.actions, public_only=False, min_count=min_count)
    proxies = proxy_addresses(dataset) if params.include_proxies and params.public_only else []
    if proxies:
        via = dataset.events.filter(pl.col(S.REMOTE_IP).is_in(proxies))
        proxied = build_pair_index(via, params.actions, public_only=False)
        pairs = pl.concat([pairs, proxied], how="vertical_relaxed")
    return pairs


def _epoch_us(pairs: pl.DataFrame) -> np.ndarray:
    """All pairs' connection times end to end, in microseconds since the epoch."""
    exploded = pairs.select(pl.col(P_TS).explode().dt.epoch("us"))
    return exploded.to_series().to_numpy().astype(np.int64)


# Times from each pair's first under this many seconds (about two years) carry a
# rounding error under 0.03 us in their deltas: see ``_median_delta_s``.
_EXACT_US_SPAN_S = float(2**26)


def _median_delta_s(
    epoch_us: np.ndarray,
    counts: np.ndarray,
    sorted_s: np.ndarray | None = None,
    span_s: float = math.inf,
) -> np.ndarray:
    """Each pair's median time between connections, in seconds (NaN for one time).

    The median of the exact microsecond deltas. ``sorted_s`` are the same deltas in
    seconds, sorted within each pair (``segments.sorted_deltas`` of the times from
    each pair's first, which reach ``span_s``). Under ``_EXACT_US_SPAN_S`` each is
    within 0.03 us of its microsecond delta, so rounding it gives that delta back and
    deltas a microsecond apart keep their order: the microsecond deltas come sorted,
    with no sort of their own. Longer spans sort the microsecond deltas.
    """
    ids = segment_ids(counts)
    same = ids[1:] == ids[:-1]
    if sorted_s is not None and span_s < _EXACT_US_SPAN_S:
        sorted_us = np.rint(sorted_s * _US_PER_S)
        return segment_median(sorted_us, ids[1:][same], counts.size, presorted=True) / _US_PER_S
    deltas_us = np.diff(epoch_us)[same].astype(np.float64)
    return segment_median(deltas_us, ids[1:][same], counts.size) / _US_PER_S


def _schedule(
    epoch_us: np.ndarray,
    counts: np.ndarray,
    active_fraction: np.ndarray,
    span_s: np.ndarray,
    params: PeriodicityParams,
) -> pl.Series:
    """'continuous', 'workhours' (pauses, events inside one daily window) or 'intermittent'."""
    n = counts.size
    ids = np.repeat(np.arange(n), counts)
    hours = (epoch_us // _US_PER_HOUR) % 24
    seen = np.zeros((n, 24), dtype=bool)
    seen[ids, hours] = True
    # Longest run of empty hours, around the clock: walk the day twice.
    run = np.zeros(n, dtype=np.int64)
    longest = np.zeros(n, dtype=np.int64)
    for hour in range(48):
        empty = ~seen[:, hour % 24]
        run = np.where(empty, run + 1, 0)
        longest = np.maximum(longest, np.minimum(run, 24))
    window_h = 24 - longest
    continuous = np.nan_to_num(active_fraction, nan=1.0) >= params.continuous_fraction
    daily = (window_h <= params.workhours_window_h) & (span_s >= 1.5 * 86400)
    codes = np.where(continuous, 0, np.where(daily, 1, 2))
    return _labels(SCHEDULE, _SCHEDULES, codes)


_SCHEDULES = (SCHEDULE_CONTINUOUS, SCHEDULE_WORKHOURS, SCHEDULE_INTERMITTENT)


def _labels(name: str, labels: tuple[str, ...], codes: np.ndarray) -> pl.Series:
    """A String column of ``labels[code]``: a gather from the few labels, not a numpy
    array of strings converted row by row."""
    return pl.Series(name, labels, dtype=pl.String).gather(codes.astype(np.int64))


def _score(p_value: pl.Expr, jitter: pl.Expr, max_jitter: float) -> pl.Expr:
    """0..1: three quarters significance (full at p <= 1e-10), a quarter regularity.

    Mostly significance: implants add jitter on purpose, so low jitter says "a
    machine", not "malicious"; how sure we are that it is periodic matters more.
    """
    significance = (-(p_value.clip(1e-300, 1.0).log10()) / 10).clip(0.0, 1.0)
    regularity = (1 - jitter / max_jitter).clip(0.0, 1.0)
    return 0.75 * significance + 0.25 * regularity


def empty_result() -> pl.DataFrame:
    """The detector's output with no rows (the base columns, then the evidence)."""
    schema = dict(S.CANDIDATE_BASE_SCHEMA)
    schema.update(
        {
            S.DEVICE_ID: pl.String(),
            S.ACCOUNT: pl.String(),
            PERIOD: pl.Float64(),
            S.C_JITTER: pl.Float64(),
            JITTER_KIND: pl.String(),
            P_VALUE: pl.Float64(),
            Q_VALUE: pl.Float64(),
            FISHER_P: pl.Float64(),
            DELTAS_P: pl.Float64(),
            MISSED: pl.Float64(),
            SCHEDULE: pl.String(),
            ACTIVE: pl.Float64(),
            COUNT: pl.Int64(),
            SPAN: pl.Float64(),
            S.C_INTERVAL: pl.Float64(),
            FFT_PERIOD: pl.Float64(),
            ACF_LIFT: pl.Float64(),
            RENEWAL_P: pl.Float64(),
            SLEEP_CI_LOW: pl.Float64(),
            SLEEP_CI_HIGH: pl.Float64(),
            BURST_SIZE: pl.Float64(),
        }
    )
    return pl.DataFrame(schema=schema)


@register(
    NAME,
    "Periodogram + g-test periodicity; survives loss, long sleeps, workhours",
    PeriodicityParams,
    cost=3,
    sorts_connections=True,
)
def run(dataset: PairContext, params: PeriodicityParams, progress: Progress) -> pl.DataFrame:
    """Periodic pairs: estimated sleep, jitter and kind, loss, schedule and p-value."""
    return finish([tested_pairs(dataset, params, progress)], dataset, params, progress)


@dataclass
class Tested:
    """Stage one's result for one partition: the pairs that may pass, and the p-value of
    every pair in the false-discovery family (``hits`` point into it by ``_family``)."""

    hits: pl.DataFrame | None
    family_p: np.ndarray


# Stage one keeps pairs whose own p-value is at most this many times max_p_value: a
# Benjamini-Hochberg q-value is never below its p-value, but floating point may put it
# an ulp below, and stage two applies the exact test.
_P_MARGIN = 1.0 + 1e-9


def tested_pairs(dataset: PairContext, params: PeriodicityParams, progress: Progress) -> Tested:
    """Stage one, on one device partition: every pair's period, jitter and p-value.

    Returns the pairs that could pass (eligible, jitter and p-value in range) and the
    p-values of all eligible pairs: the false discovery rate is over every pair tested
    in the whole input, so it is applied in ``finish``.
    """
    progress.report(NAME, 0.0, "indexing pairs")
    pairs = connection_pairs(dataset, params, params.min_events).filter(
        pl.col(P_COUNT) >= params.min_events
    )
    if pairs.height == 0:
        progress.report(NAME, 0.8, "no pair has enough connections")
        return Tested(None, np.empty(0))

    progress.report(NAME, 0.2, f"estimating periods of {pairs.height} pairs")
    epoch_us = _epoch_us(pairs)
    counts = pairs.get_column(P_COUNT).to_numpy().astype(np.int64)
    firsts = np.repeat(epoch_us[np.cumsum(counts) - counts], counts)
    settings = PeriodSettings(
        bins_per_period=params.bins_per_period,
        max_bins=params.max_fft_bins,
        gap_factor=params.pause_factor,
        min_span_periods=params.min_span_periods,
        fft_max_jitter_pct=params.max_jitter_pct,
    )
    times_s = (epoch_us - firsts) / _US_PER_S
    timing_settings = TimingSettings(renewal=RenewalSettings(pause_factor=params.pause_factor))
    # The renewal test needs nothing from the periodogram: it runs in its own thread
    # beside it (numpy and polars release the GIL), so a second core is busy while the
    # periodogram's threads wait on each other. Same inputs, same numbers.
    # Both read the pairs' sorted deltas: sorted once here, not once in each.
    deltas = sorted_deltas(times_s, counts)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="timing") as pool:
        timing_job = pool.submit(timing_estimates, times_s, counts, timing_settings, deltas)
        est = estimate_periods(
            times_s,
            counts,
            settings,
            min_events=params.min_events,
            workers=DEFAULT_WORKERS,  # the pairs are split between threads
            sorted_deltas=deltas,
        )
        timing = timing_job.result()
    est = _with_renewal(est, timing, params)
    progress.report(NAME, 0.8, "scoring")
    # The family is every pair that could be tested (enough events and span).
    eligible = est["eligible"]
    family = np.full(counts.size, -1, dtype=np.int64)
    family[eligible] = np.arange(int(eligible.sum()))
    schedule = _schedule(epoch_us, counts, est["active_fraction"], est["span_s"], params)
    span_s = float(times_s.max()) if times_s.size else 0.0
    deltas_median = pl.Series(_median_delta_s(epoch_us, counts, deltas, span_s), nan_to_null=True)

    found = pairs.select(
        pl.lit(NAME).alias(S.C_DETECTOR),
        DEVICE_KEY.alias(S.C_DEVICE),
        pl.col(S.PROCESS).alias(S.C_PROCESS),
        pl.col(S.REMOTE_IP).alias(S.C_REMOTE_IP),
        pl.col(S.REMOTE_PORT).alias(S.C_REMOTE_PORT),
        pl.col(P_CONNECTIONS).alias(S.C_CONNECTIONS),
        pl.col(P_FIRST).alias(S.C_FIRST_SEEN),
        pl.col(P_LAST).alias(S.C_LAST_SEEN),
        pl.col(S.DEVICE_ID),
        pl.col(S.ACCOUNT),
    ).with_columns(
        pl.Series(PERIOD, est["period_s"]),
        pl.Series(S.C_JITTER, est["jitter_pct"]),
        _labels(JITTER_KIND, KINDS, est["jitter_kind"]),
        pl.Series(P_VALUE, est["p_value"]),
        pl.Series(FISHER_P, est["fisher_p"]),
        pl.Series(DELTAS_P, est["deltas_p"]),
        pl.Series(MISSED, est["multiple_fraction"]),
        schedule,
        pl.Series(ACTIVE, est["active_fraction"]),
        pl.Series(COUNT, counts),
        pl.Series(SPAN, est["span_s"]),
        deltas_median.alias(S.C_INTERVAL),
        pl.Series(FFT_PERIOD, est["fft_period_s"]),
        pl.Series(ACF_LIFT, est["acf_lift"]),
        pl.Series(RENEWAL_P, timing["p_value"]),
        pl.Series(SLEEP_CI_LOW, timing["ci_low_s"]),
        pl.Series(SLEEP_CI_HIGH, timing["ci_high_s"]),
        pl.Series(BURST_SIZE, timing["burst_size"]),
        pl.Series("_eligible", est["eligible"]),
        pl.Series("_family", family),
    )
    limit = params.max_p_value * (_P_MARGIN if params.fdr else 1.0)
    hits = found.filter(
        pl.col("_eligible")
        & (pl.col(P_VALUE) <= limit)
        & (pl.col(S.C_JITTER) <= params.max_jitter_pct)
    )
    return Tested(hits, est["p_value"][eligible])


def _with_renewal(
    est: dict[str, np.ndarray],
    timing: dict[str, np.ndarray],
    params: PeriodicityParams,
) -> dict[str, np.ndarray]:
    """The estimator's figures with the renewal test folded in.

    ``p_value`` becomes the Bonferroni combination of the three tests. Where the
    periodogram and the deltas test say nothing at the level (or the pair is a burst
    beacon, whose raw deltas are the seconds inside a burst), the sleep and jitter
    are the renewal test's: ``period_s`` the centre of the jitter interval,
    ``jitter_pct`` half its width over the centre (the "uniform" kind). Every pair
    the renewal test could test (``min_events`` times) joins the false-discovery
    family, whatever its result, so the family is not chosen by the outcome.
    """
    out = dict(est)
    renewal_p = timing["p_value"]
    best = np.minimum(np.minimum(est["fisher_p"], est["deltas_p"]), renewal_p)
    out["p_value"] = np.minimum(1.0, 3.0 * best)
    own = np.minimum(1.0, 2.0 * np.minimum(est["fisher_p"], est["deltas_p"]))
    found = np.isfinite(timing["sleep_s"]) & (renewal_p <= params.max_p_value)
    take = found & ((own > params.max_p_value) | timing["bursty"])
    kind_uniform = KINDS.index(KIND_UNIFORM)
    out["period_s"] = np.where(take, timing["sleep_s"], est["period_s"])
    out["jitter_pct"] = np.where(take, timing["jitter_pct"], est["jitter_pct"])
    out["jitter_kind"] = np.where(take, kind_uniform, est["jitter_kind"])
    out["multiple_fraction"] = np.where(take, timing["missed_share"], est["multiple_fraction"])
    testable = timing["n_deltas"] + 1 >= max(params.min_events, 5)
    out["eligible"] = est["eligible"] | testable
    return out


def finish(
    parts: list[Tested], dataset: PairContext, params: PeriodicityParams, progress: Progress
) -> pl.DataFrame:
    """Stage two, over every partition: q-values, prevalence across devices, score, order."""
    family_p = np.concatenate([part.family_p for part in parts])
    q_all = benjamini_hochberg(family_p)  # the family is every pair tested, everywhere
    offsets = np.cumsum([0] + [part.family_p.size for part in parts])
    frames = [
        part.hits.with_columns(
            pl.Series(Q_VALUE, q_all[offset + part.hits.get_column("_family").to_numpy()])
        )
        for part, offset in zip(parts, offsets, strict=False)
        if part.hits is not None
    ]
    if not frames:
        progress.report(NAME, 1.0, "no pair has enough connections")
        return empty_result()
    hits = pl.concat(frames, how="vertical")
    significance = pl.col(Q_VALUE) if params.fdr else pl.col(P_VALUE)
    hits = hits.filter(significance <= params.max_p_value)
    # Seed 001's prevalence filter: a periodic destination on many devices is an updater.
    hits = hits.filter(
        pl.col(S.C_DEVICE).n_unique().over([S.C_PROCESS, S.C_REMOTE_IP, S.C_REMOTE_PORT])
        <= params.max_devices
    )
    result = hits.with_columns(
        _score(pl.col(P_VALUE), pl.col(S.C_JITTER), params.max_jitter_pct).alias(S.C_SCORE)
    )
    columns = list(empty_result().columns)
    result = result.select(columns).cast(empty_result().schema)
    result = result.sort(
        [S.C_SCORE, *S.CANDIDATE_KEY],
        descending=[True, False, False, False, False],
        nulls_last=True,
    )
    progress.report(NAME, 1.0, f"{result.height} periodic pairs")
    return result


register_stages(NAME, tested_pairs, finish)
