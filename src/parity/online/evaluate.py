"""Online evaluation: the time rules of DESIGN.md over one entity's fact versions, vectorised.

``parity.reference`` states the rules one fact at a time; this module computes the same
answers with numpy over a ``Block`` (all stored versions of one entity for one source), so
that a request with 20 features over 1,000 events costs tens of microseconds. What each
aggregate function means (empty value, order, output type) comes from ``parity.rules``; the
grouping of features by source and the transform loop from ``parity.plan``. The case catalog
(``tests/catalog``) proves the online path agrees with the reference. Eviction lives here
too, because deciding which versions no request can need any more is a time rule.

A prepared block is sorted by rule 2's order (event_time, recorded_at, fact_id), so "the most
recent" is simply "the last selected row".
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from parity.contexts import AT
from parity.definitions import EVENT_TIME, Aggregate, FeatureSet, Lookup, Source
from parity.dtypes import arrow_type, is_nested
from parity.online.base import FOREIGN_FLAG, TOMBSTONE_FLAG, Block, concat
from parity.plan import SourcePlan, assemble, by_source
from parity.rules import RULES, Agg, empty_value, input_types, missing, rule_of
from parity.timeutil import TIMESTAMP_TYPE, us_to_datetime
from parity.transforms import apply_row


@dataclass
class Prepared:
    """An entity's versions in rule-2 order, with the grouping of versions by fact id.

    ``vorder`` lists row indices by (fact_id, recorded_at) and ``same_next[i]`` says whether
    ``vorder[i + 1]`` is a version of the same fact; both are None when every fact has one
    version (the common case: nothing to resolve).
    """

    block: Block
    vorder: np.ndarray | None
    same_next: np.ndarray | None


def prepare(segments: Sequence[Block]) -> Prepared | None:
    """Merge an entity's segments into one ordered block (None when there are none)."""
    if not segments:
        return None
    block = concat(segments)
    if not block.ordered:
        block = _ordered(block)
    if block.unique_ids:
        return Prepared(block, None, None)
    codes = np.unique(block.fact_id, return_inverse=True)[1].reshape(-1)
    vorder = np.lexsort((block.recorded_at, codes))  # stable: first stored wins a duplicate
    same_key = (codes[vorder][1:] == codes[vorder][:-1]) & (
        block.recorded_at[vorder][1:] == block.recorded_at[vorder][:-1]
    )
    if same_key.any():  # the same version stored twice (a re-push): keep the first
        keep = np.ones(len(block), bool)
        keep[vorder[1:][same_key]] = False
        block = block.take(np.flatnonzero(keep))
        block.ordered = True
        return prepare([block])
    same_next = np.zeros(len(block), bool)
    same_next[:-1] = codes[vorder][1:] == codes[vorder][:-1]
    if not same_next.any():
        block.unique_ids = True
        return Prepared(block, None, None)
    return Prepared(block, vorder, same_next)


def _ordered(block: Block) -> Block:
    order = np.lexsort((block.recorded_at, block.event_time))
    et, rec = block.event_time[order], block.recorded_at[order]
    if ((et[1:] == et[:-1]) & (rec[1:] == rec[:-1])).any():  # ties: fact_id decides
        fid = block.fact_id
        order = np.array(sorted(order.tolist(), key=lambda i: (et_of(block, i), fid[i])), np.int64)
    out = block.take(order)
    out.ordered = True
    return out


def et_of(block: Block, row: int) -> tuple[int, int]:
    """(event_time, recorded_at) of one row."""
    return int(block.event_time[row]), int(block.recorded_at[row])


def standing(p: Prepared, t: int) -> np.ndarray:
    """Rule 4: per fact id, the version with the greatest recorded_at before ``t``."""
    known = p.block.recorded_at < t
    if p.vorder is None or p.same_next is None:
        return known
    k = known[p.vorder]
    superseded = np.zeros(len(k), bool)
    superseded[:-1] = p.same_next[:-1] & k[1:]
    out = np.empty(len(k), bool)
    out[p.vorder] = k & ~superseded
    return out


def visible(p: Prepared, t: int) -> np.ndarray:
    """Rules 1 and 4: standing versions about this entity, not deleted, happened before t."""
    b = p.block
    return standing(p, t) & (b.event_time < t) & (b.flags == 0)


# -- plans: a feature set compiled for repeated evaluation ---------------------------------------


