"""SQL builders for the DuckDB engine. Every query is built from validated identifiers.

Each stored fact version is valid over an interval of context times ``t``:

    start < t <= end,  start = max(event_time, recorded_at),
                       end   = min(event_time + W, recorded_at of the next version)

(rules 1, 2 and 4 of DESIGN.md; ``end`` is open when neither bound exists). A subtractable
aggregate at ``t`` is then a sum of ``+value`` at every start before ``t`` and ``-value`` at
every end before ``t``: one sort, one running sum and one ASOF join, linear in events plus
contexts. Other aggregates join each context to the versions valid at its ``t``. Lookups are
in ``lookups``.

The engine's working columns start with ``#`` (``"#row"``, ``"#t"``, ``"#start"``...): a user's
key, field or context column is a Python identifier, so it can never take one of these names.
What each aggregate function means comes from ``parity.rules``; this module only maps each
function to SQL (``_JOINED``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from parity.definitions import EVENT_TIME, Aggregate, Source
from parity.rules import Agg, missing, rule_of


def q(name: str) -> str:
    """Quote an identifier."""
    return '"' + name.replace('"', '""') + '"'


def internal(name: str) -> str:
    """A working column's quoted name, outside the space of user identifiers."""
    return q("#" + name)


ROW_NAME, T_NAME = "#row", "#t"  # the context table's working columns, as Arrow names
ROW, T = q(ROW_NAME), q(T_NAME)
ET, RA, START, NEXT, TIME, BEST = (
    internal(n) for n in ("et", "ra", "start", "next", "time", "best")
)


def key_join(keys: Sequence[str], left: str, right: str) -> str:
    """Equality of every key column between two relations."""
    return " AND ".join(f"{left}.{q(k)} = {right}.{q(k)}" for k in keys)


def versions_sql(
    source: Source, paths: Sequence[str], cutoff_us: int | None, corrected: bool = True
) -> str:
    """Every fact version with its times in microseconds, its start, and its correction end.

    ``corrected=False`` promises that no fact id has two versions (see ``corrections_sql``):
    the correction end is then NULL everywhere and the window that finds it is skipped.
    """
    keys = ", ".join(q(k) for k in source.entity.keys)
    fields = "".join(f", {q(f)}" for f in source.schema)
    where = f"WHERE epoch_us(recorded_at) < {cutoff_us}" if cutoff_us is not None else ""
    files = parquet_list(paths)
    next_end = (
        "lead(epoch_us(recorded_at)) OVER (PARTITION BY fact_id ORDER BY recorded_at)"
        if corrected else "NULL::BIGINT"
    )
    return f"""
        SELECT {keys}{fields}, event_time, epoch_us(event_time) AS {ET},
               epoch_us(recorded_at) AS {RA}, fact_id, _tombstone,
               greatest(epoch_us(event_time), epoch_us(recorded_at)) AS {START},
               {next_end} AS {NEXT}
        FROM read_parquet({files}) {where}
    """


def parquet_list(paths: Sequence[str]) -> str:
    """A DuckDB list literal of file paths, for ``read_parquet``."""
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


def corrections_sql(paths: Sequence[str], cutoff_us: int | None) -> str:
    """One row, one column: whether some fact id may have two versions in ``paths``.

    It counts distinct 64-bit hashes of the ids: a collision can only make it answer True
    (take the exact path), never hide a correction.
    """
    where = f"WHERE epoch_us(recorded_at) < {cutoff_us}" if cutoff_us is not None else ""
    return (
        f"SELECT count(*) > count(DISTINCT hash(fact_id)) "
        f"FROM read_parquet({parquet_list(paths)}) {where}"
    )


@dataclass(frozen=True)
class Measure:
    """One running sum: a value per version, summed over the versions valid at ``t``.

    Float values are summed exactly: each is multiplied by ``2**scale`` (exact) so that it is
    an integer, the integers are summed as HUGEINT (exact, so adding a value when it enters a
    window and subtracting it when it leaves cancels perfectly), and the total is scaled back.
    ``column`` is quoted.
    """

    column: str
    expr: str
    window_us: int | None
    scale: int | None = None
    count: bool = False  # a 0/1 value: its running sum is a count, which can be packed


