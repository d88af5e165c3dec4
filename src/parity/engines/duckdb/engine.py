"""The DuckDB engine: the embedded Time Machine executor."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa

from parity._duck import connect, query_arrow
from parity.definitions import Aggregate, FeatureSet, Lookup, Source
from parity.engines.base import ROW, Engine, Progress, raw_features
from parity.engines.duckdb import exact, sql
from parity.factlog import FactLog
from parity.timeutil import datetime_to_us, timestamp_to_us


class DuckDBEngine(Engine):
    """Computes training sets with DuckDB; spills to disk beyond ``memory_limit``."""

    name = "duckdb"

    def __init__(
        self,
        memory_limit: str | None = "3GB",
        threads: int | None = None,
        temp_directory: str | None = None,
        plan: str = "auto",
        dense_events: float = 64.0,
    ) -> None:
        if plan not in ("auto", "sweep", "join"):
            raise ValueError(f"plan must be 'auto', 'sweep' or 'join', not {plan!r}")
        self.plan = plan
        self.dense_events = dense_events
        self.memory_limit = memory_limit
        self.threads = threads
        self.temp_directory = temp_directory

    def compute(
        self,
        contexts: pa.Table,
        feature_sets: Sequence[FeatureSet],
        fact_log: FactLog,
        knowledge_cutoff: datetime | None,
        progress: Progress,
    ) -> dict[str, pa.ChunkedArray | pa.Array]:
        """Aggregates and lookups for ``contexts`` (see Engine.compute)."""
        spill = self.temp_directory or tempfile.mkdtemp(prefix="parity-duckdb-")
        con = connect(self.memory_limit, self.threads, spill)
        try:
            return self._compute(con, contexts, feature_sets, fact_log, knowledge_cutoff, progress)
        finally:
            con.close()

    def _compute(
        self,
        con: Any,
        contexts: pa.Table,
        feature_sets: Sequence[FeatureSet],
        fact_log: FactLog,
        knowledge_cutoff: datetime | None,
        progress: Progress,
    ) -> dict[str, pa.ChunkedArray | pa.Array]:
        cutoff = datetime_to_us(knowledge_cutoff) if knowledge_cutoff is not None else None
        exact.install(con)
        keys = sorted({k for fs in feature_sets for k in fs.entity.keys})
        times = timestamp_to_us(contexts.column("at"))
        slim = pa.table(
            {ROW: contexts.column(ROW), **{k: contexts.column(k) for k in keys}, "_t": times}
        )
        con.register("ctx_in", slim)
        con.execute("CREATE TEMP TABLE ctx AS SELECT * FROM ctx_in")
        con.unregister("ctx_in")
        latest = max(times.to_pylist(), default=0) if contexts.num_rows else 0
        by_source: dict[str, tuple[Source, list[Aggregate | Lookup]]] = {}
        for fs in feature_sets:
            for feature in raw_features(fs):
                by_source.setdefault(feature.source.name, (feature.source, []))[1].append(feature)
        results: dict[str, pa.ChunkedArray | pa.Array] = {}
        for name, (source, features) in by_source.items():
            progress(f"{source.kind} source {name}: {len(features)} features")
            paths = [
                str(fact_log.root / name / entry.path)
                for entry in fact_log.files(name)
                if entry.min_recorded_at < latest
                # only recorded_at prunes soundly: a file of future event times can
                # still hold a correction that retires an earlier version
                and (cutoff is None or entry.min_recorded_at < cutoff)
            ]
            results.update(self._source(con, source, features, paths, cutoff, contexts.num_rows))
        return results

    def _source(
        self,
        con: Any,
        source: Source,
        features: list[Aggregate | Lookup],
        paths: list[str],
        cutoff: int | None,
        n: int,
    ) -> dict[str, pa.ChunkedArray | pa.Array]:
        if not paths:
            return {f.name: _empty(f, n) for f in features}
        con.execute("DROP TABLE IF EXISTS v")
        con.execute(f"CREATE TEMP TABLE v AS {sql.versions_sql(source, paths, cutoff)}")
        keys = list(source.entity.keys)
        pieces: list[str] = []  # queries, one row per context _row each
        if isinstance(source, Source) and source.kind == "state":
            lookups = [f for f in features if isinstance(f, Lookup)]
            columns = [f"c{i}" for i in range(len(lookups))]
            pieces.append(sql.lookup_sql(source, lookups, columns))
            named: dict[str, Aggregate | Lookup] = dict(zip(columns, lookups))
            finals = {c: c for c in columns}
        else:
            aggregates = [f for f in features if isinstance(f, Aggregate)]
            named, finals = {}, {}
            measures: list[sql.Measure] = []
            scales = self._float_scales(con, aggregates)
            sweep = self._sweep_windows(con, keys, aggregates)
            running = [
                a
                for a in aggregates
                if a.function in sql.SUBTRACTABLE
                and scales.get(a.field or "", 0) is not None
                and a.window_us in sweep
            ]
            for i, feature in enumerate(running):
                roles = sql.measures_for(feature, i, scales.get(feature.field or ""))
                measures.extend(roles.values())
                column = f"s{i}"
                named[column] = feature
                finals[column] = sql.subtractable_value(feature, roles)
            if measures:
                pieces.append(sql.subtractable_sql(keys, measures))
            joined = [a for a in aggregates if a not in running]
            if joined:
                columns = [f"j{i}" for i in range(len(joined))]
                pieces.append(sql.joined_sql(keys, joined, columns, scales))
                for column, feature in zip(columns, joined):
                    named[column] = feature
                    finals[column] = (
                        f"coalesce({column}, 0)"
                        if feature.function in ("count_distinct", "sum", "count")
                        else f"CASE WHEN len({column}) = 0 THEN NULL ELSE {column} END"
                        if feature.function == "last_k"
                        else column
                    )
        joins = []
        for i, query in enumerate(pieces):
            con.execute(f"CREATE OR REPLACE TEMP TABLE piece{i} AS {query}")
            joins.append(f"LEFT JOIN piece{i} USING (_row)")
        select = ", ".join(f"{finals[c]} AS {c}" for c in named)
        table = query_arrow(con, f"SELECT {select} FROM ctx {' '.join(joins)} ORDER BY _row")
        return {feature.name: table.column(column) for column, feature in named.items()}

    def _sweep_windows(
        self, con: Any, keys: list[str], aggregates: list[Aggregate]
    ) -> set[int | None]:
        """The windows whose subtractable aggregates use running sums rather than a join.

        A join costs contexts x events in the window per key; running sums cost a sort of
        every event boundary. Running sums win only where windows hold many events per key
        (dense keys, long windows, all history), so ``plan="auto"`` picks per window from the
        average number of events a key has in it.
        """
        windows = {a.window_us for a in aggregates if a.function in sql.SUBTRACTABLE}
        if self.plan == "sweep":
            return windows
        if self.plan == "join":
            return set()
        versions, keys_seen, span = con.execute(sql.shape_sql(keys)).fetchone()
        per_key = versions / max(keys_seen or 1, 1)
        chosen: set[int | None] = set()
        for window in windows:
            share = 1.0 if window is None or not span else min(1.0, window / span)
            if window is None or per_key * share > self.dense_events:
                chosen.add(window)
        return chosen

    @staticmethod
    def _float_scales(con: Any, aggregates: list[Aggregate]) -> dict[str, int | None]:
        """Exact integer scales of the float fields that running sums add up."""
        fields = {
            a.field
            for a in aggregates
            if (a.function in ("sum", "mean") and a.field and a.dtype in ("float",))
            or (a.function == "mean" and a.field and a.source.field_dtype(a.field) == "float")
        }
        scales: dict[str, int | None] = {}
        for field in sorted(f for f in fields if f):
            low, high, count, non_finite = con.execute(sql.float_scale_sql(field)).fetchone()
            scales[field] = sql.exact_scale(low, high, count, non_finite)
        return scales


def _empty(feature: Aggregate | Lookup, n: int) -> pa.Array:
    if isinstance(feature, Aggregate) and feature.function in ("count", "count_distinct", "sum"):
        return pa.array([0] * n, pa.int64()).cast(
            pa.float64() if feature.dtype == "float" else pa.int64()
        )
    return pa.nulls(n)
