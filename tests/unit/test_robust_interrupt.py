"""Ctrl-C and crashes: exit 130 with no partial output, one broken detector loses nothing else.

``detect --output`` is written through a temp file and a rename, so an interrupt at
any moment leaves either no file or the previous one, never half of the new one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from detectors.base import atomic
from detectors.base import schema as S
from detectors.base.config import Config
from detectors.base.progress import Progress
from detectors.hunts import registry
from detectors.load import load_paths
from detectors.pairs.context import PairContext
from detectors.pairs.index import P_COUNT, P_FIRST, P_LAST
from detectors.run.loop import run_all
from detectors.run.outcome import run_detector
from tui.cli import main

DATA = Path(__file__).resolve().parents[1] / "data" / "load"
EVENTS = DATA / "mde_network.csv"
HEADER = "Timestamp,DeviceId,DeviceName,ActionType,RemoteIP,RemotePort,InitiatingProcessFileName"


@pytest.fixture
def two_pairs(tmp_path) -> Path:
    """ws-1/a.exe talks to 45.77.1.2:443 and 45.77.1.3:80, three times each."""
    lines = [HEADER]
    for minute in range(3):
        lines.append(f"2026-11-20T00:0{minute}:00Z,d1,ws-1,ConnectionSuccess,45.77.1.2,443,a.exe")
        lines.append(f"2026-11-20T00:0{minute}:30Z,d1,ws-1,ConnectionSuccess,45.77.1.3,80,a.exe")
    path = tmp_path / "inputs" / "two_pairs.csv"
    path.parent.mkdir()
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def no_user_config(tmp_path, monkeypatch):
    """Never read the developer's own config (its weights would change the output)."""
    monkeypatch.setattr("detectors.base.config.default_config_path", lambda: tmp_path / "none.toml")


@dataclass(frozen=True)
class NoParams:
    pass


def every_pair(data: PairContext, params: NoParams, progress: Progress) -> pl.DataFrame:
    """A detector that names every pair with a score of 0.5: the 'other' results to keep."""
    pairs = data.pairs(None)
    return pairs.select(
        pl.col(S.DEVICE_NAME).alias(S.C_DEVICE),
        pl.col(S.PROCESS).alias(S.C_PROCESS),
        pl.col(S.REMOTE_IP).alias(S.C_REMOTE_IP),
        pl.col(S.REMOTE_PORT).alias(S.C_REMOTE_PORT),
        pl.lit(0.5).alias(S.C_SCORE),
        pl.col(P_COUNT).cast(pl.Int64).alias(S.C_CONNECTIONS),
        pl.col(P_FIRST).alias(S.C_FIRST_SEEN),
        pl.col(P_LAST).alias(S.C_LAST_SEEN),
    )


def crashes(data: PairContext, params: NoParams, progress: Progress) -> pl.DataFrame:
    raise ZeroDivisionError("a bug in this detector")


def interrupted(data: PairContext, params: NoParams, progress: Progress) -> pl.DataFrame:
    raise KeyboardInterrupt


def panics(data: PairContext, params: NoParams, progress: Progress) -> pl.DataFrame:
    raise pl.exceptions.PanicException("polars panicked inside this detector")


def register(monkeypatch, name, run) -> None:
    registry.all_detectors()  # built-ins first, so they are not re-registered later
    spec = registry.DetectorSpec(name, "test detector", NoParams, run)
    monkeypatch.setitem(registry._REGISTRY, name, spec)


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as stopped:
        main(list(args))
    captured = capsys.readouterr()
    return int(stopped.value.code or 0), captured.out, captured.err


# --- Ctrl-C --------------------------------------------------------------------------------


def test_ctrl_c_in_a_detector_exits_130_and_writes_no_output(tmp_path, monkeypatch, capsys):
    register(monkeypatch, "interrupted", interrupted)
    out = tmp_path / "out.json"
    code, stdout, stderr = run_main(
        capsys, "detect", str(EVENTS), "--detector", "interrupted", "--output", str(out), "--quiet"
    )
    assert code == 130
    assert stderr.splitlines()[-1] == "beacon-triage: interrupted"
    assert stdout == ""
    assert list(tmp_path.iterdir()) == []  # no output, no temp file


