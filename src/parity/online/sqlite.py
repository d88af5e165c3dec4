"""The SQLite store: embedded, durable across restarts, the default of a workspace.

Tables::

    segments(source, entity, seq, data)     one row per segment, seq orders them
    directory(source, fact_id, entities)    where each fact's versions are kept
    tiles(source, entity, bucket, data)     tile summary (bucket SUMMARY), records (bucket =
                                            record key) and pending blocks (PENDING + seq)
    meta(name, value)

WAL mode lets readers in other processes read while one process writes. Driver errors are
translated in one place (``_translate``): a busy or locked database is a ``TransientError``
(retry), a full disk, a read-only file or an unopenable path a ``StorageError``.

Opened with ``read_only=True`` (a pure read, such as ``parity get``), the file is opened with
``mode=ro`` and a write raises ``StorageError``; nothing on disk is created or changed. When no
writer is active (no ``-wal`` file) it is opened ``immutable`` as well, because ``mode=ro`` alone
would leave ``-wal``/``-shm`` files behind; a writer that starts during such a read is not seen
by it (fine for a one-shot read, which is what read-only is for). A missing file reads as an
empty store.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

from parity.definitions import Source
from parity.errors import StorageError, TransientError
from parity.online.base import Block, OnlineStore, TileRead, decode, encode
from parity.online.tiles import (
    PENDING,
    SUMMARY,
    Tiles,
    TileWrite,
    bucket_rows,
    decode_record,
    decode_summary,
    encode_record,
    encode_summary,
    record_keys,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS segments (
    source TEXT NOT NULL, entity TEXT NOT NULL, seq INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (source, entity, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS directory (
    source TEXT NOT NULL, fact_id TEXT NOT NULL, entities TEXT NOT NULL,
    PRIMARY KEY (source, fact_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tiles (
    source TEXT NOT NULL, entity TEXT NOT NULL, bucket INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (source, entity, bucket)
) WITHOUT ROWID;
"""
_CHUNK = 500  # bound parameters per IN (...) list
_BUSY = ("database is locked", "database table is locked", "database is busy")
_STORAGE = (
    "disk is full",
    "database or disk is full",
    "readonly database",
    "unable to open database",
    "disk i/o error",
    "attempt to write a readonly",
)
F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def _translate(path: Path, read_only: bool = False) -> Iterator[None]:
    """Map sqlite3's errors to parity's tree: the one place this store does it."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        text = str(exc).lower()
        if read_only and "readonly" in text:
            raise StorageError(
                f"online store {path} was opened read-only (a pure read such as `parity get`); "
                f"it refuses to write ({exc})"
            ) from exc
        if any(word in text for word in _BUSY):
            raise TransientError(
                f"online store {path}: the database is busy ({exc}); another process holds "
                f"a write lock. Retry in a moment"
            ) from exc
        if any(word in text for word in _STORAGE):
            raise StorageError(
                f"online store {path}: cannot write or open the file ({exc}); check free "
                f"disk space and that the folder is writable"
            ) from exc
        raise StorageError(f"online store {path}: SQLite failed ({exc})") from exc
    except sqlite3.DatabaseError as exc:
        raise StorageError(
            f"online store {path}: the file is not a readable SQLite database ({exc}); "
            f"delete it and run `parity materialize`"
        ) from exc
    except OSError as exc:
        raise StorageError(f"online store {path}: {exc}") from exc


def _translated(method: F) -> F:
    @wraps(method)
    def wrapper(self: SQLiteStore, *args: Any, **kwargs: Any) -> Any:
        with _translate(self.path, self.read_only):
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


class SQLiteStore(OnlineStore):
    """Segments as BLOB rows in one SQLite file.

    ``busy_timeout`` is how long a call waits for another process's write lock before it
    raises TransientError.
    """

    def __init__(
        self, path: str | Path, read_only: bool = False, busy_timeout: float = 5.0
    ) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self.url = f"sqlite:///{self.path.as_posix().lstrip('/')}"
        self._lock = threading.RLock()
        with _translate(self.path):
            if read_only and not self.path.exists():
                # Nothing was ever written: an empty store, kept in memory, touching no file.
                self._con = sqlite3.connect(":memory:", check_same_thread=False)
                self._con.executescript(_SCHEMA)
                self._con.execute("PRAGMA query_only=ON")
            elif read_only:
                # With a writer active (its -wal file exists) share its -wal/-shm read-only;
                # with none, open immutable, since mode=ro alone would create -wal and -shm
                # files it can never remove. See the module docstring for the trade-off.
                live = Path(f"{self.path}-wal").exists()
                mode = "mode=ro" if live else "mode=ro&immutable=1"
                self._con = sqlite3.connect(
                    f"{self.path.resolve().as_uri()}?{mode}",
                    uri=True,
                    check_same_thread=False,
                    isolation_level=None,
                    timeout=busy_timeout,
                )
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._con = sqlite3.connect(
                    self.path, check_same_thread=False, isolation_level=None, timeout=busy_timeout
                )
                self._con.execute("PRAGMA journal_mode=WAL")
                self._con.execute("PRAGMA synchronous=NORMAL")
                self._con.executescript(_SCHEMA)

    @_translated
    def append(
        self,
        source: Source,
        segments: Mapping[str, Block],
        directory: Mapping[str, str],
        tiles: Mapping[str, TileWrite] | None = None,
        meta: Mapping[str, str] | None = None,
    ) -> dict[str, int]:
        """Append segments, set directory entries, tiles and metadata (see OnlineStore)."""
        encoded = [(entity, encode(source, block)) for entity, block in segments.items()]
        entities = [entity for entity, _ in encoded]
        with self._lock, self._transaction() as con:
            last = self._last_seq(con, source, entities)
            seqs = {e: last.get(e, (0, 0))[0] + 1 for e in entities}
            resets, puts = _tile_rows(source, tiles or {}, seqs)
            if resets:
                con.executemany(
                    "DELETE FROM tiles WHERE source = ? AND entity = ?",
                    [(source.name, e) for e in resets],
                )
            if puts:
                con.executemany("INSERT OR REPLACE INTO tiles VALUES (?, ?, ?, ?)", puts)
            if meta:
                con.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(meta.items()))
            con.executemany(
                "INSERT INTO segments VALUES (?, ?, ?, ?)",
                [(source.name, e, seqs[e], data) for e, data in encoded],
            )
            # In key order: a bulk load then appends to the B-tree instead of inserting at
            # random places (fact ids are hashes), several times faster.
            con.executemany(
                "INSERT OR REPLACE INTO directory VALUES (?, ?, ?)",
                [(source.name, f, directory[f]) for f in sorted(directory)],
            )
        return {e: last.get(e, (0, 0))[1] + 1 for e in entities}

    @_translated
    def read(self, source: Source, entities: Sequence[str]) -> list[list[Block]]:
        """The segments of each entity id (see OnlineStore)."""
        found: dict[str, list[Block]] = {}
        with self._lock:
            if len(entities) == 1:
                rows = self._con.execute(
                    "SELECT entity, data FROM segments WHERE source = ? AND entity = ? "
                    "ORDER BY seq",
                    (source.name, entities[0]),
                ).fetchall()
            else:
                rows = []
                unique = list(dict.fromkeys(entities))
                for start in range(0, len(unique), _CHUNK):
                    part = unique[start : start + _CHUNK]
                    rows += self._con.execute(
                        f"SELECT entity, data FROM segments WHERE source = ? AND entity IN "
                        f"({','.join('?' * len(part))}) ORDER BY entity, seq",
                        (source.name, *part),
                    ).fetchall()
        for entity, data in rows:
            found.setdefault(entity, []).append(decode(source, data))
        return [found.get(e, []) for e in entities]

    @_translated
    def read_tiles(self, requests: Sequence[TileRead]) -> list[Tiles]:
        """Tile summaries, bucket records and pending blocks (see OnlineStore); one query
        per entity."""
        out: list[Tiles] = []
        with self._lock:
            for source, entity, buckets in requests:
                wanted = sorted({SUMMARY, *(k for b in buckets for k in record_keys(b))})
                # Two index lookups (an OR would scan every record of the entity).
                rows = self._con.execute(
                    f"SELECT bucket, data FROM tiles WHERE source = ? AND entity = ? AND "
                    f"bucket IN ({','.join('?' * len(wanted))}) UNION ALL "
                    f"SELECT bucket, data FROM tiles WHERE source = ? AND entity = ? AND "
                    f"bucket >= ? ORDER BY 1",
                    (source.name, entity, *wanted, source.name, entity, PENDING),
                ).fetchall()
                found = dict(rows)
                head = found.get(SUMMARY)
                out.append(
                    Tiles(
                        None if head is None else decode_summary(source, head),
                        bucket_rows(source, found, buckets),
                        [decode_record(source, data) for b, data in rows if b >= PENDING],
                    )
                )
        return out

    @_translated
    def replace(
        self,
        source: Source,
        entity: str,
        count: int,
        merged: Block | None,
        directory: Mapping[str, str | None],
    ) -> bool:
        """Replace the first ``count`` segments of ``entity`` (see OnlineStore)."""
        with self._lock, self._transaction() as con:
            seqs = [
                row[0]
                for row in con.execute(
                    "SELECT seq FROM segments WHERE source = ? AND entity = ? ORDER BY seq LIMIT ?",
                    (source.name, entity, count),
                )
            ]
            if len(seqs) < count:
                return False
            if seqs:
                con.execute(
                    "DELETE FROM segments WHERE source = ? AND entity = ? AND seq <= ?",
                    (source.name, entity, seqs[-1]),
                )
            if merged is not None and len(merged):
                # Takes the place of the first segment it replaces: it stays oldest.
                first = seqs[0] if seqs else 0
                con.execute(
                    "INSERT INTO segments VALUES (?, ?, ?, ?)",
                    (source.name, entity, first, encode(source, merged)),
                )
            con.executemany(
                "DELETE FROM directory WHERE source = ? AND fact_id = ?",
                [(source.name, f) for f, v in directory.items() if v is None],
            )
            con.executemany(
                "INSERT OR REPLACE INTO directory VALUES (?, ?, ?)",
                [(source.name, f, v) for f, v in directory.items() if v is not None],
            )
        return True

    @_translated
    def directory(self, source: Source, fact_ids: Sequence[str]) -> list[str | None]:
        """Directory entries (see OnlineStore)."""
        found: dict[str, str] = {}
        unique = list(dict.fromkeys(fact_ids))
        with self._lock:
            for start in range(0, len(unique), _CHUNK):
                part = unique[start : start + _CHUNK]
                found.update(
                    self._con.execute(
                        f"SELECT fact_id, entities FROM directory WHERE source = ? AND fact_id IN "
                        f"({','.join('?' * len(part))})",
                        (source.name, *part),
                    ).fetchall()
                )
        return [found.get(f) for f in fact_ids]

    @_translated
    def entities(self, source: Source) -> Iterator[str]:
        """Every entity id holding segments of ``source``."""
        with self._lock:
            rows = self._con.execute(
                "SELECT DISTINCT entity FROM segments WHERE source = ?", (source.name,)
            ).fetchall()
        return iter([row[0] for row in rows])

    @_translated
    def get_meta(self, name: str) -> str | None:
        """A metadata value."""
        with self._lock:
            row = self._con.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    @_translated
    def set_meta(self, name: str, value: str) -> None:
        """Set a metadata value."""
        with self._lock:
            self._con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, value))

    @_translated
    def clear(self, source: Source) -> None:
        """Forget everything about ``source``."""
        with self._lock, self._transaction() as con:
            con.execute("DELETE FROM segments WHERE source = ?", (source.name,))
            con.execute("DELETE FROM directory WHERE source = ?", (source.name,))
            con.execute("DELETE FROM tiles WHERE source = ?", (source.name,))

    @_translated
    def entity_bytes(self, source: Source, entity: str) -> int:
        """Bytes of one entity's segment and tile blobs."""
        with self._lock:
            row = self._con.execute(
                "SELECT (SELECT coalesce(sum(length(data)), 0) FROM segments "
                "WHERE source = ? AND entity = ?) + (SELECT coalesce(sum(length(data)), 0) "
                "FROM tiles WHERE source = ? AND entity = ?)",
                (source.name, entity, source.name, entity),
            ).fetchone()
        return int(row[0])

    @_translated
    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._con.close()

    def _last_seq(
        self, con: sqlite3.Connection, source: Source, entities: Sequence[str]
    ) -> dict[str, tuple[int, int]]:
        """(greatest seq, number of segments) of each entity that has segments."""
        out: dict[str, tuple[int, int]] = {}
        for start in range(0, len(entities), _CHUNK):
            part = entities[start : start + _CHUNK]
            for entity, seq, count in con.execute(
                f"SELECT entity, max(seq), count(*) FROM segments WHERE source = ? AND entity IN "
                f"({','.join('?' * len(part))}) GROUP BY entity",
                (source.name, *part),
            ):
                out[entity] = (int(seq), int(count))
        return out

    def _transaction(self) -> _Transaction:
        return _Transaction(self._con)


def _tile_rows(
    source: Source, tiles: Mapping[str, TileWrite], seqs: Mapping[str, int]
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """(entities reset, rows to insert) of tile writes, encoded; a pending block is keyed by
    its segment's number (``seqs``), a record by its key (``tiles.record_keys``)."""
    resets = [entity for entity, change in tiles.items() if change.reset]
    puts: list[tuple[Any, ...]] = []
    name = source.name
    for entity, change in tiles.items():
        if change.summary is not None:
            puts.append((name, entity, SUMMARY, encode_summary(source, change.summary)))
        if change.pending is not None:
            data = encode_record(source, change.pending)
            puts.append((name, entity, PENDING + seqs[entity], data))
        puts += [(name, entity, number, data) for number, data in change.records.items()]
    return resets, puts


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception."""

    def __init__(self, con: sqlite3.Connection) -> None:
        self.con = con

    def __enter__(self) -> sqlite3.Connection:
        self.con.execute("BEGIN IMMEDIATE")
        return self.con

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        self.con.execute("COMMIT" if kind is None else "ROLLBACK")
