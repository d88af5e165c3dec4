"""The DuckDB engine: the embedded Time Machine executor.

It receives a plan (``parity.plan``) and writes only its queries: per source, the versions of
the planned files, then running sums, joins or lookups (``sql``), stitched back in context
order.
"""

from __future__ import annotations

import tempfile
from typing import Any

import pyarrow as pa

from parity._duck import connect, query_arrow
from parity.contexts import AT
from parity.definitions import Aggregate, Lookup
from parity.engines.base import Column, Engine, Progress
from parity.engines.duckdb import exact, lookups, sql
from parity.errors import ConfigError
from parity.plan import Plan, SourcePlan
from parity.rules import empty_column, rule_of
from parity.timeutil import timestamp_to_us

PLANS = ("auto", "sweep", "join")


#: a sweep is chosen only while a join would make more than this many pairs per version
#: (uniform keys at 10M events x 1M contexts make 10: they join; the sweep there needed more
#: than the default 3 GB, which DuckDB could not spill)
SWEEP_PAIRS = 16.0


class DuckDBEngine(Engine):
    """Computes training sets with DuckDB; spills to disk beyond ``memory_limit``.

    ``plan`` chooses how subtractable aggregates (count, sum, mean) are computed: ``sweep``
    (running sums), ``join`` (join each context to its window) or ``auto`` (from the real
    distribution of versions and contexts over keys, so that a skewed key set cannot make a
    join blow up; see ``_sweep_windows``).
    """

    name = "duckdb"

    def __init__(
        self,
        memory_limit: str | None = "3GB",
        threads: int | None = None,
        temp_directory: str | None = None,
        plan: str = "auto",
        dense_events: float = 64.0,
    ) -> None:
        if plan not in PLANS:
            raise ConfigError(
                f"DuckDB engine: plan must be one of {', '.join(PLANS)}, not {plan!r}"
            )
        self.plan = plan
        self.dense_events = dense_events
        self.memory_limit = memory_limit
        self.threads = threads
        self.temp_directory = temp_directory

    def compute(self, contexts: pa.Table, plan: Plan, progress: Progress) -> dict[str, Column]:
        """Aggregates and lookups for ``contexts`` (see Engine.compute)."""
        spill = self.temp_directory or tempfile.mkdtemp(prefix="parity-duckdb-")
        con = connect(self.memory_limit, self.threads, spill)
        try:
            return self._compute(con, contexts, plan, progress)
        finally:
            con.close()

    def _compute(
        self, con: Any, contexts: pa.Table, plan: Plan, progress: Progress
    ) -> dict[str, Column]:
        exact.install(con)
        # the engine's own table of contexts: its working columns cannot collide with keys
        slim = pa.table(
            {
                sql.ROW_NAME: pa.array(range(contexts.num_rows), pa.int64()),
                **{k: contexts.column(k) for k in plan.keys},
                sql.T_NAME: timestamp_to_us(contexts.column(AT)),
            }
        )
        con.register("ctx_in", slim)
        con.execute("CREATE TEMP TABLE ctx AS SELECT * FROM ctx_in")
        con.unregister("ctx_in")
        results: dict[str, Column] = {}
        for source_plan in plan.sources:
            progress(
                f"{source_plan.source.kind} source {source_plan.source.name}: "
                f"{len(source_plan.features)} features"
            )
            results.update(
                self._source(con, source_plan, plan.knowledge_cutoff_us, contexts.num_rows)
            )
        return results

    def _source(self, con: Any, sp: SourcePlan, cutoff: int | None, n: int) -> dict[str, Column]:
        if not sp.paths:
            return {f.name: empty_column(f, n) for f in sp.features}
        self._versions(con, sp, cutoff)
        keys = list(sp.source.entity.keys)
        pieces: list[str] = []  # queries, at most one row per context each
        complete: list[bool] = []  # whether a piece has a row for every context
        named: dict[str, Aggregate | Lookup] = {}  # quoted result column -> feature
        finals: dict[str, str] = {}  # quoted result column -> its final expression
        if sp.lookups:
            columns = [sql.internal(f"c{i}") for i in range(len(sp.lookups))]
            pieces.append(lookups.lookup_sql(sp.source, sp.lookups, columns))
            complete.append(True)  # an ASOF LEFT JOIN from the contexts
            named.update(zip(columns, sp.lookups))
            finals.update({c: c for c in columns})
        if sp.aggregates:
            scales = self._float_scales(con, sp.aggregates)
            sweep = self._sweep_windows(con, keys, sp.aggregates, n)
            running = [
                a
                for a in sp.aggregates
                if rule_of(a).subtractable
                and scales.get(a.field or "", 0) is not None
                and a.window_us in sweep
            ]
            # one running sum per distinct (value, window): count, sum and mean of a field
            # over a window share theirs, so the sort-and-sum pass carries each once
            shared: dict[tuple[str, int | None, int | None], sql.Measure] = {}
            for i, feature in enumerate(running):
                roles = sql.measures_for(feature, i, scales.get(feature.field or ""))
                roles = {
                    role: shared.setdefault((m.expr, m.window_us, m.scale), m)
                    for role, m in roles.items()
                }
                column = sql.internal(f"s{i}")
                named[column] = feature
                finals[column] = sql.subtractable_value(feature, roles)
            if shared:
                pieces.append(sql.subtractable_sql(keys, list(shared.values())))
                complete.append(True)  # an ASOF LEFT JOIN from the contexts
            joined = [a for a in sp.aggregates if a not in running]
            if joined:
                columns = [sql.internal(f"j{i}") for i in range(len(joined))]
                pieces.append(sql.joined_sql(keys, joined, columns, scales))
                complete.append(False)  # contexts without a version in reach have no row
                for column, feature in zip(columns, joined):
                    named[column] = feature
                    finals[column] = sql.joined_value(feature, column)
        select = ", ".join(f"{finals[c]} AS {c}" for c in named)
        if complete == [True]:  # no stitching: one pass over the contexts, in their order
            table = query_arrow(con, f"SELECT {select} FROM ({pieces[0]}) ORDER BY {sql.ROW}")
            return {feature.name: table.column(i) for i, feature in enumerate(named.values())}
        joins = []
        for i, query in enumerate(pieces):
            con.execute(f"CREATE OR REPLACE TEMP TABLE piece{i} AS {query}")
            joins.append(f"LEFT JOIN piece{i} USING ({sql.ROW})")
        table = query_arrow(con, f"SELECT {select} FROM ctx {' '.join(joins)} ORDER BY {sql.ROW}")
        return {feature.name: table.column(i) for i, feature in enumerate(named.values())}

    @staticmethod
    def _versions(con: Any, sp: SourcePlan, cutoff: int | None) -> None:
        """Make ``v``, the source's versions, as a table the plans read several times.

        A lookup-only source without corrections (no fact id with two versions; one count of
        id hashes finds out) has no correction end to find, so ``v`` is a view over the files:
        the plan reads them in place, as a hand-written ASOF join does. Sources with aggregates
        keep the table: on many small files the extra count costs more than it saves.
        """
        for (kind,) in con.execute(
            "SELECT CASE WHEN table_type = 'VIEW' THEN 'VIEW' ELSE 'TABLE' END "
            "FROM information_schema.tables WHERE table_name = 'v'"
        ).fetchall():
            con.execute(f"DROP {kind} v")
        corrected = bool(
            sp.aggregates or con.execute(sql.corrections_sql(sp.paths, cutoff)).fetchone()[0]
        )
        query = sql.versions_sql(sp.source, sp.paths, cutoff, corrected)
        con.execute(f"CREATE TEMP {'TABLE' if corrected else 'VIEW'} v AS {query}")

    def _sweep_windows(
        self, con: Any, keys: list[str], aggregates: tuple[Aggregate, ...], contexts: int
    ) -> set[int | None]:
        """The windows whose subtractable aggregates use running sums rather than a join.

        A join matches each context with every version of its key (DuckDB joins on the key
        and filters the time conditions afterwards, so a window does not make it cheaper):
        it costs the sum over keys of contexts x versions. Running sums cost a sort of every
        version boundary plus one ASOF pass over the contexts. ``plan="auto"`` computes that
        sum from the real distribution (never the average, which a few heavy keys, as in a
        Zipf-skewed key set, make meaningless) and joins while it stays within
        ``dense_events`` pairs per context or ``SWEEP_PAIRS`` pairs per version (a few
        contexts over a long history). All history always uses running sums.
        """
        windows = {a.window_us for a in aggregates if rule_of(a).subtractable}
        if self.plan == "sweep":
            return windows
        if self.plan == "join":
            return set()
        pairs, versions = con.execute(sql.shape_sql(keys)).fetchall()[0]
        pairs, versions = pairs or 0.0, versions or 0.0
        if pairs > self.dense_events * max(contexts, 1) and pairs > SWEEP_PAIRS * versions:
            return windows
        return {w for w in windows if w is None}

    @staticmethod
    def _float_scales(con: Any, aggregates: tuple[Aggregate, ...]) -> dict[str, int | None]:
        """Exact integer scales of the float fields that sums add up."""
        fields = sorted({a.field for a in aggregates if a.field and sql.sums_floats(a)})
        scales: dict[str, int | None] = {}
        for field in fields:
            low, high, count, non_finite = con.execute(sql.float_scale_sql(field)).fetchall()[0]
            scales[field] = sql.exact_scale(low, high, count, non_finite)
        return scales
