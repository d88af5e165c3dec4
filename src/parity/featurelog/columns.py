"""Records as Arrow: the flat column layout of segment batches, Parquet parts and ``read_log``.

Layout::

    seq                   int64          position in the log (1, 2, ...); tables read back only
    request_id            string
    logged_at             timestamp[us, UTC]
    model                 string
    model_version         int64
    feature_set_versions  string         JSON object, e.g. {"member_activity":"3f2a..."}
    output                typed
    key.<name>            typed          one column per entity key column
    feature.<name>        typed          one column per feature
    request.<name>        typed          one column per request field
    live.<source>         string (JSON)  what a live source served: {"used", "latency_ms", ...}

The prefixes keep the three name spaces apart (a request field may share a feature's name).
A "typed" column takes its Arrow type from its values: int64, double (ints and floats mixed
give double), string, bool, timestamp[us, UTC], or a list of one of those; nulls are allowed.
Values with no such common type (an int in one row and a str in another; objects) are stored
as JSON text, and the field carries the metadata ``parity.json = 1`` so readers can decode
it; timestamps inside JSON text are ``{"$t": <microseconds>}``.

A writer given a ``LogSchema`` (serving builds one from the definitions: key columns typed from
the entity, request fields from their declared types) stores those columns with exactly that
type, and JSON text for the names it lists as ``json``; a record whose value does not fit is
refused instead of changing the column's type for the whole log.

The writer encodes a batch of records as one Arrow IPC stream per *shape* (the same key,
feature and request names in the same order), so every record reads back with exactly the
fields it was logged with. Records of different shapes in one batch are grouped by shape.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import datetime
from typing import Any

import pyarrow as pa

from parity.errors import InputTypeError
from parity.featurelog.record import FeatureLogRecord, decode_value, encode_value
from parity.timeutil import TIMESTAMP_TYPE

KEY_PREFIX = "key."
FEATURE_PREFIX = "feature."
REQUEST_PREFIX = "request."
LIVE_PREFIX = "live."
JSON_KEY = b"parity.json"
JSON_META = {JSON_KEY: b"1"}
FIXED_FIELDS = ("request_id", "logged_at", "model", "model_version", "feature_set_versions",
                "output")
_COUNT = struct.Struct("<I")
_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError,
                 OverflowError)
Shape = tuple[tuple[str, ...], ...]  # key, feature, request and live names


@dataclass(frozen=True)
class LogSchema:
    """Column types fixed in advance: full column name (``key.customer_id``) -> Arrow type,
    and the names always stored as JSON text. Columns not named keep types from values."""

    types: Mapping[str, pa.DataType] = dc_field(default_factory=dict)
    json: frozenset[str] = frozenset()

    def column(self, name: str, values: Sequence[Any]) -> tuple[pa.Field, pa.Array]:
        """``values`` as the declared column; Arrow errors (or OverflowError) when they do not
        fit it, which the writer counts as a record it could not encode."""
        if name in self.json:
            return _json_column(name, values)
        declared = self.types.get(name)
        if declared is None:
            return typed_column(name, values)
        if _has_timestamp(declared):
            _all_aware(name, values)  # raises InputTypeError for a naive datetime
        if pa.types.is_integer(declared) and any(isinstance(v, float) for v in values):
            raise InputTypeError(
                f"{name}: a float cannot be stored in an {declared} column; log an int, or "
                f"declare the column as a float"
            )
        return pa.field(name, declared), pa.array(values, declared)


def empty_table() -> pa.Table:
    """A table with the fixed columns and no rows."""
    return pa.schema(
        [("seq", pa.int64()), ("request_id", pa.string()), ("logged_at", TIMESTAMP_TYPE),
         ("model", pa.string()), ("model_version", pa.int64()),
         ("feature_set_versions", pa.string()), ("output", pa.null())]
    ).empty_table()


def is_json(field: pa.Field) -> bool:
    """Whether ``field`` holds JSON text written as a fallback (see the module docstring)."""
    return bool(field.metadata and field.metadata.get(JSON_KEY) == b"1")


def typed_column(name: str, values: Sequence[Any]) -> tuple[pa.Field, pa.Array]:
    """``values`` as one typed Arrow column, or as JSON text when they share no type.

    Raises TypeError for a naive datetime or a value that is not JSON-serialisable.
    """
    try:
        array = pa.array(values)
        target = _normal_type(array.type)
        if target is not None and (not _has_timestamp(target) or _all_aware(name, values)):
            if target != array.type:
                array = array.cast(target)
            return pa.field(name, array.type), array
    except _ARROW_ERRORS:
        pass
    return _json_column(name, values)


def _json_column(name: str, values: Iterable[Any]) -> tuple[pa.Field, pa.Array]:
    texts = [None if v is None else encode_value(v) for v in values]
    return pa.field(name, pa.string(), metadata=JSON_META), pa.array(texts, pa.string())


def _normal_type(typ: pa.DataType) -> pa.DataType | None:
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        inner = _normal_scalar(typ.value_type)
        return None if inner is None else pa.list_(inner)
    return _normal_scalar(typ)


def _normal_scalar(typ: pa.DataType) -> pa.DataType | None:
    if pa.types.is_null(typ) or pa.types.is_boolean(typ):
        return typ
    if pa.types.is_integer(typ):
        return pa.int64()
    if pa.types.is_floating(typ):
        return pa.float64()
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return pa.string()
    if pa.types.is_timestamp(typ):
        return TIMESTAMP_TYPE
    return None


def _has_timestamp(typ: pa.DataType) -> bool:
    return pa.types.is_timestamp(typ) or (
        pa.types.is_list(typ) and pa.types.is_timestamp(typ.value_type)
    )


def _all_aware(name: str, values: Iterable[Any]) -> bool:
    """Whether a timestamp column holds only datetimes (Arrow reads numbers after a datetime
    as epoch offsets). Raises TypeError for a naive one, which Arrow would silently read as
    UTC next to an aware one."""
    for value in values:
        items = value if isinstance(value, (list, tuple)) else (value,)
        for item in items:
            if item is None:
                continue
            if not isinstance(item, datetime):
                return False
            if item.utcoffset() is None:
                raise InputTypeError(
                    f"{name}: naive datetime {item.isoformat()} cannot be logged; give it a "
                    f"time zone (UTC)"
                )
    return True


def shape_of(record: FeatureLogRecord) -> Shape:
    """The names (in order) of a record's keys, features, request fields and live sources."""
    return tuple(record.keys), tuple(record.features), tuple(record.request), tuple(record.live)


