"""Online features: the same definitions served live from memory, SQLite or Redis.

    online = open_online("sqlite:///data/online.db", fact_log, feature_sets)
    online.materialize()                                   # bootstrap from the fact log
    online.push("plays", [{"member_id": 1, "minutes": 3.5, "event_time": now}])
    online.get_features("member_activity", {"member_id": 1, "device": "tv"})

See docs/online.md for the time rules online and the eviction guarantee.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from parity.definitions import FeatureSet
from parity.errors import WorkspaceError
from parity.factlog import FactLog
from parity.online.base import Block, OnlineStore
from parity.online.memory import MemoryStore
from parity.online.service import MaterializeReport, OnlineFeatures, PushReport

__all__ = [
    "Block",
    "MaterializeReport",
    "MemoryStore",
    "OnlineFeatures",
    "OnlineStore",
    "PushReport",
    "open_online",
    "open_store",
]


def open_store(url: str) -> OnlineStore:
    """The store a URL names: ``memory://``, ``sqlite:///abs/path.db`` or ``redis://host:port/db``.

    A Redis URL may end in ``?prefix=name`` to keep several stores apart in one database.
    """
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        return MemoryStore()
    if scheme == "sqlite":
        from parity.online.sqlite import SQLiteStore

        path = urlsplit(url).path if "?" in url else url[len("sqlite://") :]
        if not path.startswith("/"):
            raise WorkspaceError(
                f"online store URL {url!r}: give an absolute path after three slashes, "
                f"e.g. sqlite:///home/me/project/data/online.db"
            )
        return SQLiteStore("/" + path.lstrip("/"))
    if scheme in ("redis", "rediss"):
        from parity.online.redis import RedisStore

        return RedisStore(url)
    raise WorkspaceError(
        f"unknown online store URL {url!r}; use memory://, sqlite:///abs/path.db or "
        f"redis://host:6379/0 (in parity.yaml: online: ...)"
    )


def open_online(
    url: str, fact_log: FactLog, feature_sets: list[FeatureSet], **options: Any
) -> OnlineFeatures:
    """Online features for ``feature_sets`` over the store at ``url``, logging to ``fact_log``.

    ``options`` go to ``OnlineFeatures`` (lookback, flush_every, flush_seconds, max_segments);
    the URL may set them too, e.g. ``sqlite:///abs/online.db?lookback=6h&flush_every=1000``
    (``lookback=none`` keeps everything). Explicit options win over the URL.
    """
    from_url: dict[str, Any] = {}
    for name, values in parse_qs(urlsplit(url).query).items():
        value = values[-1]
        if name == "lookback":
            from_url[name] = None if value.lower() == "none" else value
        elif name in ("flush_every", "max_segments"):
            from_url[name] = int(value)
        elif name == "flush_seconds":
            from_url[name] = float(value)
        elif name != "prefix":
            raise WorkspaceError(
                f"online store URL {url!r}: unknown setting {name!r}; use lookback, "
                f"flush_every, flush_seconds, max_segments (or prefix for Redis)"
            )
    return OnlineFeatures(open_store(url), fact_log, feature_sets, **{**from_url, **options})
