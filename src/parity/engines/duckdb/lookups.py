"""Lookups (rule 3) as one ASOF join of the contexts onto a per-key step table.

A lookup's answer for a key is a step function of the context time ``t``: it can change only
just after a version's start (``max(event_time, recorded_at)``, when it becomes visible) or
just after its correction end (``#next``, the ``recorded_at`` of the version replacing it).
The engine builds that step table once per source and joins every context to it with a single
``ASOF LEFT JOIN ... t > step`` - the same one pass over the contexts a hand-written ASOF join
makes.

Most keys need no work to build their steps: when their versions become visible in lookup
order (sorted by start, the (event_time, recorded_at, fact_id) order strictly increases), no
version is corrected and none is deleted, the latest started version *is* the answer, so the
versions themselves are the steps. The checks are one ordered window over the versions (a
``lag``), never over the contexts. Only the other keys ("irregular": late versions, ties,
corrections, tombstones) take the exact path: at each of their breakpoints ``b``, the best
version among those with ``start <= b < next`` - a running maximum over the uncorrected versions
plus the few corrected versions whose validity interval covers ``b``.
"""

from __future__ import annotations

from collections.abc import Sequence

from parity.definitions import EVENT_TIME, Lookup, Source
from parity.engines.duckdb.sql import BEST, ET, NEXT, RA, ROW, START, TIME, T, internal, key_join, q

_IRREGULAR = internal("irregular")


def _field_expr(field: str) -> str:
    return "event_time" if field == EVENT_TIME else q(field)


def irregular_keys_sql(keys: Sequence[str]) -> str:
    """The keys of ``v`` whose lookups need the exact path: one ordered pass over the versions.

    Sorted by start, a key is regular iff every version starts strictly after the previous one
    and its event_time is not smaller, and none is corrected or deleted. (Equal event times then
    imply a greater recorded_at, as start = max(event_time, recorded_at) grew, so the fact id
    never decides.)
    """
    key_list = ", ".join(q(k) for k in keys)
    window = f"OVER (PARTITION BY {key_list} ORDER BY {START})"
    irregular = (
        f"_tombstone OR {NEXT} IS NOT NULL OR {START} <= lag({START}) {window} "
        f"OR {ET} < lag({ET}) {window}"
    )
    return f"""
        SELECT DISTINCT {key_list} FROM (
            SELECT {key_list}, coalesce({irregular}, false) AS {_IRREGULAR} FROM v
        ) WHERE {_IRREGULAR}
    """


def lookup_sql(source: Source, features: Sequence[Lookup], columns: Sequence[str]) -> str:
    """Lookups: the visible version with the greatest (event_time, recorded_at, fact_id).

    One row per context (``#row`` plus ``columns``), read from the versions table ``v``.
    """
    keys = list(source.entity.keys)
    key_list = ", ".join(q(k) for k in keys)
    using = f"USING ({key_list})"
    fields = sorted({f.field for f in features})
    names = [q("f_" + f) for f in fields]
    values = ", ".join(f"{_field_expr(f)} AS {n}" for f, n in zip(fields, names))
    packed = (
        f"struct_pack(a := {ET}, b := {RA}, c := fact_id, "
        + ", ".join(f"{n} := {_field_expr(f)}" for f, n in zip(fields, names))
        + ")"
    )
    unpacked = ", ".join(f"{BEST}.{n} AS {n}" for n in names)
    picks = []
    for feature, column in zip(features, columns):
        value = q("f_" + feature.field)
        if feature.ttl_us is not None:
            value = f"CASE WHEN s.{ET} < c.{T} - {feature.ttl_us} THEN NULL ELSE s.{value} END"
        else:
            value = f"s.{value}"
        picks.append(f"{value} AS {column}")
    return f"""
        WITH irregular AS ({irregular_keys_sql(keys)}),
        regular_steps AS (
            SELECT {key_list}, {START} AS {TIME}, {ET}, {values}
            FROM v ANTI JOIN irregular {using}
        ),
        dv AS (
            SELECT v.* FROM v SEMI JOIN irregular {using}
        ),
        points AS (
            SELECT {key_list}, {START} AS {TIME} FROM dv
            UNION
            SELECT {key_list}, {NEXT} AS {TIME} FROM dv WHERE {NEXT} IS NOT NULL
        ),
        final AS (
            SELECT {key_list}, {START},
                   max({packed}) OVER (PARTITION BY {key_list} ORDER BY {START}) AS {BEST}
            FROM dv WHERE NOT _tombstone AND {NEXT} IS NULL
        ),
        final_at AS (
            SELECT p.*, f.{BEST} FROM points p
            ASOF LEFT JOIN final f ON {key_join(keys, "p", "f")} AND p.{TIME} >= f.{START}
        ),
        superseded_at AS (
            SELECT {", ".join(f"p.{q(k)}" for k in keys)}, p.{TIME}, max({packed}) AS {BEST}
            FROM points p JOIN dv ON {key_join(keys, "p", "dv")}
                AND dv.{START} <= p.{TIME} AND p.{TIME} < dv.{NEXT}
            WHERE NOT dv._tombstone AND dv.{NEXT} IS NOT NULL
            GROUP BY ALL
        ),
        irregular_steps AS (
            SELECT {key_list}, {TIME}, {BEST}.a AS {ET}, {unpacked} FROM (
                SELECT {key_list}, {TIME}, greatest(a.{BEST}, s.{BEST}) AS {BEST}
                FROM final_at a LEFT JOIN superseded_at s USING ({key_list}, {TIME})
            )
        ),
        steps AS (SELECT * FROM regular_steps UNION ALL SELECT * FROM irregular_steps)
        SELECT c.{ROW}, {", ".join(picks)}
        FROM ctx c ASOF LEFT JOIN steps s ON {key_join(keys, "c", "s")} AND c.{T} > s.{TIME}
    """
