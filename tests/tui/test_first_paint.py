"""The first screen paints before polars, numpy, plotext's data or the engine load
(issue 18: first paint under half a second): they are imported by the workers after it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import asyncio, json, sys
from tui.app import BeaconTriageApp
HEAVY = (
    "polars", "numpy", "detectors.load", "detectors.hunts.registry",
    "detectors.curate.decorate", "plotext", "tomlkit",
)

class Probe(BeaconTriageApp):
    def _start_loading(self):
        # called once the first frame is drawn: what was imported until then
        self.seen = {name: name in sys.modules for name in HEAVY}
        self.painted_status = self.main_screen.header.status
        super()._start_loading()

async def main():
    app = Probe(sys.argv[1:])
    async with app.run_test(size=(80, 24)) as pilot:
        while not hasattr(app, "seen"):
            await pilot.pause(0.01)
        print(json.dumps({"seen": app.seen, "status": app.painted_status}))
        app.exit()

asyncio.run(main())
"""


@pytest.mark.parametrize("named", [True, False], ids=["a file", "the bundled sample"])
def test_first_frame_is_drawn_before_polars_numpy_and_the_engine_are_imported(tmp_path, named):
    sample = ROOT / "sample_data" / "defender_network_events.csv"
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *([str(sample)] if named else [])],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"XDG_CONFIG_HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path), "PATH": ""},
        timeout=120,
        check=True,
    )
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found == {
        "seen": {
            "polars": False,
            "numpy": False,
            "detectors.load": False,
            "detectors.hunts.registry": False,
            "detectors.curate.decorate": False,
            "plotext": False,
            "tomlkit": False,
        },
        "status": "loading",
    }


def test_the_open_command_reads_a_plain_config_without_importing_the_hunts(tmp_path):
    """``beacon-triage FILE`` checks the config before the screen opens: without
    [detectors]/[scoring]/[mapping] tables that needs none of the engine."""
    config = tmp_path / "config.toml"
    config.write_text('theme = "beacon-dark"\n[engine]\nmax_events_in_memory = 1000\n')
    probe = (
        "import sys, json\n"
        "from detectors.run.setup import load_config\n"
        f"load_config({str(config)!r})\n"
        "print(json.dumps([m for m in ('polars', 'detectors.hunts.registry') if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert json.loads(done.stdout) == []
