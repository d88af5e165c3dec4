"""Fixtures for the registry tests: a PostgreSQL URL (or a visible skip) and opened registries.

``postgres_url`` is reusable by any suite that needs PostgreSQL: it skips with the reason when
no server answers, and fails instead when ``PARITY_REQUIRE_SERVICES=1`` (CI).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from parity.registry import Registry, open_registry

# Tried in order, unless PARITY_POSTGRES_URL names the one server to use.
_POSTGRES_CANDIDATES = (
    "postgresql://postgres@127.0.0.1:5432/test",
    "postgresql://127.0.0.1:5432/test",
)


def _find_postgres() -> tuple[str | None, str]:
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


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A URL of a reachable PostgreSQL server; skips (or fails under CI) when there is none."""
    url, why = _find_postgres()
    if url is None:
        if os.environ.get("PARITY_REQUIRE_SERVICES") == "1":
            pytest.fail(f"PARITY_REQUIRE_SERVICES=1 but {why}")
        pytest.skip(why)
    return url


@pytest.fixture
def postgres_schema(postgres_url: str) -> Iterator[str]:
    """A fresh, uniquely named schema, dropped (with everything in it) after the test."""
    import psycopg

    schema = f"parity_test_{uuid.uuid4().hex[:12]}"
    yield schema
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@dataclass(frozen=True)
class RegistrySpec:
    """Where a test registry lives: enough to open it again, also from another process."""

    backend: str
    url: str
    artifacts_root: Path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
def registry_spec(request: pytest.FixtureRequest, tmp_path: Path) -> RegistrySpec:
    """A registry location on each backend: a temp SQLite file, or a fresh PostgreSQL schema."""
    artifacts = tmp_path / "artifacts"
    if request.param == "sqlite":
        return RegistrySpec("sqlite", f"sqlite://{tmp_path / 'registry.db'}", artifacts)
    url = request.getfixturevalue("postgres_url")
    schema = request.getfixturevalue("postgres_schema")
    separator = "&" if "?" in url else "?"
    return RegistrySpec("postgres", f"{url}{separator}schema={schema}", artifacts)


@pytest.fixture
def registry(registry_spec: RegistrySpec) -> Iterator[Registry]:
    """An empty registry on each backend."""
    with open_registry(registry_spec.url, registry_spec.artifacts_root) as opened:
        yield opened
