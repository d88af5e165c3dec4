"""Storing canonical fact versions: route each to every entity that holds its fact, compact.

A version goes to the entity it is about; a correction that moves a fact to another entity
also goes to every entity that held an earlier version (marked FOREIGN there, so that entity
knows the fact left it). ``compact_entity`` merges an entity's segments and evicts what no
request at or after the horizon can need. Both the writer (push) and maintenance
(materialize, compact) store through here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import numpy as np
import pyarrow as pa

from parity.definitions import EVENT_TIME, FACT_ID, RECORDED_AT, TOMBSTONE, Source
from parity.dtypes import is_nested
from parity.online.base import (
    FOREIGN_FLAG,
    TOMBSTONE_FLAG,
    Block,
    concat,
    entity_id,
    nested_objects,
)
from parity.online.evaluate import evict, prepare
from parity.online.state import WATERMARK, OnlineState
from parity.online.tilewrite import on_push, rebuild, tiled


def apply(
    state: OnlineState,
    source: Source,
    table: pa.Table,
    clock: int | None,
    meta: Mapping[str, str] | None = None,
) -> int:
    """Store canonical facts; returns the entities touched.

    With ``clock`` (a push), the horizon watermark advances to the latest ``recorded_at``
    stored, capped at ``clock`` so a fact recorded in the future cannot move it. ``meta``
    (metadata values) is written in the same atomic store call as the facts.
    """
    if table.num_rows == 0:
        return 0
    block = to_block(source, table)
    owners = entity_ids(source, table)
    fids: list[str] = table.column(FACT_ID).to_pylist()
    in_batch: dict[str, set[str]] = {}
    for fid, owner in zip(fids, owners):
        in_batch.setdefault(fid, set()).add(owner)
    unique = list(in_batch)
    known = dict(zip(unique, state.store.directory(source, unique)))
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
        _copy_moved(state, source, moved, known, segments)
    tiles = None
    if tiled(source):
        once = Counter(fids)
        fresh = {f for f, n in once.items() if n == 1 and known[f] is None}
        tiles = on_push(state.store, source, segments, fresh)
    mark = None if clock is None else min(int(block.recorded_at.max()), clock)
    changes = {**(meta or {}), **(state.watermark_change(mark) if mark is not None else {})}
    counts = state.store.append(source, segments, directory, tiles, changes)
    if mark is not None and WATERMARK in changes:
        state.watermark = mark
    for entity, count in counts.items():
        if count > state.max_segments:
            compact_entity(state, source, entity, state.store.read(source, [entity])[0])
    return len(segments)


def compact_entity(state: OnlineState, source: Source, entity: str, segments: list[Block]) -> int:
    """Merge and evict one entity's segments; returns 1 if the entity still holds data."""
    prepared = prepare(segments)
    if prepared is None:
        return 0
    horizon = state.horizon
    merged = (
        prepared.block
        if horizon is None
        else evict(prepared, horizon, state.retention[source.name])
    )
    gone = set(prepared.block.fact_id.tolist()) - set(merged.fact_id.tolist())
    updates: dict[str, str | None] = {}
    if gone:
        ids = sorted(gone)
        for fid, value in zip(ids, state.store.directory(source, ids)):
            rest = [e for e in (value or "").split("\n") if e and e != entity]
            updates[fid] = "\n".join(rest) if rest else None
    if state.store.replace(source, entity, len(segments), merged, updates) and tiled(source):
        # Rebuilt from what is kept: buckets no request at or after the horizon reaches go.
        kept = prepared if merged is prepared.block else prepare([merged])
        state.store.append(source, {}, {}, {entity: rebuild(source, kept)})
    return 1 if len(merged) else 0


def _copy_moved(
    state: OnlineState,
    source: Source,
    moved: Mapping[str, set[str]],
    known: Mapping[str, str | None],
    segments: dict[str, Block],
) -> None:
    """Give entities newly holding a moved fact the versions of it stored elsewhere."""
    holders = sorted({e for fid in moved for e in (known[fid] or "").split("\n") if e})
    if not holders:
        return
    stored = dict(zip(holders, state.store.read(source, holders)))
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


def to_block(source: Source, table: pa.Table) -> Block:
    """Canonical facts as one block (in table order)."""
    values: dict[str, np.ndarray] = {}
    valid: dict[str, np.ndarray] = {}
    for name, dtype in source.schema.items():
        column = table.column(name)
        valid[name] = column.is_valid().to_numpy(zero_copy_only=False)
        if dtype == "str":
            values[name] = _objects(column.to_pylist())
        elif is_nested(dtype):
            values[name] = nested_objects(column.to_pylist())
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


def entity_ids(source: Source, table: pa.Table) -> list[str]:
    """The entity id of every row of a canonical fact table."""
    columns = [table.column(k).to_pylist() for k in source.entity.keys]
    if len(columns) == 1 and next(iter(source.entity.keys.values())) == "int":
        return [f"[{v}]" for v in columns[0]]
    return [entity_id(key) for key in zip(*columns)]


def _route(block: Block, rows: list[int], foreign: list[int] | None) -> Block:
    part = block.take(np.asarray(rows, np.int64))
    if foreign:
        mark = np.isin(np.asarray(rows), np.asarray(foreign))
        part.flags = part.flags | (mark.astype(np.uint8) * FOREIGN_FLAG)
    return part


def _objects(items: list[object]) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out
