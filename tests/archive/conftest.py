"""Fixtures of the archive suite: one archive URL per backend (SQLite; PostgreSQL in a fresh
schema, skipped visibly when unreachable and failing under PARITY_REQUIRE_SERVICES=1)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from parity.archive import Archive, open_archive
from tests.archive.backends import archive_url_for, drop_archive_schema
from tests.conformance import plays, profiles


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
def archive_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty archive location on each backend, removed after the test."""
    url = archive_url_for(request.param, tmp_path)
    yield url
    drop_archive_schema(url)


@pytest.fixture
def archive(archive_url: str) -> Iterator[Archive]:
    """An archive of the conformance sources ``plays`` and ``profiles`` on each backend."""
    with open_archive(archive_url, [plays, profiles]) as opened:
        yield opened
