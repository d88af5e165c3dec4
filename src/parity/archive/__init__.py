"""The Online Archive: entity histories with a live interface and a batch interface.

    archive = open_archive("sqlite:///data/archive.db", [orders])
    archive.append("orders", rows)                          # live write (validated)
    archive.latest("orders", 42, n=5)                       # live read
    archive.as_of("orders", contexts)                       # batch read, one snapshot
    training_set(archive, [customer_features], contexts)    # features through the batch side
    sync(archive, fact_log)                                 # history into the fact log, once

See docs/archive.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import parse_qs, urlsplit, urlunsplit

from parity.archive.archive import CONTEXT, AppendReport, Archive
from parity.archive.budget import TokenBucket
from parity.archive.features import training_set
from parity.archive.store import ArchiveStore, SourceMeta
from parity.archive.sync import ExportReport, SyncReport, export, sync, watermark
from parity.definitions import Source
from parity.errors import ConfigError

__all__ = [
    "CONTEXT",
    "AppendReport",
    "Archive",
    "ArchiveStore",
    "ExportReport",
    "SourceMeta",
    "SyncReport",
    "TokenBucket",
    "export",
    "open_archive",
    "open_store",
    "sync",
    "training_set",
    "watermark",
]


def open_store(url: str, *, live: int | None = None, batch: int | None = None) -> ArchiveStore:
    """The store a URL names: ``sqlite:///abs/path.db`` or
    ``postgresql://host:port/db?schema=name`` (schema default ``parity_archive``).
    ``live``/``batch``: connection pool sizes (defaults 2/1 on SQLite, 4/2 on PostgreSQL)."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        from parity.archive.sqlite import SQLiteArchiveStore

        path = url[len("sqlite://") :]
        if not path.startswith("/"):
            raise ConfigError(
                f"archive URL {url!r}: write an absolute path with three slashes, such as "
                f"sqlite:///data/archive.db"
            )
        return SQLiteArchiveStore(path, live=live or 2, batch=batch or 1)
    if parts.scheme in ("postgresql", "postgres"):
        from parity.archive.postgres import PostgresArchiveStore

        query = parse_qs(parts.query)
        schema = query.pop("schema", ["parity_archive"])[0]
        rest = "&".join(f"{k}={v[0]}" for k, v in query.items())
        plain = urlunsplit((parts.scheme, parts.netloc, parts.path, rest, parts.fragment))
        return PostgresArchiveStore(plain, schema=schema, live=live or 4, batch=batch or 2)
    raise ConfigError(
        f"archive URL {url!r}: unknown scheme {parts.scheme!r}; use sqlite:///path.db or "
        f"postgresql://host:port/db?schema=name"
    )


def open_archive(
    url: str,
    sources: Sequence[Source] = (),
    *,
    retention: Mapping[str, str | None] | None = None,
    batch_rows_per_second: float | None = None,
    batch_rows: int = 5_000,
) -> Archive:
    """An archive of ``sources`` at ``url`` (see ``open_store``). ``batch_rows_per_second``
    caps batch reads (as_of, scan, export, sync) with a token bucket; None: no cap."""
    budget = (
        TokenBucket(batch_rows_per_second, max(batch_rows_per_second, batch_rows))
        if batch_rows_per_second is not None
        else None
    )
    return Archive(
        open_store(url), sources, retention=retention, budget=budget, batch_rows=batch_rows
    )