def group_by_shape(records: Iterable[FeatureLogRecord]) -> dict[Shape, list[FeatureLogRecord]]:
    """Records grouped by shape, groups in order of first appearance, records in order."""
    groups: dict[Shape, list[FeatureLogRecord]] = {}
    for record in records:
        shape = shape_of(record)
        group = groups.get(shape)
        if group is None:
            groups[shape] = [record]
        else:
            group.append(record)
    return groups


def shape_table(
    records: Sequence[FeatureLogRecord], shape: Shape, schema: LogSchema | None = None
) -> pa.Table:
    """One table for records that all have ``shape`` (see ``group_by_shape``), with the
    column types ``schema`` fixes."""
    column = typed_column if schema is None else schema.column
    fields: list[pa.Field] = []
    arrays: list[pa.Array] = []

    def add(field: pa.Field, array: pa.Array) -> None:
        fields.append(field)
        arrays.append(array)

    add(pa.field("request_id", pa.string()), pa.array([r.request_id for r in records], pa.string()))
    add(pa.field("logged_at", TIMESTAMP_TYPE),
        pa.array([r.logged_at for r in records], TIMESTAMP_TYPE))
    add(pa.field("model", pa.string()), pa.array([r.model for r in records], pa.string()))
    add(pa.field("model_version", pa.int64()),
        pa.array([r.model_version for r in records], pa.int64()))
    add(pa.field("feature_set_versions", pa.string()),
        pa.array(_version_texts(records), pa.string()))
    add(*typed_column("output", [r.output for r in records]))
    for prefix, names, rows in (
        (KEY_PREFIX, shape[0], [r.keys.values() for r in records] if shape[0] else None),
        (FEATURE_PREFIX, shape[1], [r.features.values() for r in records] if shape[1] else None),
        (REQUEST_PREFIX, shape[2], [r.request.values() for r in records] if shape[2] else None),
    ):
        if rows is not None:
            for name, values in zip(names, zip(*rows, strict=True), strict=True):
                add(*column(prefix + name, values))
    if shape[3]:  # live-source statuses: small dicts, always JSON text
        for name in shape[3]:
            add(*_json_column(LIVE_PREFIX + name, [r.live[name] for r in records]))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _version_texts(records: Sequence[FeatureLogRecord]) -> list[str]:
    """``feature_set_versions`` as sorted JSON, computed once per distinct dict."""
    by_id: dict[int, str] = {}  # serving code usually shares one dict per model
    by_items: dict[tuple[tuple[str, str], ...], str] = {}
    texts = []
    for record in records:
        versions = record.feature_set_versions
        text = by_id.get(id(versions))
        if text is None:
            items = tuple(sorted(versions.items()))
            text = by_items.get(items)
            if text is None:
                text = by_items[items] = json.dumps(dict(items), separators=(",", ":"))
            by_id[id(versions)] = text
        texts.append(text)
    return texts


