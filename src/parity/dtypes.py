"""The value types parity understands, and their Arrow equivalents.

Scalars: 'int', 'float', 'str', 'bool', 'timestamp'. Nested types, built from them and from
each other to any depth: ``list<T>`` and ``struct<name:T,name:T>``, e.g.
``list<struct<item:str,score:float>>`` (a live service's list of scored items). A dtype is
always carried as its canonical string (no spaces), so definitions hash and compare as text.

Nested values are plain Python lists and dicts wherever parity hands them to user code, and the
equal Arrow list/struct values in columns. ``encode_nested`` gives their one canonical JSON text
(timestamps as epoch microseconds), used for content fact ids and by the online stores.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any, TypeAlias

import pyarrow as pa
import pyarrow.compute as pc

from parity.errors import DefinitionError, InputError
from parity.timeutil import TIMESTAMP_TYPE, datetime_to_us, us_to_datetime

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
EXAMPLE = "list<struct<item:str,score:float>>"
_TOKEN = re.compile(r"\s*(?:([A-Za-z_][A-Za-z0-9_]*)|([<>,:]))")

# A parsed dtype: a scalar name, ("list", element) or ("struct", ((name, type), ...)).
Node: TypeAlias = "str | tuple[str, Any]"


def normalize_dtype(value: object, what: str) -> str:
    """Return the canonical dtype string for ``value``.

    Accepted: a scalar name ('int', 'float', 'str', 'bool', 'timestamp'), a Python type (int,
    float, str, bool, datetime), a nested type string (``"list<struct<item:str,score:float>>"``,
    whitespace allowed), a dict ``{"item": str, "score": "float"}`` (a struct, fields in that
    order) or a one-element list ``["str"]`` (a list of that type), nested freely. Raises
    DefinitionError naming ``what`` and showing a valid example.
    """
    return _render(_node(value, what))


def is_nested(dtype: str) -> bool:
    """Whether a canonical dtype is a list or a struct."""
    return dtype.startswith(("list<", "struct<"))


def list_element(dtype: str) -> str | None:
    """The element dtype of a canonical ``list<T>``, or None for any other dtype."""
    node = _parse(dtype)
    return _render(node[1]) if isinstance(node, tuple) and node[0] == "list" else None


def struct_fields(dtype: str) -> dict[str, str] | None:
    """The fields (name -> dtype) of a canonical ``struct<...>``, or None for another dtype."""
    node = _parse(dtype)
    if isinstance(node, tuple) and node[0] == "struct":
        return {name: _render(child) for name, child in node[1]}
    return None


def arrow_type(dtype: str) -> pa.DataType:
    """The Arrow type stored for a canonical parity dtype."""
    scalar = ARROW_TYPES.get(dtype)
    return scalar if scalar is not None else _arrow_cached(dtype)


def can_cast(source: pa.DataType, dtype: str) -> bool:
    """Whether a column of Arrow type ``source`` may be accepted as ``dtype`` without loss.

    Nested types must match exactly in shape (see ``nested_mismatch``).
    """
    if is_nested(dtype):
        return nested_mismatch(source, dtype) is None
    return _scalar_ok(source, dtype, top=True)


def nested_mismatch(source: pa.DataType, dtype: str) -> str | None:
    """Why a column of Arrow type ``source`` cannot hold nested ``dtype``; None if it can.

    A list accepts any Arrow list type whose element matches; a struct needs exactly the
    declared field names (in any order); leaves follow the scalar rules, except that a
    timestamp inside a nested value must carry a time zone. An all-null part (Arrow's null
    type) matches anything. The reason names the path of the first difference.
    """
    return _mismatch(source, _parse(dtype), "value")


def encode_nested(dtype: str, value: Any) -> str | None:
    """The canonical JSON text of a nested value (None for null).

    Struct fields in declared order, timestamps as epoch microseconds, floats as Python's
    shortest round-trip text: equal values give equal text on every path.
    """
    if value is None:
        return None
    return _ENCODER.encode(_map_leaves(_parse(dtype), value, _to_json_leaf))


def encode_column(dtype: str, column: pa.Array | pa.ChunkedArray) -> list[str | None]:
    """``encode_nested`` of every value of a canonical nested column (typed ``arrow_type``).

    The same texts, made faster: timestamps become epoch microseconds by one Arrow cast, and
    the values of a canonical column already hold struct fields in declared order.
    """
    json_type = _arrow_cached(_json_dtype(dtype))
    values = column.cast(json_type).to_pylist() if json_type != column.type else column.to_pylist()
    dumps = _ENCODER.encode
    return [None if v is None else dumps(v) for v in values]


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


@lru_cache(maxsize=1024)
def _json_dtype(dtype: str) -> str:
    """The dtype with every timestamp leaf as int (epoch microseconds)."""
    return _render(_retype(_parse(dtype)))


def _retype(node: Node) -> Node:
    if isinstance(node, str):
        return "int" if node == "timestamp" else node
    kind, body = node
    if kind == "list":
        return ("list", _retype(body))
    return ("struct", tuple((name, _retype(child)) for name, child in body))


def decode_nested(dtype: str, text: str | None) -> Any:
    """The Python value (lists, dicts, aware datetimes) that ``encode_nested`` wrote."""
    if text is None:
        return None
    return _map_leaves(_parse(dtype), json.loads(text), _from_json_leaf)


def non_finite_path(dtype: str, column: pa.Array | pa.ChunkedArray) -> str | None:
    """The path of a float leaf holding NaN or infinity in a canonical nested column, or None."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    for chunk in chunks:
        for path, leaf in _float_leaves(_parse(dtype), chunk, "value"):
            if pc.any(pc.invert(pc.fill_null(pc.is_finite(leaf), True))).as_py():
                return path
    return None


