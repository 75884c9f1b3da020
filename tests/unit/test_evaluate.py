"""Recall and precision at k, and the evaluation of the shipped sample data."""

from __future__ import annotations

from datetime import datetime, timezone

import polars as pl
import pytest

from detectors.base import schema as S
from detectors.load.sample import SAMPLE_DEVICE_INFO, SAMPLE_EVENTS, SAMPLE_GROUND_TRUTH, sample_dir
from detectors.pairs.context import PairContext
from detectors.run.evaluate import (
    MERGED,
    SOURCE_DEFENDER,
    SOURCE_ZEEK,
    evaluate,
    format_table,
    label_candidates,
    score_ranking,
    split_sources,
)

TRUTH = pl.DataFrame(
    {
        "label": ["beacon", "beacon", "benign_periodic"],
        "name": ["a", "b", "updater"],
        "device": ["ws-1", "ws-2;ws-3", "ws-4"],
        "device_ip": ["10.0.0.1", "10.0.0.2;10.0.0.3", "10.0.0.4"],
        "process": ["x.exe", "y.exe", "u.exe"],
        "remote_ip": ["1.1.1.1", "2.2.2.2", "3.3.3.3"],
        "remote_port": [443, 8443, 443],
        "in_defender": [True, True, True],
        "in_zeek": [True, False, True],
    }
)


def _candidates(rows) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={S.C_DEVICE: pl.String, S.C_REMOTE_IP: pl.String, S.C_REMOTE_PORT: pl.Int32},
        orient="row",
    )


def test_candidates_match_on_device_name_or_address_and_port():
    ranked = _candidates(
        [
            ("ws-1", "1.1.1.1", 443),  # a
            ("10.0.0.3", "2.2.2.2", 8443),  # b, by the device's address
            ("ws-2", "2.2.2.2", 80),  # wrong port: no match
            ("ws-4", "3.3.3.3", None),  # updater, port-less (aggregated)
        ]
    )
    labelled = label_candidates(ranked, TRUTH)
    assert labelled.get_column("_program").to_list() == ["a", "b", None, "updater"]


def test_recall_and_precision_at_k_count_each_program_once():
    ranked = _candidates(
        [
            ("ws-1", "1.1.1.1", 443),  # finding 1: a
            ("ws-1", "1.1.1.1", 443),  # a again: not a new finding
            ("ws-9", "9.9.9.9", 443),  # finding 2: nothing planted
            ("ws-4", "3.3.3.3", 443),  # finding 3: the benign updater
            ("ws-3", "2.2.2.2", 8443),  # finding 4: b
        ]
    )
    s = score_ranking(ranked, TRUTH)
    assert s.k == 2
    assert s.recall_at_k == 0.5  # top 2 findings hold a only
    assert s.precision_at_k == 0.5
    assert s.recall == 1.0
    assert (s.worst_beacon_rank, s.best_benign_rank) == (4, 3)
    assert not s.beacons_above_benign
    assert s.findings == 4


def test_short_list_counts_empty_slots_against_precision_at_k():
    # k = 2 beacons; one correct hit and no second candidate: 1/2 for both.
    s = score_ranking(_candidates([("ws-2", "2.2.2.2", 8443)]), TRUTH)
    assert (s.recall_at_k, s.precision_at_k, s.missed) == (0.5, 0.5, ["a"])
    assert not s.beacons_above_benign  # a is missing


def test_split_sources_separates_zeek_files():
    ts = datetime(2026, 1, 1, tzinfo=timezone.utc)
    rows = pl.DataFrame(
        {
            S.TIMESTAMP: [ts, ts],
            S.DEVICE_NAME: ["ws-1", "10.0.0.1"],
            S.REMOTE_IP: ["1.1.1.1", "1.1.1.1"],
            S.UID: [None, "C1"],
        }
    )
    events = pl.concat(
        [
            S.conform(rows.head(1), "mde.csv").collect(),
            S.conform(rows.tail(1), "conn.log").collect(),
        ]
    )
    parts = split_sources(PairContext(events=events))
    assert parts[SOURCE_DEFENDER].events.get_column(S.SOURCE_FILE).to_list() == ["mde.csv"]
    assert parts[SOURCE_ZEEK].events.get_column(S.SOURCE_FILE).to_list() == ["conn.log"]


def _sample_paths() -> list[str]:
    base = sample_dir()
    paths = [base / SAMPLE_EVENTS, base / SAMPLE_DEVICE_INFO, base / "zeek"]
    return [str(p) for p in paths if p.exists()]


@pytest.fixture(scope="module")
def sample_results() -> pl.DataFrame:
    truth_file = sample_dir() / SAMPLE_GROUND_TRUTH
    if not truth_file.exists() or not (sample_dir() / SAMPLE_EVENTS).exists():
        pytest.skip("the sample data has not been generated")
    from detectors.load import load_paths

    dataset = load_paths(_sample_paths())
    return evaluate(dataset, pl.read_csv(truth_file))


def _rows(results: pl.DataFrame, source: str) -> tuple[dict, list[dict]]:
    block = results.filter(pl.col("source") == source)
    merged = block.filter(pl.col("ranking") == MERGED).row(0, named=True)
    singles = block.filter(pl.col("ranking") != MERGED).to_dicts()
    return merged, singles


def test_sample_defender_every_beacon_ranks_above_every_benign_program(sample_results):
    merged, singles = _rows(sample_results, SOURCE_DEFENDER)
    assert merged["recall"] == 1.0
    assert merged["recall_at_k"] == 1.0
    assert merged["precision_at_k"] == 1.0
    assert merged["beacons_above_benign"]
    best_recall = max(s["recall_at_k"] for s in singles)
    best_precision = max(s["precision_at_k"] for s in singles)
    assert merged["recall_at_k"] > best_recall
    assert merged["precision_at_k"] > best_precision


def test_sample_zeek_merged_list_finds_every_beacon(sample_results):
    if SOURCE_ZEEK not in sample_results.get_column("source").to_list():
        pytest.skip("no Zeek logs in the sample")
    merged, singles = _rows(sample_results, SOURCE_ZEEK)
    assert merged["recall"] == 1.0
    assert merged["recall_at_k"] > max(s["recall_at_k"] for s in singles)
    assert merged["precision_at_k"] > max(s["precision_at_k"] for s in singles)


def test_sample_report_is_a_table(sample_results):
    text = format_table(sample_results)
    assert text.startswith("source: defender")
    assert "merged" in text
