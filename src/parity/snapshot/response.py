"""Checking a live service's answer against the schema its source declares.

A response is accepted only when it has exactly the declared fields (missing or extra ones are
a schema change), and every leaf value has the declared type: ``int`` takes ints (never bools
or floats), ``float`` takes ints and floats (never bools, NaN or Infinity, which ``json.loads``
reads), ``str`` strings, ``bool`` bools, ``timestamp`` an ISO-8601 string with a zone; lists and
structs are walked down to their leaves. Nulls are allowed anywhere (unknown is not a type
change). Nothing is coerced: a value that does not fit is reported as a ``SchemaChange`` naming
the field path, the expected and the found type. The accepted row is finally built into Arrow
with the declared schema (``pa.Table.from_pylist``), so the Arrow conversion itself is checked.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from parity.dtypes import arrow_type, list_element, struct_fields
from parity.errors import TimeError
from parity.timeutil import to_utc_datetime


@dataclass(frozen=True)
class SchemaChange:
    """A response that does not fit the declared schema: where, what was expected, what came."""

    field: str
    expected: str
    found: str

    def describe(self, source: str) -> str:
        """One line naming the source, the field, the expected and the found type."""
        return (
            f"live source {source!r}: schema change in field {self.field!r}: expected "
            f"{self.expected}, found {self.found}; the response was not written. Declare the "
            f"new shape under a new schema_version (and source name), or fix the service"
        )


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, dict):
        return "struct"
    return {int: "int", float: "float", str: "str", list: "list"}.get(
        type(value), type(value).__name__
    )


def _check(value: Any, dtype: str, path: str) -> tuple[Any, SchemaChange | None]:
    """``value`` ready for Arrow (timestamps parsed), or the first place it does not fit."""
    if value is None:
        return None, None
    element, fields = list_element(dtype), struct_fields(dtype)
    if element is not None:
        if not isinstance(value, list):
            return None, SchemaChange(path, dtype, _type_name(value))
        out = []
        for index, item in enumerate(value):
            checked, change = _check(item, element, f"{path}[{index}]")
            if change:
                return None, change
            out.append(checked)
        return out, None
    if fields is not None:
        if not isinstance(value, dict):
            return None, SchemaChange(path, dtype, _type_name(value))
        return check_fields(value, fields, f"{path}.")
    if dtype == "timestamp":
        if not isinstance(value, str):
            return None, SchemaChange(path, "timestamp (ISO-8601 text)", _type_name(value))
        try:
            return to_utc_datetime(value, path), None
        except TimeError:
            return None, SchemaChange(path, "timestamp with a time zone", repr(value[:40]))
    found = _type_name(value)
    if found == "float" and not math.isfinite(value):  # json.loads reads NaN and Infinity
        return None, SchemaChange(path, f"{dtype} (a finite number)", repr(value))
    if dtype == found or (dtype == "float" and found == "int"):  # an int fits a float exactly
        return (float(value) if dtype == "float" else value), None
    return None, SchemaChange(path, dtype, found)


def check_fields(
    payload: Mapping[str, Any], types: Mapping[str, str], prefix: str = ""
) -> tuple[dict[str, Any] | None, SchemaChange | None]:
    """Check a JSON object against named dtypes: no missing, no extra field, leaf types."""
    for name in types:
        if name not in payload:
            return None, SchemaChange(f"{prefix}{name}", types[name], "no such field (missing)")
    for name in payload:
        if name not in types:
            return None, SchemaChange(
                f"{prefix}{name}", "no such field (not declared)", _type_name(payload[name])
            )
    out: dict[str, Any] = {}
    for name, typ in types.items():
        checked, change = _check(payload[name], typ, f"{prefix}{name}")
        if change:
            return None, change
        out[name] = checked
    return out, None


def check_response(
    payload: object, fields: Mapping[str, str]
) -> tuple[dict[str, Any] | None, SchemaChange | None]:
    """The response as a row fitting ``fields`` (name -> parity dtype) exactly, or the first
    SchemaChange found. ``payload`` is the decoded JSON (or the callable's return value).
    """
    if not isinstance(payload, dict):
        return None, SchemaChange("(response)", "a JSON object", _type_name(payload))
    row, change = check_fields(payload, fields)
    if change or row is None:
        return None, change
    schema = pa.schema([pa.field(n, arrow_type(t)) for n, t in fields.items()])
    try:  # the declared schema's own conversion: anything it refuses is a change too
        pa.Table.from_pylist([row], schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
        return None, SchemaChange("(response)", "values Arrow accepts for the schema", str(exc))
    return row, None