def test_ctrl_c_keeps_the_previous_output_file_whole(tmp_path, monkeypatch, capsys):
    register(monkeypatch, "interrupted", interrupted)
    out = tmp_path / "out.json"
    out.write_text("[]\n", encoding="utf-8")
    code, _, _ = run_main(
        capsys, "detect", str(EVENTS), "--detector", "interrupted", "--output", str(out), "--quiet"
    )
    assert code == 130
    assert out.read_text(encoding="utf-8") == "[]\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_ctrl_c_while_the_output_is_being_written_leaves_no_trace(tmp_path, monkeypatch, capsys):
    # the interrupt lands between writing the temp file and renaming it
    def interrupt(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "fsync", interrupt)
    out = tmp_path / "out.json"
    code, _, _ = run_main(capsys, "detect", str(EVENTS), "--output", str(out), "--quiet")
    assert code == 130
    assert list(tmp_path.iterdir()) == []


SIGINT_CHILD = """
import sys, time
import polars as pl
from dataclasses import dataclass
from detectors.hunts import registry
from tui.cli import main

@dataclass(frozen=True)
class P:
    pass

def grind(data, params, progress):
    sys.stderr.write("grinding\\n"); sys.stderr.flush()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        progress.report("grind", 0.5, "still grinding")
        time.sleep(0.01)
    return pl.DataFrame()

registry.all_detectors()
registry._REGISTRY["grind"] = registry.DetectorSpec("grind", "slow", P, grind)
main(sys.argv[1:])
"""


def test_sigint_to_a_running_detect_exits_130_without_output(tmp_path):
    out = tmp_path / "out.json"
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "config-home"))
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            SIGINT_CHILD,
            "detect",
            str(EVENTS),
            "--detector",
            "grind",
            "--output",
            str(out),
            "--quiet",
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert child.stderr is not None
        assert child.stderr.readline() == "grinding\n"  # the run is in the detector now
        started = time.monotonic()
        child.send_signal(signal.SIGINT)
        _, rest = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130
    assert time.monotonic() - started < 10
    assert "Traceback" not in rest and rest.strip().endswith("beacon-triage: interrupted")
    assert list(tmp_path.iterdir()) == [tmp_path / "config-home"] or list(tmp_path.iterdir()) == []


# --- one detector's crash ---------------------------------------------------------------------


def test_a_crashing_detector_is_recorded_and_the_others_results_kept(monkeypatch, two_pairs):
    register(monkeypatch, "every_pair", every_pair)
    register(monkeypatch, "crashes", crashes)
    dataset = PairContext.of(load_paths([two_pairs]))
    result = run_all(dataset, Config(), ["crashes", "every_pair"])
    assert result.outcomes["crashes"].hits is None
    assert result.outcomes["crashes"].error == "ZeroDivisionError: a bug in this detector"
    assert result.notes() == ["detector crashes failed: ZeroDivisionError: a bug in this detector"]
    hits = result.per_detector()["every_pair"]
    assert sorted(zip(hits[S.C_REMOTE_IP], hits[S.C_REMOTE_PORT], strict=True)) == [
        ("45.77.1.2", 443),
        ("45.77.1.3", 80),
    ]
    assert result.candidates.height == 2
    assert result.candidates.get_column(S.C_DETECTORS).to_list() == [["every_pair"]] * 2


def test_detect_prints_the_survivors_and_one_line_about_the_crash(monkeypatch, capsys, two_pairs):
    register(monkeypatch, "every_pair", every_pair)
    register(monkeypatch, "crashes", crashes)
    code, out, err = run_main(
        capsys,
        "detect",
        str(two_pairs),
        "--detector",
        "crashes",
        "--detector",
        "every_pair",
        "--format",
        "json",
        "--quiet",
    )
    assert code == 0
    assert len(json.loads(out)) == 2
    assert (
        "beacon-triage: warning: detector crashes failed: ZeroDivisionError: a bug in this detector"
        in err.splitlines()
    )
    assert "Traceback" not in err


def test_a_polars_panic_in_a_detector_is_recorded_like_any_crash(monkeypatch):
    register(monkeypatch, "panics", panics)
    outcome = run_detector(PairContext.of(load_paths([EVENTS])), Config(), "panics")
    assert outcome.error is not None and outcome.error.startswith("PanicException")


def test_an_interrupt_is_never_swallowed_as_a_detector_error(monkeypatch):
    register(monkeypatch, "interrupted", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_detector(PairContext.of(load_paths([EVENTS])), Config(), "interrupted")
