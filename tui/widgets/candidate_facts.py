"""The words beside the charts: statistics, score composition, destination, neighbours.

Built as one ``rich.text.Text`` from sanitized strings (never markup), so a domain
named ``[@click=app.quit]`` or carrying an ANSI escape is shown as the characters it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.reactive import reactive
from textual.widgets import Static

from detectors.base import schema as S
from detectors.base.sanitize import visible
from detectors.report.figures import INTERVAL, JITTER, SLEEP, jitter_definition
from tui import format as F
from tui import keymap
from tui.view import C_ALLOWED, C_MARK, UNREVIEWED, remote_cell

C_NOTE = S.C_NOTE
C_ALLOWED_BY = S.C_ALLOWED_BY

if TYPE_CHECKING:
    from detectors.rank.enrichment import CandidateDetail


class FactStyles:
    """The styles the text uses, read from the widget's CSS (theme colours)."""

    def __init__(self, heading: Style, label: Style, value: Style, muted: Style) -> None:
        self.heading = heading
        self.label = label
        self.value = value
        self.muted = muted


def _line(text: Text, styles: FactStyles, pairs: list[tuple[str, str]]) -> None:
    for index, (label, value) in enumerate(pairs):
        if index:
            text.append("  ")
        text.append(f"{label} ", styles.label)
        text.append(value, styles.value)
    text.append("\n")


def _triage_lines(text: Text, styles: FactStyles, row: dict[str, Any]) -> None:
    """The analyst's decision: mark, note, and the allow-list entry that hides it."""
    mark = row.get(C_MARK)
    note = row.get(C_NOTE)
    if (mark and mark != UNREVIEWED) or note:
        _line(text, styles, [("mark", visible(mark or UNREVIEWED))])
    if note:
        lines = str(note).splitlines() or [""]
        text.append("note ", styles.label)
        text.append("\n     ".join(visible(line) for line in lines) + "\n", styles.value)
    if row.get(C_ALLOWED) and row.get(C_ALLOWED_BY) is not None:
        by = f"entry #{int(row[C_ALLOWED_BY])} (L lists them)"  # numbered from 1
        _line(text, styles, [("allow-listed by", by)])


