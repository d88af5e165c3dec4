"""Turning user data into canonical facts: validation, recorded_at, fact ids.

A canonical fact table has, in order: the entity keys, the source's schema fields, then
``event_time`` and ``recorded_at`` (timestamp[us, UTC]), ``fact_id`` (string) and
``_tombstone`` (bool). Every write path — the fact log and the online store — goes through
``normalize_facts`` so that they can never disagree about what a fact is.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeAlias

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from parity.definitions import EVENT_TIME, FACT_ID, RECORDED_AT, TOMBSTONE, Source
from parity.dtypes import arrow_type, can_cast
from parity.errors import InputError, SchemaError, TimeError
from parity.timeutil import (
    TIMESTAMP_TYPE,
    datetime_to_us,
    normalize_timestamp_column,
    now_us,
    to_utc_datetime,
)

FactData: TypeAlias = pd.DataFrame | pa.Table | pa.RecordBatch | str | Path
RecordedAtPolicy: TypeAlias = Literal["lag", "now"] | datetime


def canonical_schema(source: Source) -> pa.Schema:
    """The Arrow schema of a source's stored facts."""
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
    """Read pandas, Arrow, or a Parquet/CSV path into an Arrow table."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, pd.DataFrame):
        return pa.Table.from_pandas(data, preserve_index=False)
    if isinstance(data, (str, Path)):
        path = Path(data)
        if not path.exists():
            raise InputError(f"{what}: no such file {str(path)!r}")
        suffix = path.suffix.lower()
        if suffix in (".parquet", ".pq") or path.is_dir():
            return pq.read_table(path)
        if suffix in (".csv", ".tsv", ".txt"):
            options = pacsv.ParseOptions(delimiter="\t" if suffix == ".tsv" else ",")
            # Timestamps stay strings so that normalize_timestamp_column can reject naive ones.
            convert = pacsv.ConvertOptions(timestamp_parsers=[])
            return pacsv.read_csv(path, parse_options=options, convert_options=convert)
        raise InputError(f"{what}: cannot read {str(path)!r}; use a .parquet or .csv file")
    raise InputError(
        f"{what}: expected a pandas DataFrame, a pyarrow Table, or a path to Parquet/CSV, "
        f"got {type(data).__name__}"
    )


def normalize_facts(
    source: Source,
    data: FactData,
    recorded_at: RecordedAtPolicy = "lag",
    rename: Mapping[str, str] | None = None,
    now: int | None = None,
) -> pa.Table:
    """Validate ``data`` against ``source`` and return canonical facts.

    ``recorded_at`` decides the column of that name where the data does not give it (or gives
    null): ``"lag"`` means ``event_time + source.lag`` (a bulk load of history; lag 0 when the
    source has none), ``"now"`` means ingestion time, a datetime means that moment.
    ``fact_id`` defaults to a content hash: for state sources of (keys, event_time), so a new
    version at the same event_time is a correction; for event sources of the whole row plus its
    occurrence number within the batch, so re-ingesting a file is idempotent.
    Raises SchemaError or TimeError naming the column and the first offending row; the input is
    never partly accepted.
    """
    table = read_table(data)
    if rename:
        table = table.rename_columns([rename.get(n, n) for n in table.column_names])
    if TOMBSTONE in table.column_names:
        raise SchemaError(f"column {TOMBSTONE!r} is reserved; delete facts with delete()")
    n = table.num_rows
    columns: dict[str, pa.ChunkedArray] = {}
    for key, dtype in source.entity.keys.items():
        columns[key] = _typed_column(source, table, key, dtype, nullable=False)
    for column, dtype in source.schema.items():
        columns[column] = _typed_column(source, table, column, dtype, nullable=True)
    event_time = _time_column(source, table, EVENT_TIME, required=True)
    assert event_time is not None
    columns[EVENT_TIME] = event_time
    columns[RECORDED_AT] = _recorded_at(source, table, event_time, recorded_at, now)
    columns[FACT_ID] = _fact_ids(source, table, columns)
    columns[TOMBSTONE] = pa.chunked_array([pa.array([False] * n, pa.bool_())])
    out = pa.table(columns, schema=canonical_schema(source))
    return dedupe_facts(source, out)


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
    if table.num_rows == 0:
        return table
    frame = table.select([FACT_ID, RECORDED_AT]).to_pandas()
    dup_key = frame.duplicated(keep=False)
    if not dup_key.any():
        return table
    full_dups = table.to_pandas().duplicated()
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
    source: Source, table: pa.Table, name: str, dtype: str, nullable: bool
) -> pa.ChunkedArray:
    if name not in table.column_names:
        raise SchemaError(
            f"source {source.name!r}: missing column {name!r}; the data has "
            f"{', '.join(table.column_names) or '(no columns)'}. Rename it or pass rename={{...}}"
        )
    column = table.column(name)
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if dtype == "int" and pa.types.is_floating(column.type):
        column = _integral_floats(source, name, column)
    if not can_cast(column.type, dtype):
        raise SchemaError(
            f"source {source.name!r}: column {name!r} has type {column.type}, expected "
            f"{dtype!r}{_first_row_hint(column)}; convert it before ingesting"
        )
    if dtype == "timestamp":
        column = normalize_timestamp_column(column, name)
    else:
        try:
            column = column.cast(arrow_type(dtype))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise SchemaError(
                f"source {source.name!r}: column {name!r} cannot be read as {dtype!r}: {exc}"
            ) from None
    if dtype == "float":
        # NaN is not a value; it is stored as null so every engine treats it alike.
        column = pc.if_else(pc.is_nan(column), None, column)
    if not nullable and column.null_count:
        row = pc.index(pc.is_null(column), True).as_py()
        raise SchemaError(
            f"source {source.name!r}: key column {name!r} is null in row {row}; every fact "
            f"needs all its entity keys"
        )
    return column


def _integral_floats(source: Source, name: str, column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Floats that are whole numbers (NaN meaning null, as pandas writes it) as int64."""
    column = pc.if_else(pc.is_nan(column), None, column)
    bad = pc.and_kleene(pc.is_valid(column), pc.not_equal(pc.floor(column), column))
    bad = pc.or_kleene(bad, pc.is_inf(column))
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


