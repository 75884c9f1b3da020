"""``beacon-triage detect``: the output contract, exit codes and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

HEADER = (
    "Timestamp,DeviceId,DeviceName,ActionType,RemoteIP,RemotePort,RemoteUrl,LocalIP,LocalPort,"
    "Protocol,RemoteIPType,InitiatingProcessFileName,InitiatingProcessAccountDomain,"
    "InitiatingProcessAccountName,InitiatingProcessVersionInfoCompanyName,AdditionalFields"
)
REQUIRED = {"detector", "device", "process", "remote_ip", "remote_port", "score", "connections"}


def kusto(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def beacon_csv(path: Path, count: int = 40, sleep_s: float = 60.0) -> Path:
    """A beacon every 60 s (jitter ±1 s, alternating) from one device to one public IP."""
    start = datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc)
    lines = [HEADER]
    for i in range(count):
        ts = start + timedelta(seconds=i * sleep_s + (1 if i % 2 else 0))
        lines.append(
            f"{kusto(ts)},{'a' * 40},ws-7,ConnectionSuccess,45.77.1.2,443,c2.example.org,"
            f"10.0.0.7,{50000 + i},Tcp,Public,rundll32.exe,corp,jdoe,Microsoft Corporation,{{}}"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_detect_json_is_an_array_of_candidates_with_contract_fields(tmp_path):
    done = run("detect", str(beacon_csv(tmp_path / "e.csv")), "--format", "json")
    assert done.returncode == 0, done.stderr
    records = json.loads(done.stdout)  # progress went to stderr, not into the JSON
    assert records, "the planted beacon must be found"
    top = records[0]
    assert set(top) >= REQUIRED
    assert (top["device"], top["process"], top["remote_ip"], top["remote_port"]) == (
        "ws-7",
        "rundll32.exe",
        "45.77.1.2",
        443,
    )
    assert 0.0 <= top["score"] <= 1.0
    assert top["connections"] == 40


def test_detect_header_only_file_is_an_error_not_a_clean_network_exit_1(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text(HEADER + "\n")
    done = run("detect", str(path), "--format", "json")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines()[-1] == (
        f"beacon-triage: error: {path}: no connection events found; "
        "these paths hold 1 file without rows"
    )


def test_detect_missing_file_is_one_line_error_exit_1(tmp_path):
    missing = tmp_path / "nope.csv"
    done = run("detect", str(missing), "--format", "json")
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and str(missing) in lines[0] and "Traceback" not in done.stderr


def test_detect_unknown_detector_is_a_usage_error_exit_2(tmp_path):
    done = run("detect", str(beacon_csv(tmp_path / "e.csv")), "--detector", "nosuch")
    assert done.returncode == 2
    assert "unknown detector 'nosuch'" in done.stderr


def test_detect_bad_format_choice_is_a_usage_error_exit_2(tmp_path):
    done = run("detect", str(beacon_csv(tmp_path / "e.csv")), "--format", "xml")
    assert done.returncode == 2


def test_detect_output_file_written_and_jsonl(tmp_path):
    out = tmp_path / "out.jsonl"
    done = run(
        "detect", str(beacon_csv(tmp_path / "e.csv")), "--format", "jsonl", "--output", str(out)
    )
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows and set(rows[0]) >= REQUIRED
    assert not list(tmp_path.glob(".out.jsonl.*"))  # no temp file left behind


@pytest.mark.parametrize("name", ["intervals"])
def test_detect_single_detector_prints_its_own_hits(tmp_path, name):
    done = run(
        "detect", str(beacon_csv(tmp_path / "e.csv")), "--detector", name, "--format", "json"
    )
    assert done.returncode == 0, done.stderr
    records = json.loads(done.stdout)
    assert [r["detector"] for r in records] == [name]


def test_detectors_lists_parameters_with_defaults():
    done = run("detectors")
    assert done.returncode == 0
    assert "intervals:" in done.stdout and "jitter_threshold = 50" in done.stdout


def test_detect_internal_subnet_makes_a_destination_ours(tmp_path):
    source = beacon_csv(tmp_path / "events.csv")
    hunted = json.loads(run("detect", str(source), "--format", "json", "--quiet").stdout)
    assert {c["remote_ip"] for c in hunted} == {"45.77.1.2"}
    assert {c["direction"] for c in hunted} == {"outbound"}
    done = run("detect", str(source), "--format", "json", "--quiet", "--internal", "45.77.0.0/16")
    assert json.loads(done.stdout) == []  # ours to ours: internal traffic is not hunted


def test_detect_bad_internal_subnet_is_one_line_error(tmp_path):
    source = beacon_csv(tmp_path / "events.csv")
    done = run("detect", str(source), "--internal", "10.0.0.0/33")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "beacon-triage: error: field --internal: '10.0.0.0/33' is not an address or CIDR block"
    ]
