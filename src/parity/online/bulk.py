"""Bulk load of one source from the fact log into an emptied store (``materialize``).

The fact log is streamed in Arrow batches sorted by entity (DuckDB reads the Parquet files and
spills to disk if it must), so memory holds one batch, not the source. Each entity's versions
are merged and evicted in memory (``compact_entity`` without the store round trips) and a
whole batch of entities is written with one bulk call: one SQLite transaction of
``executemany``, one Redis pipeline.

Each entity's tiles (``parity.online.tilewrite``) are built from its evicted block and
written in the same bulk call. It stores exactly what pushing the whole fact log in one
``routing.apply`` and then compacting every entity would store: a fact whose versions are
about several entities (a correction that moved it) is held by each of them, marked FOREIGN
where it is about another.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from parity._duck import connect, query_arrow
from parity.definitions import FACT_ID, Source
from parity.facts import canonical_schema
from parity.online.base import FOREIGN_FLAG, Block
from parity.online.evaluate import evict, prepare
from parity.online.routing import entity_ids, to_block
from parity.online.state import OnlineState
from parity.online.tiles import TileWrite
from parity.online.tilewrite import rebuild, tiled

BATCH_ROWS = 200_000
Progress = Callable[[str, int, int], None]  # (source, fact versions done, total)


def load(state: OnlineState, source: Source, progress: Progress | None = None) -> tuple[int, int]:
    """Store every fact version of ``source`` from the fact log; the store must hold none.

    Returns (fact versions read, entities left holding data).
    """
    paths = state.fact_log.paths(source)
    total = sum(f.rows for f in state.fact_log.files(source))
    if not paths:
        return 0, 0
    con = connect(threads=2)
    try:
        files = "[" + ", ".join(_quote(p) for p in paths) + "]"
        keys = ", ".join(_ident(k) for k in source.entity.keys)
        columns = ", ".join(_ident(c) for c in canonical_schema(source).names)
        relation = f"(SELECT {columns} FROM read_parquet({files}, hive_partitioning = false))"
        moved_rows = query_arrow(
            con,
            f"SELECT * FROM {relation} WHERE {_ident(FACT_ID)} IN ("
            f"SELECT {_ident(FACT_ID)} FROM {relation} GROUP BY {_ident(FACT_ID)} "
            f"HAVING count(DISTINCT ({keys})) > 1)",
        )
        foreign = _foreign_copies(source, moved_rows)
        holders: dict[str, set[str]] = {}  # moved fact id -> entities still holding it
        # Rule-2 order within each entity (fact ids compare as UTF-8 bytes, which is code
        # point order, as in Python), so blocks of distinct facts need no sorting again.
        order = ", ".join([keys, *(_ident(c) for c in ("event_time", "recorded_at", FACT_ID))])
        reader = con.sql(f"SELECT * FROM {relation} ORDER BY {order}").to_arrow_reader(BATCH_ROWS)
        done = left = 0
        for table in _entity_batches(source, reader):
            left += _store_batch(state, source, table, foreign, holders)
            done += table.num_rows
            if progress is not None:
                progress(source.name, done, total)
        if holders:
            directory = {f: "\n".join(sorted(e)) for f, e in holders.items() if e}
            state.store.append(source, {}, directory)
        return done, left
    finally:
        con.close()


def _store_batch(
    state: OnlineState,
    source: Source,
    table: pa.Table,
    foreign: dict[str, Block],
    holders: dict[str, set[str]],
) -> int:
    """Merge, evict and write the entities of one batch (each entity wholly inside it)."""
    block = to_block(source, table)
    owners = np.asarray(entity_ids(source, table), dtype=object)
    # Rows of facts with several versions (corrections): their entities need prepare's
    # grouping of versions; every other entity's rows are ordered, one per fact.
    counts = pc.value_counts(table.column(FACT_ID))
    repeated = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
    corrected = pc.is_in(table.column(FACT_ID), value_set=repeated).to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(np.concatenate([[True], owners[1:] != owners[:-1]]))
    ends = np.append(starts[1:], len(owners))
    horizon = state.horizon
    keep = state.retention[source.name]
    segments: dict[str, Block] = {}
    directory: dict[str, str] = {}
    tiles: dict[str, TileWrite] = {}
    with_tiles = tiled(source)
    for start, end in zip(starts.tolist(), ends.tolist()):
        entity = str(owners[start])
        own = block.take(np.arange(start, end))
        extra = foreign.pop(entity, None)
        if extra is None and not corrected[start:end].any():
            own.ordered = own.unique_ids = True
        prepared = prepare([extra, own] if extra is not None else [own])
        if prepared is None:
            continue
        merged = prepared.block if horizon is None else evict(prepared, horizon, keep)
        if not len(merged):
            continue
        segments[entity] = merged
        if with_tiles:
            kept = prepared if merged is prepared.block else prepare([merged])
            tiles[entity] = rebuild(source, kept)
        for fid in set(merged.fact_id.tolist()):
            if fid in holders:
                holders[fid].add(entity)
            else:
                directory[fid] = entity
    state.store.append(source, segments, directory, tiles)
    return len(segments)


def _foreign_copies(source: Source, moved_rows: pa.Table) -> dict[str, Block]:
    """For facts about several entities: each entity's copies of versions about the others.

    Every entity receiving copies holds a version of the fact itself, so it is in the stream.
    """
    if not moved_rows.num_rows:
        return {}
    moved_rows = moved_rows.cast(canonical_schema(source))
    block = to_block(source, moved_rows)
    owners = entity_ids(source, moved_rows)
    fids = moved_rows.column(FACT_ID).to_pylist()
    by_fact: dict[str, set[str]] = {}
    for fid, owner in zip(fids, owners):
        by_fact.setdefault(fid, set()).add(owner)
    rows: dict[str, list[int]] = {}
    for row, (fid, owner) in enumerate(zip(fids, owners)):
        for entity in by_fact[fid] - {owner}:
            rows.setdefault(entity, []).append(row)
    out = {}
    for entity, index in rows.items():
        part = block.take(np.asarray(index, np.int64))
        part.flags = part.flags | FOREIGN_FLAG
        out[entity] = part
    return out


def _entity_batches(source: Source, reader: pa.RecordBatchReader) -> Iterator[pa.Table]:
    """Canonical tables of whole entities: the last entity of a batch waits for the next."""
    schema = canonical_schema(source)
    keys = list(source.entity.keys)
    pending: pa.Table | None = None
    for batch in reader:
        table = pa.Table.from_batches([batch]).cast(schema)
        if pending is not None:
            table = pa.concat_tables([pending, table])
        if not table.num_rows:
            continue
        # Sorted by entity: the last entity's rows are exactly the rows equal to the last row.
        last = table.slice(table.num_rows - 1).select(keys).to_pylist()[0]
        same = pc.equal(table.column(keys[0]), last[keys[0]])
        for key in keys[1:]:
            same = pc.and_(same, pc.equal(table.column(key), last[key]))
        cut = table.num_rows - int(pc.sum(same).as_py() or 0)
        if cut == 0:  # one entity fills the batch: keep gathering
            pending = table
            continue
        yield table.slice(0, cut)
        pending = table.slice(cut)
    if pending is not None and pending.num_rows:
        yield pending


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
