"""One SparkSession for a run, configured so executors run this project's Python.

Python workers must use the driver's interpreter (``PYSPARK_PYTHON``): another one
cannot import polars or this package. Timestamps travel as UTC microseconds, so the
session time zone is pinned to UTC whatever the machine's is.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from detectors.base.errors import InputError
from detectors.base.progress import Progress

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

DEFAULT_MASTER = "local[2]"

# Settings every run needs; the user's --spark-conf may override the rest.
_FIXED = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}
_DEFAULTS = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "true",  # stage progress bars on stderr
    "spark.sql.shuffle.partitions": "8",
    "spark.driver.memory": "2g",  # in local[N] the executors share it (1g failed at 1M)
}


def parse_conf(pairs: Sequence[str]) -> dict[str, str]:
    """``k=v`` strings (``--spark-conf``) as a dict; a malformed one names itself."""
    conf: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--spark-conf {pair!r}: expected key=value")
        conf[key.strip()] = value
    return conf


def spark_session(
    master: str | None = None, conf: dict[str, str] | None = None, log: str | None = None
) -> SparkSession:
    """The session for ``master`` (default ``local[2]``), created or reused.

    ``log``: a file for the JVM's own output (its banner, warnings, console progress
    bars), which otherwise goes to this process's stderr: where a full-screen terminal
    UI draws. Only a session started here is affected.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise InputError(
            "the Spark engine needs the spark extra: pip install 'beacon-triage[spark]'"
        ) from None
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.master(master or DEFAULT_MASTER).appName("beacon-triage")
    settings = {**_DEFAULTS, **(conf or {}), **_FIXED}
    for key, value in settings.items():
        builder = builder.config(key, value)
    try:
        if log is not None:
            _start_logged(master or DEFAULT_MASTER, settings, log)
        session = builder.getOrCreate()
    except Exception as exc:  # no Java, a bad master URL: one line, not a JVM trace
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot start Spark ({master or DEFAULT_MASTER}): {first}") from None
    session.sparkContext.setLogLevel("ERROR")
    return session


def _start_logged(master: str, settings: dict[str, str], log: str) -> None:
    """Start the JVM with its stdout and stderr in ``log`` (unless one runs already)."""
    from pyspark import SparkConf, SparkContext
    from pyspark.java_gateway import launch_gateway

    if SparkContext._active_spark_context is not None:
        return
    conf = SparkConf().setMaster(master).setAppName("beacon-triage").setAll(list(settings.items()))
    with open(log, "ab") as handle:  # the JVM keeps its own copy of the descriptor
        gateway = launch_gateway(conf, popen_kwargs={"stdout": handle, "stderr": handle})
    SparkContext(conf=conf, gateway=gateway)


@contextmanager
def stage_progress(session: SparkSession, progress: Progress, every: float = 0.5) -> Iterator[None]:
    """What Spark's console progress bars show (tasks done of the active stages) as
    ``progress`` reports, from a thread polling the status tracker every ``every``
    seconds while the block runs. A cancelled ``progress`` cancels Spark's jobs, so a
    run stops without waiting for a long stage to end."""
    context = session.sparkContext
    tracker = context.statusTracker()
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(every):
            if progress.cancel_event.is_set():  # and each job started after it
                context.cancelAllJobs()
                continue
            with contextlib.suppress(Exception):  # a stage may end between the calls
                _report_stages(tracker, progress)

    thread = threading.Thread(target=poll, name="spark-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _report_stages(tracker: Any, progress: Progress) -> None:
    infos = [tracker.getStageInfo(i) for i in tracker.getActiveStageIds()]
    stages: list[Any] = [s for s in infos if s is not None]
    if not stages:
        return
    done = sum(int(s.numCompletedTasks) for s in stages)
    total = sum(int(s.numTasks) for s in stages)
    ids = ", ".join(str(s.stageId) for s in stages)
    fraction = done / total if total else 0.0
    progress.callback("spark", fraction, f"stage {ids}: {done}/{total} tasks")


@contextmanager
def spark_errors() -> Iterator[None]:
    """A failed Spark job (an executor out of memory, a lost JVM, an unreachable store)
    as one line naming the cause, not a JVM stack trace; Python errors pass through."""
    try:
        from py4j.protocol import Py4JError
        from pyspark.errors import PySparkException
    except ImportError:  # the session reports the missing extra
        yield
        return
    try:
        yield
    except (PySparkException, Py4JError, ConnectionError) as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        cause = _cause(lines) or (lines[0] if lines else type(exc).__name__)
        raise InputError(
            f"Spark failed ({type(exc).__name__}): {cause[:300]}; more memory may help, e.g. "
            "--spark-conf spark.driver.memory=4g --spark-conf spark.executor.memory=4g"
        ) from None


# The lines of a JVM trace that say why, most telling first ("awaitResult" says nothing).
_TELLING = ("OutOfMemoryError", "PythonException", "FileNotFoundException", "Caused by:")


def _cause(lines: list[str]) -> str:
    for marker in _TELLING:
        found = next((line for line in lines if marker in line), None)
        if found:
            return found.removeprefix("Caused by:").strip()
    return next((line for line in lines if "Error" in line or "Exception" in line), "")
