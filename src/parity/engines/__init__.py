"""Offline engines: executors of the Time Machine."""

import inspect

from parity.engines.base import Engine
from parity.errors import ConfigError, WorkspaceError

__all__ = ["ENGINES", "Engine", "get_engine"]

ENGINES = ("duckdb", "spark")


def get_engine(name: str, **options: object) -> Engine:
    """The engine called ``name``, imported only when asked for.

    ``duckdb`` (embedded) or ``spark`` (PySpark, an optional dependency: ConfigError naming
    the install command when it is missing); any other name is a WorkspaceError.
    """
    if name == "duckdb":
        from parity.engines.duckdb import DuckDBEngine

        return DuckDBEngine(**options)  # type: ignore[arg-type]
    if name == "spark":
        try:
            from parity.engines.spark import SparkEngine
        except ImportError as exc:
            raise ConfigError(
                f"engine: spark needs PySpark, which cannot be imported ({exc}); "
                "install it with pip install 'parity[spark]' or use engine: duckdb"
            ) from None
        known = [n for n in inspect.signature(SparkEngine.__init__).parameters if n != "self"]
        unknown = sorted(k for k in options if k not in known)
        if unknown:
            raise ConfigError(
                f"unknown offline setting(s) {', '.join(unknown)} for engine: spark; "
                f"known: {', '.join(known)}"
            )
        return SparkEngine(**options)  # type: ignore[arg-type]
    raise WorkspaceError(
        f"unknown engine {name!r} (in parity.yaml engine:); use 'duckdb' or 'spark'"
    )
