"""Telemetry text is made inert for terminals; detect's output formats keep the contract."""

import json
from datetime import datetime, timezone

import polars as pl

from detectors.base import schema as S
from detectors.base.sanitize import visible
from detectors.report.output import to_csv, to_json, to_jsonl, to_table


def test_visible_escapes_ansi_bell_cr_bidi_and_zero_width():
    text = "a\x1b[31mb\x07c\rd\u202ee\u200bf"
    assert visible(text) == "a\\x1b[31mb\\x07c\\x0dd\\u202ee\\u200bf"


def test_visible_keeps_printable_unicode_and_cuts_huge_fields():
    assert visible("bücher.example") == "bücher.example"
    cut = visible("x" * 10_000, limit=10)
    assert cut == "xxxxxxxxxx… (10,000 chars)"


def _candidates() -> pl.DataFrame:
    return pl.DataFrame(
        {
            S.C_DEVICE: ["ws-1"],
            S.C_PROCESS: ["evil\x1b]0;pwned\x07.exe"],
            S.C_REMOTE_IP: ["45.1.2.3"],
            S.C_REMOTE_PORT: [443],
            S.C_SCORE: [0.875],
            S.C_CONNECTIONS: [12],
            S.C_FIRST_SEEN: [datetime(2026, 11, 20, 0, 0, 0, 689929, tzinfo=timezone.utc)],
            S.C_DETECTORS: [["intervals", "periodicity"]],
        }
    )


def test_json_array_has_the_contract_fields_and_joined_detector():
    records = json.loads(to_json(_candidates()))
    assert records == [
        {
            "detector": "intervals,periodicity",
            "device": "ws-1",
            "process": "evil\x1b]0;pwned\x07.exe",
            "remote_ip": "45.1.2.3",
            "remote_port": 443,
            "score": 0.875,
            "connections": 12,
            "first_seen": "2026-11-20T00:00:00.689929Z",
            "detectors": ["intervals", "periodicity"],
        }
    ]


def test_jsonl_is_one_object_per_line():
    lines = to_jsonl(_candidates()).splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["remote_port"] == 443


def test_csv_joins_lists():
    text = to_csv(_candidates())
    header, row = text.splitlines()
    assert header.split(",")[0] == "detector"
    assert "intervals;periodicity" in row


def test_table_escapes_terminal_controls():
    table = to_table(_candidates())
    assert "\x1b" not in table and "\x07" not in table
    # 18-character column: 17 visible characters of the escaped name, then an ellipsis.
    assert " evil\\x1b]0;pwned\\… " in table
    assert table.splitlines()[-1] == "1 candidate(s)"
