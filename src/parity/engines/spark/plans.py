"""Spark plans of the time rules, built with the DataFrame API (no Python UDFs).

Each stored fact version is valid over an interval of context times ``t`` (as in the DuckDB
engine, ``parity.engines.duckdb.sql``):

    start < t <= end,  start = max(event_time, recorded_at),
                       end   = min(event_time + W, recorded_at of the next version)

Three plans read the versions relation ``v``:

- ``running``: count, sum and mean as running sums. Every version adds its value at ``start``
  and removes it at each window's ``end``; the deltas and the contexts are unioned and one
  window per key, ordered by (time, contexts first), sums them. A context sees exactly the
  deltas before its ``t``: strict visibility. Float sums are exact ``decimal(38,0)``
  (``exact``). One shuffle by key.
- ``latest``: lookups and ``last``. Versions never corrected are unioned with the contexts and
  a running maximum of (event_time, recorded_at, fact_id, values) per key, contexts ordered
  before facts at ties, gives the newest visible one; the few versions a later correction ended
  are range-joined. One shuffle by key for the window, one for the join.
- ``joined`` (in ``rangejoin``): everything else (min, max, last_k, count_distinct; and all
  functions with ``plan="join"``): a range join of each context to the versions valid at its
  ``t``, aggregated per (context, time bucket) then per context; hot keys are split into
  time buckets (``buckets``). Cost: contexts x versions per key in the widest window.

Working columns start with ``#``; a user's key, field or context name is a Python identifier,
so it can never take one of them. Entity keys are renamed ``#k0, #k1...`` on both sides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession, Window, WindowSpec
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import from_arrow_schema

from parity.definitions import EVENT_TIME, Aggregate, Lookup, Source
from parity.engines.spark import exact
from parity.errors import NotImplementedYetError
from parity.facts import canonical_schema
from parity.rules import Agg, rule_of

ROW, T = "#row", "#t"
ET, RA, START, NEXT, TIME, KIND = "#et", "#ra", "#start", "#next", "#time", "#kind"
FACT_ID, TOMBSTONE = "fact_id", "_tombstone"


def key_names(source: Source) -> list[str]:
    """The working names of a source's entity keys."""
    return [f"#k{i}" for i in range(len(source.entity.keys))]


def versions(
    spark: SparkSession, source: Source, paths: Sequence[str], cutoff_us: int | None
) -> DataFrame:
    """Every fact version known before the cutoff, with its times (us), start and next.

    The files are read with the source's stored schema, so Spark runs no job to infer it.
    """
    schema = from_arrow_schema(canonical_schema(source))
    raw = spark.read.schema(schema).parquet(*paths)
    if cutoff_us is not None:
        raw = raw.where(F.unix_micros("recorded_at") < F.lit(cutoff_us))
    keys = [F.col(k).alias(n) for k, n in zip(source.entity.keys, key_names(source))]
    et, ra = F.unix_micros("event_time"), F.unix_micros("recorded_at")
    by_fact = Window.partitionBy(FACT_ID).orderBy(RA)
    return raw.select(
        *keys,
        *(F.col(f) for f in source.schema),
        F.col("event_time"),
        et.alias(ET),
        ra.alias(RA),
        F.col(FACT_ID),
        F.col(TOMBSTONE),
        F.greatest(et, ra).alias(START),
    ).withColumn(NEXT, F.lead(RA).over(by_fact))


def field(feature: Aggregate | Lookup) -> Column:
    """The column a feature reads (``event_time`` itself for the event-time field)."""
    assert feature.field is not None
    return F.col("event_time") if feature.field == EVENT_TIME else F.col(feature.field)


def _end(window_us: int | None) -> Column:
    if window_us is None:
        return F.col(NEXT)
    return F.least(F.col(ET) + F.lit(window_us), F.col(NEXT))  # least skips a null next


# -- scales of float sums ---------------------------------------------------------------------


def sums_floats(feature: Aggregate) -> bool:
    """Whether the aggregate adds up the values of a float field (and so needs a scale)."""
    return (
        "s" in rule_of(feature).parts
        and feature.field is not None
        and feature.source.field_dtype(feature.field) == "float"
    )


