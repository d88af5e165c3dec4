"""Online features: the same definitions served live from memory, SQLite or Redis.

    online = open_online("sqlite:///data/online.db", fact_log, feature_sets)
    online.materialize()                                   # bootstrap from the fact log
    online.push("plays", [{"member_id": 1, "minutes": 3.5, "event_time": now}])
    online.get_features("member_activity", {"member_id": 1, "device": "tv"})
    online.answer("member_activity", contexts).found       # False: entity never seen
    online.readiness()                                     # per source: materialized, behind

See docs/online.md for the time rules online, readiness and the eviction guarantee.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from parity.definitions import FeatureSet
from parity.errors import WorkspaceError
from parity.factlog import FactLog
from parity.online.base import Block, OnlineStore
from parity.online.memory import MemoryStore
from parity.online.options import from_config, split_url
from parity.online.reader import OnlineAnswer
from parity.online.readiness import SourceReadiness
from parity.online.readonly import ReadOnlyStore
from parity.online.service import MaterializeReport, OnlineFeatures, PushReport

__all__ = [
    "Block",
    "MaterializeReport",
    "MemoryStore",
    "OnlineAnswer",
    "OnlineFeatures",
    "OnlineStore",
    "PushReport",
    "SourceReadiness",
    "open_configured",
    "open_online",
    "open_store",
]


def open_store(url: str, read_only: bool = False) -> OnlineStore:
    """The store a URL names: ``memory://``, ``sqlite:///abs/path.db`` or ``redis://host:port/db``.

    A Redis URL may end in ``?prefix=name`` to keep several stores apart in one database.
    ``read_only=True`` opens it for pure reads: SQLite opens its file with ``mode=ro`` (nothing
    on disk is created or changed) and every store refuses writes with StorageError.
    """
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        store: OnlineStore = MemoryStore()
    elif scheme == "sqlite":
        from parity.online.sqlite import SQLiteStore

        path = urlsplit(url).path if "?" in url else url[len("sqlite://") :]
        if not path.startswith("/"):
            raise WorkspaceError(
                f"online store URL {url!r}: give an absolute path after three slashes, "
                f"e.g. sqlite:///home/me/project/data/online.db"
            )
        return SQLiteStore("/" + path.lstrip("/"), read_only=read_only)
    elif scheme in ("redis", "rediss"):
        from parity.online.redis import RedisStore

        store = RedisStore(url)
    else:
        raise WorkspaceError(
            f"unknown online store URL {url!r}; use memory://, sqlite:///abs/path.db or "
            f"redis://host:6379/0 (in parity.yaml: online: ...)"
        )
    return ReadOnlyStore(store) if read_only else store


def open_online(
    url: str,
    fact_log: FactLog,
    feature_sets: list[FeatureSet],
    read_only: bool = False,
    **options: Any,
) -> OnlineFeatures:
    """Online features for ``feature_sets`` over the store at ``url``, logging to ``fact_log``.

    ``options`` go to ``OnlineFeatures`` (lookback, tolerance, flush_every, flush_seconds,
    max_segments); the URL may set them too, e.g.
    ``sqlite:///abs/online.db?lookback=6h&tolerance=15m`` (``lookback=none`` keeps
    everything). Explicit options win over the URL. ConfigError for an unknown setting.
    """
    store_url, from_url = split_url(url)
    store = open_store(store_url, read_only=read_only)
    return OnlineFeatures(store, fact_log, feature_sets, **{**from_url, **options})


def open_configured(
    value: str | Mapping[str, Any] | None,
    sqlite_path: Path,
    fact_log: FactLog,
    feature_sets: list[FeatureSet],
    read_only: bool = False,
) -> OnlineFeatures:
    """Online features as ``online:`` in parity.yaml names them (see ``parity.online.options``).

    ``value`` is a word (``sqlite``, ``memory``, optionally with ``?settings``), a URL or a
    mapping (``{kind: sqlite, lookback: 30d, tolerance: 1h}``); ``sqlite_path`` is the
    workspace's own SQLite file.
    """
    url, settings = from_config(value, sqlite_path)
    return open_online(url, fact_log, feature_sets, read_only=read_only, **settings)
