"""Turning user data into canonical facts: validation, recorded_at, fact ids.

A canonical fact table has, in order: the entity keys, the source's schema fields, then
``event_time`` and ``recorded_at`` (timestamp[us, UTC]), ``fact_id`` (string) and
``_tombstone`` (bool). Every write path — the fact log and the online store — goes through
``normalize_facts`` so that they can never disagree about what a fact is.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, TypeAlias

import pyarrow as pa
import pyarrow.compute as pc

from parity.definitions import EVENT_TIME, FACT_ID, RECORDED_AT, TOMBSTONE, Source
from parity.dtypes import (
    arrow_type,
    can_cast,
    encode_column,
    is_nested,
    nested_mismatch,
    non_finite_path,
)
from parity.errors import InputError, SchemaError, TimeError
from parity.fact_ids import SMALL_BATCH, fact_ids
from parity.frames import DataInput, read_data
from parity.timeutil import (
    TIMESTAMP_TYPE,
    datetime_to_us,
    normalize_timestamp_column,
    now_us,
    to_utc_datetime,
)

FactData: TypeAlias = DataInput
RecordedAtPolicy: TypeAlias = Literal["lag", "now"] | datetime


def canonical_schema(source: Source) -> pa.Schema:
    """The Arrow schema of a source's stored facts."""
    # Sources are frozen, so their schema is kept (a push asks for it on every call). Keyed by
    # identity: Source.__eq__ compares whole specs, which would cost more than the schema.
    cached = _SCHEMAS.get(id(source))
    if cached is not None and cached[0]() is source:
        return cached[1]
    schema = _build_schema(source)
    key = id(source)
    _SCHEMAS[key] = (weakref.ref(source, lambda _: _SCHEMAS.pop(key, None)), schema)
    return schema


_SCHEMAS: dict[int, tuple[weakref.ref[Source], pa.Schema]] = {}


def _build_schema(source: Source) -> pa.Schema:
    fields = [pa.field(k, arrow_type(t)) for k, t in source.entity.keys.items()]
    fields += [pa.field(c, arrow_type(t)) for c, t in source.schema.items()]
    fields += [
        pa.field(EVENT_TIME, TIMESTAMP_TYPE),
        pa.field(RECORDED_AT, TIMESTAMP_TYPE),
        pa.field(FACT_ID, pa.string()),
        pa.field(TOMBSTONE, pa.bool_()),
    ]
    return pa.schema(fields)


def read_table(data: FactData, what: str = "facts") -> pa.Table:
    """Read any accepted input (see ``parity.frames.read_data``) into an Arrow table."""
    return read_data(data, what)


def normalize_facts(
    source: Source,
    data: FactData,
    recorded_at: RecordedAtPolicy = "lag",
    rename: Mapping[str, str] | None = None,
    now: int | None = None,
    *,
    drop: Sequence[str] = (),
    drop_extra: bool = False,
    tz: str | None = None,
) -> pa.Table:
    """Validate ``data`` against ``source`` and return canonical facts.

    Columns: ``rename`` (old -> new) applies first, then ``drop`` removes named columns. Any
    column left that is not an entity key, a schema field, ``event_time``, ``recorded_at`` or
    ``fact_id`` is an error naming it, unless ``drop_extra`` (then it is dropped; see
    ``dropped_columns``): nothing is dropped without the caller asking.
    ``recorded_at`` decides the column of that name where the data does not give it (or gives
    null): ``"lag"`` means ``event_time + source.lag`` (a bulk load of history; lag 0 when the
    source has none), ``"now"`` means ingestion time, a datetime means that moment.
    ``tz`` (an IANA zone such as ``"Europe/Paris"``) is the zone of timestamps written without
    one; without it naive timestamps are refused.
    ``fact_id`` defaults to a content hash: for state sources of (keys, event_time), so a new
    version at the same event_time is a correction; for event sources of the whole row plus its
    occurrence number within the batch, so re-ingesting a file is idempotent.
    Float fields: NaN is stored as null (pandas writes a missing value as NaN); +/-inf is refused.
    Raises SchemaError or TimeError naming the column and the first offending row; the input is
    never partly accepted.
    """
    table = select_columns(source, read_table(data), rename, drop, drop_extra)[0]
    n = table.num_rows
    columns: dict[str, pa.ChunkedArray] = {}
    for key, dtype in source.entity.keys.items():
        columns[key] = _typed_column(source, table, key, dtype, nullable=False, tz=tz)
    for column, dtype in source.schema.items():
        columns[column] = _typed_column(source, table, column, dtype, nullable=True, tz=tz)
    event_time = _time_column(source, table, EVENT_TIME, required=True, tz=tz)
    assert event_time is not None
    columns[EVENT_TIME] = event_time
    columns[RECORDED_AT] = _recorded_at(source, table, event_time, recorded_at, now, tz)
    columns[FACT_ID] = _fact_ids(source, table, columns)
    columns[TOMBSTONE] = pa.chunked_array([_not_tombstones(n)])
    schema = canonical_schema(source)
    out = pa.Table.from_arrays([columns[name] for name in schema.names], schema=schema)
    return dedupe_facts(source, out)


