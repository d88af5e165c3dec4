"""Tabular input at the edges: every frame, table or file a user hands parity becomes Arrow here.

``to_arrow_table`` takes in-memory data: pyarrow Tables, RecordBatches and RecordBatchReaders,
pandas DataFrames, Polars (and any object exporting ``__arrow_c_stream__``, the Arrow PyCapsule
interface, or offering ``to_arrow()``), a dict of column lists, or a list of row dicts.
``read_data`` adds paths: a Parquet file, a CSV/TSV file, or a folder of either (one data set).

Every failure is an ``InputError`` naming the input (``what``), the file and the fix; no pyarrow
exception escapes, so callers and the CLI never show a parser traceback.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeAlias, runtime_checkable

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from parity.errors import InputError

PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv", ".tsv", ".txt")
_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError)


@runtime_checkable
class ArrowStreamExportable(Protocol):
    """Anything that exports an Arrow C stream (Polars, DuckDB relations, newer pandas, ...)."""

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        """Return a PyCapsule holding an ``ArrowArrayStream``."""
        ...


TableLike: TypeAlias = (
    pa.Table
    | pa.RecordBatch
    | pa.RecordBatchReader
    | pd.DataFrame
    | ArrowStreamExportable
    | Mapping[str, Sequence[Any]]
    | Sequence[Mapping[str, Any]]
)
DataInput: TypeAlias = TableLike | str | Path

_ACCEPTED = (
    "a pyarrow Table/RecordBatch/RecordBatchReader, a pandas or Polars DataFrame (or anything "
    "with __arrow_c_stream__), a dict of column lists, a list of row dicts, or a path to a "
    "Parquet/CSV file or folder"
)


def to_arrow_table(data: object, what: str) -> pa.Table:
    """Return in-memory tabular ``data`` as a pyarrow Table with plain (non-view) string types.

    ``what`` names the input in errors ("facts", "contexts"). Polars is used through its Arrow
    export, never imported. Raises InputError for an unsupported object or a column Arrow cannot
    hold (mixed types, integers beyond 64 bits), naming the column where Arrow reports it.
    """
    try:
        table = _convert(data, what)
    except _ARROW_ERRORS as exc:
        raise InputError(
            f"{what}: cannot convert the {type(data).__name__} to Arrow: {_arrow_message(exc)}; "
            f"give each column one type (no mixed numbers and strings, integers within 64 bits)"
        ) from None
    return _plain_types(table)


def read_data(data: object, what: str) -> pa.Table:
    """Return ``data`` as a pyarrow Table: in-memory data (see ``to_arrow_table``) or a path.

    A path may be a Parquet file, a CSV (.csv/.txt) or TSV file, or a folder holding Parquet
    files or CSV files (read as one data set, files in name order). Timestamps in CSV stay
    strings so that the time rules can refuse naive ones. An empty file, a file with a header
    but no rows, a truncated or unparseable file, and an empty folder are InputErrors naming
    the file.
    """
    if not isinstance(data, (str, Path)):
        return to_arrow_table(data, what)
    path = Path(data)
    if not path.exists():
        raise InputError(f"{what}: no such file {str(path)!r}")
    table = _read_folder(path, what) if path.is_dir() else _read_file(path, what)
    if table.num_rows == 0:
        raise InputError(
            f"{what}: {str(path)!r} has columns ({', '.join(table.column_names) or 'none'}) but "
            f"no rows; there is nothing to read"
        )
    return _plain_types(table)


def _convert(data: object, what: str) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, pa.RecordBatchReader):
        return data.read_all()
    if isinstance(data, pd.DataFrame):
        return pa.Table.from_pandas(data, preserve_index=False)
    if isinstance(data, ArrowStreamExportable):
        return pa.table(data)
    to_arrow = getattr(data, "to_arrow", None)
    if callable(to_arrow):
        converted = to_arrow()
        if isinstance(converted, (pa.Table, pa.RecordBatch, pa.RecordBatchReader)):
            return _convert(converted, what)
    if isinstance(data, Mapping):
        return pa.table({str(k): v for k, v in data.items()})
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        if data and all(isinstance(row, Mapping) for row in data):
            return pa.Table.from_pylist(list(data))
        if not data:
            raise InputError(f"{what}: the list is empty; give at least one row dict")
    raise InputError(f"{what}: expected {_ACCEPTED}; got {type(data).__name__}")


def _read_file(path: Path, what: str) -> pa.Table:
    suffix = path.suffix.lower()
    if suffix not in PARQUET_SUFFIXES + CSV_SUFFIXES:
        raise InputError(
            f"{what}: cannot read {str(path)!r}; use a .parquet or .csv (or .tsv) file"
        )
    if path.stat().st_size == 0:
        raise InputError(f"{what}: {str(path)!r} is empty (0 bytes); there is nothing to read")
    if suffix in PARQUET_SUFFIXES:
        try:
            return pq.read_table(path)
        except _ARROW_ERRORS as exc:
            raise InputError(
                f"{what}: {str(path)!r} is not a readable Parquet file "
                f"({_arrow_message(exc)}); it may be truncated: write it again"
            ) from None
    options = pacsv.ParseOptions(delimiter="\t" if suffix == ".tsv" else ",")
    # Timestamps stay strings so that normalize_timestamp_column can reject naive ones.
    convert = pacsv.ConvertOptions(timestamp_parsers=[])
    try:
        return pacsv.read_csv(path, parse_options=options, convert_options=convert)
    except _ARROW_ERRORS as exc:
        raise InputError(
            f"{what}: cannot read CSV {str(path)!r}: {_arrow_message(exc)}; fix the file (one "
            f"header line, the same number of fields on every line)"
        ) from None


def _read_folder(path: Path, what: str) -> pa.Table:
    files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith((".", "_")))
    kinds = {
        "parquet" if p.suffix.lower() in PARQUET_SUFFIXES else "csv"
        for p in files
        if p.suffix.lower() in PARQUET_SUFFIXES + CSV_SUFFIXES
    }
    if not kinds:
        raise InputError(
            f"{what}: folder {str(path)!r} holds no .parquet or .csv files; point at a file or "
            f"a folder of them"
        )
    if len(kinds) > 1:
        raise InputError(
            f"{what}: folder {str(path)!r} mixes Parquet and CSV files; give one kind per folder"
        )
    if kinds == {"parquet"}:
        try:  # a Parquet data set, hive partitions included
            return pq.read_table(path)
        except _ARROW_ERRORS as exc:
            raise InputError(
                f"{what}: the Parquet files in {str(path)!r} cannot be read as one data set "
                f"({_arrow_message(exc)}); check that none is truncated and all share a schema"
            ) from None
    tables = [_read_file(p, what) for p in files if p.suffix.lower() in CSV_SUFFIXES]
    with_rows = [_plain_types(t) for t in tables if t.num_rows]
    if not with_rows:
        return tables[0]
    try:
        return pa.concat_tables(with_rows, promote_options="permissive")
    except _ARROW_ERRORS as exc:
        raise InputError(
            f"{what}: the CSV files in {str(path)!r} do not share one schema "
            f"({_arrow_message(exc)}); give every file the same columns and types"
        ) from None


def _plain_types(table: pa.Table) -> pa.Table:
    """Cast string views and large strings to ``string`` so type checks see one string type.

    Only the columns whose type changes are cast: casting a whole table also "casts" the
    others to their own type, and pyarrow's ``list<null>`` to ``list<null>`` cast corrupts
    the list offsets.
    """
    for index, field in enumerate(table.schema):
        typ = field.type
        if pa.types.is_string_view(typ) or pa.types.is_large_string(typ):
            typ = pa.string()
        elif pa.types.is_binary_view(typ) or pa.types.is_large_binary(typ):
            typ = pa.binary()
        if typ != field.type:
            table = table.set_column(index, field.with_type(typ), table.column(index).cast(typ))
    return table


def _arrow_message(exc: BaseException) -> str:
    """Arrow's message on one line (it sometimes packs a tuple of two messages)."""
    parts = exc.args if len(exc.args) > 1 else (str(exc),)
    return "; ".join(str(p).strip() for p in parts if str(p).strip()).replace("\n", " ")
