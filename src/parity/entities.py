"""Entities and sources: what features are about, and the typed fact streams they come from.

The lowest layer of the definitions (``parity.definitions`` re-exports everything here): the
reserved fact columns, name checks, ``Entity``, ``Source``, ``EventSource`` and ``StateSource``.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from parity.dtypes import normalize_dtype
from parity.errors import DefinitionError
from parity.timeutil import format_duration, parse_duration

# Columns every stored fact carries besides its entity keys and schema fields.
EVENT_TIME = "event_time"
RECORDED_AT = "recorded_at"
FACT_ID = "fact_id"
TOMBSTONE = "_tombstone"
RESERVED = frozenset({EVENT_TIME, RECORDED_AT, FACT_ID, TOMBSTONE, "at"})
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
