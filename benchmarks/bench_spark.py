"""The Spark engine against the local one on a generated Defender export (default 1M events).

    python benchmarks/bench_spark.py           # 1M events, Parquet; local[1] and local[2]
    python benchmarks/bench_spark.py --events 200K --masters 'local[2]'

Not a test: it prints a table. Each engine runs in a fresh process through the run loop
(in memory, or ``SparkStrategy`` at each master), writes its candidates, and reports:

- wall: the child's whole life measured here (interpreter, imports, JVM start, read,
  hunts, ranking), and the run loop's own seconds inside it;
- driver memory: the Python driver's peak RSS (``ru_maxrss`` of the child itself) and,
  for Spark, the driver JVM's peak RSS (``VmHWM``). In ``local[N]`` the executors live
  in that JVM and their Python workers are separate processes, not counted here;
- equality: the Spark candidates against the local ones (same keys and detectors,
  largest score difference).

Both engines place the events in the network (``[network]`` defaults), as a run does.

Data: ``sample_data/generate.py --events N --format parquet`` (deterministic), once.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pipeline import DEFENDER, DEVICE_INFO, generate, label, parse_size  # noqa: E402


def _peak_kb(pid: int) -> int:
    """A process's peak resident set (kB) from /proc; 0 when unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def child(engine: str, master: str | None, paths: list[str], out: Path) -> None:
    """One run through the run loop; candidates and figures to ``out``."""
    from detectors.base.config import Config
    from detectors.run.loop import run
    from detectors.run.memory import InMemory

    config = Config()  # both engines place the events in the network
    began = time.perf_counter()
    jvm_kb = 0
    extra: dict[str, object] = {}
    if engine == "spark":
        from detectors.run.spark import SparkStrategy

        strategy = SparkStrategy(paths, master=master, conf=("spark.ui.showConsoleProgress=false",))
        result = run(strategy, config)
        extra = {
            "stages": strategy.timings,
            "groups": strategy.used_groups,
            "slice": result.context.events.height if result.context is not None else 0,
        }
        assert strategy.spark is not None
        gateway = strategy.spark.sparkContext._gateway  # type: ignore[attr-defined]
        proc = getattr(gateway, "proc", None)
        jvm_kb = _peak_kb(proc.pid) if proc is not None else 0
    else:
        result = run(InMemory(paths, use_cache=False), config)
    seconds = time.perf_counter() - began
    result.candidates.write_parquet(out.with_suffix(".parquet"))
    figures = {
        "run_s": seconds,
        "py_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "jvm_peak_mb": jvm_kb / 1024,
        "candidates": result.candidates.height,
        **extra,
    }
    out.write_text(json.dumps(figures))


def measure(engine: str, master: str | None, paths: list[Path], scratch: Path) -> dict:
    out = scratch / f"{engine}-{(master or 'local').replace('[', '').replace(']', '')}.json"
    command = [sys.executable, __file__, "--child", engine, "--out", str(out)]
    command += ["--master", master] if master else []
    command += ["--", *map(str, paths)]
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    began = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"{engine} {master or ''} failed:\n{done.stderr[-2000:]}")
    figures = json.loads(out.read_text())
    figures["wall_s"] = wall
    figures["candidates_file"] = str(out.with_suffix(".parquet"))
    return figures


def compare(local_file: str, spark_file: str) -> str:
    """Same keys and detectors, and the largest score difference."""
    import polars as pl

    key = ["device", "process", "remote_ip", "remote_port"]
    a = pl.read_parquet(local_file).select(*key, "score", "detectors").sort(key, nulls_last=True)
    b = pl.read_parquet(spark_file).select(*key, "score", "detectors").sort(key, nulls_last=True)
    if a.height != b.height or not a.select(key).equals(b.select(key)):
        return f"DIFFERENT keys ({a.height} vs {b.height})"
    if a.get_column("detectors").to_list() != b.get_column("detectors").to_list():
        return "DIFFERENT detectors"
    diff = (a.get_column("score") - b.get_column("score")).abs().max()
    return f"same {a.height} keys and detectors, max |score diff| {diff:.1e}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", default="1M")
    parser.add_argument("--masters", default="local[1],local[2]")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "beacon-bench")
    parser.add_argument("--child", choices=["local", "spark"])
    parser.add_argument("--master")
    parser.add_argument("--out", type=Path)
    parser.add_argument("paths", nargs="*")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.master, args.paths, args.out)
        return
    events = parse_size(args.events)
    folder = generate(args.data, events, "parquet")
    paths = [folder / f"{DEFENDER}.parquet", folder / DEVICE_INFO]
    scratch = Path(tempfile.mkdtemp(prefix="bench-spark-"))
    print(f"{label(events)} Defender events (Parquet) + DeviceInfo; load average {os.getloadavg()}")
    rows = [("local (in memory)", measure("local", None, paths, scratch))]
    for master in [m.strip() for m in args.masters.split(",") if m.strip()]:
        rows.append((f"spark {master}", measure("spark", master, paths, scratch)))
    print(f"{'engine':<20} {'wall s':>8} {'run s':>8} {'py driver MB':>13} {'JVM MB':>8}  cands")
    for name, f in rows:
        jvm = f"{f['jvm_peak_mb']:8.0f}" if f["jvm_peak_mb"] else f"{'-':>8}"
        print(
            f"{name:<20} {f['wall_s']:8.1f} {f['run_s']:8.1f} {f['py_peak_mb']:13.0f} {jvm}"
            f"  {f['candidates']}"
        )
    for name, f in rows[1:]:
        stages = ", ".join(f"{k} {v:.1f}s" for k, v in f.get("stages", {}).items())
        print(f"{name}: {f.get('groups')} device groups; {stages}")
        print(f"{name}: {f.get('slice'):,} events came back to the driver for the ranking")
        print(f"{name} vs local: {compare(rows[0][1]['candidates_file'], f['candidates_file'])}")


if __name__ == "__main__":
    main()