@dataclass
class SetPlan:
    """A feature set compiled for online evaluation: its raw features by source (the shared
    planning step, ``parity.plan.by_source``) and the Arrow types its transforms see."""

    feature_set: FeatureSet
    sources: list[SourcePlan]
    types: dict[str, pa.DataType]


def plan(fs: FeatureSet) -> SetPlan:
    """Group a feature set's raw features by source; fix the Arrow types transforms see."""
    context_types: dict[str, pa.DataType] = {AT: TIMESTAMP_TYPE}
    context_types.update({k: arrow_type(d) for k, d in fs.entity.keys.items()})
    return SetPlan(fs, by_source([fs]), input_types(fs, context_types))


def evaluate_set(
    set_plan: SetPlan, prepared: Mapping[str, Prepared | None], row: Mapping[str, Any], t: int
) -> dict[str, Any]:
    """Every feature of a feature set for one context ``row`` at ``t`` (epoch microseconds).

    ``prepared`` maps source names to the entity's prepared versions. Transforms run through
    ``parity.transforms.apply_row`` in the shared order (``parity.plan.assemble``), exactly as
    the reference evaluator calls them.
    """
    raw: dict[str, Any] = {}
    for source_plan in set_plan.sources:
        raw.update(evaluate_source(source_plan, prepared.get(source_plan.source.name), t))
    return finish_set(set_plan, raw, row)


def finish_set(set_plan: SetPlan, raw: dict[str, Any], row: Mapping[str, Any]) -> dict[str, Any]:
    """Every feature of a feature set from its aggregates and lookups ``raw`` (by name), the
    transforms run in the shared order exactly as ``evaluate_set`` runs them."""
    types = set_plan.types
    return assemble(set_plan.feature_set, raw, row, lambda tr, inputs: apply_row(tr, inputs, types))


def evaluate_source(source_plan: SourcePlan, p: Prepared | None, t: int) -> dict[str, Any]:
    """The aggregates and lookups of one source at ``t`` over an entity's prepared versions."""
    out: dict[str, Any] = {}
    if p is None or len(p.block) == 0:
        return {f.name: empty_value(f) for f in source_plan.features}
    seen = visible(p, t)
    windows: dict[int | None, np.ndarray] = {}
    for agg in source_plan.aggregates:
        mask = windows.get(agg.window_us)
        if mask is None:
            mask = (
                seen if agg.window_us is None else seen & (p.block.event_time >= t - agg.window_us)
            )
            windows[agg.window_us] = mask
        out[agg.name] = _aggregate(agg, p.block, mask)
    if source_plan.lookups:
        rows = np.flatnonzero(seen)
        best = int(rows[-1]) if len(rows) else None
        for lk in source_plan.lookups:
            out[lk.name] = _lookup(lk, p.block, best, t)
    return out


