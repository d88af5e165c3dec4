"""The registry's SQL, written once for every SQL backend; a backend supplies a small dialect.

Both backends run the same statements (``ON CONFLICT`` upserts and ``RETURNING`` work in SQLite
>= 3.35 and PostgreSQL). What differs is kept in four hooks a backend implements:

- ``placeholder``: ``?`` (sqlite3) or ``%s`` (psycopg); statements here are written with ``?``;
- ``_write()``: a connection inside one transaction, committed on success, rolled back on error;
- ``_read()``: a connection for reads;
- ``lock_suffix``: what makes ``SELECT ... FROM registry_models`` lock the model's row until the
  transaction ends (``FOR UPDATE`` in PostgreSQL; nothing in SQLite, whose ``BEGIN IMMEDIATE``
  already holds the database's write lock);
- ``_stamp``/``_flag``: how a timestamp and a boolean are bound (text and 0/1 in SQLite).

Driver exceptions are translated to ``parity.errors`` in each backend's ``_open``, in one place.
"""

from __future__ import annotations

import threading
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timezone
from typing import Any, ClassVar, Protocol

from parity.errors import NotFoundError
from parity.registry.base import Registry
from parity.registry.records import (
    EVENT_COLUMNS,
    VERSION_COLUMNS,
    AliasChooser,
    AliasEvent,
    ModelVersion,
    VersionDraft,
    event_from_row,
    version_from_row,
)


class Cursor(Protocol):
    """The part of a DB-API cursor the registry uses."""

    def fetchone(self) -> Sequence[Any] | None:
        """The next row, or None."""
        ...

    def fetchall(self) -> Sequence[Sequence[Any]]:
        """All remaining rows."""
        ...


class Connection(Protocol):
    """The part of a sqlite3 / psycopg connection the registry uses: ``execute``."""

    def execute(self, sql: Any, params: Sequence[Any] = ...) -> Any:
        """Run one statement with bound parameters and return its cursor."""
        ...


class SqlRegistry(Registry):
    """The storage primitives of ``Registry`` in SQL shared by the SQL backends."""

    placeholder: ClassVar[str] = "?"
    lock_suffix: ClassVar[str] = ""

    #: the connection a ``_session`` shares, per thread (set by each backend's ``__init__``)
    _local: threading.local

    @abstractmethod
    def _open(self) -> AbstractContextManager[Any]:
        """A new connection, closed on exit; driver errors become ``parity.errors``."""

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

    @abstractmethod
    def _write(self) -> AbstractContextManager[Connection]:
        """A connection inside one write transaction (committed on success)."""

    @abstractmethod
    def _read(self) -> AbstractContextManager[Connection]:
        """A connection for reads."""

    def _stamp(self, moment: datetime) -> object:
        """A timestamp as the driver binds it (default: ISO 8601 text)."""
        return moment.isoformat()

    def _flag(self, value: bool | None) -> object:
        """A boolean as the driver binds it (default: 0/1)."""
        return None if value is None else int(value)

    def _q(self, sql: str) -> str:
        return sql if self.placeholder == "?" else sql.replace("?", self.placeholder)

    def _run(self, conn: Connection, sql: str, params: Sequence[Any] = ()) -> Cursor:
        cursor: Cursor = conn.execute(self._q(sql), tuple(params))
        return cursor

    def _lock_model(self, conn: Connection, name: str) -> None:
        """Hold the model's row until the transaction ends; writers of one model queue here."""
        row = self._run(
            conn, "SELECT name FROM registry_models WHERE name = ?" + self.lock_suffix, (name,)
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no model named {name!r} in the registry")

    # --- storage primitives --------------------------------------------------------------

    def _insert_version(self, draft: VersionDraft) -> int:
        with self._write() as conn:
            self._run(
                conn,
                "INSERT INTO registry_models (name, created_at) VALUES (?, ?) "
                "ON CONFLICT (name) DO NOTHING",
                (draft.name, self._stamp(draft.created_at)),
            )
            self._lock_model(conn, draft.name)
            row = self._run(
                conn,
                "SELECT COALESCE(MAX(version), 0) FROM registry_versions WHERE name = ?",
                (draft.name,),
            ).fetchone()
            assert row is not None
            version = int(row[0]) + 1
            self._run(
                conn,
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
                    self._flag(draft.code_dirty),
                    draft.params_json,
                    draft.metrics_json,
                    draft.description,
                    self._stamp(draft.created_at),
                ),
            )
        return version

    def _select_versions(self, name: str, version: int | None) -> list[ModelVersion]:
        sql = f"SELECT {VERSION_COLUMNS} FROM registry_versions WHERE name = ?"
        args: tuple[object, ...] = (name,)
        if version is not None:
            sql += " AND version = ?"
            args += (version,)
        with self._read() as conn:
            rows = self._run(conn, sql + " ORDER BY version", args).fetchall()
        return [version_from_row(row) for row in rows]

    def _select_model_names(self) -> list[str]:
        with self._read() as conn:
            rows = self._run(conn, "SELECT name FROM registry_models ORDER BY name").fetchall()
        return [row[0] for row in rows]

    def _select_aliases(self, name: str) -> dict[str, int]:
        with self._read() as conn:
            rows = self._run(
                conn,
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
            self._lock_model(conn, name)
            row = self._run(
                conn,
                "SELECT version FROM registry_aliases WHERE name = ? AND alias = ?",
                (name, alias),
            ).fetchone()
            current = None if row is None else int(row[0])
            latest_row = self._run(
                conn,
                f"SELECT {EVENT_COLUMNS} FROM registry_alias_history "
                f"WHERE name = ? AND alias = ? ORDER BY id DESC LIMIT 1",
                (name, alias),
            ).fetchone()
            target = choose(current, None if latest_row is None else event_from_row(latest_row))
            if target is None:
                return None
            now = self._stamp(datetime.now(timezone.utc))
            self._run(
                conn,
                "INSERT INTO registry_aliases (name, alias, version, updated_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (name, alias) "
                "DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at",
                (name, alias, target, now),
            )
            inserted = self._run(
                conn,
                "INSERT INTO registry_alias_history "
                "(name, alias, from_version, to_version, moved_at, reason, actor) "
                f"VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING {EVENT_COLUMNS}",
                (name, alias, current, target, now, reason, actor),
            ).fetchone()
        assert inserted is not None
        return event_from_row(inserted)

    def _select_history(self, name: str, alias: str | None) -> list[AliasEvent]:
        sql = f"SELECT {EVENT_COLUMNS} FROM registry_alias_history WHERE name = ?"
        args: tuple[object, ...] = (name,)
        if alias is not None:
            sql += " AND alias = ?"
            args += (alias,)
        with self._read() as conn:
            rows = self._run(conn, sql + " ORDER BY id", args).fetchall()
        return [event_from_row(row) for row in rows]
