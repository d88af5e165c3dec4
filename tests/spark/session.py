"""One SparkSession per test session, for the Spark tests and the case catalog's adapter.

A helper module, not a test module: ``tests/catalog/executors.py`` and ``tests/spark`` both
import it. Without pyspark or a Java runtime the Spark tests skip with the reason (and fail
under PARITY_REQUIRE_SERVICES=1, like the tests that need a service).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from typing import Any

import pytest

#: the test session's settings, for tiny data on two local cores: a training set costs Spark's
#: fixed cost per job and per task, not its data, so everything that adds jobs or tasks is off
TEST_CONF = {
    # one task per shuffle; no adaptive re-planning (it runs each shuffle stage as its own job)
    "spark.sql.shuffle.partitions": "1",
    "spark.sql.adaptive.enabled": "false",
    "spark.default.parallelism": "2",
    # sort-merge joins within one job, instead of one job per broadcast
    "spark.sql.autoBroadcastJoinThreshold": "-1",
    # no capture of the Python call site of every DataFrame call (several JVM round trips each)
    "spark.python.sql.dataFrameDebugging.enabled": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.enabled": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.driver.memory": "1g",
    "spark.ui.showConsoleProgress": "false",
    # tiny test data: compiling generated code costs more than interpreting it
    "spark.sql.codegen.wholeStage": "false",
}

_session: Any = None


def spark_missing() -> str | None:
    """Why Spark cannot run here (None when it can)."""
    if importlib.util.find_spec("pyspark") is None:
        return "pyspark is not installed (pip install 'parity[spark]')"
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        return "no Java runtime (install Java 17 or set JAVA_HOME)"
    return None


def spark_or_skip() -> None:
    """Skip the running test when Spark cannot run (fail with PARITY_REQUIRE_SERVICES=1)."""
    reason = spark_missing()
    if reason is None:
        return
    if os.environ.get("PARITY_REQUIRE_SERVICES") == "1":
        pytest.fail(f"Spark is required (PARITY_REQUIRE_SERVICES=1): {reason}")
    pytest.skip(reason)


def spark_session() -> Any:
    """The test session's SparkSession on local[2], created on first use."""
    global _session
    spark_or_skip()
    if _session is None:
        from pyspark.sql import SparkSession

        builder = SparkSession.builder.master("local[2]").appName("parity-tests")
        for key, value in TEST_CONF.items():
            builder = builder.config(key, value)
        _session = builder.getOrCreate()
        _session.sparkContext.setLogLevel("ERROR")
    return _session
