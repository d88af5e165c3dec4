"""The Spark engine: the distributed Time Machine executor.

It receives the same plan as the DuckDB engine (``parity.plan``: features by source, the fact
files that can matter for a knowledge cutoff) and writes only its Spark plans (``plans``,
``rangejoin``). The contexts go to Spark as an Arrow table; the result comes back as Arrow
(``DataFrame.toArrow``), never through pandas, and is put in context order by Arrow on the
driver (a distributed sort would cost a sampling job and a shuffle). A training set runs one
Spark job for the features, plus one to choose the exact scale of float sums and one per
broadcast of hot keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from parity.contexts import AT
from parity.definitions import Aggregate, Lookup
from parity.engines.base import Column as ArrowColumn
from parity.engines.base import Engine, Progress
from parity.engines.spark import plans, rangejoin
from parity.engines.spark.buckets import HOT_VERSIONS
from parity.errors import ConfigError
from parity.plan import Plan, SourcePlan
from parity.rules import Agg, empty_column, rule_of
from parity.timeutil import timestamp_to_us

PLANS = ("sweep", "join")

#: settings parity needs whatever the user passes: UTC session time, Arrow transfers
REQUIRED_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}

#: defaults the user's ``conf`` may override: PySpark's capture of the Python call site of
#: every DataFrame call costs several JVM round trips per call, and a training set's plan
#: makes thousands of calls (it only improves error messages of hand-written queries)
DEFAULT_CONF = {"spark.python.sql.dataFrameDebugging.enabled": "false"}


class SparkEngine(Engine):
    """Computes training sets with PySpark, on ``master`` (``local[*]``, ``spark://...``,
    ``yarn``...).

    ``conf`` is passed through to the session builder (executor memory, s3a settings...).
    ``plan`` chooses how count, sum, mean, lookups and last are computed: ``sweep`` (running
    sums and running maxima in one window per key; the default) or ``join`` (a range join of
    each context to its window, as the other functions always are). ``session`` reuses a
    SparkSession the caller owns; otherwise one is created (or the active one reused) on
    first use. ``hot_key_versions``: a key with more fact versions than this is split into
    time buckets in the range-join plan (``buckets``), so that it cannot sink one task.
    """

    name = "spark"

    def __init__(
        self,
        master: str = "local[*]",
        conf: Mapping[str, str] | None = None,
        app_name: str = "parity",
        plan: str = "sweep",
        session: SparkSession | None = None,
        memory_limit: str | None = None,
        hot_key_versions: int = HOT_VERSIONS,
    ) -> None:
        if plan not in PLANS:
            raise ConfigError(
                f"Spark engine: plan must be one of {', '.join(PLANS)}, not {plan!r}"
            )
        if isinstance(hot_key_versions, bool) or not isinstance(hot_key_versions, int) or (
            hot_key_versions < 1
        ):
            raise ConfigError(
                f"Spark engine: hot_key_versions must be a whole number >= 1, not "
                f"{hot_key_versions!r}; the default is {HOT_VERSIONS}"
            )
        self.master = master
        self.conf = {**DEFAULT_CONF, **(conf or {})}
        if memory_limit is not None:
            # parity.yaml's default `offline: {memory_limit: 4GB}` is the driver's memory here,
            # so switching engines is one line; an explicit spark.driver.memory wins.
            self.conf.setdefault("spark.driver.memory", _spark_size(memory_limit))
        self.app_name = app_name
        self.plan = plan
        self.hot_key_versions = hot_key_versions
        self._session = session
        self._cached: list[DataFrame] = []

    @property
    def spark(self) -> SparkSession:
        """The SparkSession, created on first use."""
        if self._session is None:
            builder = SparkSession.builder.master(self.master).appName(self.app_name)
            for key, value in {**self.conf, **REQUIRED_CONF}.items():
                builder = builder.config(key, value)
            self._session = builder.getOrCreate()
        for key, value in REQUIRED_CONF.items():  # also on a session the caller handed over
            self._session.conf.set(key, value)
        return self._session

    def compute(
        self, contexts: pa.Table, plan: Plan, progress: Progress
    ) -> dict[str, ArrowColumn]:
        """Aggregates and lookups for ``contexts`` (see Engine.compute)."""
        try:
            frame = self.features_frame(contexts, plan, progress)
            if frame is None:
                return {}
            table = frame.toArrow()
        finally:
            self._release()
        table = table.take(pc.sort_indices(table.column(plans.ROW)))
        return {name: table.column(name) for name in table.column_names if name != plans.ROW}

    def features_frame(
        self, contexts: pa.Table, plan: Plan, progress: Progress
    ) -> DataFrame | None:
        """A Spark DataFrame of ``#row`` and one column per raw feature, in no order.

        Nothing is computed until it is collected or written (``write_parquet``); the fact
        versions it reads are cached until ``compute``/``write_parquet`` release them.
        """
        if not plan.sources:
            return None
        spark = self.spark
        n = contexts.num_rows
        out: DataFrame | None = None
        empties: dict[str, Column] = {}
        for sp in plan.sources:
            progress(f"{sp.source.kind} source {sp.source.name}: {len(sp.features)} features")
            if not sp.paths or n == 0:
                empties.update(_empty_columns(sp))
                continue
            ctx = self._contexts(spark, contexts, sp)
            piece = self._source(spark, ctx, sp, plan.knowledge_cutoff_us)
            out = piece if out is None else out.join(piece, on=plans.ROW)
        if out is None:
            rows = pa.table({plans.ROW: pa.array(range(n), pa.int64())})
            out = spark.createDataFrame(rows)
        if empties:
            out = out.select("*", *(c.alias(name) for name, c in empties.items()))
        names = [f.name for f in plan.raw_features]
        return out.select(plans.ROW, *names)

    def _contexts(self, spark: SparkSession, contexts: pa.Table, sp: SourcePlan) -> DataFrame:
        keys = plans.key_names(sp.source)
        slim = pa.table(
            {
                plans.ROW: pa.array(range(contexts.num_rows), pa.int64()),
                **{k: contexts.column(name) for k, name in zip(keys, sp.source.entity.keys)},
                plans.T: timestamp_to_us(contexts.column(AT)),
            }
        )
        return spark.createDataFrame(slim)

    def _source(
        self, spark: SparkSession, ctx: DataFrame, sp: SourcePlan, cutoff: int | None
    ) -> DataFrame:
        """``#row``, ``#t`` and one column per feature of the source, for every context."""
        v = plans.versions(spark, sp.source, sp.paths, cutoff).cache()
        self._cached.append(v)
        keys = plans.key_names(sp.source)
        sweep = self.plan == "sweep"
        finals: dict[str, Column] = {}
        pieces: list[DataFrame] = []
        scales = plans.float_scales(v, sp.aggregates)
        running = [a for a in sp.aggregates if sweep and rule_of(a).subtractable]
        latest: list[Aggregate | Lookup] = [
            *(a for a in sp.aggregates if sweep and rule_of(a).function is Agg.LAST),
            *sp.lookups,
        ]
        joined = [a for a in sp.aggregates if a not in running and a not in latest]
        if running:
            measures: list[plans.Measure] = []
            for i, feature in enumerate(running):
                parts = plans.measures_for(feature, i, scales.get(feature.field or ""))
                measures.extend(parts.values())
                finals[feature.name] = plans.running_value(feature, parts)
            pieces.append(plans.running(ctx, v, keys, measures))
        if latest:
            packed = {f"#l{i}": _packed(f) for i, f in enumerate(latest)}
            pieces.append(plans.latest(ctx, v, keys, packed))
            for column, latest_feature in zip(packed, latest):
                finals[latest_feature.name] = plans.latest_value(latest_feature, column, 0)
        if joined:
            columns = [f"#j{i}" for i in range(len(joined))]
            pieces.append(
                rangejoin.joined(ctx, v, keys, joined, columns, scales, self.hot_key_versions)
            )
            for column, feature in zip(columns, joined):
                finals[feature.name] = rangejoin.joined_value(feature, column)
        out = ctx.select(plans.ROW, plans.T)
        for piece in pieces:
            out = out.join(piece, on=plans.ROW, how="left")
        return out.select(plans.ROW, *(c.alias(name) for name, c in finals.items()))

    def write_parquet(
        self,
        contexts: pa.Table,
        plan: Plan,
        path: str,
        progress: Progress | None = None,
    ) -> None:
        """Write the raw features (``#row`` renamed ``row``) to Parquet at ``path`` (any
        Hadoop filesystem URL: ``file:``, ``s3a:``, ``hdfs:``), without collecting them."""
        try:
            frame = self.features_frame(contexts, plan, progress or (lambda _s: None))
            if frame is None:
                return
            frame.withColumnRenamed(plans.ROW, "row").write.mode("overwrite").parquet(path)
        finally:
            self._release()

    def _release(self) -> None:
        """Drop the cached fact versions of the last training set."""
        while self._cached:
            self._cached.pop().unpersist()


def _packed(feature: Aggregate | Lookup) -> Column:
    """The version a lookup or last can take (null where last's value is null)."""
    version = plans.newest([plans.field(feature)])
    if isinstance(feature, Lookup):
        return version
    return F.when(plans.field(feature).isNotNull(), version)


def _empty_columns(sp: SourcePlan) -> dict[str, Column]:
    """Literal empty values for a source with no fact file: the rule table's, typed."""
    out: dict[str, Column] = {}
    for feature in sp.features:
        empty: Any = empty_column(feature, 1)[0].as_py()
        if isinstance(empty, list):
            empty = None
        out[feature.name] = F.lit(empty)
    return out


def _spark_size(text: str) -> str:
    """``4GB``/``512MB``/``4g`` -> Spark's ``4g``/``512m``; anything else is a ConfigError."""
    import re

    match = re.fullmatch(r"\s*(\d+)\s*([kmgt])i?b?\s*", str(text), re.IGNORECASE)
    if not match:
        raise ConfigError(
            f"Spark engine: memory_limit {text!r} is not a size; write it like 4GB or 512MB"
        )
    return f"{match.group(1)}{match.group(2).lower()}"