def _end(window_us: int | None) -> str:
    return NEXT if window_us is None else f"least({ET} + {window_us}, {NEXT})"


def float_scale_sql(field: str) -> str:
    """Exponent range of a float field's values, to choose an exact integer scale."""
    f = q(field)
    return f"""
        SELECT min(floor(log2(abs({f})))) FILTER (WHERE {f} <> 0 AND isfinite({f})),
               max(ceil(log2(abs({f})))) FILTER (WHERE {f} <> 0 AND isfinite({f})),
               count({f}), count(*) FILTER (WHERE NOT isfinite({f}))
        FROM v
    """


def exact_scale(low: float | None, high: float | None, count: int, non_finite: int) -> int | None:
    """The power of two that makes every value an integer within 126 bits, or None if none does."""
    if non_finite:
        return None
    if low is None or high is None:
        return 0
    scale = 52 - int(low)
    bits = int(high) + scale + max(count, 1).bit_length() + 2
    return scale if bits <= 126 else None


def sums_floats(feature: Aggregate) -> bool:
    """Whether the aggregate adds up the values of a float field (and so needs a scale)."""
    return (
        "s" in rule_of(feature).parts
        and feature.field is not None
        and feature.source.field_dtype(feature.field) == "float"
    )


def measures_for(feature: Aggregate, index: int, scale: int | None = None) -> dict[str, Measure]:
    """The running sums a subtractable aggregate needs, by part ('n' count, 's' sum).

    ``scale`` is the exact power-of-two scale of a float field (see ``exact_scale``).
    """
    w = feature.window_us
    if feature.field is None:
        return {"n": Measure(internal(f"m{index}_n"), "1::BIGINT", w, count=True)}
    present = f"({q(feature.field)} IS NOT NULL)::BIGINT"
    out = {"n": Measure(internal(f"m{index}_n"), present, w, count=True)}
    if "s" in rule_of(feature).parts:
        if sums_floats(feature):
            assert scale is not None
            value = f"(coalesce({q(feature.field)}, 0) * pow(2.0, {scale}))::HUGEINT"
            out["s"] = Measure(internal(f"m{index}_s"), value, w, scale)
        else:
            value = f"coalesce({q(feature.field)}::BIGINT, 0)"
            out["s"] = Measure(internal(f"m{index}_s"), value, w)
    return out


_PACK_BITS = 42  # three counts per HUGEINT, each below 2**42 (4.4e12 versions per key)
_PACK_MASK = (1 << _PACK_BITS) - 1


def _packs(measures: Sequence[Measure]) -> list[tuple[str, list[Measure]]]:
    """Counts grouped three to a packed HUGEINT column.

    A running count is never negative (a version ends only after it started) and below
    2**42, so the running sum of ``sum(count_i << 42 i)`` is exactly ``sum(running_i << 42 i)``
    and each count is read back with a shift and a mask: three counts cost one window
    aggregate instead of three (DuckDB's window sums dominate the running-sums plan).
    """
    counts = [m for m in measures if m.count]
    return [(internal(f"pack{i // 3}"), counts[i : i + 3]) for i in range(0, len(counts), 3)]


def _leaving(m: Measure, window_us: int | None) -> str:
    """A measure's value in the deltas that end ``window_us`` windows (0 for other windows)."""
    return m.expr if m.window_us == window_us else "0"


