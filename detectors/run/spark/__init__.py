"""The Spark strategy: the same hunt on Apache Spark, where the data lives.

``detect_spark`` reads the inputs in executors, runs each hunt's per-pair stage per
device group there, and ranks the candidates on the driver (``strategy`` says why
this split keeps the two engines' scores equal). Needs the ``spark`` extra.
"""

from __future__ import annotations

from collections.abc import Sequence

from detectors.config import Config
from detectors.dataset import Dataset
from detectors.engine import RunResult
from detectors.progress import NULL_PROGRESS, Progress


def detect_spark(
    paths: Sequence[str],
    config: Config,
    names: Sequence[str] | None = None,
    source_format: str | None = None,
    progress: Progress = NULL_PROGRESS,
    master: str | None = None,
    conf: Sequence[str] = (),
) -> tuple[RunResult, Dataset]:
    """Run on Spark at ``master`` with ``conf`` (``k=v``); the dataset is the driver's
    slice of events the ranking used (enough to triage and chart the candidates)."""
    from detectors.run.spark.session import parse_conf, spark_session
    from detectors.run.spark.strategy import run_spark

    spark = spark_session(master, parse_conf(conf))
    run = run_spark(spark, [str(p) for p in paths], config, names, source_format, progress)
    return run.result, run.dataset
