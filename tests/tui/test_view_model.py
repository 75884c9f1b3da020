"""The table's view (filters, sort, cursor key) and the formats, without an app."""

from __future__ import annotations

from datetime import datetime, timezone

import polars as pl
import pytest

from detectors.base import schema as S
from tui import format as F
from tui.view import (
    C_ALLOWED,
    C_MARK,
    COLUMNS,
    ViewSpec,
    apply_view,
    choose_sort,
    find_row,
    prepare,
    score_band,
    sort_by,
    sort_choices,
)

UTC = timezone.utc


def _candidates() -> pl.DataFrame:
    return prepare(
        pl.DataFrame(
            {
                S.C_DEVICE: ["WS-1", "ws-2", "srv-3", "ws-4"],
                S.C_PROCESS: ["a.exe", "B.EXE", None, "d.exe"],
                S.C_REMOTE_IP: ["1.2.3.4", "5.6.7.8", "1.2.3.4", "9.9.9.9"],
                S.C_REMOTE_PORT: [443, 80, 443, None],
                S.C_DOMAIN: ["evil.example", None, "evil.example", "Okay.Example"],
                S.C_SCORE: [0.9, 0.3, 0.6, None],
                S.C_DETECTORS: [["intervals", "buckets"], ["buckets"], ["intervals"], []],
                S.C_CONNECTIONS: [10, 300, 20, 5],
                C_MARK: [None, "benign", "", "unreviewed"],
                C_ALLOWED: [False, True, False, None],
            },
            schema_overrides={S.C_REMOTE_PORT: pl.Int32},
        )
    )


def test_default_view_hides_allow_listed_and_sorts_by_score_nulls_last():
    view = apply_view(_candidates(), ViewSpec())
    assert view[S.C_DEVICE].to_list() == ["WS-1", "srv-3", "ws-4"]


def test_text_filter_is_case_insensitive_over_device_process_ip_and_domain():
    frame = _candidates()
    spec = ViewSpec(show_allowed=True)
    assert apply_view(frame, spec.with_(text="b.exe"))[S.C_DEVICE].to_list() == ["ws-2"]
    assert apply_view(frame, spec.with_(text="OKAY"))[S.C_DEVICE].to_list() == ["ws-4"]
    assert apply_view(frame, spec.with_(text="1.2.3"))[S.C_DEVICE].to_list() == ["WS-1", "srv-3"]
    assert apply_view(frame, spec.with_(text="ws-"))[S.C_DEVICE].to_list() == [
        "WS-1",
        "ws-2",
        "ws-4",
    ]
    # A regex metacharacter is a plain character here.
    assert apply_view(frame, spec.with_(text="1.2.3.*")).height == 0


def test_quick_filters_detector_min_score_and_marks():
    frame = _candidates()
    spec = ViewSpec(show_allowed=True)
    by_detector = apply_view(frame, spec.with_(detector="buckets"))
    assert by_detector[S.C_DEVICE].to_list() == ["WS-1", "ws-2"]
    assert apply_view(frame, spec.with_(min_score=0.6))[S.C_DEVICE].to_list() == ["WS-1", "srv-3"]
    assert apply_view(frame, spec.with_(mark="marked"))[S.C_DEVICE].to_list() == ["ws-2"]
    assert apply_view(frame, spec.with_(mark="benign"))[S.C_DEVICE].to_list() == ["ws-2"]
    assert apply_view(frame, spec.with_(mark="escalate")).height == 0
    unmarked = apply_view(frame, spec.with_(mark="unmarked"))  # "unreviewed" is unmarked
    assert unmarked[S.C_DEVICE].to_list() == ["WS-1", "srv-3", "ws-4"]


def test_sort_by_text_ignores_case_and_breaks_ties_by_score():
    frame = _candidates()
    spec = ViewSpec(show_allowed=True, sort="device", descending=False)
    assert apply_view(frame, spec)[S.C_DEVICE].to_list() == ["srv-3", "WS-1", "ws-2", "ws-4"]
    by_ip = apply_view(frame, spec.with_(sort="remote"))
    # 1.2.3.4 twice: the higher score (WS-1, 0.9) first.
    assert by_ip[S.C_DEVICE].to_list() == ["WS-1", "srv-3", "ws-2", "ws-4"]
    by_detectors = apply_view(frame, spec.with_(sort="detectors", descending=True))
    assert by_detectors[S.C_DEVICE].to_list()[0] == "WS-1"  # two detectors agree


def test_sort_picker_first_directions_and_header_click_directions():
    spec = ViewSpec()
    first = {key: choose_sort(spec, key).descending for key, _ in sort_choices()}
    # What an analyst wants on top: highest score, least jitter, shortest interval,
    # most connections, newest last seen, names A to Z.
    assert first["score"] is True
    assert first["jitter"] is False
    assert first["interval"] is False
    assert first["conns"] is True
    assert first["last"] is True
    assert first["first"] is False
    assert first["device"] is False
    assert choose_sort(spec, "no-such-column") == spec
    clicked = sort_by(spec, "conns")
    assert (clicked.sort, clicked.descending) == ("conns", True)
    assert sort_by(clicked, "conns").descending is False


def test_find_row_locates_a_candidate_by_its_key_including_null_port():
    view = apply_view(_candidates(), ViewSpec(show_allowed=True))
    assert find_row(view, ("ws-4", "d.exe", "9.9.9.9", None)) == view[S.C_DEVICE].to_list().index(
        "ws-4"
    )
    assert find_row(view, ("srv-3", None, "1.2.3.4", 443)) is not None
    assert find_row(view, ("nope", None, None, None)) is None


def test_mark_cell_shows_the_decision_and_the_allow_list():
    mark = next(c for c in COLUMNS if c.key == "mark")
    assert mark.cell({C_MARK: "escalate", C_ALLOWED: True}) == "EA"
    assert mark.cell({C_MARK: "unreviewed", C_ALLOWED: False}) == ""
    assert mark.cell({C_MARK: "benign"}) == "B"


def test_cells_format_ipv6_ports_lists_and_missing_values():
    row = {
        S.C_REMOTE_IP: "2001:db8::1",
        S.C_REMOTE_PORT: 443,
        S.C_DETECTORS: ["a", "b"],
        S.C_SCORE: None,
        S.C_FIRST_SEEN: datetime(2026, 11, 20, 13, 5, 59, tzinfo=UTC),
    }
    cells = {c.key: c.cell(row) for c in COLUMNS}
    assert cells["remote"] == "[2001:db8::1]:443"
    assert cells["detectors"] == "a,b"
    assert cells["score"] == "–"
    assert cells["first"] == "11-20 13:05"
    assert cells["device"] == ""


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.25, "0.25s"),
        (9.999, "10.00s"),
        (42.04, "42.0s"),
        (300, "5m 00s"),
        (302.6, "5m 03s"),
        (7500, "2h 05m"),
        (3 * 86400 + 4 * 3600 + 59, "3d 04h"),
        (None, "–"),
        (float("nan"), "–"),
    ],
)
def test_seconds_read_with_units(seconds, text):
    assert F.seconds(seconds) == text


def test_score_bands_at_their_edges():
    assert [score_band(v) for v in (0.7, 0.69, 0.4, 0.39, None)] == [
        "high",
        "mid",
        "mid",
        "low",
        "low",
    ]
