"""The server registry backend: metadata in PostgreSQL, for teams and several machines.

Tables live in one schema (default ``parity``), created on first use. Every write locks the
model's row in ``registry_models`` with ``SELECT ... FOR UPDATE``, so version numbering and
alias moves of one model are serialised across every process and machine, while different
models proceed in parallel. A connection is opened per public call (and closed after it), so a
registry object may be shared by threads and survives ``fork``. The SQL is shared with SQLite
(``sql.py``); psycopg's exceptions are translated in ``_translate``, the one place that does it.

psycopg (3) is imported when a registry is opened, not when parity is imported: install it
with ``pip install 'parity[postgres]'``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from parity.errors import ParityError, StorageError, TransientError, WorkspaceError
from parity.registry.signing import Signer
from parity.registry.sql import SqlRegistry

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


class PostgresRegistry(SqlRegistry):
    """A registry whose metadata lives in PostgreSQL and artifacts in a local folder."""

    placeholder = "%s"
    lock_suffix = " FOR UPDATE"

    def __init__(
        self,
        url: str,
        artifacts_root: str | Path,
        *,
        schema: str = "parity",
        connect_timeout: int = 10,
        signer: Signer | None = None,
        key_path: str | Path | None = None,
        allow_pickle: bool = False,
    ) -> None:
        super().__init__(
            artifacts_root, signer=signer, key_path=key_path, allow_pickle=allow_pickle
        )
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
        with self._write() as conn:
            # Serialise schema creation: concurrent CREATE ... IF NOT EXISTS can still collide.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_SCHEMA_LOCK_KEY,))
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            conn.execute(_DDL)

    def __repr__(self) -> str:
        return f"PostgresRegistry({self._where()!r}, schema={self.schema!r})"

    def _stamp(self, moment: datetime) -> object:
        return moment  # TIMESTAMPTZ: psycopg binds aware datetimes

    def _flag(self, value: bool | None) -> object:
        return value

    # --- connections ---------------------------------------------------------------------

    def _where(self) -> str:
        """host:port/dbname of the URL, without credentials, for messages."""
        try:
            info = self._psycopg.conninfo.conninfo_to_dict(self.url)
        except self._psycopg.Error:
            return "(unparseable URL)"
        return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"

    @contextmanager
    def _write(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection inside one transaction: committed on success, rolled back on error."""
        shared = getattr(self._local, "conn", None)
        if shared is not None:
            with shared.transaction():
                yield shared
        else:
            with self._open() as conn, conn.transaction():
                yield conn

    def _read(self) -> Any:
        return self._write()  # a read is a (short) transaction too: one snapshot

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
        except pg.Error as err:
            raise _translate(pg, err, self._where(), connecting=True) from err
        try:
            yield conn
        except ParityError:
            raise
        except pg.Error as err:
            raise _translate(pg, err, self._where(), connecting=False) from err
        finally:
            conn.close()


def _translate(pg: Any, err: Exception, where: str, *, connecting: bool) -> ParityError:
    """The parity error for a psycopg error: connection trouble, serialisation failures and
    deadlocks are transient; everything else is terminal."""
    text = str(err).strip()
    if connecting and isinstance(err, pg.OperationalError):
        return TransientError(
            f"cannot connect to the PostgreSQL registry at {where}: {text}. Check that the "
            f"server is running and the URL is right"
        )
    if isinstance(err, (pg.errors.SerializationFailure, pg.errors.DeadlockDetected)):
        return TransientError(
            f"the PostgreSQL registry at {where} aborted a transaction ({text}); retrying may "
            f"succeed"
        )
    if isinstance(err, pg.OperationalError):
        return TransientError(f"lost the connection to the PostgreSQL registry at {where}: {text}")
    return StorageError(f"the PostgreSQL registry at {where} failed: {type(err).__name__}: {text}")


def _import_psycopg() -> Any:
    try:
        import psycopg
    except ImportError as err:
        raise WorkspaceError(
            "the PostgreSQL registry needs psycopg 3, which is not installed. Install it with "
            "`pip install 'parity[postgres]'`, or use a sqlite:/// registry URL"
        ) from err
    return psycopg
