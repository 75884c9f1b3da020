"""What a run imports at start-up: only what its input needs.

pyarrow costs ~0.04 s of CPU to import (more where the project's bytecode is not
compiled), and only Parquet needs it (the page check, the schema read). Each check runs
in a fresh interpreter, since this test process has long imported everything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data"


def _modules_after(script: str) -> dict:
    """Run ``script`` in a fresh interpreter; it ends by printing a JSON object."""
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


LOAD = """
import json, sys
from detectors.load import load_paths
loaded = load_paths({paths!r}, cache=False)
print(json.dumps({{"events": loaded.events.height,
                   "pyarrow": sorted(m for m in sys.modules if m.split(".")[0] == "pyarrow")}}))
"""


@pytest.mark.parametrize(
    "paths",
    [
        [SAMPLE / "defender_network_events.csv", SAMPLE / "device_info.csv"],  # Defender CSV
        [SAMPLE / "zeek"],  # Zeek TSV (conn, dns, http, ssl)
    ],
    ids=["defender-csv", "zeek"],
)
def test_loading_text_inputs_never_imports_pyarrow(paths):
    found = _modules_after(LOAD.format(paths=[str(p) for p in paths]))
    assert found["events"] > 0
    assert found["pyarrow"] == []


def test_loading_parquet_still_checks_pages_with_pyarrow(tmp_path):
    # The other side: Parquet does need pyarrow (its page check), and loads as before.
    source = SAMPLE / "defender_network_events.csv"
    parquet = tmp_path / "defender_network_events.parquet"
    pl.read_csv(source, infer_schema=False).write_parquet(parquet)
    found = _modules_after(LOAD.format(paths=[str(parquet)]))
    assert "pyarrow.parquet" in found["pyarrow"]
    csv_events = _modules_after(LOAD.format(paths=[str(source)]))["events"]
    assert found["events"] == csv_events


def test_read_errors_name_pyarrows_error_once_it_is_loaded():
    # Before pyarrow loads nothing raises its errors, so they are not named (naming them
    # would import it); after, a damaged Parquet page's ArrowException is caught as before.
    script = (
        "import json, sys\n"
        "from detectors.load.common import READ_ERRORS, read_errors\n"
        "before = read_errors() == READ_ERRORS\n"
        "import pyarrow\n"
        "after = read_errors() == (*READ_ERRORS, pyarrow.ArrowException)\n"
        "print(json.dumps({'before': before, 'after': after}))\n"
    )
    assert _modules_after(script) == {"before": True, "after": True}
