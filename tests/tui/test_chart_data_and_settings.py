"""Chart binning, theme colours for plotext, and writing the config TOML."""

from __future__ import annotations

import sys
from datetime import datetime, timezone

import numpy as np
import pytest
from rich.color import Color
from rich.style import Style

from detectors.base.config import Config
from detectors.base.errors import InputError
from tui.chart_data import interval_bins, plot_colour, step_outline, timeline_bins
from tui.settings import parse_toml_value, save_detector_params, save_theme, toml_value

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

UTC = timezone.utc


def test_interval_bins_cut_the_one_percent_tails_and_count_them():
    # 98 intervals of 60 s, one of 1 s, one of 36000 s: the 1st/99th percentiles
    # (linear) are 59.41 and 419.4 -> both outliers fall outside, 98 stay.
    deltas = np.array([60.0] * 98 + [1.0, 36000.0])
    bins = interval_bins(deltas, 10)
    assert bins.low == pytest.approx(59.41)
    assert bins.high == pytest.approx(419.4)
    assert bins.hidden == 2
    assert int(bins.counts.sum()) == 98
    assert bins.bin_of(60.0) == 0


def test_a_perfect_beacon_gets_one_centred_bar():
    bins = interval_bins(np.array([300.0] * 50), 5)
    # margin = 5% of 300 = 15 s on each side: range 285..315, the middle bin holds all.
    assert (bins.low, bins.high) == (285.0, 315.0)
    assert bins.counts.tolist() == [0, 0, 50, 0, 0]


def test_timeline_bins_span_the_whole_data_window():
    start = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
    end = datetime(2026, 11, 21, 0, 0, tzinfo=UTC)
    times = np.array(["2026-11-20T00:30", "2026-11-20T01:10", "2026-11-20T23:59"], "datetime64[us]")
    bins = timeline_bins(times, start, end, 24)  # one bar per hour
    assert bins.high == 24.0
    assert bins.counts[0] == 1 and bins.counts[1] == 1 and bins.counts[23] == 1
    assert int(bins.counts.sum()) == 3


def test_step_outline_draws_each_bin_as_a_flat_top():
    bins = interval_bins(np.array([1.0, 1.0, 3.0]), 2)
    xs, ys = step_outline(bins)
    assert len(xs) == len(ys) == 4
    assert ys == [2.0, 2.0, 1.0, 1.0]


def test_plot_colours_keep_ansi_numbers_and_turn_truecolor_into_rgb():
    assert plot_colour(Style(color=Color.parse("yellow"))) == 3
    assert plot_colour(Style(color=Color.parse("#f0a030"))) == (240, 160, 48)
    assert plot_colour(Style()) == "default"


def test_save_theme_keeps_comments_and_leaves_a_backup(tmp_path):
    path = tmp_path / "config.toml"
    original = '# mine\nmmdb = "/data/asn.mmdb"  # offline\n'
    path.write_text(original, encoding="utf-8")
    config = Config(path=path)
    save_theme(config, "beacon-ansi")
    text = path.read_text(encoding="utf-8")
    assert text == original + 'theme = "beacon-ansi"\n'
    assert (tmp_path / "config.toml.bak").read_text(encoding="utf-8") == original
    assert config.theme == "beacon-ansi"


def test_saving_defaults_removes_a_detectors_table(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(
        '[detectors.a]\nx = 1  # tuned\n\n[detectors.b]\ny = ["p", "q"]\n', encoding="utf-8"
    )
    config = Config(path=path, detectors={"a": {"x": 1}, "b": {"y": ["p", "q"]}})
    save_detector_params(config, {"a": {}, "b": {"y": ("r",)}})
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    assert data == {"detectors": {"b": {"y": ["r"]}}}
    assert config.detectors == {"b": {"y": ("r",)}}


def test_parameter_values_round_trip_as_toml():
    assert toml_value(("ConnectionSuccess", "ConnectionRequest")) == (
        '["ConnectionSuccess", "ConnectionRequest"]'
    )
    assert toml_value(0.5) == "0.5" and toml_value(None) == ""
    assert parse_toml_value('["a", "b"]', "k") == ["a", "b"]
    assert parse_toml_value("30", "k") == 30
    assert parse_toml_value("uniform", "k") == "uniform"  # a bare word is text
    with pytest.raises(InputError, match=r"k: '\[1,' is not a TOML value"):
        parse_toml_value("[1,", "k")
