"""Applying transforms: one function object, called the same way online and offline.

Inputs always travel as Arrow columns. A row-mode transform (the default) is called once per
row with Python scalars from ``to_pylist()`` (None for null, aware datetimes for timestamps,
plain lists and dicts for nested values); a vectorized one is called with the pandas Series
that ``to_pandas()`` gives (an object Series of lists and dicts for a nested input). Online,
a single context goes through exactly the same conversion with one-row columns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeAlias

import pandas as pd
import pyarrow as pa

from parity.definitions import Transform
from parity.dtypes import arrow_type
from parity.errors import TransformError

Column: TypeAlias = pa.Array | pa.ChunkedArray


def apply_batch(transform: Transform, inputs: Mapping[str, Column], num_rows: int) -> pa.Array:
    """Apply ``transform`` to ``num_rows`` rows whose inputs are the Arrow columns ``inputs``.

    Returns an Arrow array of the transform's dtype. NaN results become null.
    """
    if transform.vectorized:
        series = {name: _series(inputs[name]) for name in transform.inputs}
        try:
            result = transform.fn(**series)
        except Exception as exc:
            raise TransformError(
                f"transform {transform.name!r} raised {type(exc).__name__}: {exc}"
            ) from exc
        values = [_clean(transform, v) for v in _as_list(result)]
        if len(values) != num_rows:
            raise TransformError(
                f"transform {transform.name!r} returned {len(values)} values for {num_rows} rows"
            )
    else:
        columns = [inputs[name].to_pylist() for name in transform.inputs]
        rows = zip(*columns) if columns else ([()] * num_rows)
        values = [_call(transform, dict(zip(transform.inputs, row))) for row in rows]
    try:
        return pa.array(values, type=arrow_type(transform.dtype))
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise TransformError(
            f"transform {transform.name!r} declared dtype {transform.dtype!r} but returned "
            f"values that are not: {exc}"
        ) from None


def apply_row(
    transform: Transform, values: Mapping[str, Any], types: Mapping[str, pa.DataType]
) -> Any:
    """Apply ``transform`` to one row: ``values`` are scalars, ``types`` their Arrow types.

    Used online and by the reference evaluator; it goes through the same Arrow conversion as
    ``apply_batch`` so a transform sees identical inputs on every path.
    """
    if not transform.vectorized:
        return _call(transform, {name: values.get(name) for name in transform.inputs})
    columns = {
        name: pa.array([values.get(name)], type=types.get(name)) for name in transform.inputs
    }
    return apply_batch(transform, columns, 1)[0].as_py()


def _series(column: Column) -> pd.Series:
    """A column as the pandas Series a vectorized transform receives.

    Nested values (lists, structs) arrive as an object Series of plain Python lists and dicts,
    exactly what a row-mode transform gets, rather than pandas' numpy arrays of dicts.
    """
    if pa.types.is_nested(column.type):
        return pd.Series(column.to_pylist(), dtype=object)
    return column.to_pandas()


def _call(transform: Transform, args: dict[str, Any]) -> Any:
    try:
        value = transform.fn(**args)
    except Exception as exc:
        raise TransformError(
            f"transform {transform.name!r} raised {type(exc).__name__}: {exc} "
            f"(inputs: {_short(args)})"
        ) from exc
    return _clean(transform, value)


def _as_list(result: Any) -> list[Any]:
    if isinstance(result, (pd.Series, pd.Index)):
        return [None if pd.isna(v) else v for v in result.astype(object)]
    return list(result)


def _clean(transform: Transform, value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if hasattr(value, "item") and not isinstance(value, (list, str)):
        value = value.item()  # numpy scalar -> Python scalar
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if (
        transform.dtype == "float"
        and isinstance(value, (int, float))
        and not isinstance(value, bool)
    ):
        return float(value)
    if transform.dtype == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    if transform.dtype == "timestamp" and isinstance(value, datetime) and value.tzinfo is None:
        raise TransformError(f"transform {transform.name!r} returned a naive datetime {value}")
    return value


def _short(args: Mapping[str, Any]) -> str:
    text = ", ".join(f"{k}={v!r}" for k, v in args.items())
    return text if len(text) < 200 else text[:200] + "…"
