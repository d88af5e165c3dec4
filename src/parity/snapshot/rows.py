"""Snapshots as canonical facts, fact ids of snapshots, and small durable-file helpers.

A snapshot of entity ``k`` taken by job ``j`` at ``t`` is one state fact of the live source:
the key columns, the response fields, ``schema_version``, ``event_time = recorded_at = t`` and
``fact_id = snapshot_fact_id(j, k)``, so a resumed job can never store a context twice.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from parity.definitions import EVENT_TIME, FACT_ID, RECORDED_AT, TOMBSTONE
from parity.dtypes import arrow_type
from parity.durable import fsync_dir
from parity.facts import canonical_schema, normalize_facts
from parity.snapshot.live import SCHEMA_VERSION, LiveSource
from parity.timeutil import TIMESTAMP_TYPE, us_to_datetime


def entity_ident(key: Sequence[Any]) -> str:
    """An entity's id as the online store writes it: the JSON list of its key values."""
    return json.dumps(list(key), separators=(",", ":"))


def snapshot_fact_id(job_id: str, source: LiveSource, key: Mapping[str, Any]) -> str:
    """The fact id of job ``job_id``'s snapshot of the entity ``key`` (deterministic)."""
    ident = entity_ident([key[k] for k in source.entity.keys])
    return hashlib.sha256(f"{job_id}\x00{ident}".encode()).hexdigest()[:32]


def snapshot_facts(
    source: LiveSource,
    items: Sequence[tuple[Mapping[str, Any], Mapping[str, Any], int, str]],
    normalize: bool = True,
) -> pa.Table:
    """Canonical facts of ``items``: (entity key, validated response row, taken_at us, fact id).

    ``normalize=False`` builds the canonical table straight from the rows, for the online path's
    one-version blocks (nothing is written): the rows were checked by ``check_response``, so
    ``normalize_facts`` (what every written fact goes through) would accept them unchanged.
    """
    if not normalize:
        return pa.Table.from_pylist(
            [{**row, TOMBSTONE: False} for row in _rows(source, items)],
            schema=canonical_schema(source),
        )
    fields = [pa.field(k, arrow_type(t)) for k, t in source.entity.keys.items()]
    fields += list(source.response_schema)
    fields += [
        pa.field(SCHEMA_VERSION, pa.int64()),
        pa.field(EVENT_TIME, TIMESTAMP_TYPE),
        pa.field(RECORDED_AT, TIMESTAMP_TYPE),
        pa.field(FACT_ID, pa.string()),
    ]
    table = pa.Table.from_pylist(_rows(source, items), schema=pa.schema(fields))
    return normalize_facts(source, table)


def _rows(
    source: LiveSource, items: Sequence[tuple[Mapping[str, Any], Mapping[str, Any], int, str]]
) -> list[dict[str, Any]]:
    rows = []
    for key, row, taken_us, fact_id in items:
        when = us_to_datetime(taken_us)
        rows.append({**{k: key[k] for k in source.entity.keys}, **row,
                     SCHEMA_VERSION: source.schema_version, EVENT_TIME: when,
                     RECORDED_AT: when, FACT_ID: fact_id})
    return rows


def write_parquet_atomic(table: pa.Table, path: Path) -> None:
    """Write ``table`` to ``path`` atomically and durably: temp file, fsync, rename, dir fsync."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)
