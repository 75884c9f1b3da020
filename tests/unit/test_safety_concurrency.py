"""Issue 17, item 1: concurrent editors never lose an allow-list entry.

Two real ``beacon-triage`` processes each run 50 ``allowlist add`` commands against the
same file at the same time (each command is a whole load-add-save, as a user's shell
would run it; the loop saves 100 interpreter start-ups on a loaded 2-core box). Before
the lock, every process printed "added" and exited 0 while 4-11 of the 100 entries
were lost. A second test interleaves CLI adds with the TUI's save path
(``detectors.curate.session.Curation.save``, the function Ctrl+S calls).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

from detectors.curate.allowlist import AllowList

_WORKER = textwrap.dedent(
    """
    import os, sys, time
    from importlib.metadata import entry_points

    main = entry_points(group="console_scripts")["beacon-triage"].load()
    file, tag, count, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    while not os.path.exists(go):  # start together: the point is true concurrency
        time.sleep(0.005)
    failures = 0
    for n in range(count):
        args = ["allowlist", "add", "--file", file, "--process", f"{tag}-{n}.exe",
                "--reason", f"{tag} {n}"]
        try:
            main(args)
        except SystemExit as exc:
            failures += exc.code not in (0, None)
    sys.exit(1 if failures else 0)
    """
)


def _start(file: Path, tag: str, count: int, go: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", _WORKER, str(file), tag, str(count), str(go)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_two_processes_adding_fifty_entries_each_keep_all_hundred(tmp_path):
    file = tmp_path / "allow.toml"
    file.write_text("# shared allow-list\n", encoding="utf-8")
    go = tmp_path / "go"
    workers = [_start(file, tag, 50, go) for tag in ("a", "b")]
    time.sleep(1.0)  # both interpreters are up and waiting
    go.touch()
    for worker in workers:
        _, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err.decode(errors="replace")
    processes = sorted(e.process for e in AllowList.load(file).entries if e.process)
    expected = sorted(f"{tag}-{n}.exe" for tag in ("a", "b") for n in range(50))
    assert processes == expected
    assert file.read_text(encoding="utf-8").startswith("# shared allow-list\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["allow.toml", "allow.toml.bak", "go"]


def test_cli_adds_interleaved_with_tui_saves_lose_nothing(tmp_path):
    from detectors.curate.session import ALLOWLIST, Curation

    file = tmp_path / "allow.toml"
    go = tmp_path / "go"
    worker = _start(file, "cli", 30, go)
    time.sleep(1.0)
    curation = Curation.open(file, tmp_path / "triage.toml")
    go.touch()
    for n in range(30):  # the TUI: one edit, Ctrl+S, the next edit...
        allow = curation.store(ALLOWLIST)
        assert allow is not None
        allow.add({"process": f"tui-{n}.exe", "reason": f"tui {n}"}, added_by="analyst")
        outcome = curation.save(ALLOWLIST)
        assert outcome.status == "saved", outcome.message
    _, err = worker.communicate(timeout=120)
    assert worker.returncode == 0, err.decode(errors="replace")
    processes = sorted(e.process for e in AllowList.load(file).entries if e.process)
    expected = sorted(f"{tag}-{n}.exe" for tag in ("cli", "tui") for n in range(30))
    assert processes == expected
