"""Issue 17: what the analyst makes is never lost or turned against them.

One test (or a few) per numbered defect of the issue; each failed on the code before
the fix. Item 1 (concurrent adds) is in ``test_safety_concurrency.py``, item 3 (comments
after a removed entry) in ``test_tomlstore_foreign_bytes.py``. The CLI runs in-process
through its entry point (found by name, so it survives the module's move).
"""

from __future__ import annotations

import errno
import io
import os
import stat
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from importlib.metadata import entry_points
from pathlib import Path

import polars as pl
import pytest

from detectors.base import schema as S
from detectors.curate.allowlist import AllowList

HEADER = (
    "Timestamp,DeviceId,DeviceName,ActionType,RemoteIP,RemotePort,RemoteUrl,LocalIP,LocalPort,"
    "Protocol,RemoteIPType,InitiatingProcessFileName,InitiatingProcessAccountDomain,"
    "InitiatingProcessAccountName,InitiatingProcessVersionInfoCompanyName,AdditionalFields"
)
# What must never reach a terminal raw: ESC, BEL, NUL, C1 CSI, RLO, a bidi isolate, ZWSP.
UNSAFE = ("\x1b", "\x07", "\x00", "\x9b", "\u202e", "\u2066", "\u200b")


def beacon_csv(path: Path | bytes, process: str = "rundll32.exe", count: int = 40) -> None:
    """A beacon every 60 s (jitter +-1 s) from ws-7 to 45.77.1.2:443."""
    start = datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc)
    lines = [HEADER]
    for i in range(count):
        ts = (start + timedelta(seconds=i * 60 + (i % 2))).strftime("%Y-%m-%dT%H:%M:%S.%f")
        lines.append(
            f"{ts}0Z,{'a' * 40},ws-7,ConnectionSuccess,45.77.1.2,443,c2.example.org,"
            f"10.0.0.7,{50000 + i},Tcp,Public,{process},corp,jdoe,Microsoft Corporation,{{}}"
        )
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def cli(capsys: pytest.CaptureFixture[str], *args: str | bytes) -> tuple[int, str, str]:
    """Run ``beacon-triage ARGS`` in this process: (exit code, stdout, stderr)."""
    main = entry_points(group="console_scripts")["beacon-triage"].load()
    argv = [os.fsdecode(a) for a in args]
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main(argv)
    out, err = capsys.readouterr()
    code = done.value.code
    return (code if isinstance(code, int) else 0), out, err


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    errors = [line for line in lines if line.startswith("beacon-triage: error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


@pytest.fixture
def events(tmp_path: Path) -> Path:
    path = tmp_path / "events.csv"
    beacon_csv(path)
    return path


def detect(capsys, events: Path, *extra: str | bytes) -> tuple[int, str, str]:
    return cli(capsys, "detect", os.fsdecode(events), "--quiet", "--no-cache", *extra)


# --- item 2: --output never replaces a device, a FIFO or a socket ---------------------------


def test_output_refuses_a_fifo_and_leaves_it_a_fifo(capsys, events, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    code, _out, err = detect(capsys, events, "--output", str(fifo))
    assert code == 1
    assert one_line_error(err) == (
        f"beacon-triage: error: {fifo}: refusing to write: it is a FIFO (named pipe), "
        "not a regular file"
    )
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_a_character_device_is_refused_before_anything_is_written():
    from detectors.base.atomic import WriteError, check_target

    with pytest.raises(WriteError, match="it is a character device, not a regular file"):
        check_target("/dev/null")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_a_socket_is_refused(tmp_path):
    import socket

    from detectors.base.atomic import WriteError, safe_write_text

    path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        with pytest.raises(WriteError, match="it is a socket"):
            safe_write_text(path, "x")
    assert stat.S_ISSOCK(os.stat(path).st_mode)


# --- item 4: a read-only allow-list is not written ------------------------------------------


def test_allowlist_add_refuses_a_read_only_file_and_says_so(capsys, tmp_path):
    path = tmp_path / "allow.toml"
    path.write_text('[[allow]]\nprocess = "a.exe"\nreason = "a"\n', encoding="utf-8")
    path.chmod(0o444)
    before = path.read_bytes()
    code, _, err = cli(
        capsys, "allowlist", "add", "--file", str(path), "--process", "b.exe", "--reason", "b"
    )
    assert code == 1
    assert one_line_error(err) == (
        f"beacon-triage: error: {path}: cannot save: the file is read-only (mode 0444)"
    )
    assert "edits are kept" not in err  # untrue for a CLI that exits
    assert path.read_bytes() == before
    assert stat.S_IMODE(path.stat().st_mode) == 0o444


# --- item 5: nothing from a file steers the terminal through `allowlist` ---------------------


def test_allowlist_subcommands_escape_controls_bidi_and_zero_width(capsys, tmp_path):
    name = tmp_path / "allow\x1b[31m.toml"
    name.write_text(
        "[[allow]]\n"
        'device = "ws-\\u001b]0;TITLE\\u0007"\n'
        'reason = "red \\u001b[31m bell \\u0007 csi \\u009b nul \\u0000 rlo \\u202e '
        'iso \\u2066 zw \\u200b"\n',
        encoding="utf-8",
    )
    outputs = [
        cli(capsys, "allowlist", "list", "--file", str(name)),
        cli(capsys, "allowlist", "check", "--file", str(name)),
        cli(
            capsys,
            "allowlist",
            "add",
            "--file",
            str(name),
            "--domain",
            "x\u202e.com",
            "--reason",
            "r\x9b",
        ),
        cli(capsys, "allowlist", "remove", "--file", str(name), "1"),
    ]
    broken = tmp_path / "broken\u202e.toml"
    broken.write_text('[[allow]]\n"k\\u001b" = 1\n', encoding="utf-8")
    outputs.append(cli(capsys, "allowlist", "check", "--file", str(broken)))
    for _code, out, err in outputs:
        for ch in UNSAFE:
            assert ch not in out + err, (ch, out, err)
    listed = outputs[0][1]
    assert "\\x1b]0;TITLE\\x07" in listed and "\\u202e" in listed and "\\u200b" in listed
    assert "allow\\x1b[31m.toml" in outputs[1][1]
    assert outputs[4][0] == 1


# --- item 6: tracebacks -> one line; non-UTF-8 names work -----------------------------------


def test_a_file_name_that_is_not_utf8_loads_and_is_shown_escaped(capsys, tmp_path):
    bad = os.path.join(os.fsencode(tmp_path), b"bad\xff.csv")
    beacon_csv(bad)
    code, out, err = detect(capsys, bad, "--format", "csv")
    assert code == 0, err
    assert "45.77.1.2" in out
    missing = os.path.join(os.fsencode(tmp_path), b"gone\xff.csv")
    code, _, err = detect(capsys, missing)
    assert code == 1
    assert one_line_error(err).endswith("gone\\udcff.csv: file not found")


def test_a_zeek_and_a_jsonl_file_with_non_utf8_names_load(tmp_path):
    from detectors.load import load_paths

    jsonl = os.path.join(os.fsencode(tmp_path), b"ev\xfe.jsonl")
    csv_name = os.path.join(os.fsencode(tmp_path), b"ev\xff.csv")
    beacon_csv(csv_name, count=5)
    other = tmp_path / "other.csv"
    beacon_csv(other, process="other.exe", count=5)
    frame = pl.read_csv(other, infer_schema=False)
    with open(jsonl, "wb") as handle:
        frame.write_ndjson(handle)
    dataset = load_paths([os.fsdecode(jsonl), os.fsdecode(csv_name)], cache=None)
    assert dataset.events.height == 10
    assert sorted(set(dataset.events.get_column(S.SOURCE_FILE).to_list())) == sorted(
        [f"{tmp_path}/ev\\xfe.jsonl", f"{tmp_path}/ev\\xff.csv"]
    )


def test_an_unreadable_folder_is_one_line(capsys, tmp_path, monkeypatch):
    folder = tmp_path / "exports"
    folder.mkdir()

    def denied(self):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    # (root reads any folder, so the refusal is simulated; folders are listed with
    # os.scandir since the recursive walk, Path.iterdir before)
    monkeypatch.setattr(Path, "iterdir", denied)
    monkeypatch.setattr(os, "scandir", denied)
    code, _, err = cli(capsys, "detect", str(folder), "--quiet", "--no-cache")
    assert code == 1
    assert one_line_error(err) == f"beacon-triage: error: {folder}: cannot read: Permission denied"


def test_output_under_a_regular_file_is_one_line(capsys, events, tmp_path):
    blocker = tmp_path / "report.txt"
    blocker.write_text("x", encoding="utf-8")
    code, _, err = detect(capsys, events, "--output", str(blocker / "out.json"))
    assert code == 1
    assert one_line_error(err) == (
        f"beacon-triage: error: {blocker / 'out.json'}: cannot write: "
        "a part of the folder path is a file"
    )


def test_output_into_a_read_only_folder_is_one_line(capsys, events, tmp_path, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied)  # root ignores a 0555 folder
    target = tmp_path / "out.csv"
    code, _, err = detect(capsys, events, "--output", str(target))
    assert code == 1
    assert one_line_error(err) == f"beacon-triage: error: {target}: cannot write: Permission denied"
    assert not target.exists()


class _FullStdout(io.TextIOBase):
    def write(self, text: str) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def writable(self) -> bool:
        return True


def test_a_full_stdout_is_one_line(capsys, events, monkeypatch):
    main = entry_points(group="console_scripts")["beacon-triage"].load()
    capsys.readouterr()
    monkeypatch.setattr(sys, "stdout", _FullStdout())
    with pytest.raises(SystemExit) as done:
        main(["detect", str(events), "--quiet", "--no-cache"])
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert done.value.code == 1
    assert one_line_error(err) == ("beacon-triage: error: standard output: No space left on device")


# --- item 7: an empty port is a value, not a wildcard ---------------------------------------


def test_an_empty_port_is_its_own_candidate(tmp_path):
    from detectors.pairs.context import PairContext as Dataset
    from detectors.rank.scoring import merge_candidates

    start = datetime(2026, 11, 20, tzinfo=timezone.utc)
    base = {S.DEVICE_NAME: "ws-1", S.PROCESS: "svc.exe", S.REMOTE_IP: "45.77.1.2"}

    def hit(port: int | None, connections: int) -> dict:
        return {
            S.C_DEVICE: "ws-1",
            S.C_PROCESS: "svc.exe",
            S.C_REMOTE_IP: "45.77.1.2",
            S.C_REMOTE_PORT: port,
            S.C_SCORE: 0.9,
            S.C_CONNECTIONS: connections,
            S.C_FIRST_SEEN: start,
            S.C_LAST_SEEN: start + timedelta(hours=2),
        }

    rows = [
        {**base, S.TIMESTAMP: start + timedelta(minutes=i), S.REMOTE_PORT: port}
        for port, n in ((None, 150), (443, 20), (8443, 30))
        for i in range(n)
    ]
    frame = pl.DataFrame(rows, infer_schema_length=None)
    dataset = Dataset(events=S.conform(frame, "e.csv").collect())
    hits = pl.DataFrame(
        [hit(None, 150), hit(443, 20), hit(8443, 30)], schema=S.CANDIDATE_BASE_SCHEMA
    )
    merged = merge_candidates({"intervals": hits}, dataset)
    ports, counts = merged[S.C_REMOTE_PORT].to_list(), merged[S.C_CONNECTIONS].to_list()
    got = dict(zip(ports, counts, strict=True))
    assert got == {None: 150, 443: 20, 8443: 30}


# --- item 8: the CLI contract ----------------------------------------------------------------


def test_explain_cuts_a_huge_field_at_4096_characters(capsys, tmp_path):
    events = tmp_path / "e.csv"
    beacon_csv(events, process="p" * 20_000 + ".exe")
    code, out, err = detect(capsys, events, "--explain", "1")
    assert code == 0, err
    assert max(len(line) for line in out.splitlines()) <= 4096 + len("… (20,004 chars)") + 20
    assert "… (" in out and "chars)" in out


@pytest.mark.parametrize(
    "extra",
    [
        ("--source-format", "bogus"),
        ("--explain", "0"),
        ("--explain", "-1"),
        ("--explain", "999"),
        ("--top", "-1"),
    ],
)
def test_usage_errors_exit_2(capsys, events, extra):
    code, _, err = detect(capsys, events, *extra)
    assert code == 2, err
    assert "Traceback" not in err


def test_output_into_a_missing_folder_is_an_error(capsys, events, tmp_path):
    target = tmp_path / "nope" / "out.csv"
    code, _, err = detect(capsys, events, "--output", str(target))
    assert code == 1
    assert "does not exist" in one_line_error(err)
    assert not (tmp_path / "nope").exists()


def test_a_missing_allowlist_is_an_error_unless_created(capsys, events, tmp_path):
    typo = tmp_path / "typo.toml"
    code, _, err = detect(capsys, events, "--allowlist", str(typo))
    assert code == 1
    assert one_line_error(err) == (
        f"beacon-triage: error: {typo}: allow-list file not found "
        "(--allowlist-create starts a new one)"
    )
    code, _out, err = detect(capsys, events, "--allowlist", str(typo), "--allowlist-create")
    assert code == 0, err
    assert typo.read_text(encoding="utf-8").startswith("# beacon-triage allow-list")
    assert AllowList.load(typo).entries == ()


def test_allowlist_detector_names_are_checked_with_a_suggestion(capsys, tmp_path):
    path = tmp_path / "allow.toml"
    code, _, err = cli(
        capsys, "allowlist", "add", "--file", str(path), "--detector", "intervalz",
        "--reason", "r",
    )  # fmt: skip
    assert code == 1
    assert "unknown detector 'intervalz' (did you mean 'intervals'?" in one_line_error(err)
    assert not path.exists()
    path.write_text('[[allow]]\ndetector = "intervalz"\nreason = "r"\n', encoding="utf-8")
    code, _, err = cli(capsys, "allowlist", "check", "--file", str(path))
    assert code == 1
    assert "line 2" in err and "did you mean 'intervals'" in err


def test_telemetry_strings_are_written_to_toml_as_u_escapes(tmp_path):
    from detectors.curate.triage import TriageStore

    hostile = "evil\u202eexe.\x9bcom\u200b"
    allow = AllowList.load(tmp_path / "allow.toml")
    allow.add({"domain": hostile, "reason": "seen \x1b[31m"})
    allow.save()
    triage = TriageStore.load(tmp_path / "triage.toml")
    triage.set({"device": hostile, "remote_ip": "1.2.3.4"}, "benign", note="n\u2066")
    triage.save()
    for name in ("allow.toml", "triage.toml"):
        raw = (tmp_path / name).read_bytes()
        assert raw.isascii() and b"\x1b" not in raw and b"\x9b" not in raw, raw
    text = (tmp_path / "allow.toml").read_text(encoding="utf-8")
    assert 'domain = "evil\\u202eexe.\\u009bcom\\u200b"' in text
    assert AllowList.load(tmp_path / "allow.toml").entries[0].domain == hostile.lower()
    assert TriageStore.load(tmp_path / "triage.toml").marks[0].note == "n\u2066"


# --- item 9: the cache and state folders are private ----------------------------------------


def test_cache_entries_are_0700_folders_of_0600_files(tmp_path):
    from detectors.base.config import CacheSettings
    from detectors.load import load_paths
    from detectors.load.cache import LoadCache

    events = tmp_path / "e.csv"
    beacon_csv(events)
    root = tmp_path / "home" / ".cache" / "beacon-triage"
    settings = CacheSettings(directory=root, min_file_bytes=0, min_load_seconds=0.0)
    load_paths([events], cache=LoadCache(settings))
    folders = [root, *(p for p in root.rglob("*") if p.is_dir())]
    files = [p for p in root.rglob("*") if p.is_file()]
    assert len(folders) == 3 and len(files) >= 2  # beacon-triage/, loads/, the entry
    assert {stat.S_IMODE(p.stat().st_mode) for p in folders} == {0o700}
    assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o600}


def test_the_default_allowlist_folder_is_created_0700(tmp_path):
    path = tmp_path / "config" / "beacon-triage" / "allowlist.toml"
    allow = AllowList.load(path)
    allow.add({"process": "a.exe", "reason": "r"})
    allow.save()
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "config").stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