def select_columns(
    source: Source,
    table: pa.Table,
    rename: Mapping[str, str] | None = None,
    drop: Sequence[str] = (),
    drop_extra: bool = False,
) -> tuple[pa.Table, tuple[str, ...]]:
    """Apply ``rename`` and ``drop`` and refuse unknown columns; return the table and the dropped.

    Raises SchemaError naming a renamed or dropped column the data lacks, two columns that end
    up with one name, the reserved ``_tombstone`` column, and every column the source does not
    know (unless ``drop_extra``), with the options that fix it.
    """
    names = table.column_names
    for old in list(rename or {}) + list(drop):
        if old not in names:
            option = (
                f"--rename {old}={(rename or {})[old]}"
                if old in (rename or {})
                else (f"--drop {old}")
            )
            raise SchemaError(
                f"source {source.name!r}: {option} names a column the data does not have; "
                f"it has {', '.join(names) or '(no columns)'}"
            )
    if rename:
        table = table.rename_columns([rename.get(n, n) for n in names])
    table = table.drop_columns(list(drop)) if drop else table
    seen: set[str] = set()
    for name in table.column_names:
        if name in seen:
            raise SchemaError(
                f"source {source.name!r}: two columns are named {name!r} (after --rename); "
                f"drop one with --drop or rename the other"
            )
        seen.add(name)
    if TOMBSTONE in seen:
        raise SchemaError(
            f"source {source.name!r}: column {TOMBSTONE!r} is reserved; delete facts with "
            f"FactLog.delete(), or drop the column with --drop {TOMBSTONE}"
        )
    known = {*source.entity.keys, *source.schema, EVENT_TIME, RECORDED_AT, FACT_ID}
    extra = [name for name in table.column_names if name not in known]
    if extra and not drop_extra:
        required = [*source.entity.keys, *source.schema, EVENT_TIME]
        missing = [name for name in required if name not in table.column_names]
        if missing:  # most likely the same thing under another name
            likely = _guess(table.select(extra), missing[0], extra[0])
            rename_hint = f"--rename {likely}={missing[0]}"
        else:
            rename_hint = f"--rename {extra[0]}={FACT_ID} if it identifies each fact"
        listed = ", ".join(repr(e) for e in extra)
        raise SchemaError(
            f"source {source.name!r}: column(s) {listed} are not fields of the source, which "
            f"stores {', '.join(sorted(known - {RECORDED_AT, FACT_ID}))} (and optionally "
            f"{RECORDED_AT}, {FACT_ID}). Rename a column that means one of those "
            f"({rename_hint}), drop it (--drop {extra[0]}), drop every unknown "
            f"column (--drop-extra), or add it to the source's schema to keep it"
        )
    return (table.drop_columns(extra) if extra else table), (*drop, *extra)


