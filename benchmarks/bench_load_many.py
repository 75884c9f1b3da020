"""Loading many files: 10,000 small Zeek logs, and N hourly logs against one file.

    python benchmarks/bench_load_many.py                      # 10,000 files; 1,000 hourly
    python benchmarks/bench_load_many.py --small 2000 --hourly 200 --rows 500

Not a test: it prints a table. Files are Zeek conn TSV as a sensor writes them (full
header, ``#close`` footer), half of the small ones gzip; every figure is the best of
``--repeat`` runs of ``load_paths`` in this process (the load cache off), so it measures
the loader, not interpreter start-up.

- small: ``--small`` files of ``--small-rows`` rows each in dated folders, plus one
  weird and one stats log per folder (skipped, counted in one line). Target: < 5 s for
  10,000 files.
- hourly: ``--hourly`` files of ``--rows`` rows, then the same rows in one file.
  Target: the hourly files cost at most 1.3x the one file.
"""

from __future__ import annotations

import argparse
import gzip
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detectors.load import load_paths

HEADER = (
    "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n"
    "#path\tconn\n#open\t2024-04-19-00-00-00\n"
    "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration"
    "\torig_bytes\tresp_bytes\tconn_state\n"
    "#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\tstring\n"
)
FOOTER = "#close\t2024-04-19-01-00-00\n"


def rows(start: int, count: int) -> str:
    return "".join(
        f"{1713484800 + (start + i) * 7}.{i % 997:06d}\tC{start + i:x}\t10.0.{i % 50}.{i % 200 + 1}"
        f"\t{40000 + i % 20000}\t203.0.113.{i % 97 + 1}\t443\ttcp\tssl\t0.5\t{i % 900}"
        f"\t{i % 4000}\tSF\n"
        for i in range(count)
    )


def write_small(root: Path, files: int, per_file: int) -> Path:
    top = root / "small" / "zeek"
    for n in range(files):
        day = top / f"d{n // 24:04d}"
        day.mkdir(parents=True, exist_ok=True)
        stamp = f"{n % 24:02d}:00:00-{n % 24 + 1:02d}:00:00"
        text = (HEADER + rows(n * per_file, per_file) + FOOTER).encode()
        name = day / f"conn.{stamp}.log"
        if n % 2:
            name.with_suffix(".log.gz").write_bytes(gzip.compress(text, mtime=0))
        else:
            name.write_bytes(text)
        if n % 24 == 0:
            (day / "weird.log").write_text("#separator \\x09\n#path\tweird\n#fields\tts\tname\n")
            (day / "stats.log").write_text("#separator \\x09\n#path\tstats\n#fields\tts\tpeer\n")
    return top


def write_hourly(root: Path, files: int, per_file: int) -> tuple[Path, Path]:
    hourly = root / "hourly"
    hourly.mkdir()
    for n in range(files):
        text = HEADER + rows(n * per_file, per_file) + FOOTER
        (hourly / f"conn.{n:05d}.log").write_text(text)
    one = root / "one" / "conn.log"
    one.parent.mkdir()
    one.write_text(HEADER + rows(0, files * per_file) + FOOTER)
    return hourly, one


def best(path: Path, repeat: int) -> tuple[float, int, list[str]]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        loaded = load_paths([path], cache=False)
        times.append(time.perf_counter() - start)
    return min(times), loaded.events.height, loaded.warnings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", type=int, default=10_000, help="small files")
    parser.add_argument("--small-rows", type=int, default=10, help="rows per small file")
    parser.add_argument("--hourly", type=int, default=1_000, help="hourly files")
    parser.add_argument("--rows", type=int, default=300, help="rows per hourly file")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-load-many-") as tmp:
        root = Path(tmp)
        small = write_small(root, args.small, args.small_rows)
        hourly, one = write_hourly(root, args.hourly, args.rows)
        small_s, small_rows, small_warn = best(small, args.repeat)
        hourly_s, hourly_rows, _ = best(hourly, args.repeat)
        one_s, one_rows, _ = best(one, args.repeat)
    print(f"{'input':<44} {'rows':>10} {'seconds':>8}  target")
    print(
        f"{f'{args.small:,} small files ({args.small_rows} rows each)':<44} "
        f"{small_rows:>10,} {small_s:>8.2f}  < 5 s: {'met' if small_s < 5 else 'MISSED'}"
    )
    print(f"{f'{args.hourly:,} hourly files ({args.rows} rows each)':<44} "
          f"{hourly_rows:>10,} {hourly_s:>8.2f}")  # fmt: skip
    ratio = hourly_s / one_s
    print(
        f"{'the same rows in one file':<44} {one_rows:>10,} {one_s:>8.2f}  "
        f"hourly/one = {ratio:.2f}x (<= 1.3x: {'met' if ratio <= 1.3 else 'MISSED'})"
    )
    print(f"skip line: {small_warn[0] if small_warn else '(none)'}")


if __name__ == "__main__":
    main()
