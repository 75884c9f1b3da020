"""The TUI's latency targets, measured: first paint, sort/filter of 100k candidates,
the work behind drawing one candidate's charts, and opening input bigger than memory.

Not a test: it prints a table. Run ``python benchmarks/bench_tui.py [--candidates N]``.
Targets (issue "Performance at real sizes"): first paint < 0.5 s whatever the input size;
sorting and filtering 100k candidates < 200 ms; a selected candidate's chart data
< 100 ms.

``--partitioned N`` (default 1M: under a minute here; ``--partitioned 100M`` is the
issue's size: hours, and tens of GB of disk) generates a Defender export of about N events
(``sample_data/generate.py``, Parquet or ``--partitioned-format csv``, kept in
``--data``) and opens it in the TUI, in a fresh headless process, with a config whose
``[engine] max_events_in_memory`` is a third of N: the run loop's partitioned strategy
hunts device partition by device partition (every detector in one pass). It prints
first paint (wall, and the CPU time spent until then: on a busy machine the wall time
mostly measures waiting for a core), time to the first candidate on screen, time to
*ready* (every detector merged) and the child's peak resident memory (its own
``VmHWM``: ``ru_maxrss`` from ``wait4`` starts at this process's high-water mark).
The export is opened twice with the same cache folder: the first open writes and keeps
the partitions, the second reuses them. ``--skip-latency`` runs only that; ``--partitioned
30K`` checks the path in seconds.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

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


OPEN_PARTITIONED = """
import asyncio, json, sys, time
start = time.perf_counter()
cpu = time.process_time()
from pathlib import Path
from detectors.base.config import read_config
from tui.app import BeaconTriageApp

async def main():
    config_file, data, scratch = sys.argv[1:4]
    app = BeaconTriageApp(
        [data], config=read_config(Path(config_file)),
        allowlist_path=Path(scratch) / "allowlist.toml",
    )
    out = {}
    async with app.run_test(size=(120, 40)) as pilot:
        out["first_paint_s"] = time.perf_counter() - start
        out["first_paint_cpu_s"] = time.process_time() - cpu  # a busy machine inflates wall
        while True:
            screen = app.main_screen
            if "first_candidate_s" not in out and screen.view.height > 0:
                out["first_candidate_s"] = time.perf_counter() - start
            status = screen.header.status
            if status == "ready" or status.startswith("load failed"):
                break
            await pilot.pause(0.05)
        out["ready_s"] = time.perf_counter() - start
        # input on partitions merges once, at the end: its table may fill just after
        # "ready" is shown, between two looks
        deadline = time.perf_counter() + 10
        while "first_candidate_s" not in out and time.perf_counter() < deadline:
            if app.main_screen.view.height > 0:
                out["first_candidate_s"] = time.perf_counter() - start
            await pilot.pause(0.05)
        out["status"] = status
        out["candidates"] = app.main_screen.candidates.height
        out["strategy"] = type(app.pipeline.strategy).__name__
        app.exit()
    try:  # this process's own high-water mark (ru_maxrss would include its parent's)
        with open("/proc/self/status") as status_file:
            hwm = [line.split()[1] for line in status_file if line.startswith("VmHWM:")]
        out["peak_mb"] = int(hwm[0]) / 1024
    except (OSError, IndexError):
        pass
    print(json.dumps(out))

