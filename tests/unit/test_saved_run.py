"""A run saved for offline triage: what is written, what is read back, what is refused."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import polars as pl
import pytest

from detectors.base import schema as S
from detectors.base.errors import InputError
from detectors.pairs.context import PairContext
from detectors.run.saved import MARKER, is_saved_run, load_run, save_run

START = datetime(2026, 11, 20, tzinfo=timezone.utc)


def _events() -> pl.DataFrame:
    rows = [("ws-a", "1.1.1.1")] * 3 + [("ws-a", "2.2.2.2")] * 2 + [("ws-b", "1.1.1.1")] * 4
    frame = pl.DataFrame(
        {
            S.TIMESTAMP: [START + timedelta(minutes=i) for i in range(len(rows))],
            S.DEVICE_NAME: [d for d, _ in rows],
            S.REMOTE_IP: [ip for _, ip in rows],
            S.UID: [f"C{i}" for i in range(len(rows))],
        }
    )
    return S.conform(frame, "events.csv").collect()


def _candidates() -> pl.DataFrame:
    return pl.DataFrame(
        {
            S.C_DEVICE: ["ws-a"],
            S.C_PROCESS: [None],
            S.C_REMOTE_IP: ["1.1.1.1"],
            S.C_REMOTE_PORT: [443],
            S.C_SCORE: [0.75],
        },
        schema_overrides={S.C_PROCESS: pl.String, S.C_REMOTE_PORT: pl.Int32},
    )


def test_saved_run_keeps_the_candidates_and_only_their_pairs_events(tmp_path):
    app = pl.DataFrame(
        {name: [None, None] for name in S.APP_SCHEMA}, schema=S.APP_SCHEMA
    ).with_columns(pl.Series(S.APP_UID, ["C0", "C5"]), pl.lit("ssl").alias(S.APP_KIND))
    dataset = PairContext(events=_events(), app=app, files=["events.csv"])
    save_run(tmp_path / "run", _candidates(), dataset, engine="spark")
    assert is_saved_run(tmp_path / "run")
    saved = load_run(tmp_path / "run")
    assert saved.candidates.equals(_candidates())
    # ws-a -> 1.1.1.1 only: rows 0, 1, 2 (not ws-a -> 2.2.2.2, not ws-b -> 1.1.1.1)
    assert saved.dataset.events.get_column(S.UID).to_list() == ["C0", "C1", "C2"]
    assert saved.dataset.events.schema == pl.Schema(S.EVENT_SCHEMA)
    assert saved.dataset.app.get_column(S.APP_UID).to_list() == ["C0"]  # C5 is ws-b's
    assert saved.dataset.files == ["events.csv"]
    assert saved.info["engine"] == "spark" and saved.info["events"] == 3


def test_a_folder_without_a_run_is_refused_in_one_line(tmp_path):
    assert not is_saved_run(tmp_path)
    with pytest.raises(InputError) as caught:
        load_run(tmp_path)
    assert str(caught.value).startswith(f"{tmp_path}: not a saved run ({MARKER}:")
    (tmp_path / MARKER).write_text('{"format": "something-else"}', encoding="utf-8")
    with pytest.raises(InputError, match="has another format"):
        load_run(tmp_path)


def test_a_damaged_run_is_refused_in_one_line(tmp_path):
    save_run(tmp_path, _candidates(), PairContext(events=_events()), engine="local")
    (tmp_path / "events.parquet").write_bytes(b"not parquet")
    with pytest.raises(InputError) as caught:
        load_run(tmp_path)
    assert "damaged saved run" in str(caught.value)
    assert "\n" not in str(caught.value)
