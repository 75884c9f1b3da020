"""The Spark session's settings and errors, without starting a JVM."""

from __future__ import annotations

import pytest

from detectors.base.errors import InputError
from detectors.run.spark.session import parse_conf, spark_errors


def test_spark_conf_pairs_split_at_the_first_equals():
    assert parse_conf(["spark.executor.memory=4g", "a.b=x=y"]) == {
        "spark.executor.memory": "4g",
        "a.b": "x=y",
    }
    with pytest.raises(InputError, match="expected key=value"):
        parse_conf(["spark.executor.memory"])


def test_a_failed_spark_job_is_one_line_naming_its_cause():
    protocol = pytest.importorskip("py4j.protocol")
    trace = "An error occurred\njava.lang.OutOfMemoryError: Java heap space\n\tat org.apache..."
    with pytest.raises(InputError) as caught, spark_errors():
        raise protocol.Py4JError(trace)
    text = str(caught.value)
    assert text.startswith("Spark failed (Py4JError): java.lang.OutOfMemoryError: Java heap space;")
    assert "\n" not in text


def test_python_errors_are_not_disguised_as_spark_failures():
    with pytest.raises(KeyError), spark_errors():
        raise KeyError("a bug")
