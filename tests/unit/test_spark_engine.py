"""The Spark engine against the local one: same canonical events, same candidates.

One ``local[2]`` session for the module (a JVM start costs ~15 s); few, small tests.
Skipped when the ``spark`` extra is not installed.
"""

from __future__ import annotations

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


@pytest.mark.parametrize(
    ("paths", "split"),
    [([str(p) for p in sample_paths()], "1m"), ([str(sample_zeek_dir())], None)],
    ids=["defender-in-pieces", "zeek"],
)
def test_spark_engine_finds_the_candidates_of_the_local_engine(spark, paths, split):
    """Same keys, same detectors, scores equal to 1e-9, on the bundled sample (the
    Defender export read in 1 MiB pieces: 4 tasks for its 3.6 MB)."""
    from detectors.run.loop import run
    from detectors.run.spark import SparkStrategy
    from detectors.run.spark.split import SPLIT_CONF

    config = Config(network={"enabled": False})  # placing needs every event: not on Spark yet
    before = spark.conf.get(SPLIT_CONF)
    spark.conf.set(SPLIT_CONF, split or before)
    try:
        strategy = SparkStrategy(paths, spark=spark)
        result = run(strategy, config)
    finally:
        spark.conf.set(SPLIT_CONF, before)
    assert strategy.source is not None
    assert strategy.source.tasks == (5 if split else len(strategy.source.files))
    local = run_all(PairContext.of(load_paths(paths, cache=False)), config)
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


def _large_inputs(folder: Path) -> list[Path]:
    """Text and Parquet inputs to cut: a Defender CSV whose quoted fields hold newlines,
    the same rows as JSON Lines and Parquet (row groups of 15), a Zeek TSV whose
    ``#fields`` change half way, a Zeek dns.log (names), Zeek JSON and ECS NDJSON."""
    import gzip

    from detectors.load.sample import sample_zeek_dir

    lines = sample_paths()[0].read_text(encoding="utf-8").splitlines(keepends=True)
    quoted = '{""uniqueEventsAggregated""'
    csv = "".join(lines[:151]).replace(quoted, '{\n""uniqueEventsAggregated""')
    assert csv.count('{\n""') > 10
    (folder / "mde.csv").write_text(csv, encoding="utf-8")
    frame = pl.read_csv(folder / "mde.csv", infer_schema=False)
    frame.head(60).write_ndjson(folder / "mde.jsonl")
    frame.write_parquet(folder / "mde.parquet", row_group_size=15)
    conn = gzip.decompress((sample_zeek_dir() / "conn.log.gz").read_bytes()).decode()
    zeek = conn.splitlines(keepends=True)
    head, records = zeek[:8], zeek[8:308]
    wider = [
        line.rstrip("\n") + "\textra\n" if line.startswith(("#fields", "#types")) else line
        for line in head
    ]
    changed = [r.rstrip("\n") + "\tX\n" for r in records[150:]]
    text = "".join([*head, *records[:150], "#close\t2026-11-18-01-00-00\n", *wider, *changed])
    (folder / "conn.log").write_text(text, encoding="utf-8")
    dns = (sample_zeek_dir() / "dns.log").read_text(encoding="utf-8").splitlines(keepends=True)
    (folder / "dns.log").write_text("".join(dns[:158]), encoding="utf-8")
    (folder / "conn.json").write_text((DATA / "conn.json").read_text() * 60, encoding="utf-8")
    (folder / "ecs.ndjson").write_text((DATA / "ecs_nested.ndjson").read_text() * 60, "utf-8")
    return sorted(folder.iterdir())


def test_a_large_file_read_in_pieces_gives_what_the_whole_file_gives(spark, tmp_path):
    """Every cuttable format, each file in 3+ pieces: the canonical events of the local
    reader on the whole file, numbered as a whole file's (file << 40 | row), and the
    same side tables and warnings."""
    from detectors.load import format_of, load_file
    from detectors.run.spark.read import FILE_BITS, collect_events, read_inputs
    from detectors.run.spark.split import pieces

    paths = _large_inputs(tmp_path)
    split = 12_000
    for path in paths:
        assert len(pieces(path, format_of(path), split)[0]) >= 3, path.name
    cut = read_inputs(spark, [str(p) for p in paths], split_bytes=split)
    assert cut.tasks >= 3 * len(paths)
    whole = [load_file(p) for p in paths]
    want = pl.concat(
        [
            w.events.with_columns(
                (pl.int_range(pl.len(), dtype=pl.Int64) + (n << FILE_BITS)).alias(INPUT_ROW)
            )
            for n, w in enumerate(whole)
            if w.events is not None
        ]
    )
    got = collect_events(cut.events)
    assert got.height == want.height > 600
    _same_columns(got.drop(INPUT_ROW), want.drop(INPUT_ROW))
    assert got.get_column(INPUT_ROW).equals(want.get_column(INPUT_ROW))  # same order keys
    names = [w.names for w in whole if w.names is not None and w.names.height]
    assert len(names) == 1 and cut.names.height > 0
    assert cut.names.equals(names[0].unique(maintain_order=True))
    assert cut.files == [str(p) for p in paths]
    assert cut.warnings == [
        f"{p}: {x}" for p, w in zip(paths, whole, strict=True) for x in w.warnings
    ]


