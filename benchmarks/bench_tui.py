"""The TUI's latency targets, measured: first paint, sort/filter of 100k candidates,
and the work behind drawing one candidate's charts.

Not a test: it prints a table. Run ``python benchmarks/bench_tui.py [--candidates N]``.
Targets (issue "Performance at real sizes"): first paint < 1 s whatever the input size;
sorting and filtering 100k candidates < 200 ms; a selected candidate's chart data
< 100 ms.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).parent))

from bench_detectors import synthetic_events

from detectors.base import schema as S
from detectors.pairs.context import PairContext
from detectors.rank.enrichment import DestinationIndex, describe_candidate
from tui.view import SORTABLE, ViewSpec, apply_view, prepare

FIRST_PAINT = """
import time, sys
start = time.perf_counter()
from tui.app import BeaconTriageApp
import asyncio

async def main():
    app = BeaconTriageApp(sys.argv[1:])
    # run_test yields once Textual's ready callback fired: the first screen is composed,
    # mounted and drawn; loading goes on in a worker after that.
    async with app.run_test(size=(120, 40)):
        print(time.perf_counter() - start)
        app.exit()

asyncio.run(main())
"""


def synthetic_candidates(n: int, seed: int = 3) -> pl.DataFrame:
    """``n`` merged candidates with every column the table shows."""
    rng = np.random.default_rng(seed)
    start = datetime(2026, 11, 20, tzinfo=timezone.utc)
    first = [start + timedelta(seconds=int(s)) for s in rng.integers(0, 86_400, n)]
    return pl.DataFrame(
        {
            S.C_DEVICE: [f"ws-{i % 5000:05d}.corp.example" for i in range(n)],
            S.C_PROCESS: [f"proc{i % 300}.exe" for i in range(n)],
            S.C_REMOTE_IP: [f"45.{i % 250}.{(i // 250) % 250}.{i % 7}" for i in range(n)],
            S.C_REMOTE_PORT: rng.choice([443, 80, 8443, 4444], n).astype(np.int32),
            S.C_SCORE: rng.random(n),
            S.C_DETECTORS: [["intervals", "periodicity"][: 1 + i % 2] for i in range(n)],
            S.C_CONNECTIONS: rng.integers(16, 5000, n),
            S.C_FIRST_SEEN: first,
            S.C_LAST_SEEN: [t + timedelta(hours=3) for t in first],
            S.C_DOMAIN: [f"site{i % 9000}.example" for i in range(n)],
            S.C_INTERVAL: rng.random(n) * 900,
            S.C_JITTER: rng.random(n) * 50,
        }
    )


def time_ms(fn, repeat: int = 5) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--candidates", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--big-file", help="A large export to time the first paint on.")
    args = parser.parse_args()

    rows: list[tuple[str, float, str]] = []
    frame = prepare(synthetic_candidates(args.candidates))
    for key in SORTABLE:
        spec = ViewSpec(sort=key)
        rows.append(
            (
                f"sort {args.candidates:,} by {key}",
                time_ms(lambda spec=spec: apply_view(frame, spec)),
                "< 200 ms",
            )
        )
    spec = ViewSpec(text="site12")
    rows.append(
        (
            f"filter {args.candidates:,} 'site12'",
            time_ms(lambda: apply_view(frame, spec)),
            "< 200 ms",
        )
    )

    dataset = PairContext(events=synthetic_events(args.events))
    pairs = dataset.pairs(None)
    index = DestinationIndex(dataset, None)
    busiest = pairs.sort("count", descending=True).head(20).to_dicts()
    picked = [
        {
            S.C_DEVICE: p[S.DEVICE_NAME],
            S.C_PROCESS: p[S.PROCESS],
            S.C_REMOTE_IP: p[S.REMOTE_IP],
            S.C_REMOTE_PORT: p[S.REMOTE_PORT],
            S.C_SCORE: 0.5,
        }
        for p in busiest
    ]
    candidates = pl.DataFrame(picked)
    samples = [
        time_ms(lambda r=r: describe_candidate(r, pairs, index, candidates), 1) for r in picked
    ]
    rows.append(
        (f"select a candidate ({args.events:,} events)", statistics.median(samples), "< 100 ms")
    )

    target = [args.big_file] if args.big_file else []
    done = subprocess.run(
        [sys.executable, "-c", FIRST_PAINT, *target], capture_output=True, text=True, check=True
    )
    label = "first paint (" + (Path(args.big_file).name if args.big_file else "sample") + ")"
    rows.append((label, float(done.stdout.strip().splitlines()[-1]) * 1000, "< 1000 ms"))

    width = max(len(r[0]) for r in rows)
    print(f"{'measurement'.ljust(width)}  {'median ms':>10}  target")
    for name, ms, target_text in rows:
        print(f"{name.ljust(width)}  {ms:>10.1f}  {target_text}")


if __name__ == "__main__":
    main()
