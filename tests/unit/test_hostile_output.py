"""Attacker-written telemetry is inert in every CLI output, and JSON keeps it exactly.

A Defender CSV whose device names, process names, accounts and URLs carry Rich markup,
ANSI/OSC escapes, BEL, CR, backspace, newlines, bidi overrides, zero-width characters,
C1 controls and spreadsheet formulas goes through ``beacon-triage detect``. No output
format may put a raw control, bidi or zero-width character on the terminal; JSON and
JSON Lines must decode to the exact original strings; CSV cells must never start a
formula; ``--explain`` and error lines are escaped too.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import unicodedata
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pytest

from detectors.base import schema as S
from detectors.base.sanitize import csv_cell, is_inert, json_safe, visible
from detectors.report import output
from tui.cli import main

HEADER = [
    "Timestamp",
    "DeviceId",
    "DeviceName",
    "ActionType",
    "RemoteIP",
    "RemotePort",
    "RemoteUrl",
    "LocalIP",
    "LocalPort",
    "Protocol",
    "RemoteIPType",
    "InitiatingProcessFileName",
    "InitiatingProcessAccountDomain",
    "InitiatingProcessAccountName",
    "AdditionalFields",
]
HOSTILE = [
    "[bold red]x[/]",
    "[@click=app.quit]q.exe",
    "[link=https://evil.example]y[/link]",
    "t\x1b]0;owned\x07.exe",  # OSC: set the terminal title
    "\x1b[2J\x1b[31mred.exe",  # clear screen, red
    "ok.exe\rEVIL",  # carriage return overwrites what was shown
    "abc\x08\x08\x08xyz",  # backspaces
    "gpj.\u202eexe",  # right-to-left override: shows as exe.jpg
    "ze\u200bro.exe",  # zero-width space
    "line1\nline2",
    "c1\x9b31mcsi.exe",  # C1 CSI, a one-byte ESC[ on some terminals
    "del\x7f.exe",
    "sep\u2028arator.exe",  # Unicode line separator
    '=HYPERLINK("http://evil.example","x")',
    "+cmd|' /C calc'!A0",
    "@SUM(1+1)",
    "astral\U000f0000.exe",  # a private-use character outside the BMP
]
START = datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc)
ROWS_PER_PAIR = 30


def unsafe_characters(text: str) -> set[str]:
    """Characters a terminal could act on or that reorder/hide text (newline allowed)."""
    return {
        ch
        for ch in text
        if ch != "\n" and unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"}
    }


def hostile_csv(path: Path) -> Path:
    """One 60 s beacon (±1 s) per hostile string: device, process, account and URL carry it."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for pair, text in enumerate(HOSTILE):
            for i in range(ROWS_PER_PAIR):
                ts = START + timedelta(seconds=i * 60 + (1 if i % 2 else 0))
                writer.writerow(
                    [
                        ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                        f"dev{pair}",
                        f"ws-{text}",
                        "ConnectionSuccess",
                        f"45.77.1.{pair + 1}",
                        443,
                        f"{text}.example.org",
                        "10.0.0.7",
                        50000 + i,
                        "Tcp",
                        "Public",
                        text,
                        "corp",
                        text,
                        "{}",
                    ]
                )
    return path


@pytest.fixture(scope="module")
def hostile_file(tmp_path_factory) -> Path:
    return hostile_csv(tmp_path_factory.mktemp("hostile") / "events.csv")


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as stopped:
        main(list(args))
    captured = capsys.readouterr()
    return int(stopped.value.code or 0), captured.out, captured.err


# --- the renderings, unit by unit --------------------------------------------------------


@pytest.mark.parametrize("text", HOSTILE)
def test_json_safe_output_is_inert_and_decodes_to_the_original(text):
    document = json_safe(json.dumps({"v": text}, ensure_ascii=False))
    assert unsafe_characters(document) == set()
    assert json.loads(document) == {"v": text}


def test_json_safe_spells_astral_characters_as_a_surrogate_pair():
    # U+F0000 - 0x10000 = 0xE0000: high 0xD800 + 0x380 = 0xDB80, low 0xDC00 + 0 = 0xDC00
    assert json_safe('"\U000f0000"') == '"\\udb80\\udc00"'
    assert json_safe('"\x7f"') == '"\\u007f"'


def test_json_safe_keeps_printable_unicode_raw():
    assert (
        json_safe('{"d": "bücher.example", "z": "日本"}') == '{"d": "bücher.example", "z": "日本"}'
    )


@pytest.mark.parametrize(
    ("text", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "\\x09=1"),  # a TAB is escaped, so the cell no longer starts a formula
        ("a=1", "a=1"),
        ("svchost.exe", "svchost.exe"),
        ("x" * 5000, "x" * 5000),  # never cut: CSV is data, not a screen
    ],
)
def test_csv_cell_never_starts_a_formula(text, cell):
    assert csv_cell(text) == cell


