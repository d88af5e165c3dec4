"""The small set of value types parity understands, and their Arrow equivalents."""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa

from parity.errors import DefinitionError
from parity.timeutil import TIMESTAMP_TYPE

ARROW_TYPES: dict[str, pa.DataType] = {
    "int": pa.int64(),
    "float": pa.float64(),
    "str": pa.string(),
    "bool": pa.bool_(),
    "timestamp": TIMESTAMP_TYPE,
}
NUMERIC = frozenset({"int", "float", "bool"})
ORDERED = frozenset({"int", "float", "bool", "timestamp", "str"})
_PYTHON_TYPES: dict[type, str] = {
    int: "int",
    float: "float",
    str: "str",
    bool: "bool",
    datetime: "timestamp",
}


def normalize_dtype(value: object, what: str) -> str:
    """Return the canonical dtype name for ``value`` ('int', 'float', 'str', 'bool', 'timestamp').

    Python types (int, float, str, bool, datetime) are accepted as aliases.
    """
    if isinstance(value, type) and value in _PYTHON_TYPES:
        return _PYTHON_TYPES[value]
    if isinstance(value, str) and value in ARROW_TYPES:
        return value
    raise DefinitionError(
        f"{what}: unknown type {value!r}; use one of {', '.join(sorted(ARROW_TYPES))}"
    )


def arrow_type(dtype: str) -> pa.DataType:
    """The Arrow type stored for a parity dtype name."""
    return ARROW_TYPES[dtype]


def can_cast(source: pa.DataType, dtype: str) -> bool:
    """Whether a column of Arrow type ``source`` may be accepted as ``dtype`` without loss."""
    if dtype == "float":
        return (
            pa.types.is_floating(source)
            or pa.types.is_integer(source)
            or pa.types.is_null(source)
            or pa.types.is_decimal(source)
        )
    if dtype == "int":
        return pa.types.is_integer(source) or pa.types.is_null(source)
    if dtype == "str":
        return (
            pa.types.is_string(source)
            or pa.types.is_large_string(source)
            or pa.types.is_null(source)
            or pa.types.is_dictionary(source)
        )
    if dtype == "bool":
        return pa.types.is_boolean(source) or pa.types.is_null(source)
    if dtype == "timestamp":
        return (
            pa.types.is_timestamp(source) or pa.types.is_string(source) or pa.types.is_null(source)
        )
    return False
