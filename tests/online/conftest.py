"""Fixtures: one online store per backend (memory, SQLite, Redis), each fresh per test.

Redis tests use a unique key prefix and delete it afterwards. When Redis is unreachable they
skip with the reason shown, unless PARITY_REQUIRE_SERVICES=1, where they fail instead.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from parity.online import OnlineStore, open_store
from tests.online.helpers import StoreFactory
from tests.services import REDIS_URL, redis_or_skip

BACKENDS = ["memory", "sqlite", "redis"]


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL naming a fresh, empty store of each backend."""
    yield from _urls(request.param, tmp_path)


def _urls(backend: str, tmp_path: Path) -> Iterator[str]:
    if backend == "memory":
        yield "memory://"
    elif backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'online.db'}"
    else:
        redis_or_skip()
        prefix = f"parity-test-{uuid.uuid4().hex[:12]}"
        url = f"{REDIS_URL}?prefix={prefix}"
        yield url
        from parity.online.redis import RedisStore

        cleaner = RedisStore(url)
        cleaner.delete_prefix()
        cleaner.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite store URL."""
    return f"sqlite:///{tmp_path / 'online.db'}"


@pytest.fixture
def new_store(store_url: str) -> Iterator[StoreFactory]:
    """Open (and later close) stores at the backend's URL; several share one state."""
    opened: list[OnlineStore] = []

    def make() -> OnlineStore:
        store = open_store(store_url)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()