def tombstones(
    source: Source,
    keys: pa.Table,
    fact_ids: list[str],
    event_times: pa.ChunkedArray,
    recorded_at: int,
) -> pa.Table:
    """Canonical tombstone rows deleting ``fact_ids`` from ``recorded_at`` (epoch us) on."""
    schema = canonical_schema(source)
    n = len(fact_ids)
    columns: dict[str, Any] = {k: keys.column(k) for k in source.entity.keys}
    for column, dtype in source.schema.items():
        columns[column] = pa.nulls(n, arrow_type(dtype))
    columns[EVENT_TIME] = event_times
    columns[RECORDED_AT] = pa.array([recorded_at] * n, pa.int64()).cast(TIMESTAMP_TYPE)
    columns[FACT_ID] = pa.array(fact_ids, pa.string())
    columns[TOMBSTONE] = pa.array([True] * n, pa.bool_())
    return pa.table(columns, schema=schema)


def dedupe_facts(source: Source, table: pa.Table) -> pa.Table:
    """Drop exact duplicate rows; reject two different rows with one (fact_id, recorded_at)."""
    if table.num_rows <= 1:
        return table
    # The common case has no duplicate (fact_id, recorded_at): find that out without pandas,
    # in plain Python for a few rows, by an Arrow group-by beyond.
    if table.num_rows <= 64:
        ids = table.column(FACT_ID).to_pylist()
        if len(set(zip(ids, table.column(RECORDED_AT).cast(pa.int64()).to_pylist()))) == len(ids):
            return table
    elif table.group_by([FACT_ID, RECORDED_AT]).aggregate([]).num_rows == table.num_rows:
        return table
    full_dups = _hashable_table(source, table).to_pandas().duplicated()
    keep = pa.array(~full_dups.to_numpy())
    deduped = table.filter(keep)
    frame = deduped.select([FACT_ID, RECORDED_AT]).to_pandas()
    conflicts = frame.duplicated(keep=False)
    if conflicts.any():
        row = int(conflicts.to_numpy().nonzero()[0][0])
        raise SchemaError(
            f"source {source.name!r}: two different facts share fact_id "
            f"{frame[FACT_ID].iloc[row]!r} and recorded_at {frame[RECORDED_AT].iloc[row]}; a "
            f"correction must be recorded later than the fact it corrects"
        )
    return deduped


def _typed_column(
    source: Source, table: pa.Table, name: str, dtype: str, nullable: bool, tz: str | None
) -> pa.ChunkedArray:
    if name not in table.column_names:
        raise SchemaError(
            f"source {source.name!r}: missing column {name!r}; the data has "
            f"{', '.join(table.column_names) or '(no columns)'}. Rename the column that holds "
            f"it, e.g. --rename {_guess(table, name)}={name}"
        )
    column = table.column(name)
    if pa.types.is_null(column.type):  # all null, or no rows: no type to check
        column = pa.chunked_array([pa.nulls(len(column), arrow_type(dtype))])
    if is_nested(dtype):
        return _nested_column(source, name, dtype, column)
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if dtype == "int" and pa.types.is_floating(column.type):
        column = _integral_floats(source, name, column)
    if not can_cast(column.type, dtype):
        raise SchemaError(
            f"source {source.name!r}: column {name!r} has type {column.type}, expected "
            f"{dtype!r}{_first_row_hint(column)}; convert it before ingesting"
        )
    if column.type == arrow_type(dtype):
        pass  # already canonical: nothing to convert (a cast per column is a push's cost)
    elif dtype == "timestamp":
        column = normalize_timestamp_column(column, name, tz=tz)
    else:
        try:
            column = column.cast(arrow_type(dtype))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            where = ""
            if dtype == "int" and pa.types.is_unsigned_integer(column.type):
                over = pc.fill_null(pc.greater(column, pa.scalar(2**63 - 1, column.type)), False)
                row = pc.index(over, True).as_py()
                where = f" row {row} holds {column[row].as_py()}, beyond 64-bit signed integers;"
            raise SchemaError(
                f"source {source.name!r}: column {name!r} cannot be read as {dtype!r}:{where} "
                f"{str(exc).splitlines()[0]}"
            ) from None
    if dtype == "float" and not _all_finite_or_null(column):
        # NaN is how pandas writes "missing": stored as null so every engine treats it alike.
        # inf is refused: it is a value no window can subtract (inf - inf is NaN).
        column = pc.if_else(pc.is_nan(column), None, column)
        infinite = pc.fill_null(pc.is_inf(column), False)
        if pc.any(infinite).as_py():
            row = pc.index(infinite, True).as_py()
            raise SchemaError(
                f"source {source.name!r}: column {name!r} holds {column[row].as_py()} in row "
                f"{row}; parity stores finite floats only. Write an empty cell for a missing "
                f"value, or a finite number"
            )
    if not nullable and column.null_count:
        row = pc.index(pc.is_null(column), True).as_py()
        raise SchemaError(
            f"source {source.name!r}: key column {name!r} is null in row {row}; every fact "
            f"needs all its entity keys"
        )
    return column