def encode_batches(
    records: Sequence[FeatureLogRecord], schema: LogSchema | None = None
) -> tuple[list[tuple[int, bytes]], list[tuple[FeatureLogRecord, Exception]]]:
    """Frame payloads (record count, bytes) for ``records``, and the records that failed.

    A record that cannot be encoded (a naive datetime, an object that is not JSON-able, a
    wrong type) costs only itself: it is returned with its error, the rest are written.
    """
    payloads: list[tuple[int, bytes]] = []
    failures: list[tuple[FeatureLogRecord, Exception]] = []
    groups: dict[Shape, list[FeatureLogRecord]] = {}
    for record in records:
        try:
            groups.setdefault(shape_of(record), []).append(record)
        except Exception as exc:  # not a FeatureLogRecord, or its dicts are not dicts
            failures.append((record, exc))
    for shape, group in groups.items():
        try:
            payloads.append((len(group), encode_table(shape_table(group, shape, schema))))
            continue
        except Exception:
            pass
        good = []
        for record in group:  # rare: find the culprits one by one
            try:
                shape_table([record], shape, schema)
                good.append(record)
            except Exception as exc:
                failures.append((record, exc))
        if good:
            try:
                payloads.append((len(good), encode_table(shape_table(good, shape, schema))))
            except Exception as exc:
                failures.extend((record, exc) for record in good)
    return payloads, failures


def encode_table(table: pa.Table) -> bytes:
    """A frame payload: the row count (u32) then the table as an Arrow IPC stream."""
    sink = pa.BufferOutputStream()
    sink.write(_COUNT.pack(table.num_rows))
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def payload_count(payload: bytes | memoryview) -> int:
    """The number of records in a frame payload, without decoding it."""
    return int(_COUNT.unpack_from(payload)[0])


def decode_table(payload: bytes | memoryview, first_seq: int | None = None) -> pa.Table:
    """The table in a frame payload; with ``first_seq``, a ``seq`` column is put first."""
    table = pa.ipc.open_stream(pa.py_buffer(payload[_COUNT.size :])).read_all()
    if first_seq is not None:
        seqs = pa.array(range(first_seq, first_seq + table.num_rows), pa.int64())
        table = table.add_column(0, "seq", seqs)
    return table