def float_scales(v: DataFrame, aggregates: Sequence[Aggregate]) -> dict[str, int]:
    """Exact integer scales of the float fields that sums add up (one pass over ``v``).

    Refuses (NotImplementedYetError) a field whose exponent range is too wide for 126 bits or
    which holds NaN/infinity: the DuckDB engine falls back to a compensated sum there, Spark
    has no exact fallback yet, and an answer that is not correctly rounded would be wrong.
    """
    fields = sorted({a.field for a in aggregates if a.field and sums_floats(a)})
    if not fields:
        return {}
    row = v.agg(*(s for f in fields for s in exact.scale_stats(F.col(f)))).first()
    assert row is not None
    scales: dict[str, int] = {}
    for i, name in enumerate(fields):
        low, high, count, non_finite = row[4 * i : 4 * i + 4]
        scale = exact.exact_scale(low, high, count, non_finite)
        if scale is None:
            raise NotImplementedYetError(
                f"Spark engine: the float field {name!r} holds NaN/infinity or values whose "
                "exponents span more than ~70 bits, which it cannot sum exactly yet; "
                "use engine: duckdb for this training set"
            )
        scales[name] = scale
    return scales


# -- running sums -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Measure:
    """One running sum: ``expr`` per version (of Spark type ``dtype``), summed over the
    versions valid at ``t``."""

    name: str
    expr: Column
    window_us: int | None
    dtype: str = "bigint"
    scale: int | None = None


def measures_for(feature: Aggregate, index: int, scale: int | None) -> dict[str, Measure]:
    """The running sums of a subtractable aggregate, by part ('n' count, 's' sum)."""
    w = feature.window_us
    if feature.field is None:
        return {"n": Measure(f"#m{index}_n", F.lit(1).cast("bigint"), w)}
    value = field(feature)
    out = {"n": Measure(f"#m{index}_n", value.isNotNull().cast("bigint"), w)}
    if "s" in rule_of(feature).parts:
        if sums_floats(feature):
            assert scale is not None
            exact_value = exact.to_exact(F.coalesce(value, F.lit(0.0)), scale)
            out["s"] = Measure(f"#m{index}_s", exact_value, w, exact.EXACT, scale)
        else:
            integer = F.coalesce(value.cast("bigint"), F.lit(0).cast("bigint"))
            out["s"] = Measure(f"#m{index}_s", integer, w)
    return out


def _union(frames: Sequence[DataFrame]) -> DataFrame:
    out = frames[0]
    for frame in frames[1:]:
        out = out.unionByName(frame)
    return out


def _contexts_first(keys: list[str]) -> WindowSpec:
    """Per key, by time, contexts before facts at the same time: what a context at ``t``
    accumulates is exactly what happened strictly before ``t``."""
    return (
        Window.partitionBy(*keys)
        .orderBy(TIME, KIND)
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )


def running(
    ctx: DataFrame, v: DataFrame, keys: list[str], measures: Sequence[Measure]
) -> DataFrame:
    """Running sums of ``measures`` at every context: ``#row`` and one column per measure
    (null where no version ever started before ``t``)."""
    live = v.where(~F.col(TOMBSTONE))
    no_row = F.lit(None).cast("bigint").alias(ROW)

    def none(m: Measure) -> Column:
        return F.lit(None).cast(m.dtype).alias(m.name)

    starts = [
        F.when(_end(m.window_us).isNull() | (F.col(START) < _end(m.window_us)), m.expr)
        .alias(m.name)
        for m in measures
    ]
    branches = [live.select(*keys, F.col(START).alias(TIME), F.lit(1).alias(KIND), no_row, *starts)]
    for w in dict.fromkeys(m.window_us for m in measures):
        end = _end(w)
        cols = [(-m.expr).alias(m.name) if m.window_us == w else none(m) for m in measures]
        branches.append(
            live.where(end.isNotNull() & (F.col(START) < end)).select(
                *keys, end.alias(TIME), F.lit(1).alias(KIND), no_row, *cols
            )
        )
    branches.append(
        ctx.select(
            *keys, F.col(T).alias(TIME), F.lit(0).alias(KIND), F.col(ROW), *map(none, measures)
        )
    )
    order = _contexts_first(keys)
    summed = _union(branches).select(
        F.col(ROW), F.col(KIND), *(F.sum(m.name).over(order).alias(m.name) for m in measures)
    )
    return summed.where(F.col(KIND) == 0).drop(KIND)


