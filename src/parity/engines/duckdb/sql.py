"""SQL builders for the DuckDB engine. Every query is built from validated identifiers.

Each stored fact version is valid over an interval of context times ``t``:

    start < t <= end,  start = max(event_time, recorded_at),
                       end   = min(event_time + W, recorded_at of the next version)

(rules 1, 2 and 4 of DESIGN.md; ``end`` is open when neither bound exists). A subtractable
aggregate at ``t`` is then a sum of ``+value`` at every start before ``t`` and ``-value`` at
every end before ``t``: one sort, one running sum and one ASOF join, linear in events plus
contexts. Other aggregates join each context to the versions valid at its ``t``; lookups take a
running maximum by (event_time, recorded_at, fact_id) and correct it with the few versions that
a later correction ended.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from parity.definitions import EVENT_TIME, Aggregate, Lookup, Source

SUBTRACTABLE = frozenset({"count", "sum", "mean"})


def q(name: str) -> str:
    """Quote an identifier."""
    return '"' + name.replace('"', '""') + '"'


def key_join(keys: Sequence[str], left: str, right: str) -> str:
    """Equality of every key column between two relations."""
    return " AND ".join(f"{left}.{q(k)} = {right}.{q(k)}" for k in keys)


def versions_sql(source: Source, paths: Sequence[str], cutoff_us: int | None) -> str:
    """Every fact version with its times in microseconds, its start, and its correction end."""
    keys = ", ".join(q(k) for k in source.entity.keys)
    fields = "".join(f", {q(f)}" for f in source.schema)
    where = f"WHERE epoch_us(recorded_at) < {cutoff_us}" if cutoff_us is not None else ""
    files = "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"
    return f"""
        SELECT {keys}{fields}, event_time, epoch_us(event_time) AS _et,
               epoch_us(recorded_at) AS _ra, fact_id, _tombstone,
               greatest(epoch_us(event_time), epoch_us(recorded_at)) AS _start,
               lead(epoch_us(recorded_at)) OVER (PARTITION BY fact_id ORDER BY recorded_at) AS _next
        FROM read_parquet({files}) {where}
    """


@dataclass(frozen=True)
class Measure:
    """One running sum: a value per version, summed over the versions valid at ``t``.

    Float values are summed exactly: each is multiplied by ``2**scale`` (exact) so that it is
    an integer, the integers are summed as HUGEINT (exact, so adding a value when it enters a
    window and subtracting it when it leaves cancels perfectly), and the total is scaled back.
    """

    column: str
    expr: str
    window_us: int | None
    scale: int | None = None


def _end(window_us: int | None) -> str:
    return "_next" if window_us is None else f"least(_et + {window_us}, _next)"


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


def measures_for(feature: Aggregate, index: int, scale: int | None = None) -> dict[str, Measure]:
    """The running sums a subtractable aggregate needs, by role ('n' count, 's' sum).

    ``scale`` is the exact power-of-two scale of a float field (see ``exact_scale``).
    """
    w = feature.window_us
    if feature.field is None:
        return {"n": Measure(f"m{index}_n", "1::BIGINT", w)}
    present = f"({q(feature.field)} IS NOT NULL)::BIGINT"
    out = {"n": Measure(f"m{index}_n", present, w)}
    if feature.function in ("sum", "mean"):
        if feature.source.field_dtype(feature.field) == "float":
            assert scale is not None
            value = f"(coalesce({q(feature.field)}, 0) * pow(2.0, {scale}))::HUGEINT"
            out["s"] = Measure(f"m{index}_s", value, w, scale)
        else:
            out["s"] = Measure(f"m{index}_s", f"coalesce({q(feature.field)}::BIGINT, 0)", w)
    return out


def subtractable_sql(keys: Sequence[str], measures: Sequence[Measure]) -> str:
    """Running sums of ``measures`` ASOF-joined to the contexts: one row per context ``_row``."""
    key_list = ", ".join(q(k) for k in keys)
    windows = sorted({m.window_us for m in measures}, key=lambda w: -1 if w is None else w)
    branches = []
    starts = ", ".join(
        f"CASE WHEN {_end(m.window_us)} IS NULL OR _start < {_end(m.window_us)} "
        f"THEN {m.expr} ELSE 0 END AS {m.column}"
        for m in measures
    )
    branches.append(f"SELECT {key_list}, _start AS _time, {starts} FROM v WHERE NOT _tombstone")
    for w in windows:
        end = _end(w)
        cols = ", ".join(
            f"-({m.expr}) AS {m.column}" if m.window_us == w else f"0 AS {m.column}"
            for m in measures
        )
        branches.append(
            f"SELECT {key_list}, {end} AS _time, {cols} FROM v "
            f"WHERE NOT _tombstone AND {end} IS NOT NULL AND _start < {end}"
        )
    deltas = "\nUNION ALL\n".join(branches)
    summed = ", ".join(f"sum({m.column}) AS {m.column}" for m in measures)
    running = ", ".join(
        f"sum({m.column}) OVER (PARTITION BY {key_list} ORDER BY _time "
        f"ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS {m.column}"
        for m in measures
    )
    picked = ", ".join(f"p.{m.column}" for m in measures)
    return f"""
        WITH deltas AS ({deltas}),
        grouped AS (SELECT {key_list}, _time, {summed} FROM deltas GROUP BY {key_list}, _time),
        prefix AS (SELECT {key_list}, _time, {running} FROM grouped)
        SELECT c._row, {picked}
        FROM ctx c ASOF LEFT JOIN prefix p ON {key_join(keys, "c", "p")} AND c._t > p._time
    """


def subtractable_value(feature: Aggregate, m: dict[str, Measure]) -> str:
    """The final expression of a subtractable aggregate from its running sums."""
    n = f"coalesce({m['n'].column}, 0)"
    if feature.function == "count":
        return n
    total = m["s"].column
    if m["s"].scale is not None:
        total = f"(exact_double({total}) / pow(2.0, {m['s'].scale}))"
    if feature.function == "sum":
        zero = "0.0" if feature.dtype == "float" else "0"
        return f"CASE WHEN {n} = 0 THEN {zero} ELSE {total} END"
    return f"CASE WHEN {n} = 0 THEN NULL ELSE {total}::DOUBLE / {n} END"


def _field(feature: Aggregate) -> str:
    assert feature.field is not None
    return "v.event_time" if feature.field == EVENT_TIME else f"v.{q(feature.field)}"


def joined_aggregate(feature: Aggregate, column: str, scale: int | None = None) -> str:
    """An aggregate over the versions joined to a context's ``t``.

    Float sums are exact (``scale`` as in ``exact_scale``) and correctly rounded, like the
    running sums; without a scale they fall back to a compensated sum.
    """
    if feature.field is None:  # count of events
        window = f"FILTER (WHERE v._et >= c._t - {feature.window_us})" if feature.window_us else ""
        return f"count(*) {window} AS {column}"
    value = _field(feature)
    conditions = [f"{value} IS NOT NULL"]
    if feature.window_us is not None:
        conditions.append(f"v._et >= c._t - {feature.window_us}")
    flt = f"FILTER (WHERE {' AND '.join(conditions)})"
    order = "v._et DESC, v._ra DESC, v.fact_id DESC"
    fn = feature.function
    if fn == "min":
        return f"min({value}) {flt} AS {column}"
    if fn == "max":
        return f"max({value}) {flt} AS {column}"
    if fn == "count_distinct":
        return f"count(DISTINCT {value}) {flt} AS {column}"
    if fn == "count":
        return f"count({value}) {flt} AS {column}"
    if fn in ("sum", "mean"):
        if feature.source.field_dtype(feature.field or "") != "float":
            total = f"sum({value}::BIGINT) {flt}"
        elif scale is not None:
            scaled = f"sum(({value} * pow(2.0, {scale}))::HUGEINT) {flt}"
            total = f"(exact_double({scaled}) / pow(2.0, {scale}))"
        else:  # an exponent range too wide for exact integer sums
            total = f"fsum({value}) {flt}"
        if fn == "sum":
            return f"{total} AS {column}"
        return f"{total}::DOUBLE / count({value}) {flt} AS {column}"
    if fn == "last":
        rank = "struct_pack(a := v._et, b := v._ra, c := v.fact_id)"
        return f"arg_max({value}, {rank}) {flt} AS {column}"
    if fn == "last_k":
        return f"(list({value} ORDER BY {order}) {flt})[1:{feature.k}] AS {column}"
    raise AssertionError(f"not a joined aggregate: {fn}")


def joined_sql(
    keys: Sequence[str],
    features: Sequence[Aggregate],
    columns: Sequence[str],
    scales: dict[str, int | None] | None = None,
) -> str:
    """Non-subtractable aggregates: join each context to the versions valid at its ``t``."""
    windows = [f.window_us for f in features]
    widest = None if any(w is None for w in windows) else max(w for w in windows if w is not None)
    reach = f" AND v._et >= c._t - {widest}" if widest is not None else ""
    scales = scales or {}
    selects = ", ".join(
        joined_aggregate(f, c, scales.get(f.field or "")) for f, c in zip(features, columns)
    )
    return f"""
        SELECT c._row, {selects}
        FROM ctx c JOIN v ON {key_join(keys, "c", "v")}
            AND v._start < c._t AND (v._next IS NULL OR c._t <= v._next){reach}
        WHERE NOT v._tombstone
        GROUP BY c._row
    """


def lookup_sql(source: Source, features: Sequence[Lookup], columns: Sequence[str]) -> str:
    """Lookups: the visible version with the greatest (event_time, recorded_at, fact_id)."""
    keys = list(source.entity.keys)
    key_list = ", ".join(q(k) for k in keys)
    fields = sorted({f.field for f in features})
    packed = (
        "struct_pack(a := _et, b := _ra, c := fact_id, "
        + ", ".join(f"{q('f_' + f)} := {'event_time' if f == EVENT_TIME else q(f)}" for f in fields)
        + ")"
    )
    picks = []
    for feature, column in zip(features, columns):
        value = f"w.{q('f_' + feature.field)}"
        if feature.ttl_us is not None:
            value = f"CASE WHEN w.a < _t - {feature.ttl_us} THEN NULL ELSE {value} END"
        picks.append(f"{value} AS {column}")
    return f"""
        WITH final AS (
            SELECT {key_list}, _start,
                   max({packed}) OVER (PARTITION BY {key_list} ORDER BY _start) AS w
            FROM v WHERE NOT _tombstone AND _next IS NULL
        ),
        running AS (
            SELECT c._row, c._t, f.w FROM ctx c
            ASOF LEFT JOIN final f ON {key_join(keys, "c", "f")} AND c._t > f._start
        ),
        superseded AS (
            SELECT c._row, max({packed}) AS w
            FROM ctx c JOIN v ON {key_join(keys, "c", "v")}
                AND v._start < c._t AND c._t <= v._next
            WHERE NOT v._tombstone AND v._next IS NOT NULL AND v._start < v._next
            GROUP BY c._row
        ),
        best AS (
            SELECT r._row, r._t, greatest(r.w, s.w) AS w
            FROM running r LEFT JOIN superseded s ON r._row = s._row
        )
        SELECT _row, {", ".join(picks)} FROM best
    """


def shape_sql(keys: Sequence[str]) -> str:
    """Versions, (approximate) distinct keys and the event-time span: to choose a plan."""
    key_list = ", ".join(q(k) for k in keys)
    return f"""
        SELECT count(*), approx_count_distinct(({key_list})), max(_et) - min(_et) FROM v
    """