def records_table(records: Sequence[FeatureLogRecord], first_seq: int = 1) -> pa.Table:
    """The flat table of ``records`` with ``seq`` numbered from ``first_seq`` in input order."""
    groups: dict[Shape, list[int]] = {}
    for index, record in enumerate(records):
        groups.setdefault(shape_of(record), []).append(index)
    tables = []
    for shape, indices in groups.items():
        table = shape_table([records[i] for i in indices], shape)
        seqs = pa.array([first_seq + i for i in indices], pa.int64())
        tables.append(table.add_column(0, "seq", seqs))
    if not tables:
        return empty_table()
    return unify_tables(tables).sort_by("seq")


def table_records(table: pa.Table) -> list[FeatureLogRecord]:
    """The records in a flat table (inverse of ``records_table``; nulls read back as None)."""
    names = table.column_names
    columns: dict[str, list[Any]] = {}
    for field in table.schema:
        values = table.column(field.name).to_pylist()
        if is_json(field) or field.name == "feature_set_versions":
            values = [None if v is None else decode_value(v) for v in values]
        columns[field.name] = values
    spaces = [
        [(n[len(prefix):], columns[n]) for n in names if n.startswith(prefix)]
        for prefix in (KEY_PREFIX, FEATURE_PREFIX, REQUEST_PREFIX, LIVE_PREFIX)
    ]
    seqs = columns.get("seq", [None] * table.num_rows)
    return [
        FeatureLogRecord(
            request_id=columns["request_id"][i],
            logged_at=columns["logged_at"][i],
            model=columns["model"][i],
            model_version=columns["model_version"][i],
            feature_set_versions=columns["feature_set_versions"][i],
            keys={name: values[i] for name, values in spaces[0]},
            features={name: values[i] for name, values in spaces[1]},
            request={name: values[i] for name, values in spaces[2]},
            output=columns["output"][i],
            live={name: values[i] for name, values in spaces[3] if values[i] is not None},
            seq=seqs[i],
        )
        for i in range(table.num_rows)
    ]


def unify_tables(tables: Sequence[pa.Table]) -> pa.Table:
    """Concatenate tables of different shapes and per-file types into one table.

    Missing columns become null; ints meeting floats become doubles; any other type conflict
    (or JSON text meeting a typed column) turns the whole column into JSON text.
    """
    tables = [t.replace_schema_metadata(None) for t in tables]
    kinds: dict[str, list[pa.Field]] = {}
    for table in tables:
        for field in table.schema:
            kinds.setdefault(field.name, []).append(field)
    to_json = {name for name, fields in kinds.items() if _conflicting(fields)}
    if to_json:
        tables = [_as_json(t, to_json) for t in tables]
    merged = pa.concat_tables(tables, promote_options="permissive")
    json_names = to_json | {n for n, fields in kinds.items() if any(is_json(f) for f in fields)}
    schema = pa.schema(
        [f.with_metadata(JSON_META) if f.name in json_names else f.remove_metadata()
         for f in merged.schema]
    )
    return pa.Table.from_arrays(merged.columns, schema=schema)


def _conflicting(fields: list[pa.Field]) -> bool:
    typed = [f for f in fields if not pa.types.is_null(f.type)]
    if len({is_json(f) for f in typed}) > 1:
        return True
    types = {f.type for f in typed}
    if len(types) <= 1:
        return False
    try:  # after _normal_type, the only promotions left are int -> double and list<null> -> ...
        pa.unify_schemas([pa.schema([pa.field("x", t)]) for t in types],
                         promote_options="permissive")
    except _ARROW_ERRORS:
        return True
    return False


def _as_json(table: pa.Table, names: set[str]) -> pa.Table:
    for index, field in enumerate(table.schema):
        if field.name in names and not is_json(field) and not pa.types.is_null(field.type):
            json_field, array = _json_column(field.name, table.column(index).to_pylist())
            table = table.set_column(index, json_field, array)
    return table