def running_value(feature: Aggregate, parts: dict[str, Measure]) -> Column:
    """The final value of a subtractable aggregate from its running sums (empty when n = 0)."""
    rule = rule_of(feature)
    n = F.coalesce(F.col(parts["n"].name), F.lit(0).cast("bigint"))
    total: Column | None = None
    if "s" in parts:
        s = parts["s"]
        total = F.col(s.name)
        if s.scale is not None:
            total = exact.to_double(total, s.scale)
    if rule.function is Agg.COUNT:
        value = n
    elif rule.function is Agg.SUM:
        assert total is not None
        value = total
    else:  # mean
        assert total is not None
        value = total.cast("double") / F.when(n > 0, n).cast("double")
    return F.when(n == 0, F.lit(rule.empty_value(feature.dtype))).otherwise(value)


# -- latest visible version: lookups and last -------------------------------------------------


def newest(values: Sequence[Column]) -> Column:
    """A version packed in rule 2/3's order: (event_time, recorded_at, fact_id, values...)."""
    return F.struct(
        F.col(ET).alias("a"), F.col(RA).alias("b"), F.col(FACT_ID).alias("c"),
        *(value.alias(f"v{i}") for i, value in enumerate(values)),
    )


def latest(
    ctx: DataFrame, v: DataFrame, keys: list[str], packed: dict[str, Column]
) -> DataFrame:
    """For each context and each named packed version (null where a version does not count),
    the greatest visible one: ``#row`` and one struct column per name.

    Versions never corrected run through one window per key; versions a later correction
    ended (``start < t <= next``) are range-joined, and the greater of the two wins.
    """
    live = v.where(~F.col(TOMBSTONE))
    types = live.select(*(c.alias(n) for n, c in packed.items())).schema
    nulls = [F.lit(None).cast(types[n].dataType).alias(n) for n in packed]
    final = live.where(F.col(NEXT).isNull()).select(
        *keys,
        F.col(START).alias(TIME),
        F.lit(1).alias(KIND),
        F.lit(None).cast("bigint").alias(ROW),
        *(c.alias(n) for n, c in packed.items()),
    )
    contexts = ctx.select(*keys, F.col(T).alias(TIME), F.lit(0).alias(KIND), F.col(ROW), *nulls)
    order = _contexts_first(keys)
    run = (
        final.unionByName(contexts)
        .select(F.col(ROW), F.col(KIND), *(F.max(n).over(order).alias(n) for n in packed))
        .where(F.col(KIND) == 0)
        .drop(KIND)
    )
    ended = live.where(F.col(NEXT).isNotNull() & (F.col(START) < F.col(NEXT)))
    superseded = (
        ctx.select(ROW, T, *keys)
        .join(ended, on=keys)
        .where((F.col(START) < F.col(T)) & (F.col(T) <= F.col(NEXT)))
        .groupBy(ROW)
        .agg(*(F.max(c).alias(f"#x{i}") for i, c in enumerate(packed.values())))
    )
    both = run.join(superseded, on=ROW, how="left")
    return both.select(
        ROW, *(F.greatest(F.col(n), F.col(f"#x{i}")).alias(n) for i, n in enumerate(packed))
    )


def latest_value(feature: Aggregate | Lookup, column: str, index: int) -> Column:
    """A lookup's or last's value from its newest version: null past the ttl or window."""
    best = F.col(column)
    value = best.getField(f"v{index}")
    reach = feature.ttl_us if isinstance(feature, Lookup) else feature.window_us
    if reach is None:
        return value
    return F.when(best.getField("a") >= F.col(T) - F.lit(reach), value)