def facts_text(detail: CandidateDetail, styles: FactStyles) -> Text:
    """Everything the pane says about one candidate, as plain styled text."""
    row: dict[str, Any] = detail.row
    text = Text(no_wrap=False, end="")
    title = (
        f"{visible(row.get(S.C_DEVICE) or '?')} · {visible(row.get(S.C_PROCESS) or '?')}"
        f" → {remote_cell(row) or '?'}"
    )
    text.append(title + "\n", styles.heading)
    detectors = row.get(S.C_DETECTORS) or []
    _line(
        text,
        styles,
        [
            ("score", F.score(row.get(S.C_SCORE))),
            ("detectors", ", ".join(visible(d) for d in detectors) or F.DASH),
        ],
    )
    if row.get(S.C_ACCOUNT):
        _line(text, styles, [("account", visible(row.get(S.C_ACCOUNT)))])
    if row.get(S.C_SERVER_IPS):  # the servers the proxy reached for this host
        _line(text, styles, [("proxy reached", ", ".join(map(visible, row[S.C_SERVER_IPS])))])
    if detail.campaign_devices >= 2:
        key = keymap.label_of("campaign")
        said = f"{detail.campaign_devices} devices beacon to this destination"
        _line(text, styles, [("campaign:", f"{said} (press {key} to show them)")])
    _triage_lines(text, styles, row)

    stats = detail.stats
    # The candidate's own figures, named and valued as in the table and the exports
    # (detectors.report.figures); the charted deltas' statistics are named apart.
    text.append("\nTiming\n", styles.heading)
    _line(
        text,
        styles,
        [
            ("connections", F.count(row.get(S.C_CONNECTIONS))),
            (INTERVAL.label, F.seconds(row.get(INTERVAL.column))),
            (SLEEP.label, F.seconds(row.get(SLEEP.column))),
            (JITTER.label, F.percent(row.get(JITTER.column))),
        ],
    )
    if row.get(JITTER.column) is not None:
        text.append(f"jitter = {jitter_definition(row)}\n", styles.muted)
    text.append(f"charted deltas ({F.count(max(0, int(detail.times.size) - 1))})\n", styles.label)
    _line(
        text,
        styles,
        [
            ("p5", F.seconds(stats.p5_s)),
            ("p50", F.seconds(stats.p50_s)),
            ("p95", F.seconds(stats.p95_s)),
            ("mean", F.seconds(stats.mean_s)),
            ("CoV", F.percent(stats.jitter_pct)),
        ],
    )
    first = detail.times.min().item() if detail.times.size else None
    last = detail.times.max().item() if detail.times.size else None
    _line(text, styles, [("first", F.when_exact(first)), ("last", F.when_exact(last))])

    text.append("\nScore composition\n", styles.heading)
    if detail.evidence:
        for item in detail.evidence:  # points first, so they line up
            points = f"{item.points:+.2f}" if item.points is not None else ""
            text.append(f"{points:>6}  ", styles.heading)
            text.append(visible(item.name), styles.label)
            text.append(f"  {visible(F.number(item.value))}\n", styles.value)
    else:
        text.append("  no evidence recorded by the scorer\n", styles.muted)

    dest = detail.destination
    text.append("\nDestination\n", styles.heading)
    geo = " ".join(visible(v) for v in dest.geo.values())
    _line(text, styles, [("address", visible(dest.ip or "?")), ("class", dest.ip_class)])
    if geo:
        _line(text, styles, [("asn/geo", geo)])
    names = ", ".join(visible(n) for n in dest.names[:8])
    if len(dest.names) > 8:
        names += f" (+{len(dest.names) - 8})"
    _line(text, styles, [("names", names or F.DASH)])
    _line(text, styles, [("domain", visible(dest.domain) if dest.domain else F.DASH)])
    _line(
        text,
        styles,
        [
            ("devices→IP", F.count(dest.devices_to_ip)),
            ("processes→IP", F.count(dest.processes_to_ip)),
        ],
    )
    if dest.domain:
        _line(
            text,
            styles,
            [
                ("devices→domain", F.count(dest.devices_to_domain)),
                ("processes→domain", F.count(dest.processes_to_domain)),
                ("addresses", F.count(dest.addresses_of_domain)),
            ],
        )
    _line(
        text,
        styles,
        [("seen", f"{F.when_exact(dest.first_seen)} → {F.when_exact(dest.last_seen)}")],
    )

    text.append("\nOther candidates to this destination\n", styles.heading)
    if detail.sharing.height:
        for other in detail.sharing.iter_rows(named=True):
            text.append(
                f"  {F.score(other.get(S.C_SCORE))}  {visible(other.get(S.C_DEVICE) or '?')}"
                f" · {visible(other.get(S.C_PROCESS) or '?')}"
                f" → {visible(other.get(S.C_REMOTE_IP) or '?')}:{other.get(S.C_REMOTE_PORT)}\n",
                styles.value,
            )
    else:
        text.append("  none\n", styles.muted)
    return text


class CandidateFacts(VerticalScroll):
    """Scrollable facts about the selected candidate (focus it with Tab to scroll)."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "candidate-facts--heading",
        "candidate-facts--label",
        "candidate-facts--value",
        "candidate-facts--muted",
    }

    DEFAULT_CSS = """
    CandidateFacts {
        background: $surface;
        padding: 0 1;
    }
    CandidateFacts:focus {
        background: $boost;
    }
    CandidateFacts > .candidate-facts--heading { color: $primary; text-style: bold; }
    CandidateFacts > .candidate-facts--label { color: $text-muted; }
    CandidateFacts > .candidate-facts--value { color: $foreground; }
    CandidateFacts > .candidate-facts--muted { color: $text-muted; text-style: italic; }
    """

    detail: reactive[CandidateDetail | None] = reactive(None, always_update=True, init=False)

    def compose(self) -> ComposeResult:
        yield Static(Text("Select a candidate to see its detail.", end=""), id="facts")

    def _styles(self) -> FactStyles:
        get = self.get_component_rich_style
        return FactStyles(
            get("candidate-facts--heading"),
            get("candidate-facts--label"),
            get("candidate-facts--value"),
            get("candidate-facts--muted"),
        )

    def watch_detail(self, detail: CandidateDetail | None) -> None:
        self.redraw()

    def redraw(self) -> None:
        detail = self.detail
        body = self.query_one("#facts", Static)
        if detail is None:
            body.update(Text("Select a candidate to see its detail.", end=""))
        else:
            body.update(facts_text(detail, self._styles()))

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(
            self, lambda _: self.call_after_refresh(self.redraw)
        )

    @property
    def plain(self) -> str:
        """The text shown, without styles (what tests and screen readers see)."""
        detail = self.detail
        if detail is None:
            return ""
        return facts_text(detail, FactStyles(Style(), Style(), Style(), Style())).plain
