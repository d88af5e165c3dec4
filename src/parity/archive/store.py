"""The archive's storage contract, and the SQL both backends share.

``ArchiveStore`` is plain storage of fact versions (``VersionRow``); it knows the visibility
predicate of the time rules only as SQL, and nothing about features. Two connection pools keep
the two loads apart: **live** calls (``insert``, ``latest``, ``history``) never wait for a
connection a batch read holds, and **batch** calls (``as_of``, ``scan``) run in one snapshot
each (``REPEATABLE READ, READ ONLY`` on PostgreSQL; one read transaction in SQLite's WAL mode),
so a long export is consistent and never blocks writers.

The visibility predicate (rules 1 and 4) for a version ``v`` of entity ``e`` at context time
``t`` with knowledge bound ``r`` (``r = min(t, knowledge cutoff)``)::

    v.entity = e AND v.event_time < t AND v.recorded_at < r AND NOT v.tombstone
    AND NOT EXISTS (a version w of the same fact_id with v.recorded_at < w.recorded_at < r)

A later version of the fact that moved it to another entity, or a tombstone, is such a ``w``,
so the fact leaves ``e`` from ``w.recorded_at`` on, exactly as ``parity.reference.visible``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from parity.archive.model import VersionRow
from parity.errors import SchemaError, StateError

#: Columns of a stored version, in ``VersionRow`` order.
COLUMNS = "entity, event_time, recorded_at, fact_id, tombstone, payload"
#: A context of a batch read: (row number, entity id, at, knowledge bound), times in epoch us.
ContextRow = tuple[int, str, int, int]
NO_BOUND = 2**62  # "no upper bound" as a BIGINT both databases compare natively


@dataclass(frozen=True)
class SourceMeta:
    """What the archive records about a source: its spec (JSON), retention, purge horizon
    (versions with event_time before it were dropped) and seal (no append may be recorded
    before it: history up to there has been synced)."""

    name: str
    spec: str
    retention_us: int | None
    horizon_us: int | None
    sealed_us: int | None


class ArchiveStore(Protocol):
    """Storage of fact versions for the archive; every method is safe to call from threads."""

    def register(self, name: str, spec: str, retention_us: int | None) -> SourceMeta:
        """Record a source (or check it matches the recorded one) and return its metadata."""

    def meta(self, name: str) -> SourceMeta | None:
        """The recorded metadata of a source, or None."""

    def insert(self, source: str, rows: Sequence[VersionRow]) -> int:
        """Store versions not stored yet (same fact_id and recorded_at, same content: skipped);
        return how many were new. A different version under a stored (fact_id, recorded_at),
        or one recorded before the source's seal, fails the whole batch."""

    def latest(self, source: str, entity: str, n: int, at: int, known: int) -> list[VersionRow]:
        """Up to ``n`` versions of ``entity`` visible at (``at``, ``known``), newest first."""

    def history(
        self, source: str, entity: str, since: int, until: int, at: int, known: int
    ) -> list[VersionRow]:
        """Versions visible at (``at``, ``known``) with ``since <= event_time < until``, oldest
        first (rule 2's order)."""

    def versions(self, source: str, fact_ids: Sequence[str]) -> list[VersionRow]:
        """Every stored version of ``fact_ids`` (for deletes)."""

    def as_of(
        self, source: str, contexts: Sequence[ContextRow], batch_rows: int
    ) -> Iterator[list[tuple[Any, ...]]]:
        """Batch read, one snapshot: for each context, the versions visible to it, as rows
        ``(context row number, *VersionRow)`` ordered by context then rule 2's order."""

    def scan(
        self, source: str, since: int, until: int, batch_rows: int
    ) -> Iterator[list[VersionRow]]:
        """Batch read, one snapshot: every version with ``since <= recorded_at < until``, in
        chunks of ``batch_rows``, in storage order. No ORDER BY on purpose: a sort would make
        the server do the whole scan up front, out of the budget's reach; unsorted, the
        server-side cursor reads as fast as the paced client fetches."""

    def seal(self, source: str, through: int) -> None:
        """Refuse appends recorded before ``through`` from now on (waits for running ones)."""

    def purge(self, source: str, before: int) -> int:
        """Drop the facts whose every version has event_time before ``before``; record the
        horizon; return the versions dropped."""

    def get_value(self, name: str) -> str | None:
        """A stored setting (sync watermarks), or None."""

    def set_value(self, name: str, value: str) -> None:
        """Store a setting durably."""

    def close(self) -> None:
        """Close every connection."""


