"""OnlineFeatures: push facts, materialize from the fact log, get features for a context.

The orchestration of the online path (routing versions to entities, compaction, eviction,
batching into the fact log) lives here; the store underneath only stores. Reads go
store -> ``evaluate.prepare`` -> ``evaluate.evaluate_set``, writes go ``normalize_facts`` ->
store (immediately visible) and -> a buffer that ``flush`` appends to the fact log.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Union

import numpy as np
import pandas as pd
import pyarrow as pa

from parity.contexts import AT, normalize_contexts
from parity.definitions import EVENT_TIME, FACT_ID, RECORDED_AT, TOMBSTONE, FeatureSet, Source
from parity.dtypes import arrow_type
from parity.errors import NotFoundError, SchemaError, TimeError
from parity.factlog import FactLog
from parity.facts import FactData, canonical_schema, normalize_facts, tombstones
from parity.online.base import (
    FOREIGN_FLAG,
    TOMBSTONE_FLAG,
    Block,
    OnlineStore,
    concat,
    entity_id,
)
from parity.online.evaluate import (
    Prepared,
    Retention,
    SetPlan,
    evaluate_set,
    evict,
    plan,
    prepare,
    retention,
)
from parity.reference import feature_arrow_type
from parity.timeutil import (
    TIMESTAMP_TYPE,
    datetime_to_us,
    now_us,
    parse_duration,
    to_utc_datetime,
    us_to_datetime,
)

SetNames = Union[str, FeatureSet, Sequence[Union[str, FeatureSet]]]  # noqa: UP007
_WATERMARK = "watermark"
_MATERIALIZE_CHUNK = 200_000


@dataclass(frozen=True)
class PushReport:
    """What a push did: ``seconds`` is the time from the call until the facts were visible."""

    source: str
    facts: int
    entities: int
    seconds: float


@dataclass(frozen=True)
class MaterializeReport:
    """What a materialize did, per source: fact versions read from the fact log."""

    facts: dict[str, int]
    entities: dict[str, int]
    seconds: float


class OnlineFeatures:
    """The feature sets' values served live from an online store.

    ``lookback`` bounds how far before the watermark (the latest ``recorded_at`` pushed) a
    request may ask and still get the exact offline answer; versions no request at or after
    ``watermark - lookback`` can need are evicted. ``lookback=None`` keeps everything.
    Facts pushed are buffered for the fact log and appended every ``flush_every`` facts or
    ``flush_seconds`` (checked on each push), and on ``flush()`` / ``close()``.
    """

    def __init__(
        self,
        store: OnlineStore,
        fact_log: FactLog,
        feature_sets: Sequence[FeatureSet],
        lookback: str | None = "1h",
        flush_every: int = 10_000,
        flush_seconds: float = 5.0,
        max_segments: int = 8,
    ) -> None:
        self.store = store
        self.fact_log = fact_log
        self.feature_sets = {fs.name: fs for fs in feature_sets}
        self.lookback_us = parse_duration(lookback, "online lookback")
        self.flush_every = flush_every
        self.flush_seconds = flush_seconds
        self.max_segments = max_segments
        self.sources: dict[str, Source] = {}
        for fs in feature_sets:
            for source in fs.sources:
                self.sources.setdefault(source.name, source)
        self._retention: dict[str, Retention] = {
            name: retention(source, feature_sets) for name, source in self.sources.items()
        }
        self._plans: dict[str, SetPlan] = {fs.name: plan(fs) for fs in feature_sets}
        stored = store.get_meta(_WATERMARK)
        self.watermark: int | None = int(stored) if stored else None
        self._buffer: dict[str, list[pa.Table]] = {}
        self._buffered = 0
        self._buffered_since: float | None = None
        self._lock = threading.RLock()

    # -- writing ---------------------------------------------------------------------------

    @property
    def horizon(self) -> int | None:
        """The earliest request time (epoch us) answered exactly; None when nothing is evicted."""
        if self.lookback_us is None or self.watermark is None:
            return None
        return self.watermark - self.lookback_us

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
        src = self._source(source)
        clock = datetime_to_us(to_utc_datetime(now, "now")) if now is not None else now_us()
        data = _rows_to_table(src, facts) if isinstance(facts, (list, tuple)) else facts
        table = normalize_facts(src, data, recorded_at="now", now=clock)
        return self._push(src, table, clock, started)

    def push_canonical(
        self, source: str | Source, facts: pa.Table, now: datetime | None = None
    ) -> PushReport:
        """Push facts that are already canonical (``normalize_facts`` output, a fact log's
        rows), tombstones included; used to replay a fact log through the online path."""
        started = time.perf_counter()
        src = self._source(source)
        if not facts.schema.equals(canonical_schema(src)):
            raise SchemaError(
                f"source {src.name!r}: push_canonical() takes canonical facts with the columns "
                f"{', '.join(canonical_schema(src).names)}; use push() for raw facts"
            )
        clock = datetime_to_us(to_utc_datetime(now, "now")) if now is not None else now_us()
        return self._push(src, facts, clock, started)

    def delete(
        self, source: str | Source, fact_ids: Sequence[str], now: datetime | None = None
    ) -> PushReport:
        """Tombstone facts from ``now`` on (rule 4); earlier requests still see them.

        Each tombstone carries the keys and event_time of the fact's latest stored version,
        as ``FactLog.delete`` does. NotFoundError for a fact id the store does not hold.
        """
        started = time.perf_counter()
        src = self._source(source)
        clock = datetime_to_us(to_utc_datetime(now, "now")) if now is not None else now_us()
        ids = [str(f) for f in fact_ids]
        keys: list[list[Any]] = []
        times: list[int] = []
        for fid, holders in zip(ids, self.store.directory(src, ids)):
            latest: tuple[int, int, str] | None = None
            for holder in (holders or "").split("\n") if holders else []:
                for b in self.store.read(src, [holder])[0]:
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

    def _push(self, src: Source, table: pa.Table, clock: int, started: float) -> PushReport:
        with self._lock:
            entities = self._apply(src, table, clock)
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

    def flush(self) -> None:
        """Append the buffered pushed facts to the fact log (one Parquet commit per source).

        If the fact log refuses a batch, the error propagates and the facts stay buffered.
        """
        with self._lock:
            for name in list(self._buffer):
                tables = self._buffer[name]
                self.fact_log.append(self.sources[name], pa.concat_tables(tables))
                del self._buffer[name]
            self._buffered = 0
            self._buffered_since = None

    def materialize(self, feature_sets: SetNames | None = None) -> MaterializeReport:
        """Rebuild the online store from the fact log for the sources of ``feature_sets``.

        Use it to bootstrap a new store or to repair one. Buffered pushes are flushed first,
        so nothing pushed is lost. Readers may see a source empty while it is rebuilt.
        """
        started = time.perf_counter()
        self.flush()
        chosen = (
            self._resolve(feature_sets)
            if feature_sets is not None
            else list(self.feature_sets.values())
        )
        sources = {s.name: s for fs in chosen for s in fs.sources}
        counts: dict[str, int] = {}
        entities: dict[str, int] = {}
        with self._lock:
            for name, source in sources.items():
                table = self.fact_log.read(source)
                if table.num_rows:
                    latest = int(table.column(RECORDED_AT).cast(pa.int64()).to_numpy().max())
                    self._advance(min(latest, now_us()))
                self.store.clear(source)
                table = table.sort_by([(k, "ascending") for k in source.entity.keys])
                for start in range(0, table.num_rows, _MATERIALIZE_CHUNK):
                    self._apply(source, table.slice(start, _MATERIALIZE_CHUNK), None)
                counts[name] = table.num_rows
                entities[name] = self.compact(source)
        return MaterializeReport(counts, entities, time.perf_counter() - started)

    def compact(self, source: str | Source | None = None) -> int:
        """Merge every entity's segments into one and evict what no request can need.

        Runs over all sources when ``source`` is None; returns the entities left.
        """
        chosen = [self._source(source)] if source is not None else list(self.sources.values())
        left = 0
        with self._lock:
            for src in chosen:
                for entity in list(self.store.entities(src)):
                    segments = self.store.read(src, [entity])[0]
                    left += self._compact(src, entity, segments)
        return left

    def reset(self) -> None:
        """Empty the store of every source served here and forget the watermark."""
        with self._lock:
            for source in self.sources.values():
                self.store.clear(source)
            self.watermark = None
            self.store.set_meta(_WATERMARK, "")

    def close(self) -> None:
        """Flush the buffered facts to the fact log and close the store."""
        self.flush()
        self.store.close()

    def __enter__(self) -> OnlineFeatures:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ---------------------------------------------------------------------------

    def get_features(self, feature_sets: SetNames, context: Mapping[str, Any]) -> dict[str, Any]:
        """The features of ``feature_sets`` for one context, as the Time Machine would give them.

        ``context`` holds the entity keys, request fields and optionally ``at`` (aware UTC;
        default now). Returns ``{feature name: value}`` in feature-set order.
        """
        sets = self._resolve(feature_sets)
        t, at = self._request_time(context.get(AT))
        wanted: list[tuple[Source, list[str]]] = []
        for fs in sets:
            self._check_context(fs, context)
            key = entity_id([_key_value(context[k], d) for k, d in fs.entity.keys.items()])
            wanted += [(sp.source, [key]) for sp in self._plans[fs.name].sources]
        blocks = iter(self.store.read_sources(wanted))
        row = {**context, AT: at}
        out: dict[str, Any] = {}
        for fs in sets:
            set_plan = self._plans[fs.name]
            prepared = {sp.source.name: prepare(next(blocks)[0]) for sp in set_plan.sources}
            out.update(evaluate_set(set_plan, prepared, row, t))
        return out

    def get_features_batch(self, feature_sets: SetNames, contexts: FactData) -> pa.Table:
        """Features for many contexts in one call; the same table ``training_set`` returns.

        ``contexts`` is a table (pandas, Arrow, or a list of dicts) with the entity keys,
        ``at`` and request fields; other columns pass through. Each source is read once.
        """
        sets = self._resolve(feature_sets)
        if isinstance(contexts, (list, tuple)):
            contexts = pd.DataFrame(list(contexts))
        table = normalize_contexts(contexts, sets)
        rows = table.to_pylist()
        times = table.column(AT).cast(pa.int64()).to_pylist() if rows else []
        horizon = self.horizon
        if horizon is not None and times and min(times) < horizon:
            self._request_time(us_to_datetime(min(times)))  # raises the horizon error
        out = table
        for fs in sets:
            set_plan = self._plans[fs.name]
            keys = [entity_id([row[k] for k in fs.entity.keys]) for row in rows]
            unique = list(dict.fromkeys(keys))
            prepared: dict[str, dict[str, Prepared | None]] = {}
            for sp in set_plan.sources:
                blocks = self.store.read(sp.source, unique)
                prepared[sp.source.name] = {k: prepare(b) for k, b in zip(unique, blocks)}
            columns: dict[str, list[Any]] = {f.name: [] for f in fs.features}
            for row, key, t in zip(rows, keys, times):
                mine = {name: by_key[key] for name, by_key in prepared.items()}
                for name, value in evaluate_set(set_plan, mine, row, t).items():
                    columns[name].append(value)
            for feature in fs.features:
                out = out.append_column(
                    feature.name, pa.array(columns[feature.name], type=feature_arrow_type(feature))
                )
        return out

    # -- internals -------------------------------------------------------------------------

    def _apply(self, source: Source, table: pa.Table, clock: int | None) -> int:
        """Store canonical facts: route each version to every entity that holds its fact."""
        if table.num_rows == 0:
            return 0
        block = _to_block(source, table)
        owners = _entity_ids(source, table)
        fids: list[str] = table.column(FACT_ID).to_pylist()
        in_batch: dict[str, set[str]] = {}
        for fid, owner in zip(fids, owners):
            in_batch.setdefault(fid, set()).add(owner)
        unique = list(in_batch)
        known = dict(zip(unique, self.store.directory(source, unique)))
        directory: dict[str, str] = {}
        moved: dict[str, set[str]] = {}
        for fid, here in in_batch.items():
            entry = known[fid]
            before = set(entry.split("\n")) if entry else set()
            everyone = before | here
            if everyone != before:
                directory[fid] = "\n".join(sorted(everyone))
            if len(everyone) > 1:
                moved[fid] = everyone
        routes: dict[str, list[int]] = {}
        foreign: dict[str, list[int]] = {}
        for row, (fid, owner) in enumerate(zip(fids, owners)):
            if fid not in moved:
                routes.setdefault(owner, []).append(row)
                continue
            for entity in moved[fid]:
                routes.setdefault(entity, []).append(row)
                if entity != owner:
                    foreign.setdefault(entity, []).append(row)
        segments = {e: _route(block, rows, foreign.get(e)) for e, rows in routes.items()}
        if moved:
            self._copy_moved(source, moved, known, segments)
        counts = self.store.append(source, segments, directory)
        if clock is not None:
            recorded = int(block.recorded_at.max())
            self._advance(min(recorded, clock))
        for entity, count in counts.items():
            if count > self.max_segments:
                self._compact(source, entity, self.store.read(source, [entity])[0])
        return len(segments)

    def _copy_moved(
        self,
        source: Source,
        moved: Mapping[str, set[str]],
        known: Mapping[str, str | None],
        segments: dict[str, Block],
    ) -> None:
        """Give entities newly holding a moved fact the versions of it stored elsewhere."""
        holders = sorted({e for fid in moved for e in (known[fid] or "").split("\n") if e})
        if not holders:
            return
        stored = dict(zip(holders, self.store.read(source, holders)))
        for fid, everyone in moved.items():
            before = set((known[fid] or "").split("\n")) - {""}
            # A version is about entity X exactly when X's own copy is not marked foreign.
            own = [
                b.take(np.flatnonzero((b.fact_id == fid) & ((b.flags & FOREIGN_FLAG) == 0)))
                for holder in sorted(before)
                for b in stored[holder]
            ]
            copies = [rows for rows in own if len(rows)]
            for rows in copies:  # seen from an entity that is not their holder
                rows.flags = rows.flags | FOREIGN_FLAG
            if copies:
                for entity in everyone - before:
                    segments[entity] = concat([*copies, segments[entity]])

    def _compact(self, source: Source, entity: str, segments: list[Block]) -> int:
        """Merge and evict one entity's segments; returns 1 if the entity still holds data."""
        prepared = prepare(segments)
        if prepared is None:
            return 0
        horizon = self.horizon
        merged = (
            prepared.block
            if horizon is None
            else evict(prepared, horizon, self._retention[source.name])
        )
        gone = set(prepared.block.fact_id.tolist()) - set(merged.fact_id.tolist())
        updates: dict[str, str | None] = {}
        if gone:
            ids = sorted(gone)
            for fid, value in zip(ids, self.store.directory(source, ids)):
                rest = [e for e in (value or "").split("\n") if e and e != entity]
                updates[fid] = "\n".join(rest) if rest else None
        self.store.replace(source, entity, len(segments), merged, updates)
        return 1 if len(merged) else 0

    def _advance(self, recorded: int) -> None:
        if self.watermark is None or recorded > self.watermark:
            self.watermark = recorded
            self.store.set_meta(_WATERMARK, str(recorded))

    def _source(self, source: str | Source) -> Source:
        name = source if isinstance(source, str) else source.name
        if name not in self.sources:
            raise NotFoundError(
                f"no feature set served online reads source {name!r}; the online store keeps "
                f"the sources {', '.join(sorted(self.sources)) or '(none)'}"
            )
        return self.sources[name]

    def _resolve(self, feature_sets: SetNames) -> list[FeatureSet]:
        items: Iterable[str | FeatureSet]
        items = [feature_sets] if isinstance(feature_sets, (str, FeatureSet)) else feature_sets
        out = []
        for item in items:
            name = item if isinstance(item, str) else item.name
            if name not in self.feature_sets:
                raise NotFoundError(
                    f"no feature set {name!r} is served online; known: "
                    f"{', '.join(sorted(self.feature_sets)) or '(none)'}"
                )
            out.append(self.feature_sets[name])
        return out

    def _request_time(self, value: Any) -> tuple[int, datetime]:
        if value is None:
            t = now_us()
            return t, us_to_datetime(t)
        at = to_utc_datetime(value, AT)
        t = datetime_to_us(at)
        horizon = self.horizon
        if horizon is not None and t < horizon:
            raise TimeError(
                f"at={at.isoformat()} is before the online horizon "
                f"{us_to_datetime(horizon).isoformat()} "
                f"(latest recorded_at pushed minus lookback); the online store may have evicted "
                f"facts such a request needs. Ask the Time Machine (training_set) about the past, "
                f"or open the store with a longer lookback"
            )
        return t, at

    def _check_context(self, fs: FeatureSet, context: Mapping[str, Any]) -> None:
        for key, dtype in fs.entity.keys.items():
            if key not in context:
                raise SchemaError(
                    f"context has no {key!r}, the key of entity {fs.entity.name!r} that feature "
                    f"set {fs.name!r} is about; pass it, e.g. {{{key!r}: ...}}"
                )
            value = context[key]
            ok = (
                isinstance(value, str)
                if dtype == "str"
                else (
                    isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
                )
            )
            if not ok:
                raise SchemaError(
                    f"context key {key!r} is {value!r} ({type(value).__name__}), but entity "
                    f"{fs.entity.name!r} declares it {dtype!r}; convert it, e.g. "
                    f"{'str' if dtype == 'str' else 'int'}({value!r})"
                )
        for name in fs.request_fields:
            if name not in context:
                raise SchemaError(
                    f"context has no request field {name!r}, which a transform of feature set "
                    f"{fs.name!r} reads; pass it (None is allowed)"
                )


