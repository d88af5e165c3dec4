"""Fixtures: one fresh publication store per backend (memory, SQLite, Redis).

Redis stores use a unique key prefix, deleted afterwards. When Redis is unreachable the
Redis cases skip with the reason shown, unless PARITY_REQUIRE_SERVICES=1 (then they fail).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import parity as pt
from parity.hulk.stores import PublicationStore, open_publication_store
from tests.hulk.helpers import StoreFactory
from tests.services import REDIS_URL, redis_or_skip

BACKENDS = ["memory", "sqlite", "redis"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The backend under test."""
    return str(request.param)


@pytest.fixture
def store_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A URL naming a fresh, empty publication store of the backend."""
    if backend == "memory":
        yield "memory://"
    elif backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'publications.db'}"
    else:
        redis_or_skip()
        url = f"{REDIS_URL}?prefix=parity-hulk-test-{uuid.uuid4().hex[:12]}"
        yield url
        from parity.hulk.stores.redis import RedisPublicationStore

        cleaner = RedisPublicationStore(url)
        cleaner.delete_prefix()
        cleaner.close()


@pytest.fixture
def new_store(store_url: str) -> Iterator[StoreFactory]:
    """Open stores at the backend's URL; several opened share one state (except memory,
    where the first store is returned again)."""
    opened: list[PublicationStore] = []

    def make() -> PublicationStore:
        if store_url == "memory://" and opened:
            return opened[0]
        store = open_publication_store(store_url)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(new_store: StoreFactory) -> PublicationStore:
    """One fresh store of the backend."""
    return new_store()


@pytest.fixture
def ws(tmp_path: Path) -> pt.Workspace:
    """A starter workspace with five purchases (one after the publication moment)."""
    root = pt.init(tmp_path / "proj")
    workspace = pt.open(root)
    purchases = pd.DataFrame({
        "customer_id": [1, 1, 2, 3, 4],
        "amount": [10.0, 5.0, 7.0, 1.0, 99.0],
        "item": ["a", "b", "a", "c", "a"],
        # customer 4 buys after the publication moment: not a key of it
        "event_time": pd.to_datetime(["2024-01-10", "2024-01-20", "2024-01-21", "2023-06-01",
                                      "2024-03-01"], utc=True),
    })
    workspace.ingest("purchases", purchases)
    workspace.ingest("profiles", pd.DataFrame({
        "customer_id": [1, 2, 3, 4], "country": ["UK", "FR", "UK", "DE"],
        "event_time": pd.to_datetime(["2023-01-01"] * 4, utc=True)}))
    return workspace