def _column(block: Block, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    if name == EVENT_TIME:
        return block.event_time, None
    return block.values[name], block.valid[name]


def _aggregate(agg: Aggregate, block: Block, mask: np.ndarray) -> Any:
    if agg.field is None:  # count of events
        return int(np.count_nonzero(mask))
    values, valid = _column(block, agg.field)
    if valid is not None:
        mask = mask & valid
    rule = rule_of(agg)
    if not mask.any():
        return rule.empty_value(agg.dtype)
    if rule.ordered:  # rows are in rule 2's order: the newest is the last selected row
        rows = np.flatnonzero(mask)
        dtype = agg.source.field_dtype(agg.field)
        k = 1 if agg.k is None else agg.k
        newest = [_py(dtype, v) for v in values[rows[-k:][::-1]].tolist()]
        return newest if rule.list_output else newest[0]
    return _REDUCE[rule.function](agg, values[mask])


def _extreme(agg: Aggregate, selected: np.ndarray, smallest: bool) -> Any:
    if selected.dtype == object:
        return min(selected.tolist()) if smallest else max(selected.tolist())
    value = (selected.min() if smallest else selected.max()).item()
    return _py(agg.source.field_dtype(agg.field or ""), value)


def _distinct(selected: np.ndarray) -> int:
    if selected.dtype == object:
        return len(set(selected.tolist()))
    return len(np.unique(selected))


def _sum(agg: Aggregate, selected: np.ndarray) -> Any:
    if agg.dtype == "float":
        return _float_sum(selected.astype(np.float64, copy=False))
    return int(selected.sum(dtype=np.int64))


# One numpy reduction per unordered function, over the window's non-null values (never empty
# here: the rule table gives the empty value; last and last_k take the newest rows above).
_REDUCE: dict[Agg, Callable[[Aggregate, np.ndarray], Any]] = {
    Agg.COUNT: lambda agg, selected: len(selected),
    Agg.COUNT_DISTINCT: lambda agg, selected: _distinct(selected),
    Agg.SUM: _sum,
    Agg.MEAN: lambda agg, selected: _float_sum(selected.astype(np.float64)) / len(selected),
    Agg.MIN: lambda agg, selected: _extreme(agg, selected, smallest=True),
    Agg.MAX: lambda agg, selected: _extreme(agg, selected, smallest=False),
}
assert not missing([*_REDUCE, *(a for a, r in RULES.items() if r.ordered)])


def _lookup(lk: Lookup, block: Block, best: int | None, t: int) -> Any:
    if best is None:
        return None
    if lk.ttl_us is not None and int(block.event_time[best]) < t - lk.ttl_us:
        return None
    values, valid = _column(block, lk.field)
    if valid is not None and not valid[best]:
        return None
    return _py(lk.dtype, values[best].item() if hasattr(values[best], "item") else values[best])


def _py(dtype: str, value: Any) -> Any:
    """A stored value as the Python object the reference evaluator sees."""
    if dtype == "timestamp":
        return us_to_datetime(int(value))
    if dtype == "int":
        return int(value)
    if dtype == "float":
        return float(value)
    if dtype == "bool":
        return bool(value)
    if is_nested(dtype):  # a copy: a transform that edits its input must not edit the store
        return copy.deepcopy(value)
    return value


def _float_sum(values: np.ndarray) -> float:
    """The correctly rounded sum (``math.fsum``), the same double on every path.

    A sum that is merely close is not enough: one unit in the last place flips a tree model's
    split, so the reference, the engines and the online path all return this exact value.
    """
    return math.fsum(values.tolist())


# -- eviction -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Retention:
    """How far back one source's versions can still matter for requests at t >= horizon.

    ``window_us`` is the longest window of the aggregates over an event source (None: all
    history, or a lookup without ttl); ``state`` says the source is read by lookups.
    """

    window_us: int | None
    state: bool


def retention(source: Source, feature_sets: Sequence[FeatureSet]) -> Retention:
    """The retention that keeps every feature of ``feature_sets`` reading ``source`` exact."""
    spans: list[int | None] = []
    for fs in feature_sets:
        for feature in fs.features:
            if isinstance(feature, Aggregate) and feature.source.name == source.name:
                spans.append(feature.window_us)
            elif isinstance(feature, Lookup) and feature.source.name == source.name:
                spans.append(feature.ttl_us)
    longest = None if not spans or None in spans else max(s for s in spans if s is not None)
    return Retention(longest, source.kind == "state")


def evict(p: Prepared, horizon: int, keep: Retention) -> Block:
    """The versions that can still change a request at any ``t >= horizon``, in order.

    Per fact id: every version recorded at or after ``horizon`` stays (some request may see
    it); of the versions recorded before, only the latest (standing at every t >= horizon)
    can matter, and not even it when it is a tombstone, is about another entity, or happened
    before ``horizon - window`` (outside every window, or past every ttl). For a state source
    a standing version is also dropped once a newer standing version (greater rule-3 order,
    happened and recorded before ``horizon``, not itself corrected later) supersedes it.
    """
    block = p.block
    rec = block.recorded_at
    old_standing = standing(p, horizon)
    useless = (block.flags & (TOMBSTONE_FLAG | FOREIGN_FLAG)) != 0
    if keep.window_us is not None:
        useless |= block.event_time < horizon - keep.window_us
    if keep.state:
        final = _final_versions(p)
        candidates = old_standing & ~useless & (block.event_time < horizon) & final
        rows = np.flatnonzero(candidates)
        if len(rows):
            superseded = np.zeros(len(block), bool)
            superseded[: rows[-1]] = True  # rule-3 order below the newest standing version
            useless |= superseded
    kept = (rec >= horizon) | (old_standing & ~useless)
    if kept.all():
        return block
    out = block.take(np.flatnonzero(kept))
    out.ordered = True
    out.unique_ids = block.unique_ids
    return out


def _final_versions(p: Prepared) -> np.ndarray:
    """Rows that are the last recorded version of their fact id."""
    if p.vorder is None or p.same_next is None:
        return np.ones(len(p.block), bool)
    out = np.empty(len(p.block), bool)
    out[p.vorder] = ~p.same_next
    return out
