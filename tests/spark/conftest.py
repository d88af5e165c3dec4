"""The Spark tests' fixture: the one test-session SparkSession (``tests/spark/session.py``)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.spark.session import spark_session


@pytest.fixture
def spark() -> Any:
    """The shared local[2] SparkSession; skips visibly when pyspark or Java is missing."""
    return spark_session()
