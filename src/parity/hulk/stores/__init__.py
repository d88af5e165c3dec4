"""Publication stores: memory (tests), SQLite (embedded), Redis (real). See ``base``."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from parity.errors import ConfigError
from parity.hulk.stores.base import PublicationStore, Row
from parity.hulk.stores.memory import MemoryPublicationStore

__all__ = ["MemoryPublicationStore", "PublicationStore", "Row", "open_publication_store"]


def open_publication_store(url: str) -> PublicationStore:
    """The store a URL names: ``memory://``, ``sqlite:///abs/path.db`` or
    ``redis://host:6379/0`` (optionally ``?prefix=name`` to keep stores apart)."""
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        return MemoryPublicationStore()
    if scheme == "sqlite":
        from parity.hulk.stores.sqlite import SQLitePublicationStore

        path = url[len("sqlite://") :].split("?", 1)[0]
        if not path.startswith("/"):
            raise ConfigError(f"publication store URL {url!r}: give an absolute path after "
                              f"three slashes, e.g. sqlite:///srv/project/data/publications.db")
        return SQLitePublicationStore(Path(path))
    if scheme in ("redis", "rediss"):
        from parity.hulk.stores.redis import RedisPublicationStore

        return RedisPublicationStore(url)
    raise ConfigError(f"unknown publication store URL {url!r}; use memory://, "
                      f"sqlite:///abs/path.db or redis://host:6379/0")
