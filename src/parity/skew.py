"""Skew: compare two feature tables value by value, and the online-vs-offline replay.

``compare_features`` is the one comparison: floats to 1e-9 relative, lists element by
element, everything else exactly. It serves the replay here (online path vs Time Machine) and
any later comparison of served features (the feature log) with the Time Machine.

``replay`` is the consistency proof as a tool: it pushes facts in ``recorded_at`` order
through a fresh online path, asks for features at random moments while it goes, then asks the
Time Machine for the same contexts from the facts that path logged, and compares.
"""

from __future__ import annotations

import math
import random
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from parity.contexts import AT
from parity.definitions import RECORDED_AT, FeatureSet, Source
from parity.engines import Engine
from parity.errors import InputError
from parity.factlog import FactLog
from parity.facts import canonical_schema
from parity.timeutil import datetime_to_us, parse_duration, us_to_datetime


@dataclass
class Mismatch:
    """One differing value: the row, its identifying columns, the feature and both values."""

    row: int
    ids: dict[str, Any]
    feature: str
    expected: Any
    actual: Any


@dataclass
class SkewReport:
    """Mismatch counts per feature over ``rows`` compared rows, and the first differences."""

    rows: int
    mismatches: dict[str, int]
    first: list[Mismatch] = field(default_factory=list)
    pushes: int = 0
    facts: int = 0

    @property
    def total(self) -> int:
        """Differing values over all features."""
        return sum(self.mismatches.values())

    @property
    def ok(self) -> bool:
        """True when every value agreed."""
        return self.total == 0

    def rate(self, feature: str) -> float:
        """The share of rows whose value of ``feature`` differed."""
        return self.mismatches[feature] / self.rows if self.rows else 0.0

    def summary(self) -> str:
        """A plain-text report: a headline, rates per feature, the first differing rows."""
        head = (
            f"{'OK' if self.ok else 'SKEW'}: {self.rows} rows x {len(self.mismatches)} features, "
            f"{self.total} mismatching values"
        )
        if self.pushes:
            head += f" ({self.facts} facts replayed in {self.pushes} pushes)"
        lines = [head]
        width = max((len(n) for n in self.mismatches), default=7)
        for name, count in self.mismatches.items():
            lines.append(f"  {name:<{width}}  {count:>6} mismatches  {self.rate(name):7.2%}")
        for m in self.first:
            lines.append(
                f"  row {m.row} {m.ids}: {m.feature} expected {m.expected!r}, got {m.actual!r}"
            )
        return "\n".join(lines)


def same_value(expected: Any, actual: Any) -> bool:
    """Whether two feature values agree: floats bit for bit, lists elementwise.

    Bit for bit because one unit in the last place can flip a tree model's split; every path
    returns correctly rounded sums, so exact agreement is the promise.
    """
    if expected is None or actual is None:
        return expected is None and actual is None
    if isinstance(expected, float) or isinstance(actual, float):
        if isinstance(expected, bool) or isinstance(actual, bool):
            return False
        if not isinstance(expected, (int, float)) or not isinstance(actual, (int, float)):
            return False
        if math.isnan(expected) or math.isnan(actual):
            return math.isnan(expected) and math.isnan(actual)
        return float(expected) == float(actual)
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(map(same_value, expected, actual))
    return type(expected) is type(actual) and bool(expected == actual)


def compare_features(
    expected: pa.Table,
    actual: pa.Table,
    features: Sequence[str],
    id_columns: Sequence[str] = (),
    keep: int = 10,
) -> SkewReport:
    """Compare ``features`` of two row-aligned tables; ``id_columns`` label differing rows."""
    if expected.num_rows != actual.num_rows:
        raise InputError(
            f"cannot compare feature tables of {expected.num_rows} and {actual.num_rows} rows; "
            f"align them on the same contexts first"
        )
    ids = {c: expected.column(c).to_pylist() for c in id_columns}
    counts: dict[str, int] = {}
    first: list[Mismatch] = []
    for name in features:
        want, got = expected.column(name).to_pylist(), actual.column(name).to_pylist()
        counts[name] = 0
        for row, (a, b) in enumerate(zip(want, got)):
            if not same_value(a, b):
                counts[name] += 1
                if len(first) < keep:
                    first.append(Mismatch(row, {c: v[row] for c, v in ids.items()}, name, a, b))
    first.sort(key=lambda m: m.row)
    return SkewReport(expected.num_rows, counts, first)


