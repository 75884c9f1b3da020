"""The headless runs behind ``detect`` and ``eval``: the run loop, curation, text out."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import polars as pl

from detectors.base import domains
from detectors.base.config import Config
from detectors.base.errors import InputError, UsageError
from detectors.base.progress import NULL_PROGRESS, Progress
from detectors.base.sanitize import visible
from detectors.hunts import registry
from detectors.rank import scoring
from detectors.report import output
from detectors.run.loop import Strategy, choose_strategy, run
from detectors.run.memory import InMemory
from detectors.run.setup import load_config

# The allow-list (tomlkit), the ASN lookup and the evaluation are imported where they
# are used: a plain `detect` needs none of them, and every import is start-up time.


def apply_allowlist(
    candidates: pl.DataFrame,
    allowlist_path: str | Path,
    show_allowed: bool,
    mmdb: Path | None = None,
) -> pl.DataFrame:
    """Hide (or, with ``show_allowed``, flag) candidates matched by the allow-list file.

    With a local ``mmdb``, candidates carry their network owner (``asn``, ``org``) first,
    so entries by owner match as they do in the TUI.
    """
    from detectors.curate.allowlist import AllowList
    from detectors.curate.decorate import decorate, hide_allowed
    from detectors.rank.enrichment import GeoLookup, with_asn

    if mmdb is not None:
        candidates = with_asn(candidates, GeoLookup(mmdb))
    flagged = decorate(candidates, AllowList.load(Path(allowlist_path)), None).candidates
    return flagged if show_allowed else hide_allowed(flagged)


def open_allowlist_file(path: str | Path, *, create: bool) -> None:
    """A named allow-list must exist: ``/typo.toml`` read as empty would hide nothing.

    With ``create`` a missing file is started (the new-file comment only).
    """
    from detectors.curate.allowlist import AllowList

    if os.path.lexists(path):
        return
    if not create:
        raise InputError(
            "allow-list file not found (--allowlist-create starts a new one)", file=str(path)
        )
    AllowList.create(path)


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
    recursive: bool = True,
    internal: Sequence[str] = (),
    allowlist_create: bool = False,
) -> str:
    """Everything ``beacon-triage detect`` does, returning the text to print.

    ``engine="spark"`` runs on Apache Spark (``detectors.run.spark``) at ``spark_master``
    with ``spark_conf`` (``k=v``); ``save_run`` writes the run for ``open`` to triage.
    """
    # Work the files do not need, done while they load.
    domains.prepare_in_background()
    registry.import_in_background()
    config = with_internal(load_config(config_path), internal)
    if allowlist_path:  # a typo must not silently hide nothing
        open_allowlist_file(allowlist_path, create=allowlist_create)
    if config_path is None and config.path is not None:
        warn(f"using the config {config.path}")  # read without being named: say so
    for name in detector_names:
        registry.get(name)  # unknown names fail before the (maybe long) load
    strategy: Strategy
    if engine == "spark":
        from detectors.run.spark import SparkStrategy

        strategy = SparkStrategy(paths, source_format, spark_master, tuple(spark_conf))
    else:
        strategy = choose_strategy(paths, config, source_format, use_cache, recursive=recursive)
    result = run(strategy, config, detector_names or None, progress)
    if result.context is not None:
        for line in result.context.warnings:
            warn(line)
    for line in result.notes():
        warn(line)
    if save_run:
        from detectors.run.saved import save_run as write_run

        assert result.context is not None
        write_run(Path(save_run), result.candidates, result.context, engine=engine)
    candidates = result.candidates
    if len(detector_names) == 1:
        hits = result.per_detector().get(detector_names[0])
        candidates = hits if hits is not None else candidates
    if allowlist_path:
        candidates = apply_allowlist(candidates, allowlist_path, show_allowed, config.mmdb)
    if top is not None:
        candidates = candidates.head(top)
    if explain_rank is not None:
        return explain(candidates, explain_rank)
    return output.render(candidates, fmt)


def with_internal(config: Config, internal: Sequence[str]) -> Config:
    """``config`` with ``--internal`` subnets added (checked: a bad CIDR is one line)."""
    if not internal:
        return config
    from dataclasses import replace

    config = replace(config, extra_internal=tuple(internal))
    config.network_settings()
    return config


def explain(candidates: pl.DataFrame, rank: int) -> str:
    """The evidence of the candidate at 1-based ``rank`` in the list."""
    if not 1 <= rank <= candidates.height:
        raise UsageError(f"--explain {rank}: there are {candidates.height} candidates")
    text = scoring.explain(candidates.row(rank - 1, named=True))
    # the explanation quotes telemetry: each line is made inert for the terminal, and
    # cut at 4,096 characters with its real length said (a 10 MB URL is not printed)
    return "".join(visible(line) + "\n" for line in text.splitlines())


def evaluate_paths(
    paths: Sequence[str],
    truth_path: str | None,
    config_path: str | None,
    progress: Progress,
    scenario: str = "office",
    internal: Sequence[str] = (),
) -> str:
    """``beacon-triage eval``: defaults to a bundled sample (``scenario``) and its truth."""
    from detectors.load.sample import SAMPLE_GROUND_TRUTH, scenario_dir, scenario_paths
    from detectors.run import evaluate

    config = with_internal(load_config(config_path), internal)
    chosen = list(paths) or list(map(str, scenario_paths(scenario)))
    truth_file = Path(truth_path) if truth_path else scenario_dir(scenario) / SAMPLE_GROUND_TRUTH
    if not truth_file.exists():
        raise InputError("ground truth file not found", file=str(truth_file))
    context = InMemory(chosen).context(config, progress)
    truth = pl.read_csv(truth_file)
    return str(evaluate.report(context, truth, config, progress))
