"""Keeping an entity's tiles in step with its segments: on push, compaction and materialize.

Tiles describe an entity's final own facts (``parity.online.tiles``). A push of facts never
seen before (new fact ids, about their own entity, not tombstones: the common case) reads
nothing: it appends them as a **pending block**, which reads evaluate row by row (visible
when recorded before ``t``, like any single-version fact). Anything else (a correction, a
delete, a fact moving between entities, a re-push) recomputes the entity's tiles whole from
its segments, so min and max stay exact under deletes, at the price of reading the entity.
Compaction (every ``max_segments`` pushes to an entity) and materialize rebuild the tiles from
the evicted block too, which folds the pending blocks in (at most ``max_segments`` of them,
of at most ``PENDING_ROWS`` rows each) and drops buckets no request can reach.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import numpy as np

from parity.definitions import Source
from parity.online.base import FOREIGN_FLAG, Block, OnlineStore
from parity.online.evaluate import Prepared, prepare, standing
from parity.online.tiles import TileWrite, build, encode_records

_END_OF_TIME = 1 << 62
PENDING_ROWS = 64  # a larger batch of new facts is folded in at once (reads stay bounded)


def tiled(source: Source) -> bool:
    """Whether the store keeps tiles for ``source`` (every event source)."""
    return source.kind == "event"


def final_facts(p: Prepared) -> Block:
    """Per fact id the version recorded last, when it is about this entity and not deleted."""
    keep = standing(p, _END_OF_TIME) & (p.block.flags == 0)
    return p.block if keep.all() else p.block.take(np.flatnonzero(keep))


def rebuild(source: Source, p: Prepared | None) -> TileWrite:
    """An entity's tiles recomputed from its versions: the summary and every record,
    replacing all it held (pending blocks included)."""
    if p is None or not len(p.block):
        return TileWrite(reset=True)
    final = final_facts(p)
    own = bool(((p.block.flags & FOREIGN_FLAG) == 0).any())
    summary = build(source, final, int(p.block.recorded_at.max()), own)
    return TileWrite(summary, encode_records(source, final), reset=True)


def on_push(
    store: OnlineStore, source: Source, segments: Mapping[str, Block], fresh: Collection[str]
) -> dict[str, TileWrite]:
    """The tile writes that go with appending ``segments`` (one new segment per entity).

    ``fresh`` holds the fact ids never stored before and pushed once in this batch.
    """
    writes: dict[str, TileWrite] = {}
    others = []
    for entity, block in segments.items():
        small = len(block) <= PENDING_ROWS
        if small and not block.flags.any() and all(f in fresh for f in block.fact_id.tolist()):
            writes[entity] = TileWrite(pending=block)
        else:
            others.append(entity)
    if others:
        for entity, stored in zip(others, store.read(source, others)):
            writes[entity] = rebuild(source, prepare([*stored, segments[entity]]))
    return writes
