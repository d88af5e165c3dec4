"""Aggregates over a list inside one looked-up value, as ordinary transforms.

A live service's answer (say ``recs: list<struct<item:str,score:float>>``) is one fact; what a
model wants is often a number over its list: how many items, their mean score. Those are not
windowed aggregates over events, so they are transforms of the looked-up value (a ``Lookup``,
or an ``Aggregate(..., "last", ...)``):

    recs = pt.Lookup("recs", snapshots, "recs")
    n_recs = listagg.transform("n_recs", "count", of="recs")
    mean_score = listagg.transform("mean_score", "mean", of="recs", field="score")

The result is a plain ``parity.Transform`` (row mode): the same function object runs online
(``apply_row``) and offline (``apply_batch``), so both give the same answer by construction.

Contract, for a list value ``xs`` (``field`` given: the values ``x[field]`` of its elements;
otherwise the elements themselves):

- a missing value (``None``: nothing visible, a null fact, beyond a lookup's ttl) is unknown:
  every function gives ``None`` — ``count`` too, never a 0 that would pass for "known empty";
- null elements and null field values are skipped (rule 2 of DESIGN.md, as for events);
- ``count``: the number of non-null values; 0 for an empty list;
- ``count_distinct``: the number of distinct non-null values (lists and dicts compare by
  content); 0 for an empty list;
- ``sum``: an exact, correctly rounded sum (``math.fsum``) for floats, an integer sum for ints
  and bools; 0 (0.0 for floats) for an empty list, as an empty window's sum;
- ``mean``, ``min``, ``max``: ``None`` when no non-null value is left (never 0).

An input that is not a list, an element that is not a struct when ``field`` is given, or a
struct without that field is an error naming the transform, the input and the fix.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from parity.definitions import Aggregate, Lookup, Transform
from parity.dtypes import NUMERIC, ORDERED, list_element, normalize_dtype, struct_fields
from parity.errors import DefinitionError, TransformError

_CONTRACT = 1  # bump when the meaning above changes: it is part of every version hash


def transform(
    name: str,
    function: str,
    *,
    of: str | Lookup | Aggregate,
    field: str | None = None,
    dtype: str | type | None = None,
) -> Transform:
    """A Transform named ``name``: ``function`` over the list in feature ``of`` (see module doc).

    ``of`` is the name of a feature defined earlier in the same feature set, or that feature
    itself (then its dtype is checked now: a list, with ``field`` among its struct fields, and
    the output dtype is inferred). ``dtype`` overrides the output dtype; without a feature to
    infer it from, it defaults to 'int' for count/count_distinct and 'float' otherwise.
    """
    spec = _FUNCTIONS.get(function)
    if spec is None:
        raise DefinitionError(
            f"listagg {name!r}: unknown function {function!r}; use one of {', '.join(FUNCTIONS)}"
        )
    source_name = of if isinstance(of, str) else getattr(of, "name", None)
    if not isinstance(source_name, str):
        raise DefinitionError(
            f"listagg {name!r}: of= must name a feature (or be a Lookup/Aggregate), got {of!r}"
        )
    leaf = _leaf_dtype(name, of, field) if isinstance(of, (Lookup, Aggregate)) else None
    if leaf is not None and spec.accepts is not None and leaf not in spec.accepts:
        raise DefinitionError(
            f"listagg {name!r}: {function} cannot read {leaf!r} values; it reads "
            f"{', '.join(sorted(spec.accepts))}"
        )
    out = dtype if dtype is not None else spec.output(leaf)
    reducer = _Reducer(name, function, source_name, field)
    return Transform(name=name, fn=reducer, dtype=normalize_dtype(out, f"listagg {name!r}"))


def _leaf_dtype(name: str, feature: Lookup | Aggregate, field: str | None) -> str:
    element = list_element(feature.dtype)
    if element is None:
        raise DefinitionError(
            f"listagg {name!r}: feature {feature.name!r} is {feature.dtype!r}, not a list; "
            f"listagg reads a list field, e.g. 'list<struct<item:str,score:float>>'"
        )
    if field is None:
        return element
    fields = struct_fields(element)
    if fields is None or field not in fields:
        known = ", ".join(fields) if fields else f"none: its elements are {element!r}"
        raise DefinitionError(
            f"listagg {name!r}: the elements of {feature.name!r} have no field {field!r} "
            f"(fields: {known})"
        )
    return fields[field]


def _freeze(value: Any) -> Any:
    """A hashable stand-in for a value: lists and dicts by content."""
    if isinstance(value, list):
        return ("l", tuple(_freeze(v) for v in value))
    if isinstance(value, dict):
        return ("d", tuple((k, _freeze(v)) for k, v in sorted(value.items())))
    return value


def _sum(values: list[Any]) -> Any:
    if any(isinstance(v, float) for v in values):
        return math.fsum(values)
    return sum(int(v) for v in values)


@dataclass(frozen=True)
class _Function:
    """One listagg function: its reduction over the non-null values (possibly none), the
    output dtype for a leaf dtype (None: not known at definition time) and the leaf dtypes it
    reads (None: any)."""

    reduce: Callable[[list[Any]], Any]
    output: Callable[[str | None], str]
    accepts: frozenset[str] | None = None


_FUNCTIONS: dict[str, _Function] = {
    "count": _Function(len, lambda leaf: "int"),
    "count_distinct": _Function(lambda vs: len({_freeze(v) for v in vs}), lambda leaf: "int"),
    "sum": _Function(_sum, lambda leaf: "int" if leaf in ("int", "bool") else "float", NUMERIC),
    "mean": _Function(
        lambda vs: math.fsum(float(v) for v in vs) / len(vs) if vs else None,
        lambda leaf: "float",
        NUMERIC,
    ),
    "min": _Function(lambda vs: min(vs) if vs else None, lambda leaf: leaf or "float", ORDERED),
    "max": _Function(lambda vs: max(vs) if vs else None, lambda leaf: leaf or "float", ORDERED),
}
FUNCTIONS = tuple(_FUNCTIONS)


class _Reducer:
    """The transform's function: one keyword parameter named after the input feature."""

    def __init__(self, name: str, function: str, of: str, field: str | None) -> None:
        self.name, self.function, self.of, self.field = name, function, of, field
        self.__signature__ = inspect.Signature(
            [inspect.Parameter(of, inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        )
        # Transform.code() falls back to module + qualname for objects without source text:
        # that text names the function, the field and the contract, so the version hash does.
        self.__module__ = __name__
        self.__qualname__ = f"listagg.v{_CONTRACT}({function!r}, of={of!r}, field={field!r})"

    def __call__(self, **kwargs: Any) -> Any:
        value = kwargs[self.of]
        if value is None:
            return None
        if not isinstance(value, list):
            raise TransformError(
                f"listagg {self.name!r}: input {self.of!r} is a {type(value).__name__}, not a "
                f"list; point of= at a feature whose dtype is list<...>"
            )
        return _FUNCTIONS[self.function].reduce(list(self._values(value)))

    def _values(self, items: list[Any]) -> Iterable[Any]:
        for item in items:
            if item is None:
                continue
            if self.field is None:
                yield item
                continue
            if not isinstance(item, dict):
                raise TransformError(
                    f"listagg {self.name!r}: the elements of {self.of!r} are "
                    f"{type(item).__name__}, not structs; drop field={self.field!r}"
                )
            if self.field not in item:
                raise TransformError(
                    f"listagg {self.name!r}: an element of {self.of!r} has no field "
                    f"{self.field!r} (fields: {', '.join(item)})"
                )
            value = item[self.field]
            if value is not None:
                yield value

    def __repr__(self) -> str:
        return self.__qualname__
