"""The Online Archive: per-entity bitemporal histories with a live and a batch interface.

    archive = open_archive("sqlite:///data/archive.db", [orders], retention={"orders": "400d"})
    archive.append("orders", rows)                    # live: validated like every write
    archive.latest("orders", 42, n=5)                 # live: the customer's last five orders
    archive.as_of("orders", contexts)                 # batch: each history as seen at `at`

Every version is kept: a late fact or a correction is a new version (same ``fact_id``, later
``recorded_at``), a delete is a tombstone version; nothing is overwritten. Live reads answer
"as known now" (or at ``at=``); batch reads answer "as known at each context's ``at``" under
the time rules of DESIGN.md, and are paced by a token bucket on their own connections.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from parity.archive.budget import TokenBucket
from parity.archive.model import entity_id, to_rows, to_table
from parity.archive.store import NO_BOUND, ArchiveStore, ContextRow, SourceMeta
from parity.contexts import AT
from parity.definitions import EVENT_TIME, FACT_ID, RECORDED_AT, Source
from parity.errors import (
    ConfigError,
    InputError,
    NotFoundError,
    NotReadyError,
    SchemaError,
    StateError,
)
from parity.facts import FactData, RecordedAtPolicy, normalize_facts, tombstones
from parity.frames import read_data
from parity.timeutil import (
    datetime_to_us,
    format_duration,
    normalize_timestamp_column,
    now_us,
    parse_duration,
    to_utc_datetime,
    us_to_datetime,
)

CONTEXT = "context"  # the column of ``as_of`` naming the context row a version is visible to
Key = Any  # one key value, a tuple of them, or a mapping key name -> value


@dataclass(frozen=True)
class AppendReport:
    """What an append did: versions received, newly stored, and already stored (skipped)."""

    source: str
    received: int
    stored: int

    @property
    def skipped(self) -> int:
        """Versions identical to stored ones (a retried append is harmless)."""
        return self.received - self.stored


class Archive:
    """Bitemporal fact histories over an ``ArchiveStore`` (SQLite or PostgreSQL)."""

    def __init__(
        self,
        store: ArchiveStore,
        sources: Sequence[Source] = (),
        *,
        retention: Mapping[str, str | None] | None = None,
        budget: TokenBucket | None = None,
        batch_rows: int = 5_000,
    ) -> None:
        if batch_rows < 1:
            raise ConfigError(f"archive batch_rows must be at least 1, got {batch_rows}")
        self.store = store
        self.budget = budget
        self.batch_rows = batch_rows
        self._sources: dict[str, Source] = {}
        self._meta: dict[str, SourceMeta] = {}
        unknown = set(retention or {}) - {s.name for s in sources}
        if unknown:
            raise ConfigError(
                f"archive retention names source(s) {sorted(unknown)} that are not archived; "
                f"archived sources: {sorted(s.name for s in sources) or '(none)'}"
            )
        for source in sources:
            self.add_source(source, (retention or {}).get(source.name))

    def add_source(self, source: Source, retention: str | None = None) -> None:
        """Archive ``source``; versions whose event_time is older than ``retention`` (e.g.
        ``"400d"``; None keeps everything) are dropped by ``apply_retention``."""
        retention_us = parse_duration(retention, f"archive retention of {source.name!r}")
        meta = self.store.register(source.name, json.dumps(source.spec()), retention_us)
        self._sources[source.name] = source
        self._meta[source.name] = meta

    def sources(self) -> list[Source]:
        """The archived sources, in the order they were added."""
        return list(self._sources.values())

    def source(self, source: Source | str) -> Source:
        """The archived source of that name; NotFoundError lists the archived ones."""
        name = source if isinstance(source, str) else source.name
        if name not in self._sources:
            raise NotFoundError(
                f"source {name!r} is not archived; archived sources: "
                f"{', '.join(sorted(self._sources)) or '(none)'}"
            )
        return self._sources[name]

    # --- live interface ------------------------------------------------------------------

    def append(
        self,
        source: Source | str,
        facts: FactData,
        recorded_at: RecordedAtPolicy = "now",
        *,
        rename: Mapping[str, str] | None = None,
        tz: str | None = None,
    ) -> AppendReport:
        """Validate ``facts`` with ``parity.facts.normalize_facts`` and store them; all or
        nothing. ``recorded_at`` defaults to ``"now"`` (the archive is written by the live
        system as it learns facts); a ``recorded_at`` column in the data wins. A version with
        a stored (fact_id, recorded_at) is skipped if identical and refused if different."""
        src = self.source(source)
        table = normalize_facts(src, facts, recorded_at=recorded_at, rename=rename, tz=tz)
        try:
            stored = self.store.insert(src.name, to_rows(src, table))
        except StateError:
            if recorded_at != "now":
                raise
            # A sync sealed the archive between stamping "now" and storing: stamp again
            # (the seal is at most the sync's own "now", so a fresh stamp passes it).
            table = normalize_facts(src, facts, recorded_at="now", rename=rename, tz=tz)
            stored = self.store.insert(src.name, to_rows(src, table))
        return AppendReport(src.name, table.num_rows, stored)

    def append_canonical(self, source: Source | str, facts: pa.Table) -> AppendReport:
        """Store facts that are already canonical (read from a fact log or an export)."""
        src = self.source(source)
        return AppendReport(
            src.name, facts.num_rows, self.store.insert(src.name, to_rows(src, facts))
        )

    def delete(
        self, source: Source | str, fact_ids: Sequence[str], recorded_at: datetime | None = None
    ) -> AppendReport:
        """Tombstone ``fact_ids`` from ``recorded_at`` (default now) on; earlier views keep
        them. Each tombstone carries the keys and event_time of the fact's latest version."""
        src = self.source(source)
        ids = [str(i) for i in fact_ids]
        stored = to_table(src, self.store.versions(src.name, ids))
        found = set(stored.column(FACT_ID).to_pylist())
        missing = [i for i in ids if i not in found]
        if missing:
            more = f" (nor of {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise InputError(
                f"source {src.name!r}: cannot delete fact_id {missing[0]!r}: the archive holds "
                f"no version of it{more}"
            )
        at = (
            datetime_to_us(to_utc_datetime(recorded_at, "recorded_at")) if recorded_at else now_us()
        )
        latest = stored.sort_by([(FACT_ID, "ascending"), (RECORDED_AT, "descending")])
        ids_col = latest.column(FACT_ID).to_pylist()
        first = [i for i in range(len(ids_col)) if i == 0 or ids_col[i] != ids_col[i - 1]]
        latest = latest.take(pa.array(first, pa.int64()))
        rows = tombstones(
            src, latest, latest.column(FACT_ID).to_pylist(), latest.column(EVENT_TIME), at
        )
        return self.append_canonical(src, rows)

    def latest(
        self, source: Source | str, key: Key, n: int = 10, at: datetime | None = None
    ) -> pa.Table:
        """The ``n`` most recent facts about one entity (rule 2's order, newest first), as
        known at ``at`` (default now): corrections applied, deleted facts left out."""
        src = self.source(source)
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise InputError(f"n: expected a whole number >= 1, got {n!r}")
        t = self._moment(at)
        rows = self.store.latest(src.name, self.entity(src, key), n, t, t)
        return to_table(src, rows)

    def history(
        self,
        source: Source | str,
        key: Key,
        since: datetime | None = None,
        until: datetime | None = None,
        at: datetime | None = None,
    ) -> pa.Table:
        """The facts about one entity with ``since <= event_time < until``, oldest first, as
        known at ``at`` (default now). NotReadyError if ``since`` reaches before the history
        retention has dropped (unknown is not empty)."""
        src = self.source(source)
        low = datetime_to_us(to_utc_datetime(since, "since")) if since is not None else None
        high = datetime_to_us(to_utc_datetime(until, "until")) if until is not None else NO_BOUND
        self._require_kept(src, low, "since")
        t = self._moment(at)
        rows = self.store.history(src.name, self.entity(src, key), low or -NO_BOUND, high, t, t)
        return to_table(src, rows)

    def horizon(self, source: Source | str) -> datetime | None:
        """Facts with event_time before this were dropped by retention (None: none were)."""
        meta = self.store.meta(self.source(source).name)
        return us_to_datetime(meta.horizon_us) if meta and meta.horizon_us is not None else None

    # --- batch interface -----------------------------------------------------------------

    def iter_as_of(
        self,
        source: Source | str,
        contexts: FactData,
        knowledge_cutoff: datetime | None = None,
        window: str | None = None,
    ) -> Iterator[pa.Table]:
        """``as_of`` in chunks of ``batch_rows`` rows, paced by the budget, one snapshot."""
        src = self.source(source)
        rows = self._contexts(src, contexts, knowledge_cutoff)
        span = parse_duration(window, "window")
        self._require_kept(
            src, None if span is None else min((r[2] for r in rows), default=0) - span, "window"
        )
        for chunk in self.store.as_of(src.name, rows, self.batch_rows):
            if self.budget is not None:
                self.budget.take(len(chunk))
            yield to_table(src, chunk, extra=(CONTEXT,))

    def as_of(
        self,
        source: Source | str,
        contexts: FactData,
        knowledge_cutoff: datetime | None = None,
        window: str | None = None,
    ) -> pa.Table:
        """Each context's entity history as visible at its ``at`` (rules 1 and 4).

        ``contexts`` holds the source's entity keys and ``at`` (aware UTC). The answer has a
        ``context`` column (the context's row number) and the canonical fact columns, one row
        per visible fact: its standing version, corrections known before ``at`` applied, facts
        tombstoned before ``at`` left out, ordered by context then (event_time, recorded_at,
        fact_id). ``knowledge_cutoff`` also hides versions recorded at or after it.
        ``window`` is the span of history before each ``at`` the caller needs (None: all);
        if retention has dropped part of it, NotReadyError says so instead of a short answer.
        """
        src = self.source(source)
        chunks = list(self.iter_as_of(src, contexts, knowledge_cutoff, window))
        if not chunks:
            return to_table(src, [], extra=(CONTEXT,))
        return pa.concat_tables(chunks)

    def scan(
        self, source: Source | str, since: datetime | None = None, until: datetime | None = None
    ) -> Iterator[pa.Table]:
        """Every stored version (corrections and tombstones too) with ``since <= recorded_at
        < until``, in storage order (no sort: the server streams at the budget's pace), as
        canonical tables of ``batch_rows`` rows; one snapshot, paced by the budget."""
        src = self.source(source)
        low = datetime_to_us(to_utc_datetime(since, "since")) if since is not None else -NO_BOUND
        high = datetime_to_us(to_utc_datetime(until, "until")) if until is not None else NO_BOUND
        for chunk in self.store.scan(src.name, low, high, self.batch_rows):
            if self.budget is not None:
                self.budget.take(len(chunk))
            yield to_table(src, chunk)

    # --- maintenance ---------------------------------------------------------------------

    def apply_retention(self, now: datetime | None = None) -> dict[str, int]:
        """Drop, per source with a retention, versions whose event_time is older than it;
        return rows dropped per source. Later reads reaching before that refuse."""
        t = self._moment(now)
        out: dict[str, int] = {}
        for name in self._sources:
            meta = self.store.meta(name)
            if meta is not None and meta.retention_us is not None:
                out[name] = self.store.purge(name, t - meta.retention_us)
        return out

    def close(self) -> None:
        """Close the store's connections."""
        self.store.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- helpers -------------------------------------------------------------------------

    def entity(self, source: Source, key: Key) -> str:
        """The entity id of ``key``: a value (one key), a tuple, or a mapping by key name."""
        names = list(source.entity.keys)
        if isinstance(key, Mapping):
            absent = [k for k in names if k not in key]
            if absent:
                raise InputError(
                    f"key: {absent[0]!r} is missing; entity "
                    f"{source.entity.name!r} is keyed by {', '.join(names)}"
                )
            values = [key[k] for k in names]
        elif isinstance(key, (tuple, list)):
            values = list(key)
        else:
            values = [key]
        if len(values) != len(names):
            raise InputError(
                f"key: expected {len(names)} value(s) ({', '.join(names)}), got {values!r}"
            )
        for name, value in zip(names, values, strict=True):
            kind = source.entity.keys[name]
            ok = (
                isinstance(value, str)
                if kind == "str"
                else (isinstance(value, int) and not isinstance(value, bool))
            )
            if not ok:
                raise InputError(
                    f"key {name!r}: expected {kind!r}, got {value!r}; entity "
                    f"{source.entity.name!r} declares it {kind!r}"
                )
        return entity_id(values)

    def _moment(self, at: datetime | None) -> int:
        return now_us() if at is None else datetime_to_us(to_utc_datetime(at, "at"))

    def _require_kept(self, source: Source, since: int | None, what: str) -> None:
        meta = self.store.meta(source.name)
        if meta is None or meta.horizon_us is None:
            return
        if since is None or since < meta.horizon_us:
            reach = "all history" if since is None else f"back to {us_to_datetime(since)}"
            raise NotReadyError(
                f"source {source.name!r}: the archive dropped facts before "
                f"{us_to_datetime(meta.horizon_us)} (retention "
                f"{format_duration(meta.retention_us)}), but the {what} reaches {reach}; "
                f"ask for a shorter span, or read older history from the fact log"
            )

    def _contexts(
        self, source: Source, contexts: FactData, cutoff: datetime | None
    ) -> list[ContextRow]:
        table = read_data(contexts, "contexts")
        for name in [*source.entity.keys, AT]:
            if name not in table.column_names:
                raise SchemaError(
                    f"contexts: column {name!r} is missing; as_of over {source.name!r} needs "
                    f"{', '.join([*source.entity.keys, AT])}; the contexts have "
                    f"{', '.join(table.column_names) or '(no columns)'}"
                )
        if table.num_rows == 0:  # nothing asked (an empty frame may not even carry types)
            return []
        at = normalize_timestamp_column(table.column(AT), AT)
        if at.null_count:
            raise SchemaError(
                f"contexts: column {AT!r} is null in row {pc.index(pc.is_null(at), True).as_py()}"
            )
        times = at.cast(pa.int64()).to_pylist()
        bound = datetime_to_us(to_utc_datetime(cutoff, "knowledge_cutoff")) if cutoff else None
        keys = [table.column(k).to_pylist() for k in source.entity.keys]
        out: list[ContextRow] = []
        for i, t in enumerate(times):
            key = tuple(column[i] for column in keys)
            known = t if bound is None else min(t, bound)
            out.append((i, self.entity(source, key), t, known))
        return out
