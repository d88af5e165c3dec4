from __future__ import annotations

import pytest

from parity.engines import Engine
from parity.engines.duckdb import DuckDBEngine


def _engines() -> list[object]:
    return [pytest.param("duckdb", id="duckdb")]


@pytest.fixture(params=_engines())
def engine(request: pytest.FixtureRequest) -> Engine:
    if request.param == "duckdb":
        return DuckDBEngine(memory_limit="1GB", threads=2)
    raise AssertionError(request.param)