# -- parsing and rendering ---------------------------------------------------------------------


def _bad(what: str, value: object, why: str) -> DefinitionError:
    return DefinitionError(
        f"{what}: {why} in type {value!r}; use one of {', '.join(sorted(ARROW_TYPES))}, or a "
        f'nested type such as "{EXAMPLE}" (or {{"item": str, "score": float}}, or ["str"])'
    )


def _node(value: object, what: str) -> Node:
    if isinstance(value, type) and value in _PYTHON_TYPES:
        return _PYTHON_TYPES[value]
    if isinstance(value, str):
        if value in ARROW_TYPES:
            return value
        try:
            return _parse(value)
        except DefinitionError as exc:
            raise _bad(what, value, str(exc)) from None
    if isinstance(value, Mapping):
        if not value:
            raise _bad(what, value, "a struct needs at least one field")
        fields = []
        for name, child in value.items():
            if not isinstance(name, str) or not _is_name(name):
                raise _bad(what, value, f"struct field name {name!r} is not an identifier")
            fields.append((name, _node(child, f"{what} field {name!r}")))
        return ("struct", tuple(fields))
    if isinstance(value, list):
        if len(value) != 1:
            raise _bad(what, value, "a list type is written with exactly one element type")
        return ("list", _node(value[0], f"{what} element"))
    raise _bad(what, value, "unknown type")


def _is_name(text: str) -> bool:
    return re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", text) is not None


@lru_cache(maxsize=1024)
def _parse(text: str) -> Node:
    """Parse a (possibly spaced) dtype string; DefinitionError saying what is wrong (without
    naming the field: ``_node`` adds that)."""
    tokens: list[str] = []
    pos = 0
    stripped = text.rstrip()
    while pos < len(stripped):
        match = _TOKEN.match(stripped, pos)
        if match is None:
            raise DefinitionError(f"unexpected {stripped[pos:].strip()[:10]!r}")
        tokens.append(match.group(1) or match.group(2))
        pos = match.end()
    node, end = _parse_at(tokens, 0)
    if end != len(tokens):
        raise DefinitionError(f"unexpected {tokens[end]!r} after a complete type")
    return node


def _expect(tokens: list[str], i: int, token: str) -> int:
    if i >= len(tokens) or tokens[i] != token:
        found = repr(tokens[i]) if i < len(tokens) else "the end"
        raise DefinitionError(f"expected {token!r}, found {found}")
    return i + 1


def _parse_at(tokens: list[str], i: int) -> tuple[Node, int]:
    if i >= len(tokens):
        raise DefinitionError("a type is missing")
    word = tokens[i]
    if word in ARROW_TYPES:
        return word, i + 1
    if word == "list":
        element, i = _parse_at(tokens, _expect(tokens, i + 1, "<"))
        return ("list", element), _expect(tokens, i, ">")
    if word == "struct":
        i = _expect(tokens, i + 1, "<")
        fields: list[tuple[str, Node]] = []
        while True:
            if i >= len(tokens) or not _is_name(tokens[i]):
                found = repr(tokens[i]) if i < len(tokens) else "the end"
                raise DefinitionError(f"expected a struct field name, found {found}")
            name = tokens[i]
            if any(name == seen for seen, _ in fields):
                raise DefinitionError(f"struct field {name!r} appears twice")
            child, i = _parse_at(tokens, _expect(tokens, i + 1, ":"))
            fields.append((name, child))
            if i < len(tokens) and tokens[i] == ",":
                i += 1
                continue
            return ("struct", tuple(fields)), _expect(tokens, i, ">")
    raise DefinitionError(f"unknown type {word!r}")


