"""The reference evaluator: the time rules of DESIGN.md written straight down, slow and plain.

This is the oracle every engine and the online path are tested against. It favours being
obviously correct over being fast: it loops over contexts and facts in Python. Use it only
for tests and for debugging a single context. It reads the rule table (``parity.rules``) only
for what an empty window gives; each function's meaning is written here again, as plainly as
possible, so that the oracle shares no code with an executor. Production code must not import
this module.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa

from parity.contexts import AT
from parity.definitions import (
    EVENT_TIME,
    FACT_ID,
    RECORDED_AT,
    TOMBSTONE,
    Aggregate,
    FeatureSet,
    Lookup,
    Transform,
)
from parity.plan import assemble
from parity.rules import Agg, feature_arrow_type, input_types, missing, rule_of
from parity.timeutil import datetime_to_us
from parity.transforms import apply_row

FactIndex = Mapping[str, Mapping[str, list["Fact"]]]


@dataclass(frozen=True)
class Fact:
    """One stored fact version, with its times in epoch microseconds."""

    key: tuple[Any, ...]
    event_time: int
    recorded_at: int
    fact_id: str
    tombstone: bool
    values: Mapping[str, Any]

    @property
    def order(self) -> tuple[int, int, str]:
        """Rule 2's order for last/last_k and rule 3's for lookups."""
        return (self.event_time, self.recorded_at, self.fact_id)


def index_facts(facts: Mapping[str, pa.Table], feature_sets: Sequence[FeatureSet]) -> FactIndex:
    """Group canonical fact tables by source name and fact id (all versions of each fact)."""
    out: dict[str, dict[str, list[Fact]]] = {}
    for fs in feature_sets:
        for source in fs.sources:
            if source.name in out:
                continue
            grouped: dict[str, list[Fact]] = defaultdict(list)
            table = facts.get(source.name)
            for row in table.to_pylist() if table is not None else []:
                grouped[row[FACT_ID]].append(
                    Fact(
                        key=tuple(row[k] for k in source.entity.keys),
                        event_time=datetime_to_us(row[EVENT_TIME]),
                        recorded_at=datetime_to_us(row[RECORDED_AT]),
                        fact_id=row[FACT_ID],
                        tombstone=bool(row[TOMBSTONE]),
                        values=row,
                    )
                )
            out[source.name] = dict(grouped)
    return out


def visible(
    versions_by_id: Mapping[str, Sequence[Fact]],
    key: tuple[Any, ...],
    t: int,
    cutoff: int | None = None,
) -> list[Fact]:
    """Rules 1 and 4: the facts about entity ``key`` visible at ``t``.

    For each fact id, the version with the greatest recorded_at among those recorded before
    ``t`` (and before ``cutoff``) stands; a tombstone deletes; the fact is visible if its
    event_time is before ``t`` and it is about ``key`` (a correction may move a fact to
    another entity).
    """
    out = []
    for versions in versions_by_id.values():
        known = [
            f for f in versions if f.recorded_at < t and (cutoff is None or f.recorded_at < cutoff)
        ]
        if not known:
            continue
        latest = max(known, key=lambda f: f.recorded_at)
        if not latest.tombstone and latest.event_time < t and latest.key == key:
            out.append(latest)
    return out


def aggregate(feature: Aggregate, facts: Sequence[Fact], t: int) -> Any:
    """Rule 2: the aggregate over visible facts with event_time in [t - W, t)."""
    window = [
        f for f in facts if feature.window_us is None or f.event_time >= t - feature.window_us
    ]
    rule = rule_of(feature)
    if feature.field is None:  # count of events
        return len(window)
    pairs = [
        (f.order, f.values[feature.field]) for f in window if f.values[feature.field] is not None
    ]
    if not pairs:
        return rule.empty_value(feature.dtype)
    return _REDUCE[rule.function](feature, pairs)


Pairs = list[tuple[tuple[int, int, str], Any]]


def _sum(feature: Aggregate, pairs: Pairs) -> Any:
    values = [v for _, v in pairs]
    return math.fsum(values) if feature.dtype == "float" else sum(int(v) for v in values)


def _newest_first(pairs: Pairs) -> list[Any]:
    return [v for _, v in sorted(pairs, key=lambda p: p[0], reverse=True)]


# One plain Python reduction per function, over the (order, value) pairs of the non-null
# values in the window (never empty here: the rule table gives the empty value).
_REDUCE: dict[Agg, Callable[[Aggregate, Pairs], Any]] = {
    Agg.COUNT: lambda f, pairs: len(pairs),
    Agg.COUNT_DISTINCT: lambda f, pairs: len({v for _, v in pairs}),
    Agg.SUM: _sum,
    Agg.MEAN: lambda f, pairs: math.fsum(float(v) for _, v in pairs) / len(pairs),
    Agg.MIN: lambda f, pairs: min(v for _, v in pairs),
    Agg.MAX: lambda f, pairs: max(v for _, v in pairs),
    Agg.LAST: lambda f, pairs: _newest_first(pairs)[0],
    Agg.LAST_K: lambda f, pairs: _newest_first(pairs)[: f.k],
}
assert not missing(_REDUCE), f"reference evaluator lacks {missing(_REDUCE)}"


def lookup(feature: Lookup, facts: Sequence[Fact], t: int) -> Any:
    """Rule 3: the field of the visible version with the greatest (event_time, recorded_at)."""
    if not facts:
        return None
    best = max(facts, key=lambda f: f.order)
    if feature.ttl_us is not None and best.event_time < t - feature.ttl_us:
        return None
    return best.values[feature.field]


def evaluate(
    feature_sets: Sequence[FeatureSet],
    facts: Mapping[str, pa.Table],
    contexts: pa.Table,
    knowledge_cutoff: datetime | None = None,
) -> pa.Table:
    """Compute every feature of ``feature_sets`` for each context, straight from the rules.

    ``facts`` maps source names to canonical fact tables; ``contexts`` is a normalized context
    table (see ``parity.contexts.normalize_contexts``). Returns the contexts with one column
    per feature appended, in feature-set order.
    """
    index = index_facts(facts, feature_sets)
    cutoff = datetime_to_us(knowledge_cutoff) if knowledge_cutoff is not None else None
    rows = contexts.to_pylist()
    types = {name: contexts.schema.field(name).type for name in contexts.column_names}
    out = contexts
    for fs in feature_sets:
        columns: dict[str, list[Any]] = {f.name: [] for f in fs.features}
        for row in rows:
            values = evaluate_row(fs, index, row, cutoff, types)
            for name, value in values.items():
                columns[name].append(value)
        for feature in fs.features:
            out = out.append_column(
                feature.name, pa.array(columns[feature.name], type=feature_arrow_type(feature))
            )
    return out


def evaluate_row(
    fs: FeatureSet,
    index: FactIndex,
    row: Mapping[str, Any],
    cutoff: int | None = None,
    types: Mapping[str, pa.DataType] | None = None,
) -> dict[str, Any]:
    """All features of ``fs`` for one context row (a dict with keys, ``at`` and request fields).

    ``types`` gives the Arrow types of the context columns (for vectorized transforms).
    """
    t = datetime_to_us(row[AT])
    key = tuple(row[k] for k in fs.entity.keys)
    raw: dict[str, Any] = {}
    seen: dict[str, list[Fact]] = {}  # visible facts per source, found once per row
    for feature in fs.features:
        if isinstance(feature, Transform):
            continue
        name = feature.source.name
        if name not in seen:
            seen[name] = visible(index.get(name, {}), key, t, cutoff)
        facts = seen[name]
        if isinstance(feature, Aggregate):
            raw[feature.name] = aggregate(feature, facts, t)
        else:
            raw[feature.name] = lookup(feature, facts, t)
    types_in = input_types(fs, types)
    return assemble(fs, raw, row, lambda tr, inputs: apply_row(tr, inputs, types_in))