def test_object_store_uris_go_to_spark_untouched(spark, tmp_path, monkeypatch):
    """s3a://, abfss:// are never looked up on the local disk; a scheme this Spark has no
    file system for is one line naming the URI and the package to add (no network)."""
    from detectors.run.spark import read
    from detectors.run.spark.read import read_inputs

    hadoop = spark.sparkContext._jvm.org.apache.hadoop.util.VersionInfo.getVersion()
    local = tmp_path / "conn.log"
    local.write_bytes((DATA / "conn.log").read_bytes())
    monkeypatch.chdir(tmp_path)  # a local folder spelled like the URI must not be read
    lookalike = tmp_path / "s3a:" / "lake" / "zeek" / "2026" / "11" / "20"
    lookalike.mkdir(parents=True)
    (lookalike / "conn.log").write_bytes(local.read_bytes())
    asked: list[list[str]] = []
    checked = read.check_schemes

    def check(session, uris):
        asked.append(list(uris))
        checked(session, uris)

    monkeypatch.setattr(read, "check_schemes", check)
    uri = "s3a://lake/zeek/2026/11/20/"
    with pytest.raises(InputError) as caught:
        read_inputs(spark, [str(local), uri, "abfss://c@acct.dfs.core.windows.net/x"])
    assert asked == [[uri, "abfss://c@acct.dfs.core.windows.net/x"]]
    assert str(caught.value) == (
        f"{uri}: Spark has no filesystem for scheme s3a "
        f"(add org.apache.hadoop:hadoop-aws:{hadoop} to --spark-conf spark.jars.packages)"
    )
    with pytest.raises(
        InputError,
        match=r"^abfss://c@acct\.dfs\.core\.windows\.net/x: Spark has "
        r"no filesystem for scheme abfss \(add org\.apache\.hadoop:hadoop-azure:",
    ):
        read_inputs(spark, ["abfss://c@acct.dfs.core.windows.net/x"])
    missing = (tmp_path / "gone").as_uri()
    with pytest.raises(InputError) as gone:
        read_inputs(spark, [missing])
    assert str(gone.value) == f"{missing.replace('file:///', 'file:/')}: no such file or folder"


def test_spark_stage_progress_reaches_the_progress_object_and_cancels_jobs(spark):
    """What the console bars show, as Progress reports (the TUI's load line); a
    cancelled Progress cancels the running job instead of waiting for it."""
    import time

    from detectors.base.progress import Progress
    from detectors.run.spark.session import stage_progress

    heard: list[tuple[str, float, str]] = []
    progress = Progress(lambda stage, fraction, text: heard.append((stage, fraction, text)))
    tasks = spark.sparkContext.parallelize(range(4), 4)
    with stage_progress(spark, progress, every=0.05):
        assert tasks.map(lambda x: time.sleep(0.4) or x).sum() == 6
    assert heard and all(stage == "spark" for stage, _, _ in heard)
    assert all(text.startswith("stage ") and text.endswith("/4 tasks") for _, _, text in heard)
    progress.cancel()
    began = time.monotonic()
    with pytest.raises(Exception, match="cancel"), stage_progress(spark, progress, every=0.05):
        tasks.map(lambda x: time.sleep(30) or x).sum()
    assert time.monotonic() - began < 20


def test_an_error_in_a_piece_names_the_line_of_the_whole_file(spark, tmp_path):
    """A bad row in the last of four pieces: the same one line as the local reader's,
    line 251 of the file (not of the piece); in a listed folder the file is skipped
    whole, none of its other pieces' events kept."""
    from detectors.run.spark.read import read_inputs

    lines = sample_paths()[0].read_text(encoding="utf-8").splitlines(keepends=True)[:301]
    lines[250] = "not a time" + lines[250][lines[250].index(",") :]
    folder = tmp_path / "in"
    folder.mkdir()
    bad = folder / "events.csv"
    bad.write_text("".join(lines), encoding="utf-8")
    split = bad.stat().st_size // 4 + 1
    with pytest.raises(InputError) as caught:
        read_inputs(spark, [str(bad)], split_bytes=split)
    with pytest.raises(InputError) as local:
        load_paths([bad], cache=False)
    assert str(caught.value) == str(local.value)
    assert str(local.value).startswith(f"{bad}: line 251, field Timestamp:")
    (folder / "conn.log").write_bytes((DATA / "conn.log").read_bytes())
    read = read_inputs(spark, [str(folder)], split_bytes=split)
    assert read.tasks == 5 and read.files == [str(folder / "conn.log")]
    assert read.events.count() == load_paths([folder / "conn.log"], cache=False).events.height
    assert any(w.startswith(f"{bad}: skipped: ") for w in read.warnings)
