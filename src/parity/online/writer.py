"""The online writer: push facts (visible to the very next request), delete, buffer for the log.

A push validates a batch whole (``normalize_facts``), stores it through ``routing.apply``,
advances the source's applied watermark (``readiness``) and buffers the batch; ``flush``
appends the buffer to the fact log, one Parquet commit per source.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from parity.definitions import RECORDED_AT, Source
from parity.dtypes import arrow_type
from parity.errors import NotFoundError, SchemaError, TimeError
from parity.facts import FactData, canonical_schema, normalize_facts, tombstones
from parity.online.base import FOREIGN_FLAG
from parity.online.readiness import applied_change, note_applied
from parity.online.routing import apply
from parity.online.state import OnlineState
from parity.timeutil import TIMESTAMP_TYPE, datetime_to_us, now_us, to_utc_datetime


@dataclass(frozen=True)
class PushReport:
    """What a push did: ``seconds`` is the time from the call until the facts were visible."""

    source: str
    facts: int
    entities: int
    seconds: float


class Writer:
    """Pushes and deletes facts; see the module docstring."""

    def __init__(
        self, state: OnlineState, flush_every: int = 10_000, flush_seconds: float = 5.0
    ) -> None:
        self.state = state
        self.flush_every = flush_every
        self.flush_seconds = flush_seconds
        self._buffer: dict[str, list[pa.Table]] = {}
        self._buffered = 0
        self._buffered_since: float | None = None
        self._lock = threading.RLock()

    def push(
        self,
        source: str | Source,
        facts: FactData | Sequence[Mapping[str, Any]],
        now: datetime | None = None,
    ) -> PushReport:
        """Validate facts, make them visible to the very next request, and log them.

        ``recorded_at`` defaults to ``now`` (the wall clock unless given). A bad fact rejects
        the whole batch before anything is stored. Pushing a fact id again is harmless: the
        latest version of a fact stands, so it counts once.
        """
        started = time.perf_counter()
        src = self.state.source(source)
        clock = _clock(now)
        data = rows_to_table(src, facts) if isinstance(facts, (list, tuple)) else facts
        table = normalize_facts(src, data, recorded_at="now", now=clock)
        return self._push(src, table, clock, started)

    def push_canonical(
        self, source: str | Source, facts: pa.Table, now: datetime | None = None
    ) -> PushReport:
        """Push facts that are already canonical (``normalize_facts`` output, a fact log's
        rows), tombstones included; used to replay a fact log through the online path."""
        started = time.perf_counter()
        src = self.state.source(source)
        if not facts.schema.equals(canonical_schema(src)):
            raise SchemaError(
                f"source {src.name!r}: push_canonical() takes canonical facts with the columns "
                f"{', '.join(canonical_schema(src).names)}; use push() for raw facts"
            )
        return self._push(src, facts, _clock(now), started)

    def delete(
        self, source: str | Source, fact_ids: Sequence[str], now: datetime | None = None
    ) -> PushReport:
        """Tombstone facts from ``now`` on (rule 4); earlier requests still see them.

        Each tombstone carries the keys and event_time of the fact's latest stored version,
        as ``FactLog.delete`` does. NotFoundError for a fact id the store does not hold.
        """
        started = time.perf_counter()
        src = self.state.source(source)
        store = self.state.store
        clock = _clock(now)
        ids = [str(f) for f in fact_ids]
        keys: list[list[Any]] = []
        times: list[int] = []
        for fid, holders in zip(ids, store.directory(src, ids)):
            latest: tuple[int, int, str] | None = None
            for holder in holders.split("\n") if holders else []:
                for b in store.read(src, [holder])[0]:
                    mine = np.flatnonzero((b.fact_id == fid) & ((b.flags & FOREIGN_FLAG) == 0))
                    for row in mine.tolist():
                        candidate = (int(b.recorded_at[row]), int(b.event_time[row]), holder)
                        latest = candidate if latest is None or candidate > latest else latest
            if latest is None:
                raise NotFoundError(
                    f"source {src.name!r}: cannot delete fact_id {fid!r}; the online store does "
                    f"not hold it (never pushed, or evicted)"
                )
            keys.append(json.loads(latest[2]))
            times.append(latest[1])
        key_table = pa.table(
            {
                k: pa.array([key[i] for key in keys], arrow_type(d))
                for i, (k, d) in enumerate(src.entity.keys.items())
            }
        )
        event_times = pa.chunked_array([pa.array(times, pa.int64()).cast(TIMESTAMP_TYPE)])
        return self._push(src, tombstones(src, key_table, ids, event_times, clock), clock, started)

    def flush(self) -> None:
        """Append the buffered pushed facts to the fact log (one Parquet commit per source).

        If the fact log refuses a batch, the error propagates and the facts stay buffered.
        """
        with self._lock:
            for name in list(self._buffer):
                tables = self._buffer[name]
                self.state.fact_log.append(self.state.sources[name], pa.concat_tables(tables))
                del self._buffer[name]
            self._buffered = 0
            self._buffered_since = None

    def _push(self, src: Source, table: pa.Table, clock: int, started: float) -> PushReport:
        with self._lock, self.state.lock:
            latest = None
            change: dict[str, str] = {}
            if table.num_rows:
                recorded = table.column(RECORDED_AT).cast(pa.int64())
                latest = int(pc.max(recorded).as_py())
                change = applied_change(self.state, src, latest)
            # The applied watermark commits with the facts, in the same store write.
            entities = apply(self.state, src, table, clock, change)
            if latest is not None and change:
                note_applied(self.state, src, latest)
            seconds = time.perf_counter() - started
            self._buffer.setdefault(src.name, []).append(table)
            self._buffered += table.num_rows
            if self._buffered_since is None:
                self._buffered_since = time.monotonic()
            if self._buffered >= self.flush_every or (
                time.monotonic() - self._buffered_since >= self.flush_seconds
            ):
                self.flush()
        return PushReport(src.name, table.num_rows, entities, seconds)


def _clock(now: datetime | None) -> int:
    return datetime_to_us(to_utc_datetime(now, "now")) if now is not None else now_us()


def rows_to_table(source: Source, rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Facts given as dicts, as an Arrow table; mixed or naive values are refused by row."""
    names = list(dict.fromkeys(name for row in rows for name in row))
    columns = {}
    for name in names:
        values = [row.get(name) for row in rows]
        for index, value in enumerate(values):
            if isinstance(value, datetime) and value.utcoffset() is None:
                raise TimeError(
                    f"source {source.name!r}: column {name!r}, row {index}: {value.isoformat()} "
                    f"has no time zone; parity never guesses one. Give an aware timestamp, "
                    f"e.g. datetime(..., tzinfo=timezone.utc)"
                )
        try:
            columns[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            first = next((v for v in values if v is not None), None)
            numbers = (int, float)
            index, odd = next(
                (i, v)
                for i, v in enumerate(values)
                if v is not None
                and not isinstance(v, type(first))
                and not (isinstance(v, numbers) and isinstance(first, numbers))
            )
            raise SchemaError(
                f"source {source.name!r}: column {name!r} mixes types: row {index} holds "
                f"{odd!r} ({type(odd).__name__}) where earlier rows hold {type(first).__name__}; "
                f"fix that row or convert the column"
            ) from None
    return pa.table(columns)
