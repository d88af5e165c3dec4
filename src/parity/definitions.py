"""Definitions: entities, sources, features and feature sets.

Entities and sources live in ``parity.entities`` and are re-exported here, so
``from parity.definitions import Source`` keeps working.

Definitions are plain data plus Python functions. Engines and the online path interpret them;
no feature is ever written twice. Mistakes are caught when a definition is made.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from parity.dtypes import NUMERIC, ORDERED, is_nested, normalize_dtype
from parity.entities import (
    EVENT_TIME,
    FACT_ID,
    RECORDED_AT,
    RESERVED,
    TOMBSTONE,
    Entity,
    EventSource,
    Source,
    StateSource,
    _check_name,
)
from parity.errors import DefinitionError
from parity.timeutil import format_duration, parse_duration

__all__ = [
    "AGGREGATIONS",
    "EVENT_TIME",
    "FACT_ID",
    "RECORDED_AT",
    "RESERVED",
    "TOMBSTONE",
    "Aggregate",
    "Entity",
    "EventSource",
    "Feature",
    "FeatureSet",
    "Lookup",
    "Source",
    "StateSource",
    "Transform",
    "transform",
]

AGGREGATIONS = ("count", "sum", "mean", "min", "max", "last", "last_k", "count_distinct")


@dataclass(frozen=True, eq=False)
class Aggregate:
    """A windowed aggregation over an event source.

    ``function`` is one of count, sum, mean, min, max, last, last_k, count_distinct. ``field`` may
    be omitted only for count (which then counts events). ``window`` is a duration such as "7d",
    or None for all history. ``k`` is required for last_k.
    """

    name: str
    source: EventSource
    function: str
    field: str | None = None
    window: str | None = None
    k: int | None = None
    window_us: int | None = dc_field(init=False, default=None)
    dtype: str = dc_field(init=False, default="")

    def __post_init__(self) -> None:
        _check_name(self.name, "feature")
        if not isinstance(self.source, EventSource):
            raise DefinitionError(
                f"aggregate {self.name!r}: source must be an EventSource, got {self.source!r}; "
                f"use a Lookup for a StateSource"
            )
        if self.function not in AGGREGATIONS:
            raise DefinitionError(
                f"aggregate {self.name!r}: unknown function {self.function!r}; "
                f"use one of {', '.join(AGGREGATIONS)}"
            )
        object.__setattr__(
            self, "window_us", parse_duration(self.window, f"aggregate {self.name!r} window")
        )
        if self.field is None:
            if self.function != "count":
                raise DefinitionError(f"aggregate {self.name!r}: {self.function} needs a field")
            object.__setattr__(self, "dtype", "int")
            return
        field_type = self.source.field_dtype(self.field)
        if is_nested(field_type) and self.function != "last":
            raise DefinitionError(
                f"aggregate {self.name!r}: cannot {self.function} field {self.field!r} of "
                f"source {self.source.name!r}, which is nested ({field_type!r}); only 'last' "
                f"reads a nested field. Read the value with a Lookup (state source) or "
                f"Aggregate(..., 'last', {self.field!r}) and reduce it with a transform, e.g. "
                f"parity.listagg.transform('n_{self.field}', 'count', of='<that feature>')"
            )
        if self.function in ("sum", "mean") and field_type not in NUMERIC:
            raise DefinitionError(
                f"aggregate {self.name!r}: cannot {self.function} field {self.field!r} of "
                f"source {self.source.name!r}, which is {field_type!r}, not numeric"
            )
        if self.function in ("min", "max") and field_type not in ORDERED:
            raise DefinitionError(f"aggregate {self.name!r}: cannot order {field_type!r} values")
        if self.function == "last_k":
            if not isinstance(self.k, int) or isinstance(self.k, bool) or self.k < 1:
                raise DefinitionError(
                    f"aggregate {self.name!r}: last_k needs k >= 1, got {self.k!r}"
                )
        elif self.k is not None:
            raise DefinitionError(f"aggregate {self.name!r}: k is only for last_k")
        from parity.rules import rule  # not at the top: parity.rules imports this module

        object.__setattr__(self, "dtype", rule(self.function).output_dtype(field_type))

    def spec(self) -> dict[str, Any]:
        """A JSON-serialisable description, used in version hashes."""
        return {
            "type": "aggregate",
            "name": self.name,
            "source": self.source.name,
            "function": self.function,
            "field": self.field,
            "field_dtype": self.source.field_dtype(self.field) if self.field else None,
            "window": format_duration(self.window_us) if self.window_us else None,
            "k": self.k,
        }


@dataclass(frozen=True, eq=False)
class Lookup:
    """A field of a state source as of the moment; null when older than ``ttl``."""

    name: str
    source: StateSource
    field: str
    ttl: str | None = None
    ttl_us: int | None = dc_field(init=False, default=None)
    dtype: str = dc_field(init=False, default="")

    def __post_init__(self) -> None:
        _check_name(self.name, "feature")
        if not isinstance(self.source, StateSource):
            raise DefinitionError(
                f"lookup {self.name!r}: source must be a StateSource, got {self.source!r}; "
                f"use an Aggregate for an EventSource"
            )
        object.__setattr__(self, "dtype", self.source.field_dtype(self.field))
        object.__setattr__(self, "ttl_us", parse_duration(self.ttl, f"lookup {self.name!r} ttl"))

    def spec(self) -> dict[str, Any]:
        """A JSON-serialisable description, used in version hashes."""
        return {
            "type": "lookup",
            "name": self.name,
            "source": self.source.name,
            "field": self.field,
            "dtype": self.dtype,
            "ttl": format_duration(self.ttl_us) if self.ttl_us else None,
        }


@dataclass(frozen=True, eq=False)
class Transform:
    """A plain Python function of other features and of request fields.

    The function's parameter names are its inputs: each must be a feature defined earlier in
    the same feature set, a name listed in ``request``, or ``at`` (the context's time).
    With ``vectorized=False`` (default) it is called once per row with scalars (None for null);
    with ``vectorized=True`` it is called with pandas Series and must return an array-like of
    the same length. The same function object runs offline and online.
    """

    name: str
    fn: Callable[..., Any]
    dtype: str = "float"
    request: tuple[str, ...] = ()
    vectorized: bool = False
    inputs: tuple[str, ...] = dc_field(init=False, default=())

    def __post_init__(self) -> None:
        _check_name(self.name, "feature")
        if not callable(self.fn):
            raise DefinitionError(f"transform {self.name!r}: fn must be callable")
        object.__setattr__(self, "dtype", normalize_dtype(self.dtype, f"transform {self.name!r}"))
        if is_nested(self.dtype):
            raise DefinitionError(
                f"transform {self.name!r}: output dtype {self.dtype!r} is nested; a transform "
                f"returns one of int, float, str, bool, timestamp. Return one scalar per "
                f"transform (e.g. a count, a mean or the first item of a list)"
            )
        object.__setattr__(self, "request", tuple(self.request))
        params = inspect.signature(self.fn).parameters.values()
        for param in params:
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise DefinitionError(
                    f"transform {self.name!r}: name each input as a parameter; "
                    f"*args and **kwargs cannot say which features it reads"
                )
        object.__setattr__(self, "inputs", tuple(p.name for p in params))

    def code(self) -> str:
        """The function's source text (dedented), or its qualified name if unavailable."""
        try:
            return textwrap.dedent(inspect.getsource(self.fn))
        except (OSError, TypeError):
            return f"{getattr(self.fn, '__module__', '?')}.{getattr(self.fn, '__qualname__', '?')}"

    def spec(self) -> dict[str, Any]:
        """A JSON-serialisable description, used in version hashes."""
        return {
            "type": "transform",
            "name": self.name,
            "dtype": self.dtype,
            "inputs": list(self.inputs),
            "request": list(self.request),
            "vectorized": self.vectorized,
            "code": self.code(),
        }


Feature = Aggregate | Lookup | Transform


def transform(
    dtype: str | type = "float",
    request: Sequence[str] = (),
    vectorized: bool = False,
    name: str | None = None,
) -> Callable[[Callable[..., Any]], Transform]:
    """Decorator: turn a function into a Transform feature named after the function."""

    def wrap(fn: Callable[..., Any]) -> Transform:
        return Transform(
            name=name or fn.__name__,
            fn=fn,
            dtype=normalize_dtype(dtype, f"transform {name or fn.__name__!r}"),
            request=tuple(request),
            vectorized=vectorized,
        )

    return wrap


class FeatureSet:
    """A named group of features over one entity's keys, with a stable version hash."""

    def __init__(self, name: str, entity: Entity, features: Sequence[Feature]) -> None:
        self.name = _check_name(name, "feature set")
        if not isinstance(entity, Entity):
            raise DefinitionError(f"feature set {name!r}: entity must be an Entity")
        self.entity = entity
        self.features: list[Feature] = []
        seen: dict[str, Feature] = {}
        for feature in features:
            self._check_feature(feature, seen)
            seen[feature.name] = feature
            self.features.append(feature)
        if not self.features:
            raise DefinitionError(f"feature set {name!r} has no features")
        self.version = self._version()

    def _check_feature(self, feature: object, seen: Mapping[str, Feature]) -> None:
        if not isinstance(feature, (Aggregate, Lookup, Transform)):
            raise DefinitionError(
                f"feature set {self.name!r}: {feature!r} is not an Aggregate, Lookup or Transform"
            )
        if feature.name in seen:
            raise DefinitionError(
                f"feature set {self.name!r}: duplicate feature name {feature.name!r}"
            )
        if feature.name in RESERVED or feature.name in self.entity.keys:
            raise DefinitionError(
                f"feature set {self.name!r}: feature name {feature.name!r} clashes with a key "
                f"or reserved column"
            )
        if isinstance(feature, Transform):
            for name in feature.inputs:
                if name not in seen and name not in feature.request and name != "at":
                    known = ", ".join(seen) or "(none yet)"
                    raise DefinitionError(
                        f"feature set {self.name!r}: transform {feature.name!r} reads input "
                        f"{name!r}, which is neither a feature defined before it ({known}) nor "
                        f"a request field listed in request=[...]"
                    )
            return
        if feature.source.entity != self.entity:
            raise DefinitionError(
                f"feature set {self.name!r} is about entity {self.entity.name!r}, but feature "
                f"{feature.name!r} reads source {feature.source.name!r} about entity "
                f"{feature.source.entity.name!r}"
            )

    def _version(self) -> str:
        body = json.dumps(self.spec(with_version=False), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(body.encode()).hexdigest()[:16]

    def spec(self, with_version: bool = True) -> dict[str, Any]:
        """A JSON-serialisable description of the whole set."""
        out: dict[str, Any] = {
            "name": self.name,
            "entity": self.entity.spec(),
            "features": [f.spec() for f in self.features],
        }
        if with_version:
            out["version"] = self.version
        return out

    @property
    def sources(self) -> list[Source]:
        """The sources the set reads, each once, in first-use order."""
        out: dict[str, Source] = {}
        for feature in self.features:
            if not isinstance(feature, Transform):
                out.setdefault(feature.source.name, feature.source)
        return list(out.values())

    @property
    def request_fields(self) -> list[str]:
        """Request fields (besides ``at``) that transforms of this set read."""
        out: dict[str, None] = {}
        for feature in self.features:
            if isinstance(feature, Transform):
                out.update((r, None) for r in feature.inputs if r in feature.request)
        return list(out)

    def feature(self, name: str) -> Feature:
        """The feature named ``name``; DefinitionError if there is none."""
        for feature in self.features:
            if feature.name == name:
                return feature
        raise DefinitionError(f"feature set {self.name!r} has no feature {name!r}")

    def __repr__(self) -> str:
        names = ", ".join(f.name for f in self.features)
        return f"FeatureSet({self.name!r}, version={self.version!r}, features=[{names}])"
