"""Features over the archive: a training set computed from ``Archive.as_of``.

The archive is an executor in the sense of ``parity.plan``: for each source the plan reads,
one batch ``as_of`` gives every context the facts visible to it (the time rules applied in
SQL); the aggregates, lookups and transforms over those facts are then evaluated by the online
path's evaluator (``parity.online.evaluate``), the code that serves live requests, so a
feature means the same number from the archive, the online store and the Time Machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa

from parity.archive.archive import CONTEXT, Archive
from parity.contexts import AT, normalize_contexts
from parity.definitions import FeatureSet
from parity.frames import DataInput
from parity.online.evaluate import Prepared, evaluate_set, plan, prepare
from parity.online.routing import to_block
from parity.plan import SourcePlan
from parity.rules import feature_arrow_type
from parity.timeutil import format_duration


def training_set(
    archive: Archive,
    feature_sets: Sequence[FeatureSet],
    contexts: DataInput,
    knowledge_cutoff: datetime | None = None,
) -> pa.Table:
    """Contexts with every feature of ``feature_sets`` appended, each computed from the
    archive's history as visible at the context's ``at`` (and before ``knowledge_cutoff``):
    the table ``Engine.training_set`` returns from the fact log, built through the batch
    interface instead."""
    sets = list(feature_sets)
    table = normalize_contexts(contexts, sets)
    rows = table.to_pylist()
    times = table.column(AT).cast(pa.int64()).to_pylist()
    out = table
    for fs in sets:
        set_plan = plan(fs)
        by_context = {
            sp.source.name: _visible(archive, sp, table, knowledge_cutoff)
            for sp in set_plan.sources
        }
        columns: dict[str, list[Any]] = {f.name: [] for f in fs.features}
        for i, (row, t) in enumerate(zip(rows, times, strict=True)):
            prepared = {name: split[i] for name, split in by_context.items()}
            for name, value in evaluate_set(set_plan, prepared, row, t).items():
                columns[name].append(value)
        for feature in fs.features:
            out = out.append_column(
                feature.name, pa.array(columns[feature.name], type=feature_arrow_type(feature))
            )
    return out


def span(sp: SourcePlan) -> str | None:
    """How far back before ``at`` the features of one source read (None: all history)."""
    reach: list[int] = []
    for agg in sp.aggregates:
        if agg.window_us is None:
            return None
        reach.append(agg.window_us)
    for lk in sp.lookups:
        if lk.ttl_us is None:
            return None
        reach.append(lk.ttl_us)
    return format_duration(max(reach)) if reach else None


def _visible(
    archive: Archive, sp: SourcePlan, contexts: pa.Table, cutoff: datetime | None
) -> list[Prepared | None]:
    """Per context row, the prepared visible facts of one source (None: no fact)."""
    source = sp.source
    asked = contexts.select([*source.entity.keys, AT])
    seen = archive.as_of(source, asked, knowledge_cutoff=cutoff, window=span(sp))
    out: list[Prepared | None] = [None] * contexts.num_rows
    if seen.num_rows == 0:
        return out
    owner = seen.column(CONTEXT).to_numpy()
    block = to_block(source, seen.drop_columns([CONTEXT]))
    bounds = np.flatnonzero(np.diff(owner)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(owner)]])
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        out[int(owner[start])] = prepare([block.take(np.arange(start, end))])
    return out
