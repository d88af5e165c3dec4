"""How a fact version is stored in the archive: one row per version, the same on every backend.

A stored version is a ``VersionRow``: the entity id (the JSON list of the entity's key values,
as in the online store: ``[42]``, ``["gb", 7]``), ``event_time`` and ``recorded_at`` in epoch
microseconds, the ``fact_id``, the tombstone flag, and the source's schema fields as a JSON
object (timestamps as epoch microseconds). Times are integers so that no database session
time zone can shift them; the payload is JSON so that one table holds every source and a
float survives the round trip exactly (Python writes the shortest repr that reads back equal).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import pyarrow as pa

from parity.definitions import EVENT_TIME, FACT_ID, RECORDED_AT, TOMBSTONE, Source
from parity.dtypes import decode_nested, encode_column, is_nested
from parity.errors import SchemaError
from parity.facts import canonical_schema


class VersionRow(NamedTuple):
    """One stored fact version (see the module docstring)."""

    entity: str
    event_time: int
    recorded_at: int
    fact_id: str
    tombstone: bool
    payload: str


def entity_id(key: Sequence[Any]) -> str:
    """The entity id of a tuple of key values: a compact JSON list (ints and strs kept apart)."""
    return json.dumps(list(key), separators=(",", ":"))


def to_rows(source: Source, facts: pa.Table) -> list[VersionRow]:
    """Canonical facts (``parity.facts.normalize_facts``) as rows to store."""
    if not facts.schema.equals(canonical_schema(source)):
        raise SchemaError(
            f"source {source.name!r}: the archive stores canonical facts; pass the data through "
            f"Archive.append (which validates it) instead of building the table by hand"
        )
    entities = entity_ids(source, facts)
    fields = list(source.schema)
    values = [_plain(facts.column(f), source.schema[f]) for f in fields]
    event = facts.column(EVENT_TIME).cast(pa.int64()).to_pylist()
    recorded = facts.column(RECORDED_AT).cast(pa.int64()).to_pylist()
    ids = facts.column(FACT_ID).to_pylist()
    dead = facts.column(TOMBSTONE).to_pylist()
    dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
    payloads = [dumps(dict(zip(fields, row, strict=True))) for row in zip(*values, strict=True)]
    if not fields:
        payloads = ["{}"] * facts.num_rows
    return [
        VersionRow(entities[i], event[i], recorded[i], ids[i], bool(dead[i]), payloads[i])
        for i in range(facts.num_rows)
    ]


def entity_ids(source: Source, facts: pa.Table) -> list[str]:
    """The entity id of every row (``entity_id`` of its key values), fast for int keys."""
    columns = [facts.column(k).to_pylist() for k in source.entity.keys]
    if all(kind == "int" for kind in source.entity.keys.values()):
        # Integers need no escaping: the same text json.dumps writes, ten times faster.
        return ["[" + ",".join(map(str, key)) + "]" for key in zip(*columns, strict=True)]
    return [entity_id(key) for key in zip(*columns, strict=True)]


def to_table(source: Source, rows: Iterable[Sequence[Any]], extra: Sequence[str] = ()) -> pa.Table:
    """Stored rows back as canonical facts; ``extra`` names leading columns each row carries
    before its ``VersionRow`` fields (``as_of`` puts the context's row number first)."""
    schema = canonical_schema(source)
    lead: list[list[Any]] = [[] for _ in extra]
    keys: list[list[Any]] = [[] for _ in source.entity.keys]
    fields: dict[str, list[Any]] = {f: [] for f in source.schema}
    times: tuple[list[int], list[int]] = ([], [])
    ids: list[str] = []
    dead: list[bool] = []
    skip = len(extra)
    for row in rows:
        for j in range(skip):
            lead[j].append(row[j])
        entity, event_time, recorded_at, fact_id, tombstone, payload = row[skip : skip + 6]
        for column, value in zip(keys, json.loads(entity), strict=True):
            column.append(value)
        body = json.loads(payload)
        for name, column in fields.items():
            column.append(body.get(name))
        times[0].append(int(event_time))
        times[1].append(int(recorded_at))
        ids.append(fact_id)
        dead.append(bool(tombstone))
    columns: dict[str, pa.Array] = {}
    for name, column in zip(extra, lead, strict=True):
        columns[name] = pa.array(column, pa.int64())
    for name, column in zip(source.entity.keys, keys, strict=True):
        columns[name] = pa.array(column, schema.field(name).type)
    for name, column in fields.items():
        columns[name] = _typed(column, schema.field(name).type, source.schema[name])
    columns[EVENT_TIME] = pa.array(times[0], pa.int64()).cast(schema.field(EVENT_TIME).type)
    columns[RECORDED_AT] = pa.array(times[1], pa.int64()).cast(schema.field(RECORDED_AT).type)
    columns[FACT_ID] = pa.array(ids, pa.string())
    columns[TOMBSTONE] = pa.array(dead, pa.bool_())
    lead_fields = [pa.field(name, pa.int64()) for name in extra]
    return pa.table(columns, schema=pa.schema([*lead_fields, *schema]))


def _plain(column: pa.ChunkedArray, dtype: str) -> list[Any]:
    """JSON-able values of a column: timestamps as epoch microseconds, nested values as their
    canonical JSON text (``parity.dtypes.encode_nested``, timestamps inside included)."""
    if dtype == "timestamp":
        return list(column.cast(pa.int64()).to_pylist())
    if is_nested(dtype):
        return encode_column(dtype, column)
    return list(column.to_pylist())


def _typed(values: list[Any], kind: pa.DataType, dtype: str) -> pa.Array:
    """The Arrow column of values ``_plain`` wrote."""
    if pa.types.is_timestamp(kind):
        return pa.array(values, pa.int64()).cast(kind)
    if is_nested(dtype):
        return pa.array([decode_nested(dtype, v) for v in values], kind)
    return pa.array(values, kind)
