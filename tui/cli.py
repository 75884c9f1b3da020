"""The ``beacon-triage`` command: open the TUI, or run the engine headless.

``beacon-triage [PATH...]`` opens the TUI (the bundled sample data when no path is
given). ``detect``, ``detectors``, ``eval`` and ``allowlist`` never import Textual.
Exit codes: 0 ok, 1 bad input (one line on stderr, no traceback), 2 usage error,
130 interrupted.
"""

from __future__ import annotations

import atexit
import contextlib
import difflib
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from detectors.base.errors import InputError, UsageError
from detectors.base.progress import Progress
from detectors.base.sanitize import visible
from tui.cli_allowlist import allowlist

if TYPE_CHECKING:
    from detectors.base.config import Config
    from detectors.run.saved import SavedRun
    from tui.pipeline import Loader

SUBCOMMANDS = {"detect", "detectors", "eval", "allowlist", "open"}
# Headless runs that end the process as soon as their answer is out (see ``_end_now``).
ENDS_NOW = {"detect", "eval"}


class StderrProgress:
    """Progress as short lines on stderr: one per stage, so logs and pipes stay readable."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.last: tuple[str, str] | None = None

    def __call__(self, stage: str, fraction: float, message: str) -> None:
        if self.quiet:
            return
        key = (stage, message)
        if key != self.last:
            self.last = key
            click.echo(f"[{stage} {fraction:4.0%}] {visible(message)}", err=True)


def _say(level: str, text: object) -> None:
    """One line on stderr; file names and messages may quote telemetry, so made inert."""
    click.echo(f"beacon-triage: {level}: {visible(text)}", err=True)


def _fail(exc: InputError) -> NoReturn:
    _say("error", exc)
    sys.exit(2 if isinstance(exc, UsageError) else 1)


def _known_format(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return value
    from detectors.load import SOURCE_FORMATS

    if value not in SOURCE_FORMATS:
        close = difflib.get_close_matches(value, SOURCE_FORMATS, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise click.BadParameter(
            f"unknown format '{visible(value)}'{hint}; one of: {', '.join(SOURCE_FORMATS)}"
        )
    return value


source_format_option = click.option(
    "--source-format",
    default=None,
    callback=_known_format,
    help="Skip format detection: mde-csv, mde-json, mde-jsonl, mde-parquet, deviceinfo, "
    "zeek-tsv, zeek-json, ecs, csv-mapped.",
)
config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), help="Config TOML."
)
allowlist_option = click.option(
    "--allowlist",
    "allowlist_path",
    type=click.Path(dir_okay=False),
    help="Allow-list TOML (must exist, unless --allowlist-create).",
)
allowlist_create_option = click.option(
    "--allowlist-create",
    is_flag=True,
    help="Start the --allowlist file if it does not exist (else a missing file is an error).",
)
no_recursive_option = click.option(
    "--no-recursive",
    is_flag=True,
    help="Read only the files directly inside a folder, not its sub-folders.",
)
internal_option = click.option(
    "--internal",
    "internal",
    multiple=True,
    metavar="CIDR",
    help="Another subnet of ours, added to [network] internal (repeatable).",
)
no_cache_option = click.option(
    "--no-cache",
    is_flag=True,
    help="Parse CSV/JSON inputs afresh: neither read nor write the parsed-copy cache.",
)
engine_option = click.option(
    "--engine",
    type=click.Choice(["local", "spark"]),
    default="local",
    show_default=True,
    help="local: this machine (in memory, or partitioned on disk when big); "
    "spark: Apache Spark (pip install 'beacon-triage[spark]', Java 17+).",
)
spark_master_option = click.option(
    "--spark-master",
    default=None,
    help="Spark master URL (local[N], spark://host:7077, yarn, k8s://...); default local[2].",
)
spark_conf_option = click.option(
    "--spark-conf",
    multiple=True,
    metavar="KEY=VALUE",
    help="A Spark setting, e.g. spark.executor.memory=4g (repeatable).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="beacon-triage")
def cli() -> None:
    """Hunt command-and-control beacons in network telemetry, offline.

    Run with file paths (or none, for the bundled sample data) to open the TUI.
    """


@cli.command("open")
@click.argument("paths", nargs=-1)
@config_option
@allowlist_option
@allowlist_create_option
@source_format_option
@no_cache_option
@engine_option
@spark_master_option
@spark_conf_option
def open_command(
    paths: tuple[str, ...],
    config_path: str | None,
    allowlist_path: str | None,
    allowlist_create: bool,
    source_format: str | None,
    no_cache: bool,
    engine: str,
    spark_master: str | None,
    spark_conf: tuple[str, ...],
) -> None:
    """Open the triage TUI on PATHS (default: the bundled sample data), or on one folder
    written by `detect --save-run` (offline: its candidates, charts from its events).

    With --engine spark the hunt runs on Spark (PATHS may be URIs Spark reads), its
    progress on the status line; the candidates are then triaged as a saved run's.
    """
    # Only what this open needs is imported here: the rest of the engine (polars, the
    # hunts) is imported by the TUI's load worker, after the first screen is drawn.
    from detectors.run.setup import load_config

    saved = None
    loader = None
    try:
        config = load_config(config_path)
        if allowlist_path:
            from detectors.run.headless import open_allowlist_file

            open_allowlist_file(allowlist_path, create=allowlist_create)
        if len(paths) == 1 and Path(paths[0]).is_dir():
            from detectors.run.saved import is_saved_run, load_run

            if is_saved_run(paths[0]):
                if engine == "spark":
                    raise UsageError("--engine spark: a saved run opens without an engine")
                saved = load_run(paths[0])
                saved.info["folder"] = paths[0]
        if saved is None and engine == "spark":
            saved, loader, paths = _spark_run(config, paths, spark_master, spark_conf)
    except InputError as exc:
        _fail(exc)
    from tui.app import run_app  # Textual is imported only when a screen is wanted

    run_app(
        [] if saved is not None and loader is None else list(paths),
        config=config,
        allowlist_path=Path(allowlist_path) if allowlist_path else None,
        source_format=source_format,
        saved=saved,
        use_cache=not no_cache,
        loader=loader,
    )


def _spark_run(
    config: Config, paths: tuple[str, ...], master: str | None, conf: tuple[str, ...]
) -> tuple[SavedRun, Loader, tuple[str, ...]]:
    """The TUI's loader for a Spark run (``tui.pipeline.EngineRun``), what it fills, and
    the paths (the bundled sample when none). The JVM's output goes to a log file."""
    import tempfile

    from detectors.load.sample import sample_paths
    from detectors.run.spark.session import parse_conf
    from tui.pipeline import EngineRun, spark_strategy

    parse_conf(conf)  # a malformed setting is a usage error before the screen opens
    handle, log = tempfile.mkstemp(prefix="beacon-triage-spark-", suffix=".log")
    os.close(handle)
    engine_run = EngineRun(config, spark_strategy(master, conf, log))
    return engine_run.saved, engine_run, paths or tuple(str(p) for p in sample_paths())


