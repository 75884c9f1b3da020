"""Throughput of every registered detector on synthetic canonical events.

Not a test: it prints a table. Run ``python benchmarks/bench_detectors.py [--events N]``.
The events mimic a Defender export: ~2,000 devices, 30 processes, 20,000 remote
addresses (10 % private), four action types plus hourly aggregated reports, names for
a third of the rows, and some planted beacons; generation is vectorised numpy.
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime, timezone

import numpy as np
import polars as pl

from detectors.base import schema as S
from detectors.base.errors import DetectorSkipped
from detectors.base.progress import Progress
from detectors.hunts.registry import all_detectors
from detectors.pairs.context import PairContext
from detectors.pairs.table import build_pair_index

START = datetime(2024, 3, 1, tzinfo=timezone.utc)
SPAN_US = 3 * 86_400 * 1_000_000
PUBLIC_FIRST_OCTETS = np.array([8, 13, 23, 34, 52, 104, 142, 151, 172, 185, 193, 212])


def _remote_ips(rng: np.random.Generator, count: int) -> list[str]:
    """Mostly public IPv4 (first octets outside private/reserved ranges), 10 % private."""
    octets = rng.integers(1, 255, size=(count, 4))
    octets[:, 0] = rng.choice(PUBLIC_FIRST_OCTETS, count)
    octets[octets[:, 0] == 172, 1] = rng.integers(32, 255)  # keep 172.x outside 172.16/12
    private = rng.random(count) < 0.10
    octets[private, 0] = 10
    frame = pl.DataFrame({f"o{i}": octets[:, i] for i in range(4)})
    joined = frame.select(pl.concat_str([pl.col(f"o{i}") for i in range(4)], separator="."))
    return joined.to_series().to_list()


def synthetic_events(n: int, seed: int = 7) -> pl.DataFrame:
    """``n`` canonical events: noise, interval beacons and aggregated-report beacons.

    Interval beacons: 50 (device, process, IP) pairs calling every 300 s +- 30 s.
    Aggregated beacons: 200 (device, IP) pairs with an hourly report of ~60 connections.
    """
    rng = np.random.default_rng(seed)
    devices = pl.Series([f"ws-{i:04d}" for i in range(2000)])
    processes = pl.Series([f"proc{i}.exe" for i in range(30)])
    ips = pl.Series(_remote_ips(rng, 20_000))
    actions = [S.ACTION_SUCCESS] * 14 + [S.ACTION_REQUEST] * 3 + [S.ACTION_FAILED] * 2
    actions = pl.Series([*actions, S.ACTION_SUCCESS_AGG])

    hours = SPAN_US // 3_600_000_000
    n_interval = min(n // 10, 50 * (SPAN_US // 300_000_000))
    n_hourly = min(n // 10, 200 * hours)
    n_noise = n - n_interval - n_hourly

    # Noise: everything random; aggregated rows among it get a random count.
    noise_ts = rng.integers(0, SPAN_US, n_noise)
    # Interval beacons: pair i is device i -> IP i with process i % 30, port 443.
    pair = np.arange(n_interval) % 50
    step = np.arange(n_interval) // 50
    interval_ts = step * 300_000_000 + rng.normal(0.0, 30_000_000, n_interval).astype(np.int64)
    # Aggregated beacons: pair j is device 100 + j -> IP 100 + j, one report per hour.
    agg_pair = np.arange(n_hourly) % 200
    agg_ts = (np.arange(n_hourly) // 200) * 3_600_000_000 + 600_000_000

    device_idx = np.concatenate([rng.integers(0, 2000, n_noise), pair, 100 + agg_pair])
    ip_idx = np.concatenate([rng.integers(0, ips.len(), n_noise), pair, 100 + agg_pair])
    process_idx = np.concatenate([rng.integers(0, 30, n_noise), pair % 30, agg_pair % 30])
    action_idx = np.concatenate(
        [
            rng.integers(0, actions.len(), n_noise),
            np.zeros(n_interval, dtype=np.int64),
            np.full(n_hourly, actions.len() - 1),
        ]
    )
    port = np.concatenate([rng.choice([443, 80, 8080, 53], n_noise), np.full(n - n_noise, 443)])
    counts = np.concatenate(
        [
            rng.integers(1, 120, n_noise),
            np.ones(n_interval, np.int64),
            rng.integers(55, 66, n_hourly),
        ]
    )
    timestamps = np.concatenate([noise_ts, interval_ts, agg_ts]).clip(0, SPAN_US - 1)
    start_us = int(START.timestamp() * 1_000_000)
    frame = pl.DataFrame(
        {
            S.TIMESTAMP: pl.Series(timestamps + start_us).cast(pl.Datetime("us", "UTC")),
            S.DEVICE_NAME: devices.gather(device_idx),
            S.DEVICE_ID: devices.gather(device_idx).str.replace("ws-", "id-"),
            S.PROCESS: processes.gather(process_idx),
            S.ACTION: actions.gather(action_idx),
            S.REMOTE_IP: ips.gather(ip_idx),
            S.REMOTE_PORT: port,
            S.CONNECTIONS: counts,
            S.BYTES_OUT: rng.integers(100, 5_000, n),
            S.BYTES_IN: rng.integers(100, 50_000, n),
            "_named": rng.random(n) < 0.33,
            "_site": ip_idx % 997,
        }
    )
    is_agg = pl.col(S.ACTION).str.ends_with(S.AGGREGATED_SUFFIX)
    frame = frame.with_columns(
        pl.lit("corp\\user").alias(S.ACCOUNT),
        pl.when(is_agg).then(pl.col(S.CONNECTIONS)).otherwise(1).alias(S.CONNECTIONS),
        pl.when(pl.col("_named"))
        .then(pl.format("host{}.example{}.com", pl.col(S.REMOTE_PORT), pl.col("_site")))
        .otherwise(None)
        .alias(S.REMOTE_URL),
    )
    return S.conform(frame, "synthetic").collect()


def _timed(label: str, action) -> tuple[str, float, str]:
    began = time.perf_counter()
    try:
        result = action()
        note = f"{result.height} rows"
    except DetectorSkipped as exc:
        note = f"skipped: {exc}"
    except Exception as exc:  # a benchmark reports failures instead of stopping
        note = f"error: {type(exc).__name__}: {exc}"
    return label, time.perf_counter() - began, note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()

    began = time.perf_counter()
    events = synthetic_events(args.events)
    print(f"generated {events.height:,} events in {time.perf_counter() - began:.2f} s\n")

    rows = [_timed("(pair index)", lambda: build_pair_index(events, None))]
    for name, spec in sorted(all_detectors().items()):
        dataset = PairContext(events=events)  # fresh: each detector pays for its own index
        params = spec.params_type()
        rows.append(_timed(name, lambda spec=spec, d=dataset, p=params: spec.run(d, p, Progress())))

    print(f"{'detector':<20} {'seconds':>9} {'events/s':>14}  result")
    print("-" * 64)
    for label, seconds, note in rows:
        rate = f"{events.height / seconds:,.0f}" if not note.startswith("skipped") else "-"
        print(f"{label:<20} {seconds:>9.2f} {rate:>14}  {note}")


if __name__ == "__main__":
    main()