def _nested_column(
    source: Source, name: str, dtype: str, column: pa.ChunkedArray
) -> pa.ChunkedArray:
    """A list/struct column checked against its declared shape, then cast to it exactly.

    Never coerced: a missing or extra struct field or a leaf of another type is an error naming
    the column, the declared and the found type; so is a NaN or infinite float inside (JSON, what
    live services answer in, has neither; write null for a missing value).
    """
    expected = arrow_type(dtype)
    reason = None if column.type == expected else nested_mismatch(column.type, dtype)
    if reason is not None:
        raise SchemaError(
            f"source {source.name!r}: column {name!r} has type {column.type}, expected "
            f"{dtype!r}: {reason}{_first_row_hint(column)}; convert it before ingesting"
        )
    if column.type != expected:
        try:
            column = column.cast(expected)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise SchemaError(
                f"source {source.name!r}: column {name!r} cannot be read as {dtype!r}: "
                f"{str(exc).splitlines()[0]}"
            ) from None
    bad = non_finite_path(dtype, column)
    if bad is not None:
        raise SchemaError(
            f"source {source.name!r}: column {name!r} holds NaN or infinity at {bad}; parity "
            f"stores finite floats only. Write null for a missing value, or a finite number"
        )
    return column


def _hashable_table(source: Source, table: pa.Table) -> pa.Table:
    """``table`` with each nested field replaced by its canonical JSON text (see
    ``parity.dtypes.encode_nested``), so that pandas can hash and compare its rows."""
    for column, dtype in source.schema.items():
        if is_nested(dtype) and column in table.column_names:
            texts = encode_column(dtype, table.column(column))
            index = table.column_names.index(column)
            table = table.set_column(index, column, pa.array(texts, pa.string()))
    return table


_FALSES = pa.array([False] * SMALL_BATCH, pa.bool_())


def _not_tombstones(n: int) -> pa.Array:
    """``n`` times False; small batches slice a shared array (immutable, so safe to share)."""
    return _FALSES.slice(0, n) if n <= SMALL_BATCH else pa.array([False] * n, pa.bool_())


def _all_finite_or_null(column: pa.ChunkedArray) -> bool:
    """Whether no value is NaN or infinite: the common case, checked without compute calls
    for small batches (each Arrow compute call costs more than a Python loop over a few rows)."""
    if len(column) <= SMALL_BATCH:
        return all(v is None or math.isfinite(v) for v in column.to_pylist())
    return bool(pc.all(pc.is_finite(column)).as_py() in (True, None))


