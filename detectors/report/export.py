"""Export the current view: CSV or JSON for tools, a Markdown report of escalations for people.

The Markdown report is pasted into tickets and wikis, where telemetry text (written by
the adversary we hunt) must stay inert: every telemetry value goes through
``sanitize.visible`` and then into a code span fenced longer than any backtick run it
holds, so no backtick, bracket, pipe, emphasis, link or HTML in it is interpreted (and
pipes are escaped inside tables). Analyst notes are text: the characters Markdown
acts on anywhere (``\\ ` * _ [ ] < > & | ~``) are backslash-escaped, and the few that act
only at the start of a line (``#``, ``-``, ``+``, ``=``, ``1.``) there; a comma, a dash
inside a sentence or a ticket number reads as typed ("hello - C2 via dllhost, INC-1234").
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl

from detectors.base import schema as S
from detectors.base.atomic import atomic_write_text
from detectors.base.errors import InputError
from detectors.base.sanitize import visible
from detectors.curate.allowlist import C_NAMES
from detectors.curate.triage import C_MARK, C_NOTE, ESCALATE
from detectors.report import output
from detectors.report.figures import INTERVAL, JITTER, SLEEP

FORMATS = ("csv", "json", "markdown")
_SUFFIXES = {".csv": "csv", ".json": "json", ".md": "markdown", ".markdown": "markdown"}
C_PERIOD = S.C_PERIOD

_ACTIVE = re.compile(r"([\\`*_\[\]<>&|~])")  # Markdown acts on these wherever they are
_LINE_START = re.compile(r"^(\s*\d*)([#+=.)-])", re.MULTILINE)  # headings, lists, rules


def md_code(value: Any, *, in_table: bool = False) -> str:
    """Telemetry as an inert code span (empty text stays empty)."""
    text = visible(value)
    if not text:
        return ""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    edge_space = text.startswith(" ") and text.endswith(" ") and bool(text.strip())
    pad = " " if text.startswith("`") or text.endswith("`") or edge_space else ""
    span = f"{fence}{pad}{text}{pad}{fence}"
    return span.replace("|", "\\|") if in_table else span


def md_text(value: Any) -> str:
    """Free text that CommonMark shows as typed: only what Markdown would act on is
    escaped, so the raw report still reads well where it is not rendered."""
    text = _ACTIVE.sub(r"\\\1", visible(value))
    # "1." escapes its period: a backslash before a digit is not an escape in CommonMark.
    return _LINE_START.sub(lambda m: f"{m.group(1)}\\{m.group(2)}", text)


def _when(value: Any) -> str:
    if isinstance(value, datetime):
        moment = value.astimezone(timezone.utc) if value.tzinfo else value
        return moment.strftime("%Y-%m-%d %H:%M:%SZ")
    return md_text(value)


def _number(value: Any, unit: str = "", digits: int = 2) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return md_text(value)
    text = f"{value:,}" if isinstance(value, int) else f"{value:.{digits}f}"
    return f"{text}{unit}"


def _codes(values: Any) -> str:
    if values is None:
        return ""
    items = values if isinstance(values, (list, tuple)) else [values]
    return ", ".join(md_code(v, in_table=True) for v in items if v is not None)


def _evidence_items(value: Any) -> list[Mapping[str, Any]]:
    """Evidence as dicts, whether it came as structs, JSON strings or one JSON array."""
    if value is None:
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return [{"name": value}]
    items = value if isinstance(value, (list, tuple)) else [value]
    out: list[Mapping[str, Any]] = []
    for item in items:
        if isinstance(item, str):
            try:
                item = json.loads(item)
            except ValueError:
                item = {"name": item}
        out.append(item if isinstance(item, Mapping) else {"name": item})
    return out


def _candidate_section(rank: int, row: Mapping[str, Any]) -> list[str]:
    def code(column: str) -> str:
        return md_code(row.get(column)) or "-"

    port = row.get(S.C_REMOTE_PORT)
    address = row.get(S.C_REMOTE_IP)
    destination = md_code(f"{'-' if address is None else address}:{'-' if port is None else port}")
    lines = [f"## {rank}. {code(S.C_DEVICE)} / {code(S.C_PROCESS)} → {destination}", ""]
    facts: list[tuple[str, str]] = []
    if S.C_SCORE in row:
        facts.append(("Score", _number(row[S.C_SCORE])))
    if S.C_DETECTORS in row or S.C_DETECTOR in row:
        facts.append(("Detectors", _codes(row.get(S.C_DETECTORS) or row.get(S.C_DETECTOR))))
    for figure in (SLEEP, INTERVAL, JITTER):  # named as in the table (report.figures)
        if figure.column in row:
            label = f"{figure.label.capitalize()} ({figure.definition})"
            facts.append((label, _number(row[figure.column], f" {figure.unit}", 1)))
    if S.C_DOMAIN in row:
        facts.append(("Registered domain", md_code(row[S.C_DOMAIN], in_table=True)))
    if C_NAMES in row:
        facts.append(("Names seen", _codes(row[C_NAMES])))
    if S.C_CONNECTIONS in row:
        facts.append(("Connections", _number(row[S.C_CONNECTIONS])))
    if S.C_FIRST_SEEN in row:
        facts.append(("First seen", _when(row[S.C_FIRST_SEEN])))
    if S.C_LAST_SEEN in row:
        facts.append(("Last seen", _when(row[S.C_LAST_SEEN])))
    if facts:
        lines += ["| Field | Value |", "|---|---|"]
        lines += [f"| {name} | {value or '-'} |" for name, value in facts]
        lines.append("")
    note = row.get(C_NOTE)
    if note:
        lines += [f"**Note:** {md_text(note)}", ""]
    evidence = _evidence_items(row.get(S.C_EVIDENCE))
    if evidence:
        lines += ["| Evidence | Value | Points |", "|---|---|---|"]
        for item in evidence:
            lines.append(
                f"| {md_code(item.get('name'), in_table=True) or '-'} "
                f"| {md_code(item.get('value'), in_table=True) or '-'} "
                f"| {_number(item.get('points')) if item.get('points') is not None else '-'} |"
            )
        lines.append("")
    return lines


def markdown_report(
    candidates: pl.DataFrame,
    *,
    title: str = "Escalated beacon candidates",
    generated: datetime | None = None,
) -> str:
    """The escalated candidates (``mark == "escalate"``) with their evidence, as Markdown.

    A frame without a ``mark`` column is taken as already chosen: every row is reported.
    """
    chosen = candidates
    if C_MARK in candidates.columns:
        chosen = candidates.filter(pl.col(C_MARK) == ESCALATE)
    moment = generated or datetime.now(timezone.utc)
    lines = [
        f"# {md_text(title)}",
        "",
        f"Generated {_when(moment)} by beacon-triage: {chosen.height} candidate(s).",
        "",
    ]
    if chosen.height == 0:
        lines += ["No escalated candidates.", ""]
    for rank, row in enumerate(chosen.iter_rows(named=True), start=1):
        lines += _candidate_section(rank, row)
    return "\n".join(lines).rstrip("\n") + "\n"


def format_for(path: str | Path) -> str:
    """The export format a file name asks for (.csv, .json, .md)."""
    fmt = _SUFFIXES.get(Path(path).suffix.lower())
    if fmt is None:
        raise InputError("export to .csv, .json or .md", file=str(path))
    return fmt


def render(candidates: pl.DataFrame, fmt: str) -> str:
    if fmt == "csv":
        return output.to_csv(candidates)
    if fmt == "json":
        return output.to_json(candidates)
    if fmt == "markdown":
        return markdown_report(candidates)
    raise InputError(f"unknown export format '{fmt}' (one of {', '.join(FORMATS)})")


def export(candidates: pl.DataFrame, path: str | Path, fmt: str | None = None) -> str:
    """Write the view to ``path`` atomically; returns the format used."""
    chosen = fmt or format_for(path)
    text = render(candidates, chosen)
    try:
        atomic_write_text(path, text)
    except OSError as exc:
        raise InputError(f"cannot write: {exc.strerror or exc}", file=str(path)) from None
    return chosen
