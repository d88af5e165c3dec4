"""The embedded archive backend: one SQLite file in WAL mode.

WAL lets the batch connection hold one read transaction (a snapshot) for a whole export while
the live connection keeps writing; readers never block the writer nor each other. SQLite has
no BRIN index, so the batch scan on ``recorded_at`` uses a plain b-tree (see docs/archive.md).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from parity.archive.model import VersionRow
from parity.archive.pool import Pool
from parity.archive.store import COLUMNS, ContextRow, SqlArchiveStore
from parity.errors import ParityError, StorageError, TransientError

_DDL = """
CREATE TABLE IF NOT EXISTS archive_sources (
    name TEXT PRIMARY KEY, spec TEXT NOT NULL, retention_us INTEGER,
    horizon_us INTEGER, sealed_us INTEGER
);
CREATE TABLE IF NOT EXISTS archive_settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS archive_versions (
    source TEXT NOT NULL, entity TEXT NOT NULL, event_time INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL, fact_id TEXT NOT NULL, tombstone INTEGER NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (source, fact_id, recorded_at)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS archive_versions_live
    ON archive_versions (source, entity, event_time, recorded_at, fact_id);
CREATE INDEX IF NOT EXISTS archive_versions_recorded
    ON archive_versions (source, recorded_at);
"""
_STAGING = (
    "CREATE TEMP TABLE IF NOT EXISTS archive_staging (source TEXT, entity TEXT, "
    "event_time INTEGER, recorded_at INTEGER, fact_id TEXT, tombstone INTEGER, payload TEXT)"
)


class SQLiteArchiveStore(SqlArchiveStore):
    """Archive versions in a SQLite file (``path``); pools of ``live`` and ``batch`` size."""

    p = "?"

    def __init__(self, path: str | Path, *, live: int = 2, batch: int = 1) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._guard():
                conn = self._connect()
                conn.executescript(_DDL)
                conn.close()
        except OSError as exc:
            raise StorageError(f"cannot create the archive at {self.path}: {exc}") from exc
        self._live_pool = Pool("live", live, self._connect, lambda c: c.close())
        self._batch_pool = Pool("batch", batch, self._connect, lambda c: c.close())

    def __repr__(self) -> str:
        return f"SQLiteArchiveStore({str(self.path)!r})"

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable at checkpoints
        conn.execute("PRAGMA busy_timeout=10000")
        return conn

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Driver errors become parity errors here, the one place that does it."""
        try:
            yield
        except ParityError:
            raise
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise TransientError(f"the archive {self.path} is busy: {exc}") from exc
            raise StorageError(f"the archive {self.path} failed: {exc}") from exc
        except sqlite3.Error as exc:
            raise StorageError(f"the archive {self.path} failed: {exc}") from exc

    @contextmanager
    def _live(self) -> Iterator[sqlite3.Connection]:
        with self._guard(), self._live_pool.connection() as conn:
            conn.execute("BEGIN IMMEDIATE")  # take the write lock now: no upgrade deadlock
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:  # a failed statement may have ended it already
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        with self._guard(), self._batch_pool.connection() as conn:
            conn.execute("BEGIN")  # the first read fixes the snapshot until COMMIT
            try:
                yield conn
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")

    def _stage(self, conn: Any, source: str, rows: Sequence[VersionRow]) -> None:
        conn.execute(_STAGING)
        conn.execute("DELETE FROM archive_staging")
        conn.executemany(
            "INSERT INTO archive_staging VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(source, *row) for row in rows],
        )

    def _insert_rows(self, conn: Any, source: str, rows: Sequence[VersionRow]) -> int:
        # Straight in: no staging copy (it is made only when some rows turn out stored).
        before = conn.total_changes
        conn.executemany(
            f"INSERT INTO archive_versions (source, {COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (source, fact_id, recorded_at) DO NOTHING",
            [(source, *row) for row in rows],
        )
        inserted: int = conn.total_changes - before
        return inserted

    def _lock_source(self, conn: Any, source: str) -> tuple[int | None] | None:
        # BEGIN IMMEDIATE already holds the database's one write lock.
        row = conn.execute(
            "SELECT sealed_us FROM archive_sources WHERE name = ?", (source,)
        ).fetchone()
        return None if row is None else (row[0],)

    def _context_relation(self, conn: Any, contexts: Sequence[ContextRow]) -> tuple[str, list[Any]]:
        # A temp table lives in the connection's own temp database: writing it does not
        # disturb the snapshot of the main database.
        conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS archive_contexts "
            "(ctx INTEGER, entity TEXT, at INTEGER, rec INTEGER)"
        )
        conn.execute("DELETE FROM archive_contexts")
        conn.executemany("INSERT INTO archive_contexts VALUES (?, ?, ?, ?)", contexts)
        return "archive_contexts c", []

    def _stream(self, conn: Any, sql: str, params: Sequence[Any], size: int) -> Iterator[list[Any]]:
        cursor = conn.execute(sql, tuple(params))
        while chunk := cursor.fetchmany(size):
            yield chunk

    def close(self) -> None:
        """Close both pools."""
        self._live_pool.close()
        self._batch_pool.close()
