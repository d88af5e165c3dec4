"""Contexts: moments of prediction (entity keys, ``at``, request fields, pass-through columns)."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from parity.definitions import FeatureSet
from parity.dtypes import arrow_type
from parity.errors import SchemaError
from parity.frames import DataInput, read_data
from parity.timeutil import normalize_timestamp_column

AT = "at"


def normalize_contexts(data: DataInput, feature_sets: Sequence[FeatureSet]) -> pa.Table:
    """Validate contexts for ``feature_sets`` and return them with ``at`` as timestamp[us, UTC].

    Every entity key of every feature set must be present and non-null, of the key's type;
    every request field a transform reads must be present. Other columns pass through untouched.
    Feature names must not clash with context columns or with each other.
    """
    table = read_data(data, what="contexts")
    if AT not in table.column_names:
        raise SchemaError(
            f"contexts need an {AT!r} column (the moment of each prediction, aware UTC); "
            f"the data has {', '.join(table.column_names) or '(no columns)'}"
        )
    table = table.set_column(
        table.column_names.index(AT), AT, normalize_timestamp_column(table.column(AT), AT)
    )
    if table.column(AT).null_count:
        row = pc.index(pc.is_null(table.column(AT)), True).as_py()
        raise SchemaError(f"contexts: column {AT!r} is null in row {row}")
    for fs in feature_sets:
        for key, dtype in fs.entity.keys.items():
            table = _check_key(table, fs, key, dtype)
        for field in fs.request_fields:
            if field not in table.column_names:
                raise SchemaError(
                    f"contexts: feature set {fs.name!r} needs request field {field!r}, which "
                    f"the contexts do not have"
                )
    _check_names(table, feature_sets)
    return table


def _check_key(table: pa.Table, fs: FeatureSet, key: str, dtype: str) -> pa.Table:
    if key not in table.column_names:
        raise SchemaError(
            f"contexts: feature set {fs.name!r} needs entity key column {key!r} "
            f"(entity {fs.entity.name!r}); the contexts have {', '.join(table.column_names)}"
        )
    column = table.column(key)
    target = arrow_type(dtype)
    if column.type != target:
        ok = (dtype == "int" and pa.types.is_integer(column.type)) or (
            dtype == "str"
            and (pa.types.is_string(column.type) or pa.types.is_large_string(column.type))
        )
        if not ok:
            raise SchemaError(
                f"contexts: key column {key!r} has type {column.type}, but entity "
                f"{fs.entity.name!r} declares it {dtype!r}; convert it first"
            )
        table = table.set_column(table.column_names.index(key), key, column.cast(target))
    if table.column(key).null_count:
        row = pc.index(pc.is_null(table.column(key)), True).as_py()
        raise SchemaError(f"contexts: key column {key!r} is null in row {row}")
    return table


def _check_names(table: pa.Table, feature_sets: Sequence[FeatureSet]) -> None:
    owner: dict[str, str] = {}
    for fs in feature_sets:
        for feature in fs.features:
            if feature.name in owner:
                raise SchemaError(
                    f"feature {feature.name!r} is in feature sets {owner[feature.name]!r} and "
                    f"{fs.name!r}; ask for them separately or rename one"
                )
            if feature.name in table.column_names:
                raise SchemaError(
                    f"contexts already have a column {feature.name!r}, the name of a feature of "
                    f"{fs.name!r}; rename the column"
                )
            owner[feature.name] = fs.name
