"""The embedded registry backend: one SQLite file, safe across processes on one machine.

The database runs in WAL mode (readers never block the writer). Every write is one
``BEGIN IMMEDIATE`` transaction, which takes the database's write lock up front, so a
read-then-write (next version number, current alias) can never interleave with another
writer; waiting writers retry for up to ``busy_timeout`` seconds. A connection is opened per
public call (and closed after it), so a registry object may be shared by threads and survives
``fork``.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from parity.errors import TransientError, WorkspaceError
from parity.registry.base import (
    EVENT_COLUMNS,
    VERSION_COLUMNS,
    AliasChooser,
    AliasEvent,
    ModelVersion,
    Registry,
    VersionDraft,
    event_from_row,
    version_from_row,
)

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


class SqliteRegistry(Registry):
    """A registry whose metadata lives in one SQLite file and artifacts in a local folder."""

    def __init__(
        self, path: str | Path, artifacts_root: str | Path, *, busy_timeout: float = 30.0
    ) -> None:
        super().__init__(artifacts_root)
        if str(path) == ":memory:":
            raise WorkspaceError(
                "the SQLite registry needs a file, not ':memory:': every operation opens its own "
                "connection. Give a path such as sqlite:///abs/path/registry.db"
            )
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            # WAL is a property of the file: set it once, not on every open.
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript("BEGIN IMMEDIATE;" + _SCHEMA + "COMMIT;")

    def __repr__(self) -> str:
        return f"SqliteRegistry({str(self.path)!r}, artifacts_root={str(self.artifacts.root)!r})"

    # --- connections ---------------------------------------------------------------------

    @contextmanager
    def _session(self) -> Iterator[None]:
        """Share one connection among the primitives called inside (this thread; reentrant)."""
        if getattr(self._local, "conn", None) is not None:
            yield
            return
        with self._open() as conn:
            self._local.conn = conn
            try:
                yield
            finally:
                self._local.conn = None

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """The session's connection, or a new one closed on exit."""
        shared = getattr(self._local, "conn", None)
        if shared is not None:
            yield shared
        else:
            with self._open() as conn:
                yield conn

    @contextmanager
    def _open(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        except sqlite3.Error as err:
            raise WorkspaceError(f"cannot open the registry database {self.path}: {err}") from err
        try:
            conn.execute("PRAGMA foreign_keys=ON")
            yield conn
        except sqlite3.OperationalError as err:
            if "locked" in str(err) or "busy" in str(err):
                raise TransientError(
                    f"the registry database {self.path} stayed locked for more than "
                    f"{self.busy_timeout:g}s ({err}); another process holds a long write. "
                    f"Retry, or raise busy_timeout"
                ) from err
            raise
        finally:
            conn.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A connection inside ``BEGIN IMMEDIATE``: committed on success, rolled back on error."""
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # --- storage primitives --------------------------------------------------------------

    def _insert_version(self, draft: VersionDraft) -> int:
        with self._write() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO registry_models (name, created_at) VALUES (?, ?)",
                (draft.name, draft.created_at.isoformat()),
            )
            (latest,) = conn.execute(
                "SELECT COALESCE(MAX(version), 0) FROM registry_versions WHERE name = ?",
                (draft.name,),
            ).fetchone()
            version = int(latest) + 1
            conn.execute(
                f"INSERT INTO registry_versions ({VERSION_COLUMNS}) "
                f"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    draft.name,
                    version,
                    draft.artifact_sha256,
                    draft.artifact_size,
                    draft.feature_sets_json,
                    draft.training_set_json,
                    draft.code_version,
                    None if draft.code_dirty is None else int(draft.code_dirty),
                    draft.params_json,
                    draft.metrics_json,
                    draft.description,
                    draft.created_at.isoformat(),
                ),
            )
        return version

    def _select_versions(self, name: str, version: int | None) -> list[ModelVersion]:
        sql = f"SELECT {VERSION_COLUMNS} FROM registry_versions WHERE name = ?"
        args: tuple[object, ...] = (name,)
        if version is not None:
            sql += " AND version = ?"
            args += (version,)
        with self._connect() as conn:
            rows = conn.execute(sql + " ORDER BY version", args).fetchall()
        return [version_from_row(row) for row in rows]

    def _select_model_names(self) -> list[str]:
        with self._connect() as conn:
            rows = conn.execute("SELECT name FROM registry_models ORDER BY name").fetchall()
        return [row[0] for row in rows]

    def _select_aliases(self, name: str) -> dict[str, int]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT alias, version FROM registry_aliases WHERE name = ? ORDER BY alias",
                (name,),
            ).fetchall()
        return {alias: int(version) for alias, version in rows}

    def _move_alias(
        self,
        name: str,
        alias: str,
        choose: AliasChooser,
        reason: str | None,
        actor: str | None,
    ) -> AliasEvent | None:
        with self._write() as conn:
            row = conn.execute(
                "SELECT version FROM registry_aliases WHERE name = ? AND alias = ?",
                (name, alias),
            ).fetchone()
            current = None if row is None else int(row[0])
            latest_row = conn.execute(
                f"SELECT {EVENT_COLUMNS} FROM registry_alias_history "
                f"WHERE name = ? AND alias = ? ORDER BY id DESC LIMIT 1",
                (name, alias),
            ).fetchone()
            target = choose(current, None if latest_row is None else event_from_row(latest_row))
            if target is None:
                return None
            now = datetime.now(timezone.utc).isoformat()
            conn.execute(
                "INSERT INTO registry_aliases (name, alias, version, updated_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (name, alias) "
                "DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at",
                (name, alias, target, now),
            )
            cursor = conn.execute(
                "INSERT INTO registry_alias_history "
                "(name, alias, from_version, to_version, moved_at, reason, actor) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (name, alias, current, target, now, reason, actor),
            )
            event_id = cursor.lastrowid
        assert event_id is not None
        return AliasEvent(
            id=event_id,
            name=name,
            alias=alias,
            from_version=current,
            to_version=target,
            moved_at=datetime.fromisoformat(now),
            reason=reason,
            actor=actor,
        )

    def _select_history(self, name: str, alias: str | None) -> list[AliasEvent]:
        sql = f"SELECT {EVENT_COLUMNS} FROM registry_alias_history WHERE name = ?"
        args: tuple[object, ...] = (name,)
        if alias is not None:
            sql += " AND alias = ?"
            args += (alias,)
        with self._connect() as conn:
            rows = conn.execute(sql + " ORDER BY id", args).fetchall()
        return [event_from_row(row) for row in rows]
