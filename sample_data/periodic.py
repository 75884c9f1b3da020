"""The calls of a periodic program (beacon or benign), on many devices at once."""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl

from . import conns as C
from . import dns
from .clock import HOUR, to_ns, work_spans
from .programs import ABSENT, AGGREGATED, Program
from .world import PROCESS_INDEX

CHUNK_DEVICES = 2000  # devices simulated at once: bounds memory for big organisations


def active_window(program: Program, span_s: float) -> tuple[float, float]:
    """The program's (from, to) in seconds after the start, clipped to the data."""

    def at(hours: float) -> float:
        return span_s + hours * HOUR if hours < 0 else hours * HOUR

    lo = max(0.0, at(program.active_from_h))
    hi = span_s if program.active_until_h is None else min(span_s, at(program.active_until_h))
    return lo, max(lo, hi)


def periodic_times(
    rng: np.random.Generator, n_dev: int, lo: float, hi: float, program: Program
) -> tuple[np.ndarray, np.ndarray]:
    """Call times of a sleep/jitter loop on ``n_dev`` devices: (device ordinal, seconds).

    A (devices x calls) matrix of sleeps summed along each row, so the result comes
    ordered by device, then time. The first call falls a random part of a sleep after
    ``lo``; uniform jitter draws each sleep from sleep*U(1-j, 1+j), one-sided jitter
    (Cobalt Strike's) from sleep*(1-U(0, j)).
    """
    j = program.jitter_pct / 100
    f_lo, f_hi = (1 - j, 1.0) if program.jitter_kind == "one_sided" else (1 - j, 1 + j)
    sleep = program.sleep_s
    calls = int(np.ceil((hi - lo) / (sleep * max(f_lo, 0.05)))) + 1
    phase = rng.uniform(0, sleep, n_dev)
    gaps = sleep * rng.uniform(f_lo, f_hi, size=(n_dev, max(calls - 1, 0)))
    t = lo + phase[:, None] + np.concatenate([np.zeros((n_dev, 1)), np.cumsum(gaps, axis=1)], 1)
    ordinal = np.broadcast_to(np.arange(n_dev)[:, None], t.shape)
    keep = t < hi
    return ordinal[keep], t[keep]


_RUN_SCHEMA = {
    C.DEVICE: pl.Int32,
    C.OK: pl.Boolean,
    C.AGG_CONNECTIONS: pl.Int64,
    C.AGG_FIRST_NS: pl.Int64,
    C.AGG_LAST_NS: pl.Int64,
}


def hourly(
    device: np.ndarray, t_ns: np.ndarray, ok: np.ndarray, index: int, proc: int, dest: int
) -> pl.DataFrame:
    """Defender's hourly reports per (device, hour, success/failure): count, first, last.

    The calls come ordered by device then time, so each report is a contiguous run:
    counting is a diff of run starts, not a group-by.
    """
    parts = []
    for success in (True, False):
        keep = ok == success
        dev, ns = device[keep], t_ns[keep]
        if not dev.size:
            continue
        hour = ns // 3_600_000_000_000
        new_run = np.concatenate([[True], (dev[1:] != dev[:-1]) | (hour[1:] != hour[:-1])])
        starts = np.flatnonzero(new_run)
        ends = np.append(starts[1:], dev.size)
        parts.append(
            pl.DataFrame(
                {
                    C.DEVICE: dev[starts].astype(np.int32),
                    C.OK: np.full(starts.size, success),
                    C.AGG_CONNECTIONS: (ends - starts).astype(np.int64),
                    C.AGG_FIRST_NS: ns[starts],
                    C.AGG_LAST_NS: ns[ends - 1],
                }
            )
        )
    if not parts:
        parts.append(pl.DataFrame(schema=_RUN_SCHEMA))
    return pl.concat(parts, how="vertical").select(
        C.DEVICE,
        pl.lit(proc, pl.Int16).alias(C.PROC),
        pl.lit(dest, pl.Int32).alias(C.DEST),
        pl.lit(index, pl.Int16).alias(C.PROG),
        C.OK,
        C.AGG_CONNECTIONS,
        C.AGG_FIRST_NS,
        C.AGG_LAST_NS,
    )


def add_program(
    rows: C.Rows,
    reports: list[pl.DataFrame],
    rng: np.random.Generator,
    index: int,
    program: Program,
    device_ids: np.ndarray,
    window: tuple[float, float],
    dests: C.Destinations,
) -> None:
    """The program's calls as connection rows (with their DNS lookups), and hourly
    reports when Defender aggregates it.

    Devices go in chunks so a program on tens of thousands of devices stays in memory;
    calls only Defender's hourly reports record are never materialised as rows.
    """
    dest = dests.add(program.dest)
    proc = PROCESS_INDEX[program.process]
    looks_up = program.zeek and dns.resolves(program.dest)
    domain = dests.domain_ids.get(program.dest.domain or "", -1)
    chunks = max(1, int(np.ceil(device_ids.size / CHUNK_DEVICES)))
    spans = [window] if program.schedule == "always" else work_spans(window)
    for chunk, (lo, hi) in itertools.product(np.array_split(device_ids, chunks), spans):
        ordinal, t = periodic_times(rng, chunk.size, lo, hi, program)
        n = t.size
        device, t_ns = chunk[ordinal], to_ns(t)
        ok = rng.random(n) >= program.fail_pct / 100
        if program.outage is not None:
            down_from = program.outage[0] * HOUR
            ok &= ~((t >= down_from) & (t < down_from + program.outage[1] * HOUR))
        if program.defender == AGGREGATED:
            reports.append(hourly(device, t_ns, ok, index, proc, dest))
            if not program.zeek:
                continue  # nobody else sees these calls: no rows needed
            defender = np.full(n, C.DEF_AGGREGATED)
        elif program.defender == ABSENT:
            defender = np.full(n, C.DEF_ABSENT)
        else:
            defender = np.where(rng.random(n) < program.loss_pct / 100, C.DEF_UNLOGGED, C.DEF_ROW)
        bytes_out = _sizes(rng, program.bytes_out, n)
        bytes_in = _sizes(rng, program.bytes_in, n)
        tasked = rng.random(n) < program.task_share
        bytes_in[tasked] *= rng.uniform(5, 40, int(tasked.sum()))
        dur = np.abs(rng.normal(0.3, 0.03, n)) + 0.02 + tasked * rng.uniform(0.5, 3, n)
        rows.add(
            t_ns=t_ns, device=device, proc=proc, dest=dest, prog=index, app=program.dest.app,
            ok=ok, defender=defender, zeek=program.zeek,
            bytes_out=np.where(ok, bytes_out, 0), bytes_in=np.where(ok, bytes_in, 0),
            dur_us=np.where(ok, dur * 1e6, 0), local_port=C.ephemeral_ports(rng, n),
            url=rng.random(n) < program.url_share,
        )  # fmt: skip
        if looks_up:
            ask = dns.first_in_sorted_runs(device, dns.cache_slot(device, domain, t_ns))
            length = len(program.dest.domain or "")
            dns.add_lookups(rows, rng, device[ask], t_ns[ask], np.full(ask.sum(), dest), length)


def _sizes(rng: np.random.Generator, spec: tuple[float, float], n: int) -> np.ndarray:
    mean, spread = spec
    return np.maximum(1, np.rint(rng.normal(mean, mean * spread, n)))
