"""The embedded registry backend: one SQLite file, safe across processes on one machine.

The database runs in WAL mode (readers never block the writer). Every write is one
``BEGIN IMMEDIATE`` transaction, which takes the database's write lock up front, so a
read-then-write (next version number, current alias) can never interleave with another
writer; waiting writers retry for up to ``busy_timeout`` seconds. A connection is opened per
public call (and closed after it), so a registry object may be shared by threads and survives
``fork``. The SQL itself is shared with PostgreSQL (``sql.py``); sqlite3's exceptions are
translated to parity's in ``_translate``, the one place that does it.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from parity.errors import ParityError, StorageError, TransientError, WorkspaceError
from parity.registry.signing import Signer
from parity.registry.sql import SqlRegistry

_SCHEMA = """
CREATE TABLE IF NOT EXISTS registry_models (
    name        TEXT PRIMARY KEY,
    created_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS registry_versions (
    name            TEXT NOT NULL REFERENCES registry_models (name),
    version         INTEGER NOT NULL,
    artifact_sha256 TEXT NOT NULL,
    artifact_size   INTEGER NOT NULL,
    feature_sets    TEXT NOT NULL,
    training_set    TEXT,
    code_version    TEXT,
    code_dirty      INTEGER,
    params          TEXT NOT NULL,
    metrics         TEXT NOT NULL,
    description     TEXT,
    created_at      TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS registry_aliases (
    name        TEXT NOT NULL,
    alias       TEXT NOT NULL,
    version     INTEGER NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (name, alias),
    FOREIGN KEY (name, version) REFERENCES registry_versions (name, version)
);
CREATE TABLE IF NOT EXISTS registry_alias_history (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL,
    alias         TEXT NOT NULL,
    from_version  INTEGER,
    to_version    INTEGER NOT NULL,
    moved_at      TEXT NOT NULL,
    reason        TEXT,
    actor         TEXT
);
CREATE INDEX IF NOT EXISTS registry_alias_history_by_alias
    ON registry_alias_history (name, alias, id);
"""


class SqliteRegistry(SqlRegistry):
    """A registry whose metadata lives in one SQLite file and artifacts in a local folder."""

    def __init__(
        self,
        path: str | Path,
        artifacts_root: str | Path,
        *,
        busy_timeout: float = 30.0,
        signer: Signer | None = None,
        key_path: str | Path | None = None,
        allow_pickle: bool = False,
    ) -> None:
        super().__init__(
            artifacts_root, signer=signer, key_path=key_path, allow_pickle=allow_pickle
        )
        if str(path) == ":memory:":
            raise WorkspaceError(
                "the SQLite registry needs a file, not ':memory:': every operation opens its own "
                "connection. Give a path such as sqlite:///abs/path/registry.db"
            )
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StorageError(
                f"cannot create the folder of the registry database {self.path}: "
                f"{err.strerror or err}. Check its permissions or configure another registry"
            ) from err
        with self._open() as conn:
            tables = {
                row[0]
                for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            if not {"registry_models", "registry_versions", "registry_aliases",
                    "registry_alias_history"} <= tables:
                # WAL is a property of the file: set it once, when the tables are made, so that
                # opening an existing registry writes nothing (read-only workspaces work).
                if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                    conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript("BEGIN IMMEDIATE;" + _SCHEMA + "COMMIT;")

    def __repr__(self) -> str:
        return f"SqliteRegistry({str(self.path)!r}, artifacts_root={str(self.artifacts.root)!r})"

    # --- connections ---------------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """The session's connection, or a new one closed on exit."""
        shared = getattr(self._local, "conn", None)
        if shared is not None:
            yield shared
        else:
            with self._open() as conn:
                yield conn

    @contextmanager
    def _open(self) -> Iterator[sqlite3.Connection]:
        """A new connection, closed on exit; sqlite3 errors become parity errors here."""
        try:
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        except sqlite3.Error as err:
            raise _translate(err, self.path, self.busy_timeout) from err
        try:
            conn.execute("PRAGMA foreign_keys=ON")
            yield conn
        except ParityError:
            raise
        except sqlite3.Error as err:
            raise _translate(err, self.path, self.busy_timeout) from err
        finally:
            conn.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A connection inside ``BEGIN IMMEDIATE``: committed on success, rolled back on error."""
        with self._read() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")


def _translate(err: sqlite3.Error, path: Path, busy_timeout: float) -> ParityError:
    """The parity error for a sqlite3 error: a lock is transient, the rest terminal."""
    text = str(err)
    lowered = text.lower()
    if "locked" in lowered or "busy" in lowered:
        return TransientError(
            f"the registry database {path} stayed locked for more than {busy_timeout:g}s "
            f"({text}); another process holds a long write. Retry, or raise busy_timeout"
        )
    if "not a database" in lowered or "malformed" in lowered:
        return StorageError(
            f"the registry database {path} is damaged or is not a SQLite database ({text}). "
            f"Restore it from a backup, or move it away to start an empty registry"
        )
    if "unable to open" in lowered or "readonly" in lowered or "read-only" in lowered:
        return StorageError(
            f"cannot open the registry database {path} for writing ({text}). Check that the "
            f"file and its folder exist and that you may read and write them"
        )
    return StorageError(f"the registry database {path} failed: {text}")
