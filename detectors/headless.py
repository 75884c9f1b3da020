"""The headless pipeline behind ``detect`` and ``eval``: load, detect, allow-list, render."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import polars as pl

from detectors import output, partitioned
from detectors.config import Config, load_config
from detectors.dataset import Dataset
from detectors.engine import RunResult, run_all
from detectors.errors import InputError
from detectors.progress import NULL_PROGRESS, Progress
from detectors.registry import get
from detectors.sanitize import visible


def load(
    paths: Sequence[str],
    config: Config,
    source_format: str | None,
    progress: Progress,
    use_cache: bool = True,
) -> Dataset:
    from detectors.cache import WRITE_LATER, LoadCache
    from detectors.load import load_paths

    # The copy is written once the caller has its answer (``cache.finish_writes``).
    cache = LoadCache(config.cache_settings(), write=WRITE_LATER) if use_cache else None
    return load_paths(
        paths, source_format=source_format, mapping=config.mapping, progress=progress, cache=cache
    )


def apply_allowlist(
    candidates: pl.DataFrame, allowlist_path: str | Path, show_allowed: bool
) -> pl.DataFrame:
    """Hide (or flag) candidates matched by the allow-list file."""
    from detectors.allowlist import AllowList

    allow = AllowList.load(Path(allowlist_path))
    flagged = allow.flag(candidates)
    if show_allowed:
        return flagged
    return flagged.filter(~pl.col("allowed")).drop("allowed", "allowed_by")


def detect(
    paths: Sequence[str],
    *,
    detector_names: Sequence[str] = (),
    config_path: str | None = None,
    allowlist_path: str | None = None,
    show_allowed: bool = False,
    fmt: str = "table",
    explain_rank: int | None = None,
    top: int | None = None,
    source_format: str | None = None,
    progress: Progress = NULL_PROGRESS,
    warn: Callable[[str], None] = lambda line: None,
    use_cache: bool = True,
    engine: str = "local",
    spark_master: str | None = None,
    spark_conf: Sequence[str] = (),
    save_run: str | None = None,
) -> str:
    """Everything ``beacon-triage detect`` does, returning the text to print.

    ``engine="spark"`` runs on Apache Spark (``detectors.run.spark``) at ``spark_master``
    with ``spark_conf`` (``k=v``); ``save_run`` writes the run for ``open`` to triage.
    """
    from detectors import domains, registry

    # Work the files do not need, done while they load.
    domains.prepare_in_background()
    registry.import_in_background()
    config = load_config(config_path)
    if config_path is None and config.path is not None:
        warn(f"using the config {config.path}")  # read without being named: say so
    for name in detector_names:
        get(name)  # unknown names fail before the (maybe long) load
    result: RunResult
    if engine == "spark":
        from detectors.run.spark import detect_spark

        result, dataset = detect_spark(
            paths,
            config,
            detector_names or None,
            source_format,
            progress,
            master=spark_master,
            conf=spark_conf,
        )
        for line in dataset.warnings:
            warn(line)
    elif partitioned.wanted(paths, config):  # bigger than memory: device partitions on disk
        result, dataset = partitioned.detect_partitioned(
            paths, config, detector_names or None, source_format, progress
        )
        for line in dataset.warnings:
            warn(line)
    else:
        dataset = load(paths, config, source_format, progress, use_cache)
        for line in dataset.warnings:
            warn(line)
        result = run_all(dataset, config, detector_names or None, progress)
    for line in result.notes():
        warn(line)
    if save_run:
        from detectors.run.saved import save_run as write_run

        write_run(Path(save_run), result.candidates, dataset, engine=engine)
    candidates = result.candidates
    if len(detector_names) == 1:
        hits = result.per_detector().get(detector_names[0])
        candidates = hits if hits is not None else candidates
    if allowlist_path:
        candidates = apply_allowlist(candidates, allowlist_path, show_allowed)
    if top is not None:
        candidates = candidates.head(top)
    if explain_rank is not None:
        return explain(candidates, explain_rank)
    return output.render(candidates, fmt)


def explain(candidates: pl.DataFrame, rank: int) -> str:
    """The evidence of the candidate at 1-based ``rank`` in the list."""
    if not 1 <= rank <= candidates.height:
        raise InputError(f"--explain {rank}: there are {candidates.height} candidates")
    from detectors import scoring

    row = candidates.row(rank - 1, named=True)
    if hasattr(scoring, "explain"):
        text = str(scoring.explain(row))
    else:
        text = "\n".join(f"{k}: {v}" for k, v in row.items())
    # the explanation quotes telemetry: each line is made inert for the terminal
    return "".join(visible(line, limit=None) + "\n" for line in text.splitlines())


def evaluate_paths(
    paths: Sequence[str], truth_path: str | None, config_path: str | None, progress: Progress
) -> str:
    """``beacon-triage eval``: defaults to the bundled sample data and its ground truth."""
    from detectors import evaluate
    from detectors.sample import SAMPLE_GROUND_TRUTH, sample_dir, sample_paths, sample_zeek_dir

    config = load_config(config_path)
    chosen = list(paths) or [*map(str, sample_paths()), str(sample_zeek_dir())]
    truth_file = Path(truth_path) if truth_path else sample_dir() / SAMPLE_GROUND_TRUTH
    if not truth_file.exists():
        raise InputError("ground truth file not found", file=str(truth_file))
    dataset = load(chosen, config, None, progress)
    truth = pl.read_csv(truth_file)
    return str(evaluate.report(dataset, truth, config, progress))
