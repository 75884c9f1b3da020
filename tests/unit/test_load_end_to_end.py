"""``beacon-triage detect`` on what an analyst really holds: a dated Zeek archive, a Sysmon
EVTX, a Windows Security 5156 export; and the sample generator's new outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from detectors.base import schema as S
from detectors.load import load_paths
from sample_data import generate as gen

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "sample_data"
SYSMON_EVTX = ROOT / ".." / "shared" / "data" / "evtx" / "sysmon.evtx"
WINDOWS_DATA = ROOT / "tests" / "data" / "load" / "windows"


def detect(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", "detect", *args, "--format", "json", "--no-cache"],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_detect_on_the_dated_zeek_archive_folder_exits_0_and_ranks_the_beacon():
    done = detect(str(SHIPPED / "zeek_archive"))
    assert done.returncode == 0, done.stderr
    assert (
        "beacon-triage: warning: skipped 26 files: 25 Zeek capture_loss/dhcp/stats/weird "
        "logs, 1 README" in done.stderr.splitlines()
    )
    pairs = {(c["remote_ip"], c["remote_port"]) for c in json.loads(done.stdout)}
    assert ("91.215.85.14", 8443) in pairs  # b_powershell_300s, active from the first hour


def test_detect_on_the_real_sysmon_evtx_exits_0():
    done = detect(str(SYSMON_EVTX))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []  # two connections are not a beacon


def test_detect_on_a_5156_security_export_exits_0(tmp_path):
    path = tmp_path / "security.jsonl"
    lines = (WINDOWS_DATA / "nxlog.jsonl").read_text().splitlines()
    path.write_text("\n".join(line for line in lines if '"EventID": 515' in line) + "\n")
    done = detect(str(path))
    assert done.returncode == 0, done.stderr


def test_shipped_windows_export_loads_the_hosts_outbound_connections():
    loaded = load_paths([SHIPPED / "windows"], cache=False)
    events = loaded.events
    defender = pl.read_csv(SHIPPED / "defender_network_events.csv", infer_schema=False)
    host = defender.filter(
        (pl.col("DeviceName") == "ws-003.contoso.com")
        & pl.col("ActionType").is_in(["ConnectionSuccess", "ConnectionFailed", "ConnectionRequest"])
    )
    # every outbound Defender row of the host, once from Sysmon and once from 5156
    by_action = dict(events.group_by(S.ACTION).len().iter_rows())
    assert by_action == {"NetworkConnect": host.height, "FilteringPlatformConnection": host.height}
    assert set(events.get_column(S.DEVICE_NAME)) == {"ws-003.contoso.com"}
    sysmon = events.filter(pl.col(S.ACTION) == "NetworkConnect")
    assert sorted(sysmon.get_column(S.PROCESS).unique()) == sorted(
        host.get_column("InitiatingProcessFileName").str.to_lowercase().unique()
    )


def test_shipped_archive_holds_the_first_hours_of_the_zeek_sample():
    archive = load_paths([SHIPPED / "zeek_archive"], cache=False).events
    whole = load_paths([SHIPPED / "zeek" / "conn.log.gz"], cache=False).events
    start = whole.get_column(S.TIMESTAMP).min().replace(minute=0, second=0, microsecond=0)  # type: ignore[union-attr]
    first = whole.filter(pl.col(S.TIMESTAMP) < start + pl.duration(hours=gen.ARCHIVE_HOURS))
    assert archive.height == first.height
    assert sorted(archive.get_column(S.UID)) == sorted(first.get_column(S.UID))


@pytest.mark.parametrize("flag", ["windows_host", "zeek_archive"])
def test_generator_extras_are_byte_identical_and_leave_the_other_files_alone(tmp_path, flag):
    plain = tmp_path / "plain"
    gen.generate(plain, days=1, devices=10, seed=3)
    extra_a, extra_b = tmp_path / "a", tmp_path / "b"
    gen.generate(extra_a, days=1, devices=10, seed=3, **{flag: True})
    gen.generate(extra_b, days=1, devices=10, seed=3, **{flag: True})

    def files(folder: Path) -> dict[str, bytes]:
        return {
            str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()
        }

    a, b, base = files(extra_a), files(extra_b), files(plain)
    assert a == b
    assert {k: v for k, v in a.items() if k in base} == base
    new = sorted(set(a) - set(base))
    folder = gen.WINDOWS_DIR if flag == "windows_host" else gen.ARCHIVE_DIR
    assert new and all(name.startswith(folder + "/") for name in new)
