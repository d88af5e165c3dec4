"""Hot keys split into time buckets, so that one key cannot sink a task.

The range join of the ``joined`` plan (min, max, last_k, count_distinct; every function with
``plan="join"``) matches each context with the versions of its key: partitioned by key alone,
one key holding most of the facts is one task holding most of the work. Here a key with more
than ``hot_versions`` versions is *hot*: its event-time range is cut into buckets of about
``hot_versions`` versions each (``width = span * hot_versions / count``), each version goes to
the bucket of its ``event_time``, and each context to every bucket its widest window can
reach (``[t - W, t)``; all of the key's buckets up to ``t`` without a window). The join is on
(key, bucket), so a hot key's work spreads over as many tasks as it has buckets, and the
aggregates are computed per (context, bucket) and combined per context (``plans.joined``).
Other keys keep one bucket (0), so they pay nothing but the extra column.

Which keys are hot is computed lazily (no Spark action): a per-key count over the versions,
filtered to the hot ones, a small relation (at most versions / hot_versions rows) that is
broadcast to both sides.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

BUCKET = "#bucket"
ET, T = "#et", "#t"  # as in plans (which imports this module)
_N, _LOW, _SPAN, _WIDTH = "#b_n", "#b_low", "#b_span", "#b_width"

#: versions per key above which a key is split into time buckets (SparkEngine's default)
HOT_VERSIONS = 100_000


def hot_keys(v: DataFrame, keys: list[str], hot_versions: int) -> DataFrame:
    """The hot keys with their bucket grid: first event time, span (last - first event time)
    and bucket width (us, >= 1), broadcast.

    The width only has to be positive, not exact: it is computed in floating point, and
    every bucket index in exact integer arithmetic from it.
    """
    stats = v.groupBy(*keys).agg(
        F.count(F.lit(1)).alias(_N),
        F.min(ET).alias(_LOW),
        (F.max(ET) - F.min(ET)).alias(_SPAN),
    )
    width = F.ceil((F.col(_SPAN) + F.lit(1)) / F.col(_N) * F.lit(float(hot_versions)))
    return F.broadcast(
        stats.where(F.col(_N) > F.lit(hot_versions)).select(
            *keys, _LOW, _SPAN, F.greatest(width.cast("bigint"), F.lit(1)).alias(_WIDTH)
        )
    )


def bucketed_versions(v: DataFrame, hot: DataFrame, keys: list[str]) -> DataFrame:
    """``v`` with ``#bucket``: the bucket of its event time for a hot key, else 0."""
    bucket = F.coalesce(_bucket(F.col(ET) - F.col(_LOW)), F.lit(0).cast("bigint"))
    return v.join(hot, on=keys, how="left").select(*v.columns, bucket.alias(BUCKET))


def bucketed_contexts(
    ctx: DataFrame, hot: DataFrame, keys: list[str], widest_us: int | None
) -> DataFrame:
    """``ctx`` with ``#bucket``, one row per bucket of a hot key that the context's widest
    window can reach (versions with ``event_time`` in ``[t - W, t)``; all buckets before
    ``t`` without a window); one row, bucket 0, for other keys. A context before a hot key's
    first version gets its bucket 0, where nothing is visible to it anyway."""
    first = F.lit(0).cast("bigint")
    if widest_us is not None:
        first = _bucket(F.col(T) - F.lit(widest_us) - F.col(_LOW))
    last = _bucket(F.col(T) - F.lit(1) - F.col(_LOW))
    grid = F.sequence(first, F.greatest(first, last))
    buckets = F.when(F.col(_WIDTH).isNull(), F.array(F.lit(0).cast("bigint"))).otherwise(grid)
    joined = ctx.join(hot, on=keys, how="left")
    return joined.select(*ctx.columns, F.explode(buckets).alias(BUCKET))


def _bucket(offset: Column) -> Column:
    """The bucket of an event-time offset from the key's first event time, clamped to the
    key's buckets: ``floor(offset / width)``, exact (the multiple of ``width`` below the
    clamped offset, a bigint within the key's span, divides exactly in a double)."""
    width = F.col(_WIDTH)
    clamped = F.least(F.greatest(offset, F.lit(0).cast("bigint")), F.col(_SPAN))
    multiple = clamped - F.pmod(clamped, width)
    return (multiple / width).cast("bigint")
