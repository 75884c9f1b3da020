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

import numpy as np
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


@pytest.mark.parametrize(
    ("values", "dtype"),
    [
        ([0.5, 1.25, 3.0, -2.0, 7.5], pl.Float64()),
        ([3, 1, 4, 1, 5], pl.Int32()),
        ([10**15, 2 * 10**15, 0, -(10**15), 5], pl.Datetime("us", "UTC")),
        (["Allowed", "Blocked", "Allowed", "Inbound", "x"], pl.String()),
    ],
    ids=["f64", "i32", "datetime-utc", "string"],
)
@pytest.mark.parametrize("polars_reads_capsules", [True, False])
def test_list_columns_equal_pyarrows_own_constructor(
    values, dtype, polars_reads_capsules, monkeypatch
):
    # lists_from_offsets hands polars the Arrow array through the C data interface (no
    # pyarrow.compute import); the column must equal what pl.Series(name, arrow, dtype)
    # built before: same lists, empty lists kept, same dtype, one chunk. A polars that
    # cannot read the interface (before mid-2024) refuses the handle: the array is then
    # handed over as it is.
    import pyarrow as pa

    from detectors.pairs import index
    from detectors.pairs.index import arrow_of, lists_from_offsets

    if not polars_reads_capsules:
        monkeypatch.setattr(index, "_ArrowHandle", lambda array: object())

    inner = pl.Series(values).cast(dtype)
    offsets = np.array([0, 2, 2, 5, 5], dtype=np.int64)  # lists of 2, 0, 3, 0 values
    built = lists_from_offsets("x", offsets, inner)
    lists = pa.LargeListArray.from_arrays(arrow_of(offsets), inner.to_arrow())
    reference = pl.Series("x", lists, dtype=pl.List(dtype))
    assert built.dtype == reference.dtype == pl.List(dtype)
    assert built.n_chunks() == 1
    assert built.to_list() == reference.to_list()
    assert built.list.len().to_list() == [2, 0, 3, 0]
    assert built.to_list()[2] == inner.slice(2, 3).to_list()


def test_building_pair_lists_never_imports_pyarrow_compute():
    # Handed a pyarrow array, polars' Series constructor imports pyarrow.compute
    # (~0.05 s); the hunts' list columns (deltas, hourly bins, actions) avoid it.
    script = (
        "import json, sys\n"
        "import numpy as np\n"
        "from tests.unit.test_pairtable import random_events\n"
        "from detectors.pairs.table import ConnectionTable\n"
        "from detectors.pairs.index import deltas_from_sorted_lists, P_ACTIONS, P_TS\n"
        "index = ConnectionTable.from_events(random_events(300)).index(None)\n"
        "deltas = deltas_from_sorted_lists(index.get_column(P_TS))\n"
        "print(json.dumps({'pairs': index.height, 'deltas': deltas.len(),\n"
        "    'actions': index.get_column(P_ACTIONS).list.len().sum(),\n"
        "    'compute': 'pyarrow.compute' in sys.modules}))\n"
    )
    found = _modules_after(script)
    assert found["pairs"] == found["deltas"] > 0
    assert found["actions"] >= found["pairs"]
    assert found["compute"] is False
