"""Reading aggregates from tiles: a bounded amount of work whatever an entity's history.

A source is served from tiles when every feature read from it is a count, sum, mean, min or
max (of the event count, or of a countable/numeric field; see ``tiles``) and the source's
tiles are complete (``tiles_ready``: set by materialize and reset, which build every entity's
tiles). For a request at ``t`` and a window ``[t - W, t)`` the answer combines:

- the window's *full* buckets, strictly between the bucket of ``t - W`` and the bucket of
  ``t``, from the summary's prefix sums (two reads) and per-bucket min/max;
- the *edge* buckets (those of ``t - W`` and of ``t``) from their bucket records, filtered
  by event_time exactly like the raw evaluation;
- the pending blocks (facts pushed since the summary was built, each with one version):
  a row counts when recorded before ``t`` and its event_time is in the window.

So a request reads one summary, the rows of at most one bucket per distinct window plus one
(from the records holding them: ``tiles.encode_records``), and the pending blocks (at most
``max_segments`` of at most ``tilewrite.PENDING_ROWS`` rows).
``evaluate`` returns None where tiles cannot answer exactly (``t <= summary.latest``: some
version is not yet known at ``t``; an inexact field; an exact sum that overflows) and the
caller evaluates raw facts instead (``parity.online.evaluate``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from parity.definitions import Source
from parity.online.base import Block, concat
from parity.online.evaluate import Prepared, _py, evaluate_source, prepare
from parity.online.state import OnlineState
from parity.online.tiles import WIDTH, Summary, counted_fields, empty, numeric_fields
from parity.plan import SourcePlan
from parity.rules import Agg, empty_value, rule_of

TILES_META = "tiles:"  # meta key prefix: "1" once every entity of the source has its tiles
_SERVED = {Agg.COUNT, Agg.SUM, Agg.MEAN, Agg.MIN, Agg.MAX}


@dataclass(frozen=True)
class _Item:
    """One aggregate, as ``evaluate`` needs it."""

    name: str
    function: Agg
    field: str | None
    window: int | None
    dtype: str  # of the field (the output type of min and max)
    empty: Any  # the empty-window value


@dataclass(frozen=True)
class _Compiled:
    served: bool
    items: tuple[_Item, ...]
    summed: frozenset[str]  # fields read by sum, mean, min or max (need exact tiles)


_COMPILED: dict[int, tuple[SourcePlan, _Compiled]] = {}


def _compiled(plan: SourcePlan) -> _Compiled:
    cached = _COMPILED.get(id(plan))
    if cached is not None and cached[0] is plan:
        return cached[1]
    items = tuple(
        _Item(
            a.name,
            rule_of(a).function,
            a.field,
            a.window_us,
            a.source.field_dtype(a.field) if a.field is not None else "int",
            empty_value(a),
        )
        for a in plan.aggregates
    )
    counted = set(counted_fields(plan.source))
    numeric = set(numeric_fields(plan.source))
    served = (
        not plan.lookups
        and bool(plan.aggregates)
        and plan.source.kind == "event"
        and all(
            i.function in _SERVED
            and (i.field is None or i.field in (counted if i.function is Agg.COUNT else numeric))
            for i in items
        )
    )
    summed = frozenset(i.field for i in items if i.field and i.function is not Agg.COUNT)
    compiled = _Compiled(served, items, summed)
    _COMPILED[id(plan)] = (plan, compiled)
    return compiled


def tileable(plan: SourcePlan) -> bool:
    """Whether every feature of ``plan`` can be answered from tiles."""
    return _compiled(plan).served


def tiles_ready(state: OnlineState, source: Source) -> bool:
    """Whether the store holds tiles for every entity of ``source`` (cached once true)."""
    if source.name in state.tiled_sources:
        return True
    if state.store.get_meta(TILES_META + source.name) == "1":
        state.tiled_sources.add(source.name)
        return True
    return False


def mark_tiled(state: OnlineState, source: Source) -> None:
    """Record that every entity of ``source`` has its tiles (after a rebuild or a clear)."""
    state.store.set_meta(TILES_META + source.name, "1")
    state.tiled_sources.add(source.name)


def uses_tiles(state: OnlineState, plan: SourcePlan) -> bool:
    """Whether requests over ``plan`` read tiles."""
    return state.read_tiles and tileable(plan) and tiles_ready(state, plan.source)


def buckets_for(plan: SourcePlan, t: int) -> list[int]:
    """The bucket records a request at ``t`` reads besides the summary: the edge buckets."""
    edges = {t // WIDTH}
    edges.update((t - a.window_us) // WIDTH for a in plan.aggregates if a.window_us is not None)
    return sorted(edges)


def evaluate(
    plan: SourcePlan,
    summary: Summary,
    edges: Mapping[int, Block | None],
    t: int,
    pending: Sequence[Block] = (),
) -> dict[str, Any] | None:
    """The features of ``plan`` at ``t`` from tiles, or None where tiles cannot answer.

    ``edges`` maps the edge bucket numbers to their records; ``pending`` rows are facts
    pushed since the summary was built (never seen before: visible iff recorded before t).
    """
    compiled = _compiled(plan)
    if t <= summary.latest or compiled.summed & summary.inexact:
        return None
    held = [b for b in edges.values() if b is not None and len(b)]
    late = [b for b in pending if len(b)]
    if late and not _exact_rows(plan.source, late, compiled.summed):
        return None
    rows = held + late
    edge = None if not rows else rows[0] if len(rows) == 1 else concat(rows)
    edge_bucket = None if edge is None else edge.event_time // WIDTH
    before_t = None if edge is None else edge.event_time < t
    loose = None  # pending rows visible at t (any bucket), then edge rows: bucket-filtered
    if edge is not None and before_t is not None and late:
        from_pending = np.zeros(len(edge), bool)
        from_pending[sum(len(b) for b in held) :] = True
        loose = from_pending & before_t & (edge.recorded_at < t)
        edge_bucket = np.where(from_pending, _NO_BUCKET, edge.event_time // WIDTH)
    j = int(np.searchsorted(summary.buckets, t // WIDTH))
    spans: dict[int | None, tuple[int, np.ndarray | None]] = {}
    columns: dict[tuple[int | None, str], tuple[int, np.ndarray | None]] = {}
    sums: dict[tuple[int | None, str], float] = {}
    out: dict[str, Any] = {}
    for item in compiled.items:
        span = spans.get(item.window)
        if span is None:
            span = spans[item.window] = _span(
                item.window, summary.buckets, j, edge, edge_bucket, before_t, loose, t
            )
        i, mask = span
        if item.field is None:
            edge_count = 0 if mask is None else int(np.count_nonzero(mask))
            out[item.name] = int(summary.count[j] - summary.count[i]) + edge_count
            continue
        key = (item.window, item.field)
        column = columns.get(key)
        if column is None:
            picked = (
                None
                if mask is None or edge is None
                else edge.values[item.field][mask & edge.valid[item.field]]
            )
            nonnull = summary.nonnull[item.field]
            present = int(nonnull[j] - nonnull[i]) + (0 if picked is None else len(picked))
            column = columns[key] = (present, picked)
        present, picked = column
        if item.function is Agg.COUNT:
            out[item.name] = present
        elif not present:
            out[item.name] = item.empty
        elif item.function is Agg.MIN or item.function is Agg.MAX:
            out[item.name] = _extreme(item, summary, i, j, picked)
        elif item.function is Agg.SUM and item.dtype == "int":
            out[item.name] = _int_sum(summary.isum[item.field], i, j, picked)
        else:
            if key not in sums:
                value = _exact_sum(summary.fsum[item.field], i, j, picked)
                if value is None:
                    return None
                sums[key] = value
            out[item.name] = sums[key] / present if item.function is Agg.MEAN else sums[key]
    return out


def _span(
    window: int | None,
    ids: np.ndarray,
    j: int,
    edge: Block | None,
    edge_bucket: np.ndarray | None,
    before_t: np.ndarray | None,
    loose: np.ndarray | None,
    t: int,
) -> tuple[int, np.ndarray | None]:
    """(first full bucket index, mask of edge and pending rows in the window) of one window."""
    hi = t // WIDTH
    if window is None:
        i, lo = 0, hi
    else:
        lo = (t - window) // WIDTH
        i = min(int(np.searchsorted(ids, lo, side="right")), j)
    if edge is None or edge_bucket is None or before_t is None:
        return i, None
    mask = (edge_bucket == hi) & before_t
    if lo != hi:
        mask |= edge_bucket == lo
    if loose is not None:
        mask |= loose
    if window is not None:
        mask &= edge.event_time >= t - window
    return i, mask


_NO_BUCKET = np.iinfo(np.int64).min  # stands for "a pending row" among edge bucket numbers


def _exact_rows(source: Source, blocks: Sequence[Block], fields: frozenset[str]) -> bool:
    """Whether pending rows hold only values with an exact sum in ``fields`` (else raw)."""
    for name in fields:
        if source.schema.get(name) != "float":
            continue
        for block in blocks:
            values = block.values[name][block.valid[name]]
            if not np.isfinite(values).all() or np.signbit(values[values == 0]).any():
                return False
    return True


def _extreme(item: _Item, s: Summary, i: int, j: int, picked: np.ndarray | None) -> Any:
    smallest = item.function is Agg.MIN
    field = item.field or ""
    pool = (s.low if smallest else s.high)[field]
    candidates = [(pool[i:j].min() if smallest else pool[i:j].max()).item()] if j > i else []
    if picked is not None and len(picked):
        candidates.append((picked.min() if smallest else picked.max()).item())
    return _py(item.dtype, min(candidates) if smallest else max(candidates))


def _int_sum(prefix: np.ndarray, i: int, j: int, picked: np.ndarray | None) -> int:
    total = int(prefix[j]) - int(prefix[i])
    if picked is not None:
        total += int(picked.sum(dtype=np.int64))
    return (total + (1 << 63)) % (1 << 64) - (1 << 63)  # int64 wrap, as numpy's sum


def _exact_sum(prefix: np.ndarray, i: int, j: int, picked: np.ndarray | None) -> float | None:
    """The correctly rounded sum of the window's values (None: it overflows here)."""
    parts = prefix[j].tolist() + (-prefix[i]).tolist()
    if picked is not None:
        parts += picked.astype(np.float64, copy=False).tolist()
    try:
        return math.fsum(parts)
    except OverflowError:
        return None