def replay(
    feature_sets: Sequence[FeatureSet],
    facts: Mapping[str, pa.Table],
    engine: Engine,
    store_url: str = "memory://",
    requests: int = 200,
    batch: int = 1,
    lookback: str | None = "1h",
    request_values: Mapping[str, Any] | None = None,
    seed: int = 0,
    **online_options: Any,
) -> SkewReport:
    """Push ``facts`` through a fresh online path, query it, and compare with the Time Machine.

    ``facts`` maps source names to canonical fact tables (e.g. ``FactLog.read``), tombstones
    included. They are pushed in ``recorded_at`` order, ``batch`` versions per push. After each
    push a few requests are asked at random moments ``t`` the online path can answer exactly:
    no unpushed fact has ``recorded_at < t``, and ``t`` is no older than the horizon
    (latest pushed ``recorded_at`` minus ``lookback``). Requests read entities that have facts
    and one that has none; request fields take ``request_values`` (None by default).
    ``online_options`` go to ``OnlineFeatures`` (e.g. ``max_segments=1`` compacts, and so
    evicts, after every push).
    """
    from parity.online import open_online

    rng = random.Random(seed)
    names = [f.name for fs in feature_sets for f in fs.features]
    sources = {s.name: s for fs in feature_sets for s in fs.sources}
    stream = _in_recorded_order(sources, facts)
    lookback_us = parse_duration(lookback, "lookback") or 0
    keys = sorted({k for fs in feature_sets for k in fs.entity.keys})
    entities = _entities(stream, keys)
    fields = {f for fs in feature_sets for f in fs.request_fields}
    earliest = stream[0][0] - 24 * 3_600_000_000 if stream else 0
    pushes_planned = max(1, math.ceil(len(stream) / batch))
    with tempfile.TemporaryDirectory(prefix="parity-replay-") as root:
        log = FactLog(root)
        online = open_online(
            store_url, log, list(feature_sets), lookback=lookback, **online_options
        )
        try:
            online.reset()
            contexts: list[dict[str, Any]] = []
            served: list[dict[str, Any]] = []
            pushes = 0
            for index, start in enumerate(range(0, len(stream), batch)):
                chunk = stream[start : start + batch]
                for name, table in _by_source(sources, chunk):
                    latest = int(pc.max(table.column(RECORDED_AT).cast(pa.int64())).as_py())
                    online.push_canonical(sources[name], table, us_to_datetime(latest))
                pushes += 1
                watermark = online.watermark or 0
                upper = stream[start + batch][0] if start + batch < len(stream) else watermark + 1
                lower = watermark - lookback_us if lookback is not None else earliest
                # Exactly ``requests`` in all, spread evenly over the pushes.
                quota = _share(requests, pushes_planned, index)
                for _ in range(quota):
                    context = _random_context(rng, entities, keys, fields, request_values)
                    context[AT] = us_to_datetime(_moment(rng, max(lower, 0), upper, chunk))
                    served.append(online.get_features(list(feature_sets), context))
                    contexts.append(context)
            online.flush()
            if not contexts:
                return SkewReport(0, dict.fromkeys(names, 0))
            table = pa.Table.from_pylist(contexts)
            offline = engine.training_set(table, list(feature_sets), log)
            online_table = pa.Table.from_pylist([{**c, **s} for c, s in zip(contexts, served)])
            report = compare_features(offline, online_table, names, id_columns=[*keys, AT])
            report.pushes, report.facts = pushes, len(stream)
            return report
        finally:
            online.close()


def _share(total: int, parts: int, index: int) -> int:
    """The ``index``-th of ``parts`` near-equal shares of ``total`` (the shares sum to it)."""
    return total * (index + 1) // parts - total * index // parts


def _in_recorded_order(
    sources: Mapping[str, Source], facts: Mapping[str, pa.Table]
) -> list[tuple[int, str, dict[str, Any]]]:
    stream = []
    for name in sources:
        table = facts.get(name)
        if table is None:
            continue
        recorded = table.column(RECORDED_AT).cast(pa.int64()).to_pylist()
        for rec, row in zip(recorded, table.to_pylist()):
            stream.append((rec, name, row))
    stream.sort(key=lambda item: (item[0], item[1]))
    return stream


def _by_source(
    sources: Mapping[str, Source], chunk: Sequence[tuple[int, str, dict[str, Any]]]
) -> list[tuple[str, pa.Table]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for _, name, row in chunk:
        grouped.setdefault(name, []).append(row)
    return [
        (name, pa.Table.from_pylist(rows, schema=canonical_schema(sources[name])))
        for name, rows in grouped.items()
    ]


def _entities(
    stream: Sequence[tuple[int, str, dict[str, Any]]], keys: Sequence[str]
) -> list[dict[str, Any]]:
    seen: dict[tuple[Any, ...], dict[str, Any]] = {}
    for _, _, row in stream:
        if all(k in row for k in keys):
            seen.setdefault(tuple(row[k] for k in keys), {k: row[k] for k in keys})
    return list(seen.values())


def _random_context(
    rng: random.Random,
    entities: Sequence[dict[str, Any]],
    keys: Sequence[str],
    fields: set[str],
    request_values: Mapping[str, Any] | None,
) -> dict[str, Any]:
    if entities and rng.random() < 0.9:
        context = dict(rng.choice(entities))
    elif entities:  # an entity nothing is known about: same key types, unseen values
        context = {k: _unseen(v) for k, v in entities[0].items()}
    else:
        context = {k: 0 for k in keys}
    for name in fields:
        context[name] = (request_values or {}).get(name)
    return context


def _unseen(value: Any) -> Any:
    return "\x00unseen" if isinstance(value, str) else -987_654_321


def _moment(
    rng: random.Random, lower: int, upper: int, chunk: Sequence[tuple[int, str, dict[str, Any]]]
) -> int:
    """A random request time in [lower, upper]; often exactly on an edge, to catch ties."""
    if upper <= lower:
        return upper
    edges = [lower, upper]
    for _, _, row in chunk:
        event = row.get("event_time")
        if event is not None:
            us = datetime_to_us(event)
            edges += [us, us + 1, us + 3_600_000_000]
    edges = [e for e in edges if lower <= e <= upper]
    if edges and rng.random() < 0.4:
        return rng.choice(edges)
    return rng.randint(lower, upper)
