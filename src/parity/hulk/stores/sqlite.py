"""The SQLite publication store: embedded, one file (``data/publications.db`` in a workspace).

WAL mode lets readers run while a publication is written; each thread gets its own
connection. ``read_live`` runs in one read transaction, which sees one snapshot of the
database, so the pointer and the rows it reads always belong together.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from parity.errors import StateError, StorageError, TransientError
from parity.hulk.stores.base import Row

T = TypeVar("T")
_CHUNK = 900  # below SQLite's bound-parameter limit on every build
_DROP_CHUNK = 20_000  # rows deleted per transaction, so GC never holds the lock for long

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pub_rows (
    name TEXT NOT NULL, version INTEGER NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,
    PRIMARY KEY (name, version, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pub_manifests (
    name TEXT NOT NULL, version INTEGER NOT NULL, manifest TEXT NOT NULL,
    PRIMARY KEY (name, version));
CREATE TABLE IF NOT EXISTS pub_live (name TEXT PRIMARY KEY, version INTEGER);
CREATE TABLE IF NOT EXISTS pub_counters (name TEXT PRIMARY KEY, last INTEGER NOT NULL);
"""


class SQLitePublicationStore:
    """Publications in one SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the folder of {self.path}: {exc}") from None
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._run(lambda c: c.executescript(_SCHEMA))

    # -- connections ------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                   timeout=30.0)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return fn(self._conn())
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if "locked" in text or "busy" in text:
                raise TransientError(f"publication store {self.path} is busy: {text}; "
                                     f"retry") from None
            raise StorageError(f"publication store {self.path}: {text}") from None
        except sqlite3.DatabaseError as exc:
            raise StorageError(f"publication store {self.path}: {exc}") from None

    @contextmanager
    def _transaction(self, conn: sqlite3.Connection, mode: str = "") -> Iterator[None]:
        conn.execute(f"BEGIN {mode}")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    # -- the contract -----------------------------------------------------------------------

    def allocate_version(self, name: str) -> int:
        """See PublicationStore."""

        def allocate(conn: sqlite3.Connection) -> int:
            with self._transaction(conn, "IMMEDIATE"):
                row = conn.execute("SELECT last FROM pub_counters WHERE name = ?",
                                   (name,)).fetchone()
                version = (row[0] if row else 0) + 1
                conn.execute("INSERT OR REPLACE INTO pub_counters VALUES (?, ?)", (name, version))
            return version

        return self._run(allocate)

    def write_rows(self, name: str, version: int, rows: Sequence[Row]) -> None:
        """See PublicationStore."""

        def write(conn: sqlite3.Connection) -> None:
            with self._transaction(conn, "IMMEDIATE"):
                conn.executemany("INSERT OR REPLACE INTO pub_rows VALUES (?, ?, ?, ?)",
                                 [(name, version, k, v) for k, v in rows])

        self._run(write)

    def read_rows(self, name: str, version: int, keys: Sequence[str]) -> list[bytes | None]:
        """See PublicationStore."""
        return self._run(lambda c: self._select(c, name, version, keys))

    def read_live(self, name: str, keys: Sequence[str]) -> tuple[int | None, list[bytes | None]]:
        """See PublicationStore."""

        def read(conn: sqlite3.Connection) -> tuple[int | None, list[bytes | None]]:
            with self._transaction(conn):  # one snapshot for the pointer and the rows
                row = conn.execute("SELECT version FROM pub_live WHERE name = ?",
                                   (name,)).fetchone()
                version = row[0] if row else None
                if version is None:
                    return None, [None] * len(keys)
                return version, self._select(conn, name, version, keys)

        return self._run(read)

    def _select(self, conn: sqlite3.Connection, name: str, version: int,
                keys: Sequence[str]) -> list[bytes | None]:
        found: dict[str, bytes] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _CHUNK):
            chunk = unique[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            found.update(conn.execute(
                f"SELECT key, value FROM pub_rows WHERE name = ? AND version = ? "
                f"AND key IN ({marks})", (name, version, *chunk)).fetchall())
        return [found.get(k) for k in keys]

    def iter_keys(self, name: str, version: int, batch_size: int = 10_000) -> Iterator[list[str]]:
        """See PublicationStore (keyset pagination: no cursor is held between batches)."""
        last = ""

        def page(conn: sqlite3.Connection, after: str) -> list[str]:
            return [r[0] for r in conn.execute(
                "SELECT key FROM pub_rows WHERE name = ? AND version = ? AND key > ? "
                "ORDER BY key LIMIT ?", (name, version, after, batch_size))]

        while True:
            batch = self._run(functools.partial(page, after=last))
            if not batch:
                return
            yield batch
            last = batch[-1]

    def count_rows(self, name: str, version: int) -> int:
        """See PublicationStore."""
        return int(self._run(lambda c: c.execute(
            "SELECT COUNT(*) FROM pub_rows WHERE name = ? AND version = ?",
            (name, version)).fetchone()[0]))

    def put_manifest(self, name: str, version: int, manifest: str) -> None:
        """See PublicationStore."""
        self._run(lambda c: c.execute("INSERT OR REPLACE INTO pub_manifests VALUES (?, ?, ?)",
                                      (name, version, manifest)))

    def get_manifest(self, name: str, version: int) -> str | None:
        """See PublicationStore."""
        row = self._run(lambda c: c.execute(
            "SELECT manifest FROM pub_manifests WHERE name = ? AND version = ?",
            (name, version)).fetchone())
        return row[0] if row else None

    def versions(self, name: str) -> list[int]:
        """See PublicationStore."""
        return [r[0] for r in self._run(lambda c: c.execute(
            "SELECT version FROM pub_manifests WHERE name = ? ORDER BY version",
            (name,)).fetchall())]

    def names(self) -> list[str]:
        """See PublicationStore."""
        return [r[0] for r in self._run(lambda c: c.execute(
            "SELECT DISTINCT name FROM pub_manifests ORDER BY name").fetchall())]

    def live_version(self, name: str) -> int | None:
        """See PublicationStore."""
        row = self._run(lambda c: c.execute("SELECT version FROM pub_live WHERE name = ?",
                                            (name,)).fetchone())
        return row[0] if row else None

    def swap(self, name: str, expected: int | None, version: int | None) -> bool:
        """See PublicationStore."""

        def cas(conn: sqlite3.Connection) -> bool:
            with self._transaction(conn, "IMMEDIATE"):
                row = conn.execute("SELECT version FROM pub_live WHERE name = ?",
                                   (name,)).fetchone()
                if (row[0] if row else None) != expected:
                    return False
                conn.execute("INSERT OR REPLACE INTO pub_live VALUES (?, ?)", (name, version))
            return True

        return self._run(cas)

    def drop_version(self, name: str, version: int) -> None:
        """See PublicationStore (rows go in chunks so live reads never wait long)."""
        if self.live_version(name) == version:
            raise StateError(f"publication {name!r} version {version} is live; "
                             f"swap to another version before dropping it")
        self._run(lambda c: c.execute(
            "DELETE FROM pub_manifests WHERE name = ? AND version = ?", (name, version)))
        while True:
            deleted = self._run(lambda c: c.execute(
                "DELETE FROM pub_rows WHERE name = ? AND version = ? AND key IN "
                "(SELECT key FROM pub_rows WHERE name = ? AND version = ? LIMIT ?)",
                (name, version, name, version, _DROP_CHUNK)).rowcount)
            if deleted < _DROP_CHUNK:
                return

    def close(self) -> None:
        """Close every thread's connection."""
        with self._all_lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()
