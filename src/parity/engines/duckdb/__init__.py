"""The DuckDB engine (embedded default)."""

from parity.engines.duckdb.engine import DuckDBEngine

__all__ = ["DuckDBEngine"]
