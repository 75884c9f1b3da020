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
    trace = (
        "An error occurred\norg.apache.spark.SparkException: Exception thrown in awaitResult:"
        "\n\tat org.apache...\nCaused by: java.lang.OutOfMemoryError: Java heap space\n"
    )
    with pytest.raises(InputError) as caught, spark_errors():
        raise protocol.Py4JError(trace)
    text = str(caught.value)
    assert text.startswith("Spark failed (Py4JError): java.lang.OutOfMemoryError: Java heap space;")
    assert "\n" not in text


def test_python_errors_are_not_disguised_as_spark_failures():
    with pytest.raises(KeyError), spark_errors():
        raise KeyError("a bug")


def test_partials_travel_as_data_and_come_back_equal():
    import numpy as np
    import polars as pl

    from detectors.hunts.periodicity import Tested
    from detectors.run.spark.codec import decode, encode

    frame = pl.DataFrame({"a": [1, None, 3], "b": [["x"], [], None]})
    assert decode(encode(frame), "detectors.hunts.periodicity").equals(frame)
    tested = Tested(hits=None, family_p=np.array([0.5, 1e-12, 0.25]))
    back = decode(encode(tested), "detectors.hunts.periodicity")
    assert isinstance(back, Tested) and back.hits is None
    assert back.family_p.dtype == np.float64
    assert back.family_p.tolist() == [0.5, 1e-12, 0.25]


def test_a_partial_names_no_class_outside_the_hunts_module():
    import numpy as np

    from detectors.hunts.periodicity import Tested
    from detectors.run.spark.codec import decode, encode

    data = encode(Tested(hits=None, family_p=np.zeros(1)))
    with pytest.raises(ValueError, match=r"not a dataclass of detectors\.hunts\.intervals"):
        decode(data, "detectors.hunts.intervals")