class SqlArchiveStore(ABC):
    """The SQL of ``ArchiveStore`` shared by SQLite and PostgreSQL; subclasses give
    connections, placeholders, the DDL and the few statements that differ."""

    p = "?"  # the driver's placeholder

    # --- hooks ---------------------------------------------------------------------------

    @abstractmethod
    def _live(self) -> AbstractContextManager[Any]:
        """A live-pool connection inside one write transaction."""

    @abstractmethod
    def _snapshot(self) -> AbstractContextManager[Any]:
        """A batch-pool connection inside one read-only snapshot transaction."""

    @abstractmethod
    def _stage(self, conn: Any, source: str, rows: Sequence[VersionRow]) -> None:
        """Load ``rows`` into the (emptied) temporary table ``archive_staging``."""

    @abstractmethod
    def _lock_source(self, conn: Any, source: str) -> tuple[int | None] | None:
        """Read the source's seal, locking out a concurrent ``seal`` until commit."""

    @abstractmethod
    def _context_relation(self, conn: Any, contexts: Sequence[ContextRow]) -> tuple[str, list[Any]]:
        """SQL naming a relation ``c(ctx, entity, at, rec)`` of the contexts, and its params."""

    @abstractmethod
    def _stream(self, conn: Any, sql: str, params: Sequence[Any], size: int) -> Iterator[list[Any]]:
        """Run a query and yield its rows in chunks of ``size`` without holding them all."""

    # --- sources -------------------------------------------------------------------------

    def register(self, name: str, spec: str, retention_us: int | None) -> SourceMeta:
        p = self.p
        with self._live() as conn:
            found = self._meta(conn, name)
            if found is None:
                conn.execute(
                    "INSERT INTO archive_sources (name, spec, retention_us) "
                    f"VALUES ({p}, {p}, {p})",
                    (name, spec, retention_us),
                )
                return SourceMeta(name, spec, retention_us, None, None)
            if found.spec != spec:
                raise SchemaError(
                    f"source {name!r}: its definition differs from the one the archive stores "
                    f"versions under (stored {found.spec}); give the changed source a new name"
                )
            if found.retention_us != retention_us:
                conn.execute(
                    f"UPDATE archive_sources SET retention_us = {p} WHERE name = {p}",
                    (retention_us, name),
                )
            return SourceMeta(name, spec, retention_us, found.horizon_us, found.sealed_us)

    def meta(self, name: str) -> SourceMeta | None:
        with self._live() as conn:
            return self._meta(conn, name)

    def _meta(self, conn: Any, name: str) -> SourceMeta | None:
        row = conn.execute(
            "SELECT name, spec, retention_us, horizon_us, sealed_us FROM archive_sources "
            f"WHERE name = {self.p}",
            (name,),
        ).fetchone()
        return SourceMeta(*row) if row else None

    # --- live ----------------------------------------------------------------------------

    def insert(self, source: str, rows: Sequence[VersionRow]) -> int:
        if not rows:
            return 0
        with self._live() as conn:
            sealed = self._lock_source(conn, source)
            first = min(r.recorded_at for r in rows)
            if sealed and sealed[0] is not None and first < sealed[0]:
                raise StateError(
                    f"source {source!r}: a version recorded at {first} us is before the archive's "
                    f"seal at {sealed[0]} us (history up to the seal was synced to the fact log "
                    f"and may not change). Record late facts and corrections when they are "
                    f"learned: leave recorded_at out, or use recorded_at='now'"
                )
            inserted = self._insert_rows(conn, source, rows)
            if inserted < len(rows):  # some were stored already: identical, or a conflict?
                # (Where _insert_rows staged them already, the second copy only repeats rows
                # the join below finds anyway; this path is the rare one.)
                self._stage(conn, source, rows)
                conflict = conn.execute(
                    "SELECT s.fact_id, s.recorded_at FROM archive_staging s JOIN "
                    "archive_versions v ON v.source = s.source AND v.fact_id = s.fact_id "
                    "AND v.recorded_at = s.recorded_at WHERE v.entity <> s.entity OR "
                    "v.event_time <> s.event_time OR v.tombstone <> s.tombstone OR "
                    "v.payload <> s.payload LIMIT 1"
                ).fetchone()
                if conflict:  # raising rolls the whole batch back
                    raise SchemaError(
                        f"source {source!r}: fact_id {conflict[0]!r} is already archived with "
                        f"recorded_at {conflict[1]} us and different values; a correction needs "
                        f"a later recorded_at"
                    )
            return inserted

    def _insert_rows(self, conn: Any, source: str, rows: Sequence[VersionRow]) -> int:
        """Insert the versions not stored yet (by source, fact_id, recorded_at); return how
        many. Default: through the staging table; a backend may insert directly."""
        self._stage(conn, source, rows)
        cursor = conn.execute(
            f"INSERT INTO archive_versions (source, {COLUMNS}) "
            f"SELECT source, {COLUMNS} FROM archive_staging WHERE true "
            "ON CONFLICT (source, fact_id, recorded_at) DO NOTHING"
        )
        inserted: int = cursor.rowcount
        return inserted

    def latest(self, source: str, entity: str, n: int, at: int, known: int) -> list[VersionRow]:
        p = self.p
        with self._live() as conn:
            rows = conn.execute(
                f"SELECT {_v(COLUMNS)} FROM archive_versions v WHERE v.source = {p} "
                f"AND v.entity = {p} AND v.event_time < {p} AND v.recorded_at < {p} "
                f"AND {_standing(p)} "
                "ORDER BY v.event_time DESC, v.recorded_at DESC, v.fact_id DESC "
                f"LIMIT {p}",
                (source, entity, at, known, known, n),
            ).fetchall()
        return [VersionRow(*r) for r in rows]

    def history(
        self, source: str, entity: str, since: int, until: int, at: int, known: int
    ) -> list[VersionRow]:
        p = self.p
        with self._live() as conn:
            rows = conn.execute(
                f"SELECT {_v(COLUMNS)} FROM archive_versions v WHERE v.source = {p} "
                f"AND v.entity = {p} AND v.event_time >= {p} AND v.event_time < {p} "
                f"AND v.recorded_at < {p} AND {_standing(p)} "
                "ORDER BY v.event_time, v.recorded_at, v.fact_id",
                (source, entity, since, min(until, at), known, known),
            ).fetchall()
        return [VersionRow(*r) for r in rows]

    def versions(self, source: str, fact_ids: Sequence[str]) -> list[VersionRow]:
        p = self.p
        out: list[VersionRow] = []
        with self._live() as conn:
            for start in range(0, len(fact_ids), 500):
                chunk = list(fact_ids[start : start + 500])
                marks = ", ".join([p] * len(chunk))
                out += [
                    VersionRow(*r)
                    for r in conn.execute(
                        f"SELECT {COLUMNS} FROM archive_versions WHERE source = {p} "
                        f"AND fact_id IN ({marks}) ORDER BY fact_id, recorded_at",
                        (source, *chunk),
                    ).fetchall()
                ]
        return out

    # --- batch ---------------------------------------------------------------------------

    def as_of(
        self, source: str, contexts: Sequence[ContextRow], batch_rows: int
    ) -> Iterator[list[tuple[Any, ...]]]:
        p = self.p
        with self._snapshot() as conn:
            relation, params = self._context_relation(conn, contexts)
            sql = (
                f"SELECT c.ctx, {_v(COLUMNS)} FROM {relation} JOIN archive_versions v "
                f"ON v.source = {p} AND v.entity = c.entity AND v.event_time < c.at "
                "AND v.recorded_at < c.rec WHERE NOT v.tombstone AND NOT EXISTS (SELECT 1 FROM "
                "archive_versions w WHERE w.source = v.source AND w.fact_id = v.fact_id AND "
                "w.recorded_at > v.recorded_at AND w.recorded_at < c.rec) "
                "ORDER BY c.ctx, v.event_time, v.recorded_at, v.fact_id"
            )
            yield from self._stream(conn, sql, [*params, source], batch_rows)

    def scan(
        self, source: str, since: int, until: int, batch_rows: int
    ) -> Iterator[list[VersionRow]]:
        p = self.p
        sql = (
            f"SELECT {COLUMNS} FROM archive_versions WHERE source = {p} AND recorded_at >= {p} "
            f"AND recorded_at < {p}"
        )
        with self._snapshot() as conn:
            for chunk in self._stream(conn, sql, (source, since, until), batch_rows):
                yield [VersionRow(*r) for r in chunk]

    # --- maintenance ---------------------------------------------------------------------

    def seal(self, source: str, through: int) -> None:
        p = self.p
        with self._live() as conn:
            conn.execute(
                f"UPDATE archive_sources SET sealed_us = {p} WHERE name = {p} "
                f"AND (sealed_us IS NULL OR sealed_us < {p})",
                (through, source, through),
            )

    def purge(self, source: str, before: int) -> int:
        p = self.p
        with self._live() as conn:
            # A fact goes only when every version of it is older than the horizon: deleting
            # just a correction that moved the fact back in time would resurrect the version
            # it superseded. Versions kept that way are older than the horizon and so outside
            # every window a read may still ask for.
            cursor = conn.execute(
                f"DELETE FROM archive_versions WHERE source = {p} AND event_time < {p} "
                "AND fact_id NOT IN (SELECT w.fact_id FROM archive_versions w WHERE "
                f"w.source = {p} AND w.event_time >= {p})",
                (source, before, source, before),
            )
            conn.execute(
                f"UPDATE archive_sources SET horizon_us = {p} WHERE name = {p} "
                f"AND (horizon_us IS NULL OR horizon_us < {p})",
                (before, source, before),
            )
            removed: int = cursor.rowcount
            return removed

    def get_value(self, name: str) -> str | None:
        with self._live() as conn:
            row = conn.execute(
                f"SELECT value FROM archive_settings WHERE name = {self.p}", (name,)
            ).fetchone()
        return None if row is None else str(row[0])

    def set_value(self, name: str, value: str) -> None:
        p = self.p
        with self._live() as conn:
            conn.execute(
                f"INSERT INTO archive_settings (name, value) VALUES ({p}, {p}) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (name, value),
            )


def _v(columns: str) -> str:
    return ", ".join(f"v.{c.strip()}" for c in columns.split(","))


def _standing(p: str) -> str:
    """No later version of the fact known before the bound (the second ``p``)."""
    return (
        "NOT v.tombstone AND NOT EXISTS (SELECT 1 FROM archive_versions w WHERE "
        f"w.source = v.source AND w.fact_id = v.fact_id AND w.recorded_at > v.recorded_at "
        f"AND w.recorded_at < {p})"
    )
