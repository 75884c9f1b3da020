"""CPU and wall seconds of each stage after loading: the connection table, each hunt, the merge.

Not a test: it prints a table. Run
``python benchmarks/bench_stages.py FILE... [--rounds R]``, e.g. on the 1M Parquet
benchmark set. The files are loaded and placed once; then, R times, the connection
table is rebuilt, every hunt runs alone (one after another, so each one's CPU is its
own) and the hits are merged. The least of the R rounds is printed per stage: on a
shared machine the least is the figure least disturbed by other work.

CPU is the process's user+system time, so threads inside a hunt (the periodogram's,
the renewal test's) all count. To compare two checkouts, run the script from each
with ``PYTHONPATH=<checkout>``.
"""

from __future__ import annotations

import argparse
import resource
import time

from detectors.hunts.registry import all_detectors
from detectors.run.loop import prepare
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
    context = prepare(InMemory(args.paths, use_cache=False), config)
    best: dict[str, tuple[float, float]] = {}

    def timed(name: str, step):  # type: ignore[no-untyped-def]
        cpu, wall = _cpu(), time.perf_counter()
        result = step()
        spent = (_cpu() - cpu, time.perf_counter() - wall)
        old = best.get(name, (float("inf"), float("inf")))
        best[name] = (min(old[0], spent[0]), min(old[1], spent[1]))
        return result

    for _ in range(args.rounds):
        context._connections = None  # rebuilt each round, as a run builds it once
        context._pair_cache.clear()
        timed("connection table", context.connection_table)
        outcomes: dict[str, DetectorOutcome] = {}
        for name in all_detectors():
            outcomes[name] = timed(name, lambda n=name: run_detector(context, config, n))
        # The merge remembers the outbound rows' mask on the population: forget it, as a
        # run computes it once.
        context.everyone()._answers.pop("outbound_rows", None)
        timed("merge", lambda done=outcomes: merge(done, context, config))

    print(f"{'stage':<20} {'CPU s':>7} {'wall s':>7}   (least of {args.rounds} rounds)")
    for name, (cpu, wall) in best.items():
        print(f"{name:<20} {cpu:7.3f} {wall:7.3f}")
    print(f"{'sum':<20} {sum(c for c, _ in best.values()):7.3f} "
          f"{sum(w for _, w in best.values()):7.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