def _integral_floats(source: Source, name: str, column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Floats that are whole numbers (NaN meaning null, as pandas writes it) as int64."""
    column = pc.if_else(pc.is_nan(column), None, column)
    bad = pc.and_kleene(pc.is_valid(column), pc.not_equal(pc.floor(column), column))
    bad = pc.or_kleene(bad, pc.is_inf(column))
    # Beyond 2**53 a float is not an exact integer: the CSV reader turns an integer too large
    # for int64 into a float, and casting it would silently store another number.
    too_big = pc.greater(pc.abs(column), float(2**53))
    if pc.any(pc.fill_null(too_big, False)).as_py():
        row = pc.index(pc.fill_null(too_big, False), True).as_py()
        raise SchemaError(
            f"source {source.name!r}: column {name!r} is declared 'int' but row {row} holds "
            f"{column[row].as_py():.17g}, which does not fit exactly in a 64-bit integer "
            f"(up to {2**63 - 1}); declare the key 'str' if it is an identifier"
        )
    if pc.any(bad).as_py():
        row = pc.index(pc.fill_null(bad, False), True).as_py()
        raise SchemaError(
            f"source {source.name!r}: column {name!r} is declared 'int' but row {row} holds "
            f"{column[row].as_py()!r}; round it or declare the field 'float'"
        )
    return column.cast(pa.int64())


def _first_row_hint(column: pa.ChunkedArray) -> str:
    for index, value in enumerate(column.to_pylist()[:1000]):
        if value is not None:
            return f" (first value, row {index}: {value!r})"
    return ""


def _guess(table: pa.Table, name: str, fallback: str = "COLUMN") -> str:
    """A column of ``table`` that may hold ``name`` (for a hint), else ``fallback``."""
    others = [c for c in table.column_names if c not in (EVENT_TIME, RECORDED_AT, FACT_ID)]
    if name == EVENT_TIME:
        timed = [c for c in others if any(w in c.lower() for w in ("time", "ts", "date", "at"))]
        return timed[0] if timed else fallback
    close = [c for c in others if c.lower().replace("_", "") == name.lower().replace("_", "")]
    return close[0] if close else fallback


def _time_column(
    source: Source, table: pa.Table, name: str, required: bool, tz: str | None = None
) -> pa.ChunkedArray | None:
    if name not in table.column_names:
        if required:
            raise SchemaError(
                f"source {source.name!r}: missing column {name!r}; every fact needs the time it "
                f"happened. Rename your time column, e.g. --rename {_guess(table, name)}={name}"
            )
        return None
    column = table.column(name)
    if pa.types.is_null(column.type):
        column = pa.chunked_array([pa.nulls(len(column), TIMESTAMP_TYPE)])
    if column.type != TIMESTAMP_TYPE:
        column = normalize_timestamp_column(column, name, tz=tz)
    if required and column.null_count:
        row = pc.index(pc.is_null(column), True).as_py()
        raise TimeError(f"source {source.name!r}: column {name!r} is null in row {row}")
    return column


def _recorded_at(
    source: Source,
    table: pa.Table,
    event_time: pa.ChunkedArray,
    policy: RecordedAtPolicy,
    now: int | None,
    tz: str | None,
) -> pa.ChunkedArray:
    given = _time_column(source, table, RECORDED_AT, required=False, tz=tz)
    if isinstance(policy, datetime):
        fill_us = datetime_to_us(to_utc_datetime(policy, "recorded_at"))
        fill = pa.chunked_array([pa.array([fill_us] * len(event_time), TIMESTAMP_TYPE)])
    elif policy == "now":
        fill = pa.chunked_array([pa.array([now or now_us()] * len(event_time), TIMESTAMP_TYPE)])
    elif policy == "lag":
        fill = pc.add(event_time.cast(pa.int64()), source.lag_us or 0).cast(TIMESTAMP_TYPE)
    else:
        raise InputError(f"recorded_at must be 'lag', 'now' or a datetime, got {policy!r}")
    if given is None:
        return fill
    return pc.coalesce(given, fill)


def _fact_ids(
    source: Source, table: pa.Table, columns: Mapping[str, pa.ChunkedArray]
) -> pa.ChunkedArray:
    if FACT_ID in table.column_names:
        given = table.column(FACT_ID)
        if not (
            pa.types.is_string(given.type)
            or pa.types.is_integer(given.type)
            or pa.types.is_large_string(given.type)
            or pa.types.is_null(given.type)
        ):
            raise SchemaError(
                f"source {source.name!r}: column {FACT_ID!r} must be strings or integers, "
                f"not {given.type}"
            )
        given = given.cast(pa.string())
        if given.null_count:
            row = pc.index(pc.is_null(given), True).as_py()
            raise SchemaError(f"source {source.name!r}: {FACT_ID!r} is null in row {row}")
        return given
    dtypes = {**source.entity.keys, EVENT_TIME: "timestamp"}
    if source.kind == "event":
        dtypes.update(source.schema)
    return fact_ids(source.kind, {name: columns[name] for name in dtypes}, dtypes)
