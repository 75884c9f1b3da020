"""The implants scenario: byte-identical regeneration, and the evaluation figures on it."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from detectors.load import load_paths
from detectors.load.sample import IMPLANTS_SCENARIO, scenario_dir, scenario_paths
from detectors.pairs.context import PairContext
from detectors.run.evaluate import MERGED, evaluate_with_ranks, format_ranks
from sample_data.implants_world import FILES, generate_implants

SHIPPED = Path(__file__).parents[2] / "sample_data" / "implants"


def test_regeneration_is_byte_identical_to_the_shipped_files(tmp_path: Path) -> None:
    generate_implants(tmp_path)
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (SHIPPED / name).read_bytes(), name
    assert sum((SHIPPED / name).stat().st_size for name in FILES) < 3_000_000


@pytest.fixture(scope="module")
def evaluation() -> tuple[pl.DataFrame, pl.DataFrame]:
    paths = scenario_paths(IMPLANTS_SCENARIO)
    dataset = PairContext.of(load_paths(paths, cache=False))
    truth = pl.read_csv(scenario_dir(IMPLANTS_SCENARIO) / "ground_truth.csv")
    return evaluate_with_ranks(dataset, truth)


def test_every_planted_shape_ranks_above_every_benign_program(evaluation) -> None:
    results, _ = evaluation
    merged = results.filter(pl.col("ranking") == MERGED)
    assert merged.select(
        "source", "k", "recall_at_k", "recall", "worst_beacon_rank", "best_benign_rank",
        "beacons_above_benign",
    ).rows() == [
        ("defender", 8, 1.0, 1.0, 8, 9, True),
        ("zeek", 9, 1.0, 1.0, 9, 10, True),
    ]  # fmt: skip


def test_each_programs_rank_per_source(evaluation) -> None:
    _, ranks = evaluation
    wide = ranks.pivot(on="source", index="program", values="rank")
    assert wide.rows() == [
        ("cs_jitter30_600s", 2, 2),
        ("cs_jitter50_300s", 3, 1),
        ("burst_10min", 6, 3),
        ("workhours_900s", 4, 7),
        ("fourhourly_c2", 8, 9),
        ("daily_checkin", 7, 8),
        ("dead_c2", 1, 4),
        ("campaign_c2", 5, 6),
        ("telemetry_agent", 10, 10),
        ("google_update", 13, 14),
        ("onedrive_sync", None, 15),  # on every workstation: the prevalence filter
        ("backup_4h", 11, 11),
        ("licence_daily", 12, 12),
        ("ntp_dc", 9, 13),
        ("dns_txt_tunnel", None, 5),  # Defender holds no DNS queries (listed last)
    ]
    text = format_ranks(ranks)
    assert "dns_txt_tunnel     beacon                   -         5" in text
