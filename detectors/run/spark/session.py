"""One SparkSession for a run, configured so executors run this project's Python.

Python workers must use the driver's interpreter (``PYSPARK_PYTHON``): another one
cannot import polars or this package. Timestamps travel as UTC microseconds, so the
session time zone is pinned to UTC whatever the machine's is.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from detectors.base.errors import InputError

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


def spark_session(master: str | None = None, conf: dict[str, str] | None = None) -> SparkSession:
    """The session for ``master`` (default ``local[2]``), created or reused."""
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
        session = builder.getOrCreate()
    except Exception as exc:  # no Java, a bad master URL: one line, not a JVM trace
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot start Spark ({master or DEFAULT_MASTER}): {first}") from None
    session.sparkContext.setLogLevel("ERROR")
    return session


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