def _time_column(
    source: Source, table: pa.Table, name: str, required: bool
) -> pa.ChunkedArray | None:
    if name not in table.column_names:
        if required:
            raise SchemaError(
                f"source {source.name!r}: missing column {name!r}; every fact needs the time it "
                f"happened. Rename your time column, e.g. rename={{'ts': '{name}'}}"
            )
        return None
    column = normalize_timestamp_column(table.column(name), name)
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
) -> pa.ChunkedArray:
    given = _time_column(source, table, RECORDED_AT, required=False)
    if isinstance(policy, datetime):
        fill_us = datetime_to_us(to_utc_datetime(policy, "recorded_at"))
        fill = pa.chunked_array([pa.array([fill_us] * len(event_time), pa.int64())])
    elif policy == "now":
        fill = pa.chunked_array([pa.array([now or now_us()] * len(event_time), pa.int64())])
    elif policy == "lag":
        fill = pc.add(event_time.cast(pa.int64()), source.lag_us or 0)
    else:
        raise InputError(f"recorded_at must be 'lag', 'now' or a datetime, got {policy!r}")
    fill = fill.cast(TIMESTAMP_TYPE)
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
    names = list(source.entity.keys) + [EVENT_TIME]
    if source.kind == "event":
        names += list(source.schema)
    frame = pa.table({n: columns[n] for n in names}).to_pandas()
    hashes = pd.util.hash_pandas_object(frame, index=False)
    if source.kind == "event":
        occurrence = hashes.groupby(hashes).cumcount()
        hashes = pd.util.hash_pandas_object(
            pd.DataFrame({"h": hashes.to_numpy(), "o": occurrence.to_numpy()}), index=False
        )
    return pa.chunked_array([pa.array(hashes.to_numpy()).cast(pa.string())])
