"""The server registry backend: metadata in PostgreSQL, for teams and several machines.

Tables live in one schema (default ``parity``), created on first use. Every write locks the
model's row in ``registry_models`` with ``SELECT ... FOR UPDATE``, so version numbering and
alias moves of one model are serialised across every process and machine, while different
models proceed in parallel. A connection is opened per public call (and closed after it), so a
registry object may be shared by threads and survives ``fork``.

psycopg (3) is imported when a registry is opened, not when parity is imported: install it
with ``pip install 'parity[postgres]'``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from parity.errors import NotFoundError, TransientError, WorkspaceError
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

if TYPE_CHECKING:
    import psycopg

_SCHEMA_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_SCHEMA_LOCK_KEY = "parity.registry.schema"

_DDL = """
CREATE TABLE IF NOT EXISTS registry_models (
    name        TEXT PRIMARY KEY,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS registry_versions (
    name            TEXT NOT NULL REFERENCES registry_models (name),
    version         INTEGER NOT NULL,
    artifact_sha256 TEXT NOT NULL,
    artifact_size   BIGINT NOT NULL,
    feature_sets    TEXT NOT NULL,
    training_set    TEXT,
    code_version    TEXT,
    code_dirty      BOOLEAN,
    params          TEXT NOT NULL,
    metrics         TEXT NOT NULL,
    description     TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS registry_aliases (
    name        TEXT NOT NULL,
    alias       TEXT NOT NULL,
    version     INTEGER NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (name, alias),
    FOREIGN KEY (name, version) REFERENCES registry_versions (name, version)
);
CREATE TABLE IF NOT EXISTS registry_alias_history (
    id            BIGSERIAL PRIMARY KEY,
    name          TEXT NOT NULL,
    alias         TEXT NOT NULL,
    from_version  INTEGER,
    to_version    INTEGER NOT NULL,
    moved_at      TIMESTAMPTZ NOT NULL,
    reason        TEXT,
    actor         TEXT
);
CREATE INDEX IF NOT EXISTS registry_alias_history_by_alias
    ON registry_alias_history (name, alias, id);
"""


class PostgresRegistry(Registry):
    """A registry whose metadata lives in PostgreSQL and artifacts in a local folder."""

    def __init__(
        self,
        url: str,
        artifacts_root: str | Path,
        *,
        schema: str = "parity",
        connect_timeout: int = 10,
    ) -> None:
        super().__init__(artifacts_root)
        if not _SCHEMA_NAME_RE.match(schema):
            raise WorkspaceError(
                f"PostgreSQL schema name {schema!r} is not valid: use lowercase letters, digits "
                f"and '_', starting with a letter or '_' (at most 63 characters)"
            )
        self.url = url
        self.schema = schema
        self.connect_timeout = connect_timeout
        self._local = threading.local()
        self._psycopg = _import_psycopg()
        with self._transaction() as conn:
            # Serialise schema creation: concurrent CREATE ... IF NOT EXISTS can still collide.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_SCHEMA_LOCK_KEY,))
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            conn.execute(_DDL)

    def __repr__(self) -> str:
        return f"PostgresRegistry({self._where()!r}, schema={self.schema!r})"

    # --- connections ---------------------------------------------------------------------

    def _where(self) -> str:
        """host:port/dbname of the URL, without credentials, for messages."""
        try:
            info = self._psycopg.conninfo.conninfo_to_dict(self.url)
        except self._psycopg.Error:
            return "(unparseable URL)"
        return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"

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
    def _transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection inside one transaction: committed on success, rolled back on error."""
        shared = getattr(self._local, "conn", None)
        if shared is not None:
            with shared.transaction():
                yield shared
        else:
            with self._open() as conn, conn.transaction():
                yield conn

    @contextmanager
    def _open(self) -> Iterator[psycopg.Connection[Any]]:
        """A new autocommit connection, closed on exit; driver errors become parity errors."""
        pg = self._psycopg
        try:
            conn = pg.connect(
                self.url,
                autocommit=True,
                connect_timeout=self.connect_timeout,
                options=f"-c search_path={self.schema}",
            )
        except pg.OperationalError as err:
            raise TransientError(
                f"cannot connect to the PostgreSQL registry at {self._where()}: "
                f"{str(err).strip()}. Check that the server is running and the URL is right"
            ) from err
        try:
            yield conn
        except (pg.errors.SerializationFailure, pg.errors.DeadlockDetected) as err:
            raise TransientError(
                f"the PostgreSQL registry at {self._where()} aborted a transaction ({err}); "
                f"retrying may succeed"
            ) from err
        except pg.OperationalError as err:
            raise TransientError(
                f"lost the connection to the PostgreSQL registry at {self._where()}: {err}"
            ) from err
        finally:
            conn.close()

    # --- storage primitives --------------------------------------------------------------

    def _insert_version(self, draft: VersionDraft) -> int:
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO registry_models (name, created_at) VALUES (%s, %s) "
                "ON CONFLICT (name) DO NOTHING",
                (draft.name, draft.created_at),
            )
            _lock_model(conn, draft.name)
            row = conn.execute(
                "SELECT COALESCE(MAX(version), 0) FROM registry_versions WHERE name = %s",
                (draft.name,),
            ).fetchone()
            assert row is not None
            version = int(row[0]) + 1
            conn.execute(
                f"INSERT INTO registry_versions ({VERSION_COLUMNS}) "
                f"VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    draft.name,
                    version,
                    draft.artifact_sha256,
                    draft.artifact_size,
                    draft.feature_sets_json,
                    draft.training_set_json,
                    draft.code_version,
                    draft.code_dirty,
                    draft.params_json,
                    draft.metrics_json,
                    draft.description,
                    draft.created_at,
                ),
            )
        return version

    def _select_versions(self, name: str, version: int | None) -> list[ModelVersion]:
        sql = f"SELECT {VERSION_COLUMNS} FROM registry_versions WHERE name = %s"
        args: tuple[object, ...] = (name,)
        if version is not None:
            sql += " AND version = %s"
            args += (version,)
        with self._transaction() as conn:
            rows = conn.execute(sql + " ORDER BY version", args).fetchall()
        return [version_from_row(row) for row in rows]

    def _select_model_names(self) -> list[str]:
        with self._transaction() as conn:
            rows = conn.execute("SELECT name FROM registry_models ORDER BY name").fetchall()
        return [row[0] for row in rows]

    def _select_aliases(self, name: str) -> dict[str, int]:
        with self._transaction() as conn:
            rows = conn.execute(
                "SELECT alias, version FROM registry_aliases WHERE name = %s ORDER BY alias",
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
        with self._transaction() as conn:
            _lock_model(conn, name)
            row = conn.execute(
                "SELECT version FROM registry_aliases WHERE name = %s AND alias = %s",
                (name, alias),
            ).fetchone()
            current = None if row is None else int(row[0])
            latest_row = conn.execute(
                f"SELECT {EVENT_COLUMNS} FROM registry_alias_history "
                f"WHERE name = %s AND alias = %s ORDER BY id DESC LIMIT 1",
                (name, alias),
            ).fetchone()
            target = choose(current, None if latest_row is None else event_from_row(latest_row))
            if target is None:
                return None
            now = datetime.now(timezone.utc)
            conn.execute(
                "INSERT INTO registry_aliases (name, alias, version, updated_at) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (name, alias) "
                "DO UPDATE SET version = EXCLUDED.version, updated_at = EXCLUDED.updated_at",
                (name, alias, target, now),
            )
            inserted = conn.execute(
                "INSERT INTO registry_alias_history "
                "(name, alias, from_version, to_version, moved_at, reason, actor) "
                f"VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {EVENT_COLUMNS}",
                (name, alias, current, target, now, reason, actor),
            ).fetchone()
        assert inserted is not None
        return event_from_row(inserted)

    def _select_history(self, name: str, alias: str | None) -> list[AliasEvent]:
        sql = f"SELECT {EVENT_COLUMNS} FROM registry_alias_history WHERE name = %s"
        args: tuple[object, ...] = (name,)
        if alias is not None:
            sql += " AND alias = %s"
            args += (alias,)
        with self._transaction() as conn:
            rows = conn.execute(sql + " ORDER BY id", args).fetchall()
        return [event_from_row(row) for row in rows]


def _lock_model(conn: psycopg.Connection[Any], name: str) -> None:
    """Lock a model's row until the transaction ends; writers of one model queue here."""
    locked = conn.execute(
        "SELECT name FROM registry_models WHERE name = %s FOR UPDATE", (name,)
    ).fetchone()
    if locked is None:
        raise NotFoundError(f"no model named {name!r} in the PostgreSQL registry")


def _import_psycopg() -> Any:
    try:
        import psycopg
    except ImportError as err:
        raise WorkspaceError(
            "the PostgreSQL registry needs psycopg 3, which is not installed. Install it with "
            "`pip install 'parity[postgres]'`, or use a sqlite:/// registry URL"
        ) from err
    return psycopg
