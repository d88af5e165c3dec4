"""The online reader: features for contexts, as the Time Machine would give them, or a refusal.

Every read first checks that each source of the requested feature sets was materialized
(``readiness.require_materialized``): an answer from a store that never received a source's
history would be empty-window values (zeros) that are not true. ``answer`` also tells, per
context, whether the store holds any fact about the entity at all (``found``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa

from parity.contexts import AT, normalize_contexts
from parity.definitions import FeatureSet
from parity.errors import SchemaError, TimeError
from parity.facts import FactData
from parity.online.base import FOREIGN_FLAG, Block, entity_id
from parity.online.evaluate import Prepared, evaluate_source, finish_set, prepare
from parity.online.readiness import require_materialized
from parity.online.state import OnlineState, SetNames
from parity.online.tileread import TiledAnswers, read_plans, uses_tiles
from parity.plan import SourcePlan
from parity.rules import feature_arrow_type
from parity.snapshot.online import live_read
from parity.timeutil import datetime_to_us, now_us, to_utc_datetime, us_to_datetime


@dataclass(frozen=True)
class OnlineAnswer:
    """Features for many contexts, and whether each context's entity was ever seen.

    ``table`` is exactly what ``get_features_batch`` returns. ``found[i]`` is True iff the
    store holds at least one fact (at any time, visible or not at ``at``) about the entity of
    context ``i`` in at least one source of the requested feature sets; False means "never
    seen" (or every fact about it was evicted), so the features are empty-window values that
    say nothing about the entity.
    """

    table: pa.Table
    found: list[bool]
    #: per context, ``{live source: {"used", "latency_ms", "detail"}}`` (parity.snapshot.online)
    live: list[dict[str, Any]] = field(default_factory=list)


class Reader:
    """Reads features; see the module docstring."""

    def __init__(self, state: OnlineState) -> None:
        self.state = state

    def get_features(self, feature_sets: SetNames, context: Mapping[str, Any]) -> dict[str, Any]:
        """The features of ``feature_sets`` for one context, as the Time Machine would give them.

        ``context`` holds the entity keys, request fields and optionally ``at`` (aware UTC;
        default now). Returns ``{feature name: value}`` in feature-set order. NotReadyError
        if a source of the feature sets was never materialized.
        """
        state = self.state
        sets = state.resolve(feature_sets)
        require_materialized(state, sets)
        t, at = self._request_time(context.get(AT))
        wanted: list[tuple[Any, list[str]]] = []
        tiled: list[tuple[SourcePlan, str, int]] = []  # sources read from tiles (tileread)
        keys: list[str] = []
        for fs in sets:
            _check_context(fs, context)
            key = entity_id([_key_value(context[k], d) for k, d in fs.entity.keys.items()])
            keys.append(key)
            for sp in state.plans[fs.name].sources:
                if uses_tiles(state, sp):
                    tiled.append((sp, key, t))
                else:
                    wanted.append((sp.source, [key]))
        # live sources: called now
        blocks = iter(live_read(state.store, wanted, t).blocks if wanted else ())
        from_tiles = iter(read_plans(state, tiled) if tiled else ())
        row = {**context, AT: at}
        out: dict[str, Any] = {}
        for fs, key in zip(sets, keys):
            set_plan = state.plans[fs.name]
            raw: dict[str, Any] = {}
            for sp in set_plan.sources:
                if tiled and tiled[0][0] is sp:
                    tiled.pop(0)
                    values = next(from_tiles)[0]
                    if values is None:  # tiles cannot answer exactly at t: raw facts
                        segments = state.store.read(sp.source, [key])[0]
                        values = evaluate_source(sp, prepare(segments), t)
                else:
                    values = evaluate_source(sp, prepare(next(blocks)[0]), t)
                raw.update(values)
            out.update(finish_set(set_plan, raw, row))
        return out

    def get_features_batch(self, feature_sets: SetNames, contexts: FactData) -> pa.Table:
        """Features for many contexts in one call; the same table ``training_set`` returns.

        ``contexts`` is a table (pandas, Arrow, or a list of dicts) with the entity keys,
        ``at`` and request fields; other columns pass through. Each source is read once.
        NotReadyError if a source of the feature sets was never materialized.
        """
        return self.answer(feature_sets, contexts).table

    def answer(self, feature_sets: SetNames, contexts: FactData) -> OnlineAnswer:
        """Features for many contexts plus ``found`` per context (see ``OnlineAnswer``).

        ``contexts`` is what ``get_features_batch`` accepts; it refuses the same way.
        """
        state = self.state
        sets = state.resolve(feature_sets)
        require_materialized(state, sets)
        table = normalize_contexts(contexts, sets)  # lists of dicts go straight to Arrow
        rows = table.to_pylist()
        times = table.column(AT).cast(pa.int64()).to_pylist() if rows else []
        horizon = state.horizon
        if horizon is not None and times and min(times) < horizon:
            self._request_time(us_to_datetime(min(times)))  # raises the horizon error
        found = [False] * len(rows)
        live_used: list[dict[str, Any]] = [{} for _ in rows]
        names = list(table.column_names)
        arrays: list[Any] = list(table.columns)
        for fs in sets:
            set_plan = state.plans[fs.name]
            keys = [entity_id([row[k] for k in fs.entity.keys]) for row in rows]
            unique = list(dict.fromkeys(keys))
            tiled = [sp for sp in set_plan.sources if uses_tiles(state, sp)]
            stored = [sp for sp in set_plan.sources if sp not in tiled]
            # Every stored source of the set in one call (Redis: one round trip).
            live = live_read(state.store, [(sp.source, unique) for sp in stored],
                             min(times) if times else now_us())  # live sources: called now
            read = live.blocks
            live.annotate(keys, live_used)
            prepared: dict[str, dict[str, Prepared | None]] = {}
            seen: set[str] = set()
            for sp, blocks in zip(stored, read):
                prepared[sp.source.name] = {k: prepare(b) for k, b in zip(unique, blocks)}
                seen.update(k for k, b in zip(unique, blocks) if _holds_own_fact(b))
            from_tiles = TiledAnswers(state, tiled, keys, times)
            seen.update(from_tiles.found)
            columns: dict[str, list[Any]] = {f.name: [] for f in fs.features}
            for index, (row, key, t) in enumerate(zip(rows, keys, times)):
                found[index] = found[index] or key in seen
                raw: dict[str, Any] = {}
                for sp in set_plan.sources:
                    raw.update(
                        from_tiles.values(sp, index)
                        if sp in tiled
                        else evaluate_source(sp, prepared[sp.source.name][key], t)
                    )
                for name, value in finish_set(set_plan, raw, row).items():
                    columns[name].append(value)
            for feature in fs.features:
                names.append(feature.name)
                arrays.append(pa.array(columns[feature.name], type=feature_arrow_type(feature)))
        out = pa.Table.from_arrays(arrays, names=names)  # built once, not column by column
        return OnlineAnswer(out, found, live_used)

    def _request_time(self, value: Any) -> tuple[int, datetime]:
        if value is None:
            t = now_us()
            return t, us_to_datetime(t)
        at = to_utc_datetime(value, AT)
        t = datetime_to_us(at)
        horizon = self.state.horizon
        if horizon is not None and t < horizon:
            raise TimeError(
                f"at={at.isoformat()} is before the online horizon "
                f"{us_to_datetime(horizon).isoformat()} "
                f"(latest recorded_at pushed minus lookback); the online store may have evicted "
                f"facts such a request needs. Ask the Time Machine (training_set) about the past, "
                f"or open the store with a longer lookback (online URL option ?lookback=...)"
            )
        return t, at


def _holds_own_fact(segments: Sequence[Block]) -> bool:
    """Whether an entity's segments hold a version about the entity itself (not FOREIGN)."""
    return any(len(b) and bool(((b.flags & FOREIGN_FLAG) == 0).any()) for b in segments)


def _check_context(fs: FeatureSet, context: Mapping[str, Any]) -> None:
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
            else (isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)))
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


def _key_value(value: Any, dtype: str) -> Any:
    return int(value) if dtype == "int" else value
