"""The planning step: what every executor must compute, decided once.

An executor (the DuckDB engine, the online evaluator, later Spark or the Archive) receives a
plan and writes only its query code. A plan says:

- which raw features (aggregates and lookups) read which source, each source once
  (``by_source``), with the windows its aggregates use;
- for a training set, which fact files can matter for a knowledge cutoff
  (``plan_training_set``): a file whose every version was recorded at or after both the
  cutoff and the latest context time cannot change any answer;
- how transforms are applied: in feature-set order, which is their dependency order
  (``FeatureSet`` refuses a transform that reads a feature defined after it), by one loop
  (``assemble``) that works on one row online and on whole columns offline.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from parity.definitions import Aggregate, FeatureSet, Lookup, Source, Transform
from parity.factlog import FactLog

V = TypeVar("V")


@dataclass(frozen=True)
class SourcePlan:
    """The aggregates and lookups that read one source, and the fact files to read for them.

    ``paths`` is empty when the plan is not bound to a fact log (online), or when no file can
    matter (then every feature takes its empty value).
    """

    source: Source
    aggregates: tuple[Aggregate, ...] = ()
    lookups: tuple[Lookup, ...] = ()
    paths: tuple[str, ...] = field(default=(), compare=False)

    @property
    def features(self) -> tuple[Aggregate | Lookup, ...]:
        """Aggregates, then lookups (a source feeds only one kind in practice)."""
        return (*self.aggregates, *self.lookups)

    @property
    def windows(self) -> tuple[int | None, ...]:
        """The distinct windows (epoch us; None: all history) of the aggregates, in order."""
        return tuple(dict.fromkeys(a.window_us for a in self.aggregates))


@dataclass(frozen=True)
class Plan:
    """A training set's work: the feature sets, their raw features by source, the cutoff."""

    feature_sets: tuple[FeatureSet, ...]
    sources: tuple[SourcePlan, ...]
    knowledge_cutoff_us: int | None = None

    @property
    def raw_features(self) -> list[Aggregate | Lookup]:
        """Every aggregate and lookup, grouped by source."""
        return [f for sp in self.sources for f in sp.features]

    @property
    def keys(self) -> list[str]:
        """The entity key columns any feature set needs, sorted."""
        return sorted({k for fs in self.feature_sets for k in fs.entity.keys})


def by_source(feature_sets: Sequence[FeatureSet]) -> list[SourcePlan]:
    """The raw features of ``feature_sets`` grouped by source, in first-use order."""
    grouped: dict[str, tuple[Source, list[Aggregate], list[Lookup]]] = {}
    for fs in feature_sets:
        for feature in fs.features:
            if isinstance(feature, Transform):
                continue
            entry = grouped.setdefault(feature.source.name, (feature.source, [], []))
            if isinstance(feature, Aggregate):
                entry[1].append(feature)
            else:
                entry[2].append(feature)
    return [SourcePlan(src, tuple(aggs), tuple(lks)) for src, aggs, lks in grouped.values()]


def plan_training_set(
    feature_sets: Sequence[FeatureSet],
    fact_log: FactLog,
    latest_context_us: int | None,
    knowledge_cutoff_us: int | None = None,
) -> Plan:
    """The plan of a training set whose latest context is at ``latest_context_us``.

    Files are pruned on ``recorded_at`` only: a file of future event times can still hold a
    correction that retires an earlier version, so event times never prune.
    """
    bound = latest_context_us if latest_context_us is not None else 0
    if knowledge_cutoff_us is not None:
        bound = min(bound, knowledge_cutoff_us)
    sources = tuple(
        SourcePlan(sp.source, sp.aggregates, sp.lookups, tuple(fact_log.paths(sp.source, bound)))
        for sp in by_source(feature_sets)
    )
    return Plan(tuple(feature_sets), sources, knowledge_cutoff_us)


def assemble(
    fs: FeatureSet,
    raw: Mapping[str, V],
    context: Mapping[str, V],
    apply: Callable[[Transform, Mapping[str, V]], V],
) -> dict[str, V]:
    """Every feature of ``fs`` in order: raw features from ``raw``, transforms by ``apply``.

    A transform sees the context (keys, ``at``, request fields) and every feature before it;
    ``V`` is a scalar online and in the reference, a column in the engines.
    """
    values: dict[str, V] = {}
    for feature in fs.features:
        if isinstance(feature, Transform):
            values[feature.name] = apply(feature, {**context, **values})
        else:
            values[feature.name] = raw[feature.name]
    return values
