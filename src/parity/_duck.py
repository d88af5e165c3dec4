"""Small helpers over DuckDB's Python API, which renamed its Arrow fetchers across versions."""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa

from parity.errors import ConfigError


def fetch_arrow(result: Any) -> pa.Table:
    """Fetch a DuckDB relation (``con.sql(...)``) as an Arrow table."""
    for name in ("to_arrow_table", "arrow", "fetch_arrow_table"):
        method = getattr(result, name, None)
        if method is not None:
            table = method()
            if isinstance(table, pa.RecordBatchReader):
                table = table.read_all()
            return table
    raise ConfigError(
        f"duckdb {duckdb.__version__} offers no Arrow fetch method parity knows; install a "
        f"duckdb release from 0.10 on (pip install -U duckdb)"
    )


def connect(
    memory_limit: str | None = None, threads: int | None = None, temp_directory: str | None = None
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with spilling configured."""
    con = duckdb.connect(":memory:")
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    if temp_directory:
        con.execute(f"SET temp_directory = '{temp_directory}'")
    con.execute("SET TimeZone = 'UTC'")
    return con


def query_arrow(con: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    """Run ``sql`` and return the whole result as an Arrow table."""
    return fetch_arrow(con.sql(sql))
