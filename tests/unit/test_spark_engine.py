"""The Spark engine against the local one: same canonical events, same candidates.

One ``local[2]`` session for the module (a JVM start costs ~15 s); few, small tests.
Skipped when the ``spark`` extra is not installed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest

pytest.importorskip("pyspark")

from detectors.base import schema as S
from detectors.base.config import Config
from detectors.base.errors import InputError
from detectors.load import _without_duplicates, load_paths
from detectors.load.sample import sample_paths, sample_zeek_dir
from detectors.pairs.context import PairContext
from detectors.pairs.population import INPUT_ROW
from detectors.run.loop import run_all

pytestmark = pytest.mark.spark

DATA = Path(__file__).parent.parent / "data" / "load"


@pytest.fixture(scope="module")
def spark():
    from detectors.run.spark.session import spark_session

    session = spark_session("local[2]", {"spark.ui.showConsoleProgress": "false"})
    yield session
    session.stop()


def _same_columns(spark_events: pl.DataFrame, local_events: pl.DataFrame) -> None:
    assert spark_events.columns == local_events.columns == list(S.EVENT_SCHEMA)
    for name in S.EVENT_SCHEMA:
        got, want = spark_events.get_column(name), local_events.get_column(name)
        assert got.dtype == want.dtype, name
        assert got.equals(want), name


def test_spark_reader_maps_every_format_like_the_local_reader(spark, tmp_path):
    """Defender CSV/JSON Lines/Parquet, DeviceInfo, Zeek TSV and JSON, ECS NDJSON, Windows
    event logs, column by column; stray files are skipped with a warning."""
    from detectors.run.spark.read import collect_events, read_inputs

    parquet = tmp_path / "mde_network.parquet"
    pl.read_csv(DATA / "mde_network.csv", infer_schema=False).write_parquet(parquet)
    paths = [str(DATA), str(parquet)]
    read = read_inputs(spark, paths)
    local = load_paths(paths, cache=False)
    # Spark drops exact repeats later, per device group; the parquet repeats the CSV
    events, repeats = _without_duplicates(collect_events(read.events).drop(INPUT_ROW))
    assert repeats >= 9
    assert f"{repeats} duplicate event rows dropped (identical in every field)" in local.warnings
    _same_columns(events, local.events)
    assert read.names.equals(local.names)
    assert read.app.equals(local.app)
    assert read.device_info is not None and local.device_info is not None
    assert read.device_info.equals(local.device_info)
    assert set(local.files) <= set(read.files)
    per_file = [w for w in local.warnings if w.startswith(str(DATA))]
    assert per_file and set(per_file) <= set(read.warnings)
    # a stray file is named in its own line (the local reader counts them in one)
    assert any(w.startswith(f"{DATA / 'mapped.csv'}: skipped") for w in read.warnings)


def test_spark_reader_fetches_uris_through_spark(spark):
    """A file:// URI goes through Spark's file systems (as s3a:// would), same rows."""
    from detectors.run.spark.read import collect_events, read_inputs

    conn = DATA / "conn.log"
    read = read_inputs(spark, [conn.resolve().as_uri()])
    local = load_paths([conn], cache=False)
    assert [Path(f.removeprefix("file:")) for f in read.files] == [conn.resolve()]
    events, _ = _without_duplicates(collect_events(read.events).drop(INPUT_ROW, S.SOURCE_FILE))
    _same_columns(
        events.with_columns(pl.lit(str(conn)).alias(S.SOURCE_FILE)).select(list(S.EVENT_SCHEMA)),
        local.events,
    )


def test_spark_reader_reports_a_bad_file_in_one_line(spark, tmp_path):
    from detectors.run.spark.read import read_inputs

    bad = tmp_path / "events.csv"
    bad.write_text("Timestamp,DeviceName,RemoteIP\nnot a time,ws-1,8.8.8.8\n", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        read_inputs(spark, [str(bad)])
    with pytest.raises(InputError) as local:
        load_paths([bad], cache=False)
    assert str(caught.value) == str(local.value)
    assert "\n" not in str(caught.value)


def _key(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(*S.CANDIDATE_KEY, S.C_SCORE, "detectors").sort(
        S.CANDIDATE_KEY, nulls_last=True
    )


NETWORK = Path(__file__).parent.parent.parent / "sample_data" / "network"


@pytest.mark.parametrize(
    "paths",
    [
        [str(p) for p in sample_paths()],
        [str(sample_zeek_dir())],
        [str(NETWORK / "defender_network_events.csv"), str(NETWORK / "zeek"), "copy"],
    ],
    ids=["defender", "zeek", "network"],
)
def test_spark_engine_finds_the_candidates_of_the_local_engine(spark, paths, tmp_path):
    """Same keys, same detectors, scores equal to 1e-9, events placed in the network
    (proxies, a monitored sensor host, inbound pairs, the proxy's egress linked) with the
    same notes; on the network sample, with every Zeek connection repeated by a copy of
    conn.log (repeats are dropped as loaded: placed rows, set-aside ones included)."""
    from detectors.run.loop import run
    from detectors.run.spark import SparkStrategy

    network = "copy" in paths
    if network:
        copy = tmp_path / "conn-copy.log.gz"
        shutil.copyfile(NETWORK / "zeek" / "conn.log.gz", copy)
        paths = [p for p in paths if p != "copy"] + [str(copy)]

    config = Config()  # [network] placement on, as by default
    result = run(SparkStrategy(paths, spark=spark), config)
    local = run_all(PairContext.of(load_paths(paths, cache=False)), config)
    notes = local.context.placement_notes
    assert [w for w in result.context.warnings if w in notes] == notes
    assert sorted(result.context.warnings) == sorted(local.context.warnings)
    if network:  # what placement found there: linked egress and repeats
        assert any(w.startswith("2,271 connections from proxy 10.10.0.5") for w in notes)
        repeated = load_paths([paths[-1]], cache=False).events.height  # the copy's events
        assert f"{repeated} duplicate event rows dropped (identical in every field)" in (
            local.context.warnings
        )
    got, want = _key(result.candidates), _key(local.candidates)
    assert got.height == want.height > 10
    assert got.select(S.CANDIDATE_KEY).equals(want.select(S.CANDIDATE_KEY))
    assert got.get_column("detectors").to_list() == want.get_column("detectors").to_list()
    diff = (got.get_column(S.C_SCORE) - want.get_column(S.C_SCORE)).abs().max()
    assert isinstance(diff, float) and diff <= 1e-9
    # and the ranked list itself: order, evidence, names, facts, every other column
    assert result.candidates.drop(S.C_SCORE).equals(local.candidates.drop(S.C_SCORE))
    for name, outcome in local.outcomes.items():
        mine = result.outcomes[name]
        assert (mine.hits is None) == (outcome.hits is None), name
        assert mine.skipped == outcome.skipped, name
        if outcome.hits is not None and mine.hits is not None:
            assert mine.hits.height == outcome.hits.height, name