def _known_detectors(
    ctx: click.Context, param: click.Parameter, names: tuple[str, ...]
) -> tuple[str, ...]:
    if not names:  # nothing to check: the detectors are imported while files load
        return names
    from detectors.hunts.registry import all_detectors

    known = all_detectors()
    for name in names:
        if name not in known:
            raise click.BadParameter(f"unknown detector '{name}' (known: {', '.join(known)})")
    return names


@cli.command("detect")
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--detector",
    "detector_names",
    multiple=True,
    callback=_known_detectors,
    help="Run only this detector (repeatable).",
)
@config_option
@allowlist_option
@allowlist_create_option
@click.option("--show-allowed", is_flag=True, help="Keep allow-listed candidates, flagged.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json", "jsonl"]),
    default="table",
    show_default=True,
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False),
    help="Write here (atomically; a regular file in an existing folder, never a device).",
)
@click.option(
    "--explain",
    "explain_rank",
    type=click.IntRange(min=1),
    help="Print the evidence of candidate N (fields cut at 4,096 characters).",
)
@click.option("--top", type=click.IntRange(min=1), help="Only the N best candidates.")
@click.option("--quiet", is_flag=True, help="No progress on stderr.")
@source_format_option
@no_cache_option
@engine_option
@spark_master_option
@spark_conf_option
@click.option(
    "--save-run",
    type=click.Path(file_okay=False),
    help="Also write the candidates and their connections here, for `open DIR` offline.",
)
@no_recursive_option
@internal_option
def detect_command(
    paths: tuple[str, ...],
    detector_names: tuple[str, ...],
    config_path: str | None,
    allowlist_path: str | None,
    allowlist_create: bool,
    show_allowed: bool,
    fmt: str,
    output: str | None,
    explain_rank: int | None,
    top: int | None,
    quiet: bool,
    source_format: str | None,
    no_cache: bool,
    engine: str,
    spark_master: str | None,
    spark_conf: tuple[str, ...],
    save_run: str | None,
    no_recursive: bool,
    internal: tuple[str, ...],
) -> None:
    """Run detectors on PATHS and print the ranked candidates.

    With --engine spark, PATHS may also be URIs Spark reads (s3a://, abfss://, hdfs://,
    file://); Spark's stage progress is shown on stderr.
    """
    from detectors.run.headless import detect

    progress = Progress(StderrProgress(quiet))
    try:
        text = detect(
            paths,
            detector_names=detector_names,
            config_path=config_path,
            allowlist_path=allowlist_path,
            show_allowed=show_allowed,
            fmt=fmt,
            explain_rank=explain_rank,
            top=top,
            source_format=source_format,
            progress=progress,
            warn=lambda line: _say("warning", line),
            use_cache=not no_cache,
            engine=engine,
            spark_master=spark_master,
            spark_conf=spark_conf,
            save_run=save_run,
            recursive=not no_recursive,
            internal=internal,
            allowlist_create=allowlist_create,
        )
        if output:
            from detectors.base.atomic import safe_write_text

            safe_write_text(output, text)  # refuses devices, FIFOs, read-only files
    except InputError as exc:
        _fail(exc)
    if not output:
        click.echo(text, nl=False)
    from detectors.load.cache import finish_writes

    finish_writes()  # the answer is out: now the copy of the input for the next run


