from __future__ import annotations

import pytest

from parity.engines import Engine
from parity.engines.duckdb import DuckDBEngine


@pytest.fixture(params=["sweep", "join"], ids=["duckdb-sweep", "duckdb-join"])
def engine(request: pytest.FixtureRequest) -> Engine:
    """Every plan of every engine runs the whole suite ('auto' picks one of these per window)."""
    return DuckDBEngine(memory_limit="1GB", threads=2, plan=request.param)
