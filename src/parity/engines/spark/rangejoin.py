"""The range-join plan: min, max, last_k, count_distinct (and every function with
``plan="join"``).

Each context is joined to the versions of its key valid at its ``t`` (``start < t <= next``,
within the widest window), and each aggregate is computed in two levels: a partial per
(context, time bucket), then the partials combined per context. A key with few versions has
one bucket; a hot key's versions are spread over time buckets (``buckets``), so its join and
its partial aggregates run in as many tasks as it has buckets, and a partial ``last_k`` keeps
only ``k`` values per bucket. Cost: contexts x versions of their key in the widest window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from parity.definitions import Aggregate
from parity.engines.spark import buckets, exact
from parity.engines.spark.plans import (
    ET,
    FACT_ID,
    NEXT,
    RA,
    ROW,
    START,
    TOMBSTONE,
    T,
    field,
    sums_floats,
)
from parity.errors import NotImplementedYetError
from parity.rules import Agg, missing, rule_of


@dataclass(frozen=True)
class TwoLevel:
    """One aggregate as partials per (context, bucket) and their combination per context."""

    partials: tuple[Column, ...]
    combine: tuple[Column, ...]
    final: Column  # of the combined columns, named ``{column}_{i}``


def _window_condition(feature: Aggregate) -> Column:
    if feature.window_us is None:
        return F.lit(True)
    return F.col(ET) >= F.col(T) - F.lit(feature.window_us)


def _sum_part(feature: Aggregate, cond: Column, scale: int | None) -> Column:
    """The exact partial sum: bigint, or the float values scaled to ``decimal(38,0)``."""
    value = field(feature)
    if not sums_floats(feature):
        return F.sum(F.when(cond, value.cast("bigint")))
    assert scale is not None
    return F.sum(F.when(cond, exact.to_exact(value, scale)))


def _sum_total(feature: Aggregate, combined: Column, scale: int | None) -> Column:
    if not sums_floats(feature):
        return combined
    assert scale is not None
    return exact.to_double(combined, scale)


def _ordered(feature: Aggregate, cond: Column) -> Column:
    """The window's values packed newest-last, as structs comparable in rule 2's order."""
    return F.when(cond, F.struct(F.col(ET), F.col(RA), F.col(FACT_ID), field(feature).alias("v")))


def _distinct_value(feature: Aggregate) -> Column:
    """The value as count_distinct compares it: -0.0 and 0.0 are one value, as in SQL."""
    value = field(feature)
    if feature.field is not None and feature.source.field_dtype(feature.field) == "float":
        return F.when(value == 0, F.lit(0.0)).otherwise(value)
    return value


def two_level(feature: Aggregate, column: str, scale: int | None) -> TwoLevel:
    """The partial and combining aggregates of one feature, whose final value is null (or
    0) when none of the joined versions counts."""
    window = _window_condition(feature)
    names = [f"{column}_{i}" for i in range(2)]
    c0, c1 = F.col(names[0]), F.col(names[1])

    def simple(partial: Column, combine: Column, final: Column | None = None) -> TwoLevel:
        return TwoLevel((partial.alias(names[0]),), (combine.alias(names[0]),),
                        c0 if final is None else final)

    if feature.field is None:
        return simple(F.count(F.when(window, 1)), F.sum(c0))
    value = field(feature)
    cond = window & value.isNotNull()
    function = rule_of(feature).function
    if function is Agg.COUNT:
        return simple(F.count(F.when(cond, 1)), F.sum(c0))
    if function is Agg.COUNT_DISTINCT:
        values = F.collect_set(F.when(cond, _distinct_value(feature)))
        return simple(values, F.collect_list(c0), F.size(F.array_distinct(F.flatten(c0))))
    if function is Agg.SUM:
        return simple(_sum_part(feature, cond, scale), F.sum(c0), _sum_total(feature, c0, scale))
    if function is Agg.MEAN:
        total = _sum_total(feature, c0, scale).cast("double")
        return TwoLevel(
            (_sum_part(feature, cond, scale).alias(names[0]),
             F.count(F.when(cond, 1)).alias(names[1])),
            (F.sum(c0).alias(names[0]), F.sum(c1).alias(names[1])),
            total / F.when(c1 > 0, c1).cast("double"),
        )
    if function is Agg.MIN:
        return simple(F.min(F.when(cond, value)), F.min(c0))
    if function is Agg.MAX:
        return simple(F.max(F.when(cond, value)), F.max(c0))
    if function is Agg.LAST:
        return simple(F.max(_ordered(feature, cond)), F.max(c0), c0.getField("v"))
    if function is Agg.LAST_K:
        k = feature.k or 1

        def newest(lists: Column) -> Column:
            return F.slice(F.sort_array(lists, asc=False), 1, k)

        return simple(
            newest(F.collect_list(_ordered(feature, cond))),
            newest(F.flatten(F.collect_list(c0))),
            F.transform(c0, lambda x: x.getField("v")),
        )
    raise NotImplementedYetError(f"Spark engine: aggregate {function.value} is not planned")


JOINED = (Agg.COUNT, Agg.COUNT_DISTINCT, Agg.SUM, Agg.MEAN, Agg.MIN, Agg.MAX, Agg.LAST, Agg.LAST_K)
assert not missing(JOINED), f"Spark engine lacks {missing(JOINED)}"


def joined(
    ctx: DataFrame,
    v: DataFrame,
    keys: list[str],
    features: Sequence[Aggregate],
    columns: Sequence[str],
    scales: dict[str, int],
    hot_versions: int,
) -> DataFrame:
    """Aggregates by a range join of each context to the versions valid at its ``t``:
    ``#row`` and one column per feature (null where no version was joined)."""
    windows = [f.window_us for f in features]
    widest = None if any(w is None for w in windows) else max(w for w in windows if w)
    valid = (F.col(START) < F.col(T)) & (F.col(NEXT).isNull() | (F.col(T) <= F.col(NEXT)))
    if widest is not None:
        valid = valid & (F.col(ET) >= F.col(T) - F.lit(widest))
    live = v.where(~F.col(TOMBSTONE))
    hot = buckets.hot_keys(live, keys, hot_versions)
    left = buckets.bucketed_contexts(ctx.select(ROW, T, *keys), hot, keys, widest)
    right = buckets.bucketed_versions(live, hot, keys)
    pairs = left.join(right, on=[*keys, buckets.BUCKET]).where(valid)
    levels = [two_level(f, c, scales.get(f.field or "")) for f, c in zip(features, columns)]
    partial = pairs.groupBy(ROW, buckets.BUCKET).agg(*(p for lv in levels for p in lv.partials))
    combined = partial.groupBy(ROW).agg(*(c for lv in levels for c in lv.combine))
    return combined.select(ROW, *(lv.final.alias(c) for lv, c in zip(levels, columns)))


def joined_value(feature: Aggregate, column: str) -> Column:
    """A joined aggregate's final value: the rule table's empty value where none counted."""
    rule = rule_of(feature)
    value = F.col(column)
    if rule.empty_is_zero:  # a context with no joined version has no row at all
        return F.coalesce(value, F.lit(rule.empty_value(feature.dtype)))
    if rule.list_output:
        return F.when(F.size(value) > 0, value)
    return value