def subtractable_sql(keys: Sequence[str], measures: Sequence[Measure]) -> str:
    """Running sums of ``measures`` ASOF-joined to the contexts: one row per context."""
    key_list = ", ".join(q(k) for k in keys)
    windows = sorted({m.window_us for m in measures}, key=lambda w: -1 if w is None else w)
    packs = _packs(measures)
    plain = [m for m in measures if not m.count]
    columns = [m.column for m in plain] + [column for column, _ in packs]

    def packed(members: list[Measure], value: Callable[[Measure], str]) -> str:
        return " + ".join(
            f"(({value(m)})::HUGEINT << {_PACK_BITS * slot})" for slot, m in enumerate(members)
        )

    def entering(m: Measure) -> str:
        end = _end(m.window_us)
        return f"CASE WHEN {end} IS NULL OR {START} < {end} THEN {m.expr} ELSE 0 END"

    starts = [f"{entering(m)} AS {m.column}" for m in plain]
    starts += [f"{packed(members, entering)} AS {column}" for column, members in packs]
    branches = [
        f"SELECT {key_list}, {START} AS {TIME}, {', '.join(starts)} FROM v WHERE NOT _tombstone"
    ]
    for w in windows:
        end = _end(w)
        cols = [
            f"-({m.expr}) AS {m.column}" if m.window_us == w else f"0 AS {m.column}" for m in plain
        ]
        for column, members in packs:
            mine = [m for m in members if m.window_us == w]
            leaving = packed(members, partial(_leaving, window_us=w))
            cols.append(f"-({leaving}) AS {column}" if mine else f"0::HUGEINT AS {column}")
        branches.append(
            f"SELECT {key_list}, {end} AS {TIME}, {', '.join(cols)} FROM v "
            f"WHERE NOT _tombstone AND {end} IS NOT NULL AND {START} < {end}"
        )
    deltas = "\nUNION ALL\n".join(branches)
    summed = ", ".join(f"sum({c}) AS {c}" for c in columns)
    running = ", ".join(
        f"sum({c}) OVER (PARTITION BY {key_list} ORDER BY {TIME} "
        f"ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS {c}"
        for c in columns
    )
    picked = [f"p.{m.column}" for m in plain]
    for column, members in packs:
        picked += [
            f"((p.{column} >> {_PACK_BITS * slot}) & {_PACK_MASK})::BIGINT AS {m.column}"
            for slot, m in enumerate(members)
        ]
    return f"""
        WITH deltas AS ({deltas}),
        grouped AS (SELECT {key_list}, {TIME}, {summed} FROM deltas GROUP BY {key_list}, {TIME}),
        prefix AS (SELECT {key_list}, {TIME}, {running} FROM grouped)
        SELECT c.{ROW}, {", ".join(picked)}
        FROM ctx c ASOF LEFT JOIN prefix p ON {key_join(keys, "c", "p")} AND c.{T} > p.{TIME}
    """


# The value of each subtractable function from its parts (n: non-null values, s: their sum).
_FROM_PARTS: dict[Agg, Callable[[str, str], str]] = {
    Agg.COUNT: lambda n, s: n,
    Agg.SUM: lambda n, s: s,
    Agg.MEAN: lambda n, s: f"{s}::DOUBLE / {n}",
}


def subtractable_value(feature: Aggregate, m: dict[str, Measure]) -> str:
    """The final expression of a subtractable aggregate from its running sums.

    With no value in the window (``n = 0``) it is the rule table's empty value.
    """
    rule = rule_of(feature)
    n = f"coalesce({m['n'].column}, 0)"
    total = "NULL"
    if "s" in m:
        total = m["s"].column
        if m["s"].scale is not None:
            total = f"(exact_double({total}) / pow(2.0, {m['s'].scale}))"
    empty = _literal(rule.empty_value(feature.dtype))
    return f"CASE WHEN {n} = 0 THEN {empty} ELSE {_FROM_PARTS[rule.function](n, total)} END"


def _literal(value: object) -> str:
    return "NULL" if value is None else repr(value)


def _field(feature: Aggregate) -> str:
    assert feature.field is not None
    return "v.event_time" if feature.field == EVENT_TIME else f"v.{q(feature.field)}"


@dataclass(frozen=True)
class _Joined:
    """What a joined aggregate's SQL is built from: the value expression, its FILTER clause
    and the exact scale of a float sum."""

    feature: Aggregate
    value: str
    flt: str
    scale: int | None


def _sum_sql(j: _Joined) -> str:
    """An exact sum: BIGINT for integers, scaled HUGEINT for floats, fsum as a last resort."""
    if not sums_floats(j.feature):
        return f"sum({j.value}::BIGINT) {j.flt}"
    if j.scale is not None:
        scaled = f"sum(({j.value} * pow(2.0, {j.scale}))::HUGEINT) {j.flt}"
        return f"(exact_double({scaled}) / pow(2.0, {j.scale}))"
    return f"fsum({j.value}) {j.flt}"  # an exponent range too wide for exact integer sums


