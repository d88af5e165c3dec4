"""Definitions: entities, sources, features and feature sets.

Definitions are plain data plus Python functions. Engines and the online path interpret them;
no feature is ever written twice. Mistakes are caught when a definition is made.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import keyword
import re
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any, Literal

from parity.dtypes import NUMERIC, ORDERED, normalize_dtype
from parity.errors import DefinitionError
from parity.timeutil import format_duration, parse_duration

# Columns every stored fact carries besides its entity keys and schema fields.
EVENT_TIME = "event_time"
RECORDED_AT = "recorded_at"
FACT_ID = "fact_id"
TOMBSTONE = "_tombstone"
RESERVED = frozenset({EVENT_TIME, RECORDED_AT, FACT_ID, TOMBSTONE, "at"})
AGGREGATIONS = ("count", "sum", "mean", "min", "max", "last", "last_k", "count_distinct")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _check_name(name: object, what: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name) or keyword.iskeyword(name):
        raise DefinitionError(
            f"{what} name {name!r} is not valid: use letters, digits and underscores, "
            f"starting with a letter or underscore"
        )
    return name


@dataclass(frozen=True)
class Entity:
    """What features are about, identified by typed key columns (``int`` or ``str``)."""

    name: str
    keys: Mapping[str, str]

    def __init__(self, name: str, keys: Mapping[str, Any] | Sequence[str]) -> None:
        _check_name(name, "entity")
        if isinstance(keys, str):
            keys = [keys]
        pairs = keys.items() if isinstance(keys, Mapping) else [(k, "str") for k in keys]
        typed: dict[str, str] = {}
        for key, dtype in pairs:
            _check_name(key, f"entity {name!r} key")
            if key in RESERVED:
                raise DefinitionError(f"entity {name!r}: key {key!r} is a reserved column name")
            kind = normalize_dtype(dtype, f"entity {name!r} key {key!r}")
            if kind not in ("int", "str"):
                raise DefinitionError(
                    f"entity {name!r} key {key!r}: keys must be 'int' or 'str', not {kind!r}"
                )
            typed[key] = kind
        if not typed:
            raise DefinitionError(f"entity {name!r} needs at least one key column")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "keys", dict(typed))

    @property
    def key_names(self) -> list[str]:
        """The key column names, in declaration order."""
        return list(self.keys)

    def spec(self) -> dict[str, Any]:
        """A JSON-serialisable description, used in version hashes."""
        return {"name": self.name, "keys": dict(self.keys)}

    def __hash__(self) -> int:
        return hash((self.name, tuple(self.keys.items())))


@dataclass(frozen=True, eq=False)
class Source:
    """A named, typed stream of facts of one shape. Use EventSource or StateSource."""

    name: str
    entity: Entity
    schema: Mapping[str, str]
    lag_us: int | None = None
    kind: Literal["event", "state"] = "event"

    def __init__(
        self,
        name: str,
        entity: Entity,
        schema: Mapping[str, Any],
        lag: str | Any | None = None,
    ) -> None:
        _check_name(name, "source")
        if not isinstance(entity, Entity):
            raise DefinitionError(f"source {name!r}: entity must be an Entity, got {entity!r}")
        typed: dict[str, str] = {}
        for column, dtype in dict(schema).items():
            _check_name(column, f"source {name!r} field")
            if column in RESERVED or column in entity.keys:
                raise DefinitionError(
                    f"source {name!r}: field {column!r} clashes with a key or reserved column "
                    f"({', '.join(sorted(RESERVED))})"
                )
            typed[column] = normalize_dtype(dtype, f"source {name!r} field {column!r}")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "entity", entity)
        object.__setattr__(self, "schema", typed)
        object.__setattr__(self, "lag_us", parse_duration(lag, f"source {name!r} lag"))

    def field_dtype(self, column: str) -> str:
        """The dtype of a schema field, or of ``event_time``; DefinitionError if unknown."""
        if column == EVENT_TIME:
            return "timestamp"
        if column not in self.schema:
            known = ", ".join([EVENT_TIME, *self.schema]) or "(none)"
            raise DefinitionError(
                f"source {self.name!r} has no field {column!r}; its fields are: {known}"
            )
        return self.schema[column]

    def spec(self) -> dict[str, Any]:
        """A JSON-serialisable description."""
        return {
            "name": self.name,
            "kind": self.kind,
            "entity": self.entity.spec(),
            "schema": dict(self.schema),
            "lag": format_duration(self.lag_us) if self.lag_us else None,
        }

    def __hash__(self) -> int:
        return hash((self.kind, self.name))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Source) and self.spec() == other.spec()


class EventSource(Source):
    """Append-only occurrences (plays, purchases, impressions)."""

    def __init__(self, name: str, entity: Entity, schema: Mapping[str, Any], lag: Any = None):
        super().__init__(name, entity, schema, lag)
        object.__setattr__(self, "kind", "event")


class StateSource(Source):
    """Versions of an entity's attributes; a newer version supersedes an older one."""

    def __init__(self, name: str, entity: Entity, schema: Mapping[str, Any], lag: Any = None):
        super().__init__(name, entity, schema, lag)
        object.__setattr__(self, "kind", "state")


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
