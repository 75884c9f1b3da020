"""Export: CSV/JSON of the view, and a Markdown report in which telemetry stays inert text."""

from __future__ import annotations

from datetime import datetime, timezone

import markdown_it
import polars as pl
import pytest

from detectors.base.errors import InputError
from detectors.report import output
from detectors.report.export import export, format_for, markdown_report, md_code, md_text

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc)
T1 = datetime(2026, 11, 20, 9, 0, 30, tzinfo=timezone.utc)
HOSTILE_PROCESS = "evil`|[x](http://a.example)<img src=x onerror=alert(1)>.exe"
HOSTILE_NAME = "x|y</td><script>alert(1)</script>"


def view() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "device": ["WS-07", "ws-08"],
            "process": [HOSTILE_PROCESS, "b.exe"],
            "remote_ip": ["203.0.113.7", "198.51.100.1"],
            "remote_port": [443, 80],
            "score": [0.934, 0.2],
            "detectors": [["intervals", "periodicity"], ["buckets"]],
            "period_s": [60.0, None],
            "jitter_pct": [1.5, None],
            "names": [["c2.example.org", HOSTILE_NAME], []],
            "first_seen": [T0, T0],
            "last_seen": [T1, T1],
            "connections": [1234, 5],
            "evidence": [
                [
                    {"name": "periodic", "value": "60 s", "points": 0.35},
                    {"name": "rare `dest`", "value": "1 of 2,000 hosts", "points": 0.2},
                ],
                [],
            ],
            "mark": ["escalate", "benign"],
            "note": ["Check with *IR* [team](http://x) <b>now</b> \x1b[2J", None],
        }
    )


def test_md_code_fences_longer_than_any_backtick_run():
    assert md_code("plain") == "`plain`"
    assert md_code("a`b") == "``a`b``"
    assert md_code("`x``") == "``` `x`` ```"  # edge backtick: padded with one space each side
    assert md_code("a|b", in_table=True) == "`a\\|b`"
    assert md_code("a|b") == "`a|b`"
    assert md_code(None) == "" and md_code("") == ""
    assert md_code("bell\x07") == "`bell\\x07`"  # control characters are shown, not sent


def test_md_text_escapes_what_markdown_acts_on_and_nothing_else():
    assert md_text("<b>*hi*</b> [a](b) `c` | _d_ &amp; ~x~ \\") == (
        "\\<b\\>\\*hi\\*\\</b\\> \\[a\\](b) \\`c\\` \\| \\_d\\_ \\&amp; \\~x\\~ \\\\"
    )
    # An analyst's note reads as typed: no backslash before a comma or a dash (issue 18).
    assert md_text("hello - C2 via dllhost, ticket INC-1234.") == (
        "hello - C2 via dllhost, ticket INC-1234."
    )
    # Only at the start of a line do these start a heading, a list or a rule.
    assert md_text("# not a heading") == "\\# not a heading"
    assert md_text("- not a list") == "\\- not a list"
    assert md_text("12. not a list") == "12\\. not a list"


def test_markdown_report_lists_only_escalated_candidates_with_evidence():
    report = markdown_report(view(), generated=datetime(2026, 11, 24, 9, 30, tzinfo=timezone.utc))
    assert report == (
        "# Escalated beacon candidates\n"
        "\n"
        "Generated 2026-11-24 09:30:00Z by beacon-triage: 1 candidate(s).\n"
        "\n"
        "## 1. `WS-07` / ``evil`|[x](http://a.example)<img src=x onerror=alert(1)>.exe`` → "
        "`203.0.113.7:443`\n"
        "\n"
        "| Field | Value |\n"
        "|---|---|\n"
        "| Score | 0.93 |\n"
        "| Detectors | `intervals`, `periodicity` |\n"
        "| Sleep (estimated period of the beacon) | 60.0 s |\n"
        "| Jitter (how much the sleeps vary) | 1.5 % |\n"
        "| Names seen | `c2.example.org`, `x\\|y</td><script>alert(1)</script>` |\n"
        "| Connections | 1,234 |\n"
        "| First seen | 2026-11-20 08:00:00Z |\n"
        "| Last seen | 2026-11-20 09:00:30Z |\n"
        "\n"
        "**Note:** Check with \\*IR\\* \\[team\\](http://x) \\<b\\>now\\</b\\> "
        "\\\\x1b\\[2J\n"
        "\n"
        "| Evidence | Value | Points |\n"
        "|---|---|---|\n"
        "| `periodic` | `60 s` | 0.35 |\n"
        "| `` rare `dest` `` | `1 of 2,000 hosts` | 0.20 |\n"
    )


def test_markdown_report_renders_no_html_links_or_emphasis_from_telemetry():
    # An independent check: render with a CommonMark parser (GFM tables on) and look at the HTML.
    html = markdown_it.MarkdownIt("commonmark").enable("table").render(markdown_report(view()))
    for tag in ("<img", "<script", "<a ", "<b>", "<em>"):
        assert tag not in html
    assert "<code>evil`|[x](http://a.example)&lt;img src=x onerror=alert(1)&gt;.exe</code>" in html
    # the pipe in a name did not split the table row: the name is one cell
    assert "<code>x|y&lt;/td&gt;&lt;script&gt;alert(1)&lt;/script&gt;</code></td>" in html
    assert "Check with *IR* [team](http://x) &lt;b&gt;now&lt;/b&gt; \\x1b[2J" in html


def test_markdown_report_without_mark_column_reports_every_row():
    report = markdown_report(view().drop("mark").head(0))
    assert "0 candidate(s)" in report and report.endswith("No escalated candidates.\n")
    assert markdown_report(view().drop("mark")).count("\n## ") == 2


def test_export_writes_csv_and_json_like_detect_and_markdown_by_suffix(tmp_path):
    frame = view()
    assert export(frame, tmp_path / "v.csv") == "csv"
    assert (tmp_path / "v.csv").read_text(encoding="utf-8") == output.to_csv(frame)
    assert export(frame, tmp_path / "v.json") == "json"
    assert (tmp_path / "v.json").read_text(encoding="utf-8") == output.to_json(frame)
    assert export(frame, tmp_path / "report.md") == "markdown"
    assert (tmp_path / "report.md").read_text(encoding="utf-8").startswith("# Escalated")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md", "v.csv", "v.json"]


def test_export_refuses_unknown_suffix_and_reports_write_errors(tmp_path):
    with pytest.raises(InputError, match=r"export to \.csv, \.json or \.md"):
        format_for(tmp_path / "v.xlsx")
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(InputError, match="refusing to write: it is a directory"):
        export(view(), tmp_path / "dir.csv")