asyncio.run(main())
"""


def _events(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 1_000, "M": 1_000_000}.get(text[-1], 1)
    return int(float(text.rstrip("KM")) * scale)


def open_partitioned(
    events: int, fmt: str, data: Path, given: Path | None = None
) -> list[tuple[str, float, str]]:
    """Open a generated export of about ``events`` rows (or ``given``: a file or a
    folder of Parquet parts), bigger than the configured memory budget, in a headless
    TUI child, twice: writing the partitions, then reusing them; timings and peak memory."""
    import os
    import tempfile

    repo = Path(__file__).resolve().parent.parent
    folder = data / f"tui-{events}-{fmt}"
    export = given or folder / f"defender_network_events.{fmt}"
    if given is None and not export.exists():
        print(f"generating ~{events:,} events as {fmt} into {folder} ...", flush=True)
        command = [sys.executable, str(repo / "sample_data" / "generate.py"), "--out", str(folder)]
        command += ["--events", str(events), "--format", fmt, "--no-zeek"]
        subprocess.run(command, check=True, cwd=repo, stdout=subprocess.DEVNULL)
    parquet = sorted(export.glob("*.parquet")) if export.is_dir() else export
    rows = pl.scan_parquet(parquet) if fmt == "parquet" else pl.scan_csv(export)
    count = rows.select(pl.len()).collect().item()
    with tempfile.TemporaryDirectory(prefix="bench-tui-") as scratch:
        config = Path(scratch) / "config.toml"
        budget = max(1, count // 3)
        config.write_text(f"[engine]\nmax_events_in_memory = {budget}\n")
        env = {**os.environ, "XDG_CACHE_HOME": str(Path(scratch) / "cache")}
        # The same cache folder twice: the first open writes (and keeps) the
        # partitions, the second reuses them, as an analyst's second look does.
        opens = [("writes partitions", _open_child(config, export, scratch, env, repo))]
        opens.append(("reuses them", _open_child(config, export, scratch, env, repo)))
    rows: list[tuple[str, float, str]] = []
    for mode, (found, peak_mb) in opens:
        what = f"{count:,} events, {fmt}, budget {budget:,}, {mode}"
        print(
            f"partitioned open ({what}): strategy {found['strategy']}, "
            f"status {found['status']}, {found['candidates']:,} candidates"
        )
        first = found.get("first_candidate_s")
        rows += [
            (f"first paint ({what})", found["first_paint_s"] * 1000, "< 500 ms"),
            (f"first paint, CPU time ({what})", found["first_paint_cpu_s"] * 1000, ""),
            (
                f"first candidate ({what})",
                first * 1000 if first is not None else float("nan"),
                "as soon as one hunt ends",
            ),
            (f"ready ({what})", found["ready_s"] * 1000, ""),
            (f"peak memory MB ({what})", peak_mb, "below the input's size"),
        ]
    return rows


def _open_child(
    config: Path, export: Path, scratch: str, env: dict[str, str], repo: Path
) -> tuple[dict[str, Any], float]:
    """One headless TUI open in a fresh process: what it reported, and its peak MB."""
    import json
    import os

    child = subprocess.Popen(
        [sys.executable, "-c", OPEN_PARTITIONED, str(config), str(export), scratch],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=repo,
    )
    _, status, usage = os.wait4(child.pid, 0)
    out = child.stdout.read().decode() if child.stdout else ""
    if os.waitstatus_to_exitcode(status) != 0:
        err = child.stderr.read().decode(errors="replace") if child.stderr else ""
        raise SystemExit(f"the TUI child failed: {err[-2000:]}")
    found = json.loads(out.strip().splitlines()[-1])
    # A child's ru_maxrss starts at its parent's high-water mark (Linux carries it through
    # fork and exec), and counting a CSV's rows above maps the whole file: the child's
    # own VmHWM where /proc has it.
    return found, found.get("peak_mb", usage.ru_maxrss / 1024)


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
    parser.add_argument(
        "--partitioned",
        default="1M",
        help="events in the export opened through the partitioned strategy (100M: the "
        "issue's size; 0 skips it)",
    )
    parser.add_argument("--partitioned-format", choices=("parquet", "csv"), default="parquet")
    parser.add_argument(
        "--data", default="/tmp/beacon-bench-tui", help="where generated exports are kept"
    )
    parser.add_argument(
        "--export",
        type=Path,
        help="open this Defender export (a file, or a folder of Parquet parts such as "
        "bench_pipeline.py's partitioned set) instead of generating one",
    )
    parser.add_argument("--skip-latency", action="store_true", help="only the partitioned open")
    args = parser.parse_args()

    rows: list[tuple[str, float, str]] = []
    events = _events(args.partitioned)
    if events:
        data = Path(args.data)
        rows += open_partitioned(events, args.partitioned_format, data, args.export)
    if args.skip_latency:
        _print(rows)
        return
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
    rows.append((label, float(done.stdout.strip().splitlines()[-1]) * 1000, "< 500 ms"))

    _print(rows)


def _print(rows: list[tuple[str, float, str]]) -> None:
    width = max(len(r[0]) for r in rows)
    print(f"{'measurement'.ljust(width)}  {'ms or MB':>10}  target")
    for name, ms, target_text in rows:
        print(f"{name.ljust(width)}  {ms:>10.1f}  {target_text}")


if __name__ == "__main__":
    main()