_ORDER = f"v.{ET} DESC, v.{RA} DESC, v.fact_id DESC"  # rule 2's order, newest first
_JOINED: dict[Agg, Callable[[_Joined], str]] = {
    Agg.COUNT: lambda j: f"count({j.value}) {j.flt}",
    Agg.COUNT_DISTINCT: lambda j: f"count(DISTINCT {j.value}) {j.flt}",
    Agg.SUM: _sum_sql,
    Agg.MEAN: lambda j: f"{_sum_sql(j)}::DOUBLE / count({j.value}) {j.flt}",
    Agg.MIN: lambda j: f"min({j.value}) {j.flt}",
    Agg.MAX: lambda j: f"max({j.value}) {j.flt}",
    Agg.LAST: lambda j: (
        f"arg_max({j.value}, struct_pack(a := v.{ET}, b := v.{RA}, c := v.fact_id)) {j.flt}"
    ),
    Agg.LAST_K: lambda j: f"(list({j.value} ORDER BY {_ORDER}) {j.flt})[1:{j.feature.k}]",
}
assert not missing(_JOINED), f"DuckDB engine lacks {missing(_JOINED)}"


def joined_aggregate(feature: Aggregate, column: str, scale: int | None = None) -> str:
    """An aggregate over the versions joined to a context's ``t``; ``column`` is quoted.

    Float sums are exact (``scale`` as in ``exact_scale``) and correctly rounded, like the
    running sums; without a scale they fall back to a compensated sum.
    """
    if feature.field is None:  # count of events
        window = ""
        if feature.window_us is not None:
            window = f"FILTER (WHERE v.{ET} >= c.{T} - {feature.window_us})"
        return f"count(*) {window} AS {column}"
    value = _field(feature)
    conditions = [f"{value} IS NOT NULL"]
    if feature.window_us is not None:
        conditions.append(f"v.{ET} >= c.{T} - {feature.window_us}")
    flt = f"FILTER (WHERE {' AND '.join(conditions)})"
    sql = _JOINED[rule_of(feature).function](_Joined(feature, value, flt, scale))
    return f"{sql} AS {column}"


def joined_value(feature: Aggregate, column: str) -> str:
    """The final expression of a joined aggregate: the rule table's value for no values."""
    rule = rule_of(feature)
    if rule.empty_is_zero:  # a context without any joined version has no row at all
        return f"coalesce({column}, {_literal(rule.empty_value(feature.dtype))})"
    if rule.list_output:
        return f"CASE WHEN len({column}) = 0 THEN NULL ELSE {column} END"
    return column


def joined_sql(
    keys: Sequence[str],
    features: Sequence[Aggregate],
    columns: Sequence[str],
    scales: dict[str, int | None] | None = None,
) -> str:
    """Non-subtractable aggregates: join each context to the versions valid at its ``t``."""
    windows = [f.window_us for f in features]
    widest = None if any(w is None for w in windows) else max(w for w in windows if w is not None)
    reach = f" AND v.{ET} >= c.{T} - {widest}" if widest is not None else ""
    scales = scales or {}
    selects = ", ".join(
        joined_aggregate(f, c, scales.get(f.field or "")) for f, c in zip(features, columns)
    )
    return f"""
        SELECT c.{ROW}, {selects}
        FROM ctx c JOIN v ON {key_join(keys, "c", "v")}
            AND v.{START} < c.{T} AND (v.{NEXT} IS NULL OR c.{T} <= v.{NEXT}){reach}
        WHERE NOT v._tombstone
        GROUP BY c.{ROW}
    """


def shape_sql(keys: Sequence[str]) -> str:
    """The pairs a join of the contexts to the versions on their keys makes, and the versions.

    The real sum over keys of versions x contexts, not an average: a few heavy keys that meet
    many contexts (a Zipf-skewed key set) dominate a join's cost. One row: (pairs, versions).
    """
    key_list = ", ".join(q(k) for k in keys)
    return f"""
        WITH e AS (SELECT {key_list}, count(*) AS n FROM v GROUP BY ALL),
             c AS (SELECT {key_list}, count(*) AS m FROM ctx GROUP BY ALL)
        SELECT (SELECT sum(e.n::DOUBLE * c.m) FROM e JOIN c USING ({key_list})),
               (SELECT sum(n)::DOUBLE FROM e)
    """
