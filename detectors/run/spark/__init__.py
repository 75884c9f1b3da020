"""The Spark strategy: the same hunt on Apache Spark, where the data lives.

``SparkStrategy`` reads the inputs in executors, runs each hunt's per-pair stage per
device group there, and hands the run loop the candidates' slice of events to rank on
the driver (``strategy`` says why this split keeps the two engines' scores equal).
Needs the ``spark`` extra (pyspark) and Java 17+.
"""

from __future__ import annotations

from detectors.run.spark.strategy import SparkStrategy

__all__ = ["SparkStrategy"]
