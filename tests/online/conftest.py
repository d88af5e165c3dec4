"""Fixtures: one online store per backend (memory, SQLite, Redis), each fresh per test.

Redis tests use a unique key prefix and delete it afterwards. When Redis is unreachable they
skip with the reason shown, unless PARITY_REQUIRE_SERVICES=1, where they fail instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from parity.online import OnlineStore, open_store

REDIS_URL = "redis://127.0.0.1:6379/0"
BACKENDS = ["memory", "sqlite", "redis"]
StoreFactory = Callable[[], OnlineStore]


def redis_or_skip() -> None:
    """Skip (or fail, when services are required) if Redis does not answer."""
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except Exception as exc:  # any failure to reach it is the same "not available"
        reason = f"Redis not reachable at {REDIS_URL}: {type(exc).__name__}: {exc}"
        if os.environ.get("PARITY_REQUIRE_SERVICES") == "1":
            pytest.fail(reason + " (PARITY_REQUIRE_SERVICES=1)")
        pytest.skip(reason)


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