def test_visible_escapes_c1_del_separator_and_astral_private_use():
    assert visible("a\x9bb\x7fc\u2028d\U000f0000") == "a\\x9bb\\x7fc\\u2028d\\U000f0000"
    assert is_inert("bücher.example") and not is_inert("a\u202eb")


def test_visible_cuts_a_megabyte_url_and_says_its_length():
    url = "http://c2.example/" + "A" * (1 << 20)
    shown = visible(url)
    assert shown == url[:4096] + f"… ({len(url):,} chars)"


# --- detect, end to end -----------------------------------------------------------------


def test_detect_table_in_a_subprocess_shows_every_hostile_name_escaped(hostile_file):
    done = subprocess.run(
        [sys.executable, "-m", "tui.cli", "detect", str(hostile_file), "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert unsafe_characters(done.stdout) == set()
    assert unsafe_characters(done.stderr) == set()
    lines = done.stdout.splitlines()
    # one header, one rule, one line per candidate, the count: a newline in a name
    # cannot add a line
    assert lines[-1] == f"{len(HOSTILE)} candidate(s)"
    assert len(lines) == len(HOSTILE) + 3
    # visible, literal forms (the process column is 18 wide: 17 characters + "…")
    assert "[bold red]x[/]" in done.stdout
    assert "[@click=app.quit]…" in done.stdout
    assert "gpj.\\u202eexe" in done.stdout
    assert "ok.exe\\x0dEVIL" in done.stdout
    assert "line1\\x0aline2" in done.stdout


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_detect_json_is_inert_and_round_trips_the_exact_strings(hostile_file, capsys, fmt):
    code, out, err = run_main(capsys, "detect", str(hostile_file), "--format", fmt, "--quiet")
    assert code == 0, err
    assert unsafe_characters(out) == set()
    records = json.loads(out) if fmt == "json" else [json.loads(x) for x in out.splitlines()]
    assert sorted(r["process"] for r in records) == sorted(HOSTILE)
    assert sorted(r["device"] for r in records) == sorted(f"ws-{t}" for t in HOSTILE)
    assert sorted(r["account"] for r in records) == sorted(f"corp\\{t}" for t in HOSTILE)


def test_detect_csv_is_inert_one_record_per_line_and_never_a_formula(hostile_file, capsys):
    code, out, err = run_main(capsys, "detect", str(hostile_file), "--format", "csv", "--quiet")
    assert code == 0, err
    assert unsafe_characters(out) == set()
    lines = out.splitlines()
    assert len(lines) == 1 + len(HOSTILE)  # no value spans lines
    records = list(csv.DictReader(io.StringIO(out)))
    processes = sorted(r["process"] for r in records)
    assert processes == sorted(csv_cell(t) for t in HOSTILE)
    for record in records:
        for value in record.values():
            assert not value.startswith(("=", "+", "-", "@")), value


def test_detect_explain_escapes_the_telemetry_it_quotes(hostile_file, capsys):
    code, out, err = run_main(capsys, "detect", str(hostile_file), "--format", "json", "--quiet")
    records = json.loads(out)
    rank = 1 + next(i for i, r in enumerate(records) if r["process"] == "t\x1b]0;owned\x07.exe")
    code, out, err = run_main(
        capsys, "detect", str(hostile_file), "--explain", str(rank), "--quiet"
    )
    assert code == 0, err
    assert unsafe_characters(out) == set()
    assert out.startswith("ws-t\\x1b]0;owned\\x07.exe  t\\x1b]0;owned\\x07.exe  ->  45.77.1.4:443")


def test_error_line_escapes_a_hostile_file_name(tmp_path, capsys):
    missing = tmp_path / "x\x1b]0;pwned\x07\u202e.csv"
    code, out, err = run_main(capsys, "detect", str(missing), "--quiet")
    assert code == 1 and out == ""
    assert unsafe_characters(err) == set()
    assert err == f"beacon-triage: error: {visible(str(missing))}: file not found\n"


def test_table_of_a_frame_with_every_hostile_value_has_no_raw_control():
    frame = pl.DataFrame(
        {
            S.C_DEVICE: HOSTILE,
            S.C_PROCESS: HOSTILE,
            S.C_REMOTE_IP: ["45.1.2.3"] * len(HOSTILE),
            S.C_REMOTE_PORT: [443] * len(HOSTILE),
            S.C_SCORE: [0.5] * len(HOSTILE),
            S.C_CONNECTIONS: [3] * len(HOSTILE),
            S.C_DOMAIN: HOSTILE,
            S.C_DETECTORS: [["intervals"]] * len(HOSTILE),
        }
    )
    table = output.to_table(frame)
    assert unsafe_characters(table) == set()
    assert len(table.splitlines()) == len(HOSTILE) + 3
