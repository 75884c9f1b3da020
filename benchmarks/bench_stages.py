"""CPU and wall seconds of each stage: load, placement, the connection table, each hunt, the merge.

Not a test: it prints a table. Run
``python benchmarks/bench_stages.py FILE... [--rounds R]``, e.g. on the 1M Parquet
benchmark set. R times, the files are loaded (no cache) and placed in the network, the
connection table is built, every hunt runs alone (one after another, so each one's CPU
is its own) and the hits are merged. The least of the R rounds is printed per stage: on a
shared machine the least is the figure least disturbed by other work.

CPU is the process's user+system time, so threads inside a hunt (the periodogram's,
the renewal test's) all count. To compare two checkouts, run the script from each
with ``PYTHONPATH=<checkout>``.
"""

from __future__ import annotations

import argparse
import resource
import time

import tui  # noqa: F401  (before polars loads: the CLI's allocator setting)
from detectors.base.progress import NULL_PROGRESS
from detectors.hunts.registry import all_detectors
from detectors.pairs.network import place_context
from detectors.run.memory import InMemory
from detectors.run.outcome import DetectorOutcome, merge, run_detector
from detectors.run.setup import load_config


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    config = load_config(None)
    best: dict[str, tuple[float, float]] = {}

    def timed(name: str, step):  # type: ignore[no-untyped-def]
        cpu, wall = _cpu(), time.perf_counter()
        result = step()
        spent = (_cpu() - cpu, time.perf_counter() - wall)
        old = best.get(name, (float("inf"), float("inf")))
        best[name] = (min(old[0], spent[0]), min(old[1], spent[1]))
        return result

    for _ in range(args.rounds):
        context = timed(
            "load", lambda: InMemory(args.paths, use_cache=False).context(config, NULL_PROGRESS)
        )
        timed("placement", lambda c=context: place_context(c, config.network_settings()))
        if context.reload_loaded is not None:  # as ``run.loop.prepare``
            context.release_loaded()
        timed("connection table", context.connection_table)
        outcomes: dict[str, DetectorOutcome] = {}
        for name in all_detectors():
            outcomes[name] = timed(name, lambda n=name, c=context: run_detector(c, config, n))
        timed("merge", lambda done=outcomes, c=context: merge(done, c, config))

    print(f"{'stage':<20} {'CPU s':>7} {'wall s':>7}   (least of {args.rounds} rounds)")
    for name, (cpu, wall) in best.items():
        print(f"{name:<20} {cpu:7.3f} {wall:7.3f}")
    print(f"{'sum':<20} {sum(c for c, _ in best.values()):7.3f} "
          f"{sum(w for _, w in best.values()):7.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
