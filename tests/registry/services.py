"""Where a PostgreSQL server for the tests answers: used by the registry's conftest and by any
suite that runs the registry on PostgreSQL (tests/sentinel/test_artifact_safety.py)."""

from __future__ import annotations

import os
import uuid

import pytest

# Tried in order, unless PARITY_POSTGRES_URL names the one server to use.
_POSTGRES_CANDIDATES = (
    "postgresql://postgres@127.0.0.1:5432/test",
    "postgresql://127.0.0.1:5432/test",
)


def find_postgres() -> tuple[str | None, str]:
    """The first URL a PostgreSQL server answers on, or None and why not."""
    try:
        import psycopg
    except ImportError:
        return None, "psycopg is not installed (pip install 'parity[postgres]')"
    configured = os.environ.get("PARITY_POSTGRES_URL")
    candidates = [configured] if configured else list(_POSTGRES_CANDIDATES)
    failures = []
    for url in candidates:
        try:
            with psycopg.connect(url, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as err:
            failures.append(f"{url}: {str(err).strip().splitlines()[0]}")
            continue
        return url, ""
    return None, "PostgreSQL is not reachable (" + "; ".join(failures) + ")"


def postgres_or_skip() -> str:
    """A reachable PostgreSQL URL; skips with the reason, or fails under
    PARITY_REQUIRE_SERVICES=1 (CI)."""
    url, why = find_postgres()
    if url is None:
        if os.environ.get("PARITY_REQUIRE_SERVICES") == "1":
            pytest.fail(f"PARITY_REQUIRE_SERVICES=1 but {why}")
        pytest.skip(why)
    return url


def new_schema_name() -> str:
    """A unique schema name for one test."""
    return f"parity_test_{uuid.uuid4().hex[:12]}"


def drop_schema(url: str, schema: str) -> None:
    """Drop a test schema and everything in it."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