@cli.command("detectors")
def detectors_command() -> None:
    """List the detectors with their parameters and defaults."""
    from detectors.hunts.registry import all_detectors, param_docs

    for name, spec in all_detectors().items():
        click.echo(f"{name}: {spec.summary}")
        for param, default, doc in param_docs(spec.params_type):
            click.echo(f"    {param} = {default!r}")
            if doc:
                click.echo(f"        {doc}")
        click.echo()


@cli.command("eval")
@click.argument("paths", nargs=-1)
@click.option("--truth", "truth_path", type=click.Path(dir_okay=False), help="Ground-truth CSV.")
@click.option(
    "--scenario",
    type=click.Choice(["office", "network", "implants"]),
    default="office",
    show_default=True,
    help="Which bundled sample to score when no PATHS are given.",
)
@config_option
@internal_option
@click.option("--quiet", is_flag=True, help="No progress on stderr.")
def eval_command(
    paths: tuple[str, ...],
    truth_path: str | None,
    scenario: str,
    config_path: str | None,
    internal: tuple[str, ...],
    quiet: bool,
) -> None:
    """Recall and precision of each detector and of the merged list on labelled data."""
    from detectors.run.headless import evaluate_paths

    try:
        text = evaluate_paths(
            paths,
            truth_path,
            config_path,
            Progress(StderrProgress(quiet)),
            scenario=scenario,
            internal=internal,
        )
    except InputError as exc:
        _fail(exc)
    # the report names files and programs: inert for the terminal, line by line
    click.echo("".join(visible(line, limit=None) + "\n" for line in text.splitlines()), nl=False)
    from detectors.load.cache import finish_writes

    finish_writes()


cli.add_command(allowlist)


def _end_now(code: int) -> NoReturn:
    """End the process without the interpreter's teardown, once the answer is out.

    Tearing down polars, numpy and pyarrow module by module costs ~0.1 s of CPU after a
    ``detect`` has printed everything (a tenth of a small run). What a normal exit does
    that matters is done here, in its order: the output is flushed, threads that are
    not daemons are waited for, the ``atexit`` hooks run (temporary folders, logging).
    Output that cannot be flushed (a closed pipe) takes the normal exit, which reports it.
    """
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        sys.exit(code)
    try:
        # What the interpreter's own exit does first: idle workers of a thread pool
        # left open are told to stop (joining them alone would wait for ever), then
        # every thread that is not a daemon is waited for.
        threading._shutdown()  # type: ignore[attr-defined]
        atexit._run_exitfuncs()
    except KeyboardInterrupt:  # ctrl+c while waiting: as anywhere else in a run
        with contextlib.suppress(OSError):
            sys.stderr.write("beacon-triage: interrupted\n")
            sys.stderr.flush()
        os._exit(130)
    with contextlib.suppress(OSError):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: paths without a subcommand mean ``open``.

    Without ``argv`` (the console script, ``python -m tui.cli``) this is the whole
    process, and a successful ``detect`` or ``eval`` ends it at once (``_end_now``);
    a caller passing ``argv`` gets ``SystemExit`` as usual.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in args if not a.startswith("-")), None)
    wants_help = any(a in ("-h", "--help", "--version") for a in args) and first is None
    if not wants_help and (first is None or first not in SUBCOMMANDS):
        args = ["open", *args]
    try:
        code = cli.main(args=args, prog_name="beacon-triage", standalone_mode=False)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.ClickException as exc:
        exc.message = visible(exc.message, limit=None)  # type: ignore[misc]  # quotes input
        exc.show()
        code = exc.exit_code
    except BrokenPipeError:  # `detect ... | head`: the reader left; not an input error
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 141
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("beacon-triage: interrupted", err=True)
        code = 130
    except OSError as exc:  # e.g. a full disk behind stdout: one line, never a traceback
        where = "standard output" if exc.filename is None else os.fsdecode(exc.filename)
        with contextlib.suppress(OSError):
            _say("error", f"{where}: {exc.strerror or exc}")
        code = 1
    code = code if isinstance(code, int) else 0
    if argv is None and code == 0 and first in ENDS_NOW and not _observed():
        _end_now(code)
    sys.exit(code)


def _observed() -> bool:
    """A profiler, tracer or coverage tool is watching: they report after the program
    returns (pyinstrument, cProfile), so the process must end the usual way."""
    if sys.getprofile() is not None or sys.gettrace() is not None:
        return True
    monitoring = getattr(sys, "monitoring", None)  # Python 3.12+: cProfile, coverage
    return monitoring is not None and any(monitoring.get_tool(i) for i in range(6))


if __name__ == "__main__":
    main()