def _to_block(source: Source, table: pa.Table) -> Block:
    """Canonical facts as one block (in table order)."""
    values: dict[str, np.ndarray] = {}
    valid: dict[str, np.ndarray] = {}
    for name, dtype in source.schema.items():
        column = table.column(name)
        valid[name] = column.is_valid().to_numpy(zero_copy_only=False)
        if dtype == "str":
            values[name] = _objects(column.to_pylist())
        elif dtype == "timestamp":
            values[name] = column.cast(pa.int64()).fill_null(0).to_numpy()
        elif dtype == "bool":
            values[name] = column.fill_null(False).to_numpy(zero_copy_only=False).astype(bool)
        else:
            values[name] = column.fill_null(0).to_numpy()
    tomb = table.column(TOMBSTONE).to_numpy(zero_copy_only=False).astype(np.uint8) * TOMBSTONE_FLAG
    return Block(
        table.column(EVENT_TIME).cast(pa.int64()).to_numpy(),
        table.column(RECORDED_AT).cast(pa.int64()).to_numpy(),
        tomb,
        _objects(table.column(FACT_ID).to_pylist()),
        values,
        valid,
    )


def _entity_ids(source: Source, table: pa.Table) -> list[str]:
    columns = [table.column(k).to_pylist() for k in source.entity.keys]
    if len(columns) == 1 and next(iter(source.entity.keys.values())) == "int":
        return [f"[{v}]" for v in columns[0]]
    return [entity_id(key) for key in zip(*columns)]


def _rows_to_table(source: Source, rows: Sequence[Mapping[str, Any]]) -> pa.Table:
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


def _key_value(value: Any, dtype: str) -> Any:
    return int(value) if dtype == "int" else value


def _route(block: Block, rows: list[int], foreign: list[int] | None) -> Block:
    part = block.take(np.asarray(rows, np.int64))
    if foreign:
        mark = np.isin(np.asarray(rows), np.asarray(foreign))
        part.flags = part.flags | (mark.astype(np.uint8) * FOREIGN_FLAG)
    return part


def _objects(items: list[Any]) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out