def read_plans(
    state: OnlineState, wanted: Sequence[tuple[SourcePlan, str, int]]
) -> list[tuple[dict[str, Any] | None, bool]]:
    """Per (plan, entity, t), in one store round trip: the features from tiles (None where
    tiles cannot answer: evaluate raw facts) and whether the entity holds a fact about
    itself (``OnlineAnswer.found``)."""
    asked = [buckets_for(plan, t) for plan, _entity, t in wanted]
    replies = state.store.read_tiles(
        [(plan.source, entity, buckets) for (plan, entity, _t), buckets in zip(wanted, asked)]
    )
    out: list[tuple[dict[str, Any] | None, bool]] = []
    for (plan, _entity, t), buckets, tiles in zip(wanted, asked, replies):
        if tiles.summary is None and not tiles.pending:  # complete tiles: it holds nothing
            out.append(({f.name: empty_value(f) for f in plan.aggregates}, False))
            continue
        summary = tiles.summary if tiles.summary is not None else _empty(plan.source)
        values = evaluate(plan, summary, dict(zip(buckets, tiles.records)), t, tiles.pending)
        out.append((values, summary.own or bool(tiles.pending)))
    return out


def _empty(source: Source) -> Summary:
    cached = _EMPTY.get(id(source))
    if cached is None or cached[0] is not source:
        cached = _EMPTY[id(source)] = (source, empty(source))
    return cached[1]


