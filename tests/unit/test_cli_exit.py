"""A successful ``detect`` ends its process without the interpreter's teardown.

The teardown of polars, numpy and pyarrow costs ~0.1 s of CPU after the answer is out;
``tui.cli._end_now`` skips it but keeps what a normal exit does that matters: the whole
output, the ``atexit`` hooks, the exit code. Each case runs in a fresh process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data"

CHILD = """
import atexit, sys
from pathlib import Path

marks = Path(sys.argv[1])
atexit.register(lambda: (marks / "atexit").touch())
entry = sys.argv[2]
sys.argv = ["beacon-triage", *sys.argv[3:]]
from tui.cli import main
if entry == "traced":  # as a profiler or coverage tool would be
    sys.settrace(lambda frame, event, arg: None)
if entry == "pool":  # a thread pool some code left open: its idle worker waits for work
    from concurrent.futures import ThreadPoolExecutor
    pool = ThreadPoolExecutor(1)  # kept: a pool collected as garbage stops its worker
    pool.submit(int).result()
try:  # the usual exit raises SystemExit, and the interpreter's teardown follows
    main() if entry in ("process", "traced", "pool") else main(sys.argv[1:])
except SystemExit:
    (marks / "teardown").touch()
    raise
"""


def _run(
    tmp_path: Path, entry: str, *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess, set]:
    marks = tmp_path / entry
    marks.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(marks), entry, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    return done, {p.name for p in marks.iterdir()}


DETECT = (
    "detect",
    str(SAMPLE / "defender_network_events.csv"),
    str(SAMPLE / "device_info.csv"),
    "--format",
    "json",
    "--quiet",
    "--no-cache",
)


def test_detect_as_the_process_skips_only_the_teardown(tmp_path):
    fast, fast_marks = _run(tmp_path, "process", *DETECT)
    usual, usual_marks = _run(tmp_path, "argv", *DETECT)
    assert fast.returncode == usual.returncode == 0, fast.stderr + usual.stderr
    assert fast.stdout == usual.stdout  # every byte of the answer is out
    assert len(json.loads(fast.stdout)) > 0
    assert fast.stderr == usual.stderr
    assert usual_marks == {"atexit", "teardown"}  # a normal exit: both ran
    assert fast_marks == {"atexit"}  # the hooks still run; the teardown did not


@pytest.mark.parametrize("args", [("detect", str(ROOT / "no-such-file.csv")), ("detectors",)])
def test_failures_and_other_commands_exit_as_usual(tmp_path, args):
    done, marks = _run(tmp_path, "process", *args)
    assert marks == {"atexit", "teardown"}
    assert done.returncode == (1 if args[0] == "detect" else 0)


def test_a_profiled_or_traced_detect_exits_as_usual(tmp_path):
    # pyinstrument and cProfile write their report after the program returns: a tool
    # watching the process keeps the usual exit (and its report).
    done, marks = _run(tmp_path, "traced", *DETECT)
    assert done.returncode == 0, done.stderr
    assert marks == {"atexit", "teardown"}


def test_a_thread_pool_left_open_does_not_hold_the_exit(tmp_path):
    # joining its idle worker alone waited for ever: the pool must be told to stop first
    done, marks = _run(tmp_path, "pool", *DETECT)
    assert done.returncode == 0, done.stderr
    assert marks == {"atexit"}


def test_the_parsed_copy_is_written_before_the_process_ends(tmp_path):
    # the CLI writes the load cache after the answer is out, then ends at once
    config = tmp_path / "config.toml"
    config.write_text("[cache]\nmin_file_mb = 0\nmin_load_s = 0\n", encoding="utf-8")
    cache_home = tmp_path / "xdg"
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home)}
    args = [a for a in DETECT if a != "--no-cache"]
    done, marks = _run(tmp_path, "process", *args, "--config", str(config), env=env)
    assert done.returncode == 0, done.stderr
    assert marks == {"atexit"}  # the fast exit was taken
    entries = [p for p in (cache_home / "beacon-triage" / "loads").iterdir() if p.is_dir()]
    parts = sorted(sorted(f.name for f in entry.iterdir()) for entry in entries)
    assert parts == [["device_info.parquet", "meta.json"], ["events.parquet", "meta.json"]]