def _render(node: Node) -> str:
    if isinstance(node, str):
        return node
    kind, body = node
    if kind == "list":
        return f"list<{_render(body)}>"
    return "struct<" + ",".join(f"{name}:{_render(child)}" for name, child in body) + ">"


@lru_cache(maxsize=1024)
def _arrow_cached(text: str) -> pa.DataType:
    return _arrow(_parse(text))


def _arrow(node: Node) -> pa.DataType:
    if isinstance(node, str):
        return ARROW_TYPES[node]
    kind, body = node
    if kind == "list":
        return pa.list_(_arrow(body))
    return pa.struct([pa.field(name, _arrow(child)) for name, child in body])


# -- checking Arrow types ----------------------------------------------------------------------


def _scalar_ok(source: pa.DataType, dtype: str, top: bool) -> bool:
    if pa.types.is_null(source):
        return True
    if dtype == "float":
        return (
            pa.types.is_floating(source)
            or pa.types.is_integer(source)
            or pa.types.is_decimal(source)
        )
    if dtype == "int":
        return pa.types.is_integer(source)
    if dtype == "str":
        return (
            pa.types.is_string(source)
            or pa.types.is_large_string(source)
            or pa.types.is_string_view(source)
            or (top and pa.types.is_dictionary(source))
        )
    if dtype == "bool":
        return pa.types.is_boolean(source)
    if dtype == "timestamp":
        if top:  # a top-level column is normalised by parity.timeutil (text, naive + tz)
            return pa.types.is_timestamp(source) or pa.types.is_string(source)
        return pa.types.is_timestamp(source) and source.tz is not None
    return False


def _mismatch(source: pa.DataType, node: Node, path: str) -> str | None:
    if pa.types.is_null(source):
        return None
    if isinstance(node, str):
        if _scalar_ok(source, node, top=False):
            return None
        extra = (
            " (a timestamp inside a nested value needs a time zone)"
            if (node == "timestamp" and pa.types.is_timestamp(source))
            else ""
        )
        return f"{path} is {source}, expected {node!r}{extra}"
    kind, body = node
    if kind == "list":
        if not (
            pa.types.is_list(source)
            or pa.types.is_large_list(source)
            or pa.types.is_fixed_size_list(source)
        ):
            return f"{path} is {source}, expected a list ({_render(node)})"
        return _mismatch(source.value_type, body, f"{path}[]")
    if not pa.types.is_struct(source):
        return f"{path} is {source}, expected a struct ({_render(node)})"
    found = {source.field(i).name: source.field(i).type for i in range(source.num_fields)}
    declared = dict(body)
    for name in declared:
        if name not in found:
            return f"{path} lacks struct field {name!r} (it has {', '.join(found) or 'none'})"
    for name in found:
        if name not in declared:
            return f"{path} has struct field {name!r}, which the type does not declare"
    for name, child in body:
        reason = _mismatch(found[name], child, f"{path}.{name}")
        if reason is not None:
            return reason
    return None


def _float_leaves(node: Node, array: pa.Array, path: str) -> Iterator[tuple[str, pa.Array]]:
    if isinstance(node, str):
        if node == "float":
            yield path, array
        return
    kind, body = node
    if kind == "list":
        yield from _float_leaves(body, array.flatten(), f"{path}[]")
        return
    for (name, child), values in zip(body, array.flatten()):
        yield from _float_leaves(child, values, f"{path}.{name}")


# -- canonical JSON ----------------------------------------------------------------------------


def _map_leaves(node: Node, value: Any, leaf: Callable[[str, Any], Any]) -> Any:
    """``value`` rebuilt with ``leaf(dtype, v)`` applied to every non-null scalar inside."""
    if value is None:
        return None
    if isinstance(node, str):
        return leaf(node, value)
    kind, body = node
    if kind == "list":
        return [_map_leaves(body, v, leaf) for v in value]
    return {name: _map_leaves(child, value.get(name), leaf) for name, child in body}


def _to_json_leaf(dtype: str, value: Any) -> Any:
    if dtype == "timestamp":
        return datetime_to_us(value)
    if dtype == "float":
        if not math.isfinite(value):
            raise InputError(f"a nested float is {value}; parity stores finite floats only")
        return float(value)
    return value


def _from_json_leaf(dtype: str, value: Any) -> Any:
    if dtype == "timestamp":
        return us_to_datetime(int(value))
    return float(value) if dtype == "float" else value