_EMPTY: dict[int, tuple[Source, Summary]] = {}


class TiledAnswers:
    """The tile answers of a batch of contexts, per plan, with raw facts read where needed.

    ``found`` holds the entity ids that hold a fact about themselves in a tiled source.
    """

    def __init__(
        self,
        state: OnlineState,
        plans: Sequence[SourcePlan],
        keys: Sequence[str],
        times: Sequence[int],
    ) -> None:
        self.state = state
        self.keys = keys
        self.times = times
        self.found: set[str] = set()
        self._answers: dict[str, list[dict[str, Any] | None]] = {}
        self._raw: dict[tuple[str, str], Prepared | None] = {}
        for plan in plans:
            replies = read_plans(state, [(plan, k, t) for k, t in zip(keys, times)])
            self._answers[plan.source.name] = [values for values, _ in replies]
            self.found.update(k for k, (_, own) in zip(keys, replies) if own)

    def values(self, plan: SourcePlan, index: int) -> dict[str, Any]:
        """The features of ``plan`` for context ``index``: from tiles, else from raw facts."""
        values = self._answers[plan.source.name][index]
        if values is not None:
            return values
        key = self.keys[index]
        slot = (plan.source.name, key)
        if slot not in self._raw:
            self._raw[slot] = prepare(self.state.store.read(plan.source, [key])[0])
        return evaluate_source(plan, self._raw[slot], self.times[index])
