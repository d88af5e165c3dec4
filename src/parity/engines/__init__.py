"""Offline engines: executors of the Time Machine."""

from parity.engines.base import Engine

__all__ = ["Engine", "get_engine"]


def get_engine(name: str, **options: object) -> Engine:
    """The engine called ``name`` ('duckdb' or 'spark'), imported only when asked for."""
    if name == "duckdb":
        from parity.engines.duckdb import DuckDBEngine

        return DuckDBEngine(**options)  # type: ignore[arg-type]
    if name == "spark":
        from parity.engines.spark import SparkEngine

        return SparkEngine(**options)
    from parity.errors import WorkspaceError

    raise WorkspaceError(f"unknown engine {name!r}; use 'duckdb' or 'spark'")
