"""Fixtures for the registry tests: a PostgreSQL URL (or a visible skip) and opened registries.

``postgres_url`` is reusable by any suite that needs PostgreSQL: it skips with the reason when
no server answers, and fails instead when ``PARITY_REQUIRE_SERVICES=1`` (CI).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from parity.registry import Registry, open_registry
from tests.registry.services import drop_schema, new_schema_name, postgres_or_skip


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A URL of a reachable PostgreSQL server; skips (or fails under CI) when there is none."""
    return postgres_or_skip()


@pytest.fixture
def postgres_schema(postgres_url: str) -> Iterator[str]:
    """A fresh, uniquely named schema, dropped (with everything in it) after the test."""
    schema = new_schema_name()
    yield schema
    drop_schema(postgres_url, schema)


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
