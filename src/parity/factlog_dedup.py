"""Deduplication of a batch against the facts a source already logged.

A fact is identified by (``fact_id``, ``recorded_at``): a row equal to a logged one is dropped
(ingest is idempotent), a different row under a logged identity is refused (a correction needs a
later ``recorded_at``), and the same content under another id scheme is refused (it would count
every fact twice). Only files whose ``recorded_at`` range overlaps the batch are read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from parity._duck import connect, query_arrow
from parity.definitions import EVENT_TIME, FACT_ID, RECORDED_AT, Source
from parity.errors import InputError, SchemaError


def skip_known(
    folder: Path,
    source: Source,
    manifest: dict[str, Any],
    facts: pa.Table,
    ids_generated: bool | None,
) -> pa.Table:
    """Drop rows already logged; reject different rows with a logged (fact_id, recorded_at).

    ``folder`` is the source's folder in the fact log, ``manifest`` its committed manifest.

    ``ids_generated`` (bulk ingest only; None skips the check): whether this batch's ids were
    derived by parity. Twins (equal content, other id) are refused when this batch's ids are
    derived, or when the logged twin's file holds derived ids.
    """
    if facts.num_rows == 0:
        return facts
    recorded = facts.column(RECORDED_AT).cast(pa.int64())
    low, high = pc.min(recorded).as_py(), pc.max(recorded).as_py()
    overlapping = [
        str(folder / e["path"])
        for e in manifest["files"]
        if e["max_recorded_at"] >= low and e["min_recorded_at"] <= high
    ]
    if not overlapping:
        return facts
    con = connect()
    con.register("batch", facts)
    con.execute(f"CREATE VIEW logged AS SELECT * FROM read_parquet({overlapping!r})")
    keys = f"b.{FACT_ID} = l.{FACT_ID} AND b.{RECORDED_AT} = l.{RECORDED_AT}"
    same = " AND ".join(f"b.{c} IS NOT DISTINCT FROM l.{c}" for c in facts.column_names)
    conflict = con.execute(
        f"SELECT b.{FACT_ID} FROM batch b JOIN logged l ON {keys} WHERE NOT ({same}) LIMIT 1"
    ).fetchone()
    if conflict:
        raise SchemaError(
            f"source {source.name!r}: fact_id {conflict[0]!r} is already logged with the "
            f"same recorded_at but different values; a correction needs a later recorded_at"
        )
    fresh = query_arrow(con, f"SELECT b.* FROM batch b ANTI JOIN logged l ON {keys}")
    if ids_generated is None or fresh.num_rows == 0:
        con.close()
        return fresh.cast(facts.schema)
    derived = [
        str(folder / e["path"])
        for e in manifest["files"]
        if (e["max_recorded_at"] >= low and e["min_recorded_at"] <= high)
        and (ids_generated or e.get("generated_ids", False))
    ]
    if not derived:
        con.close()
        return fresh.cast(facts.schema)
    con.execute(f"CREATE OR REPLACE VIEW logged AS SELECT * FROM read_parquet({derived!r})")
    con.register("fresh", fresh)
    content = " AND ".join(
        f"f.{c} IS NOT DISTINCT FROM l.{c}" for c in facts.column_names if c != FACT_ID
    )
    twin = con.execute(
        f"SELECT count(*), any_value(f.{FACT_ID}), any_value(l.{FACT_ID}) FROM fresh f "
        f"JOIN logged l ON f.{EVENT_TIME} = l.{EVENT_TIME} AND {content} "
        f"WHERE f.{FACT_ID} <> l.{FACT_ID}"
    ).fetchone()
    con.close()
    if twin and twin[0]:
        raise InputError(
            f"source {source.name!r}: {twin[0]} fact(s) of this batch equal facts already "
            f"logged except for their fact_id (e.g. new {twin[1]!r}, logged {twin[2]!r}); "
            f"this is the same data under another id scheme (ids derived by parity one time, "
            f"given with a fact_id column or --rename COL=fact_id the other), and logging it "
            f"would count every fact twice. Ingest with the ids used before, or clear the "
            f"source with `parity sources reset {source.name}` and ingest once"
        )
    return fresh.cast(facts.schema)
