"""What a lookup answers for a key the publication does not have (a gap).

Each publication declares one fallback when it is published; it is recorded in the manifest:

- ``Fallback.none()``: say the key is missing (value None, ``fallback="none"``): unknown is
  not zero, so this is the default;
- ``Fallback.default(value)``: a declared constant (a prior, a popular-items list);
- ``Fallback.previous()``: the value the previous version had for the key, if it had one;
- ``Fallback.compute()``: compute it now with the same function (or predictor) the
  publication was computed with, on the online features, through an ``OnDemand`` the reader
  is given (a new customer still gets a score, computed by the same code).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

import pyarrow as pa

from parity.errors import ConfigError
from parity.hulk.values import KEY_SEPARATOR, encode_value, normalize_output
from parity.timeutil import UTC

FallbackKind = Literal["none", "default", "previous", "compute"]
REASONS: tuple[FallbackKind, ...] = ("none", "default", "previous", "compute")


@dataclass(frozen=True)
class Fallback:
    """A publication's answer for missing keys (see the module docstring)."""

    kind: FallbackKind = "none"
    value: Any = None

    @classmethod
    def none(cls) -> Fallback:
        """Report the key as missing."""
        return cls("none")

    @classmethod
    def default(cls, value: Any) -> Fallback:
        """Answer ``value`` (JSON-ready: a number, a string, a list)."""
        normalized = normalize_output(value)
        encode_value(normalized)  # fails now, not at lookup time, if it cannot be stored
        return cls("default", normalized)

    @classmethod
    def previous(cls) -> Fallback:
        """Answer the previous version's value for the key."""
        return cls("previous")

    @classmethod
    def compute(cls) -> Fallback:
        """Compute the value on demand (the reader needs an ``OnDemand`` for the name)."""
        return cls("compute")

    def to_dict(self) -> dict[str, Any]:
        """The manifest's form."""
        return {"kind": self.kind, "value": self.value}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fallback:
        """The inverse of ``to_dict``."""
        kind = data.get("kind", "none")
        if kind not in REASONS:
            raise ConfigError(f"fallback kind {kind!r} is not one of {', '.join(REASONS)}")
        return cls(kind, data.get("value"))

    @classmethod
    def parse(cls, text: str) -> Fallback:
        """From the command line: ``none``, ``previous``, ``compute`` or ``default:<JSON>``."""
        import json

        if text in ("none", "previous", "compute"):
            return cls(text)  # type: ignore[arg-type]
        if text.startswith("default:"):
            try:
                return cls.default(json.loads(text[len("default:") :]))
            except json.JSONDecodeError as exc:
                raise ConfigError(f"--fallback {text!r}: the default is not JSON ({exc}); "
                                  f"e.g. default:0.1 or 'default:[]'") from None
        raise ConfigError(f"--fallback {text!r}: use none, previous, compute or "
                          f"default:<JSON value>")


class Computer(Protocol):
    """Computes outputs on demand for keys given as dicts of key columns."""

    def compute(self, keys: Sequence[Mapping[str, Any]]) -> list[Any]:
        """One output per key, in order."""
        ...


class OnDemand:
    """Compute outputs now with ``fn`` on the online features of ``feature_sets``.

    ``fn`` is the same object the publication was precomputed with: a ``Predictor`` (or any
    object with ``predict_table``) or a plain function of an Arrow table returning one output
    per row. ``online`` is an ``OnlineFeatures``; features are taken as of now.
    """

    def __init__(self, fn: Any, online: Any, feature_sets: Sequence[Any]) -> None:
        self.fn = fn
        self.online = online
        self.feature_sets = list(feature_sets)

    def compute(self, keys: Sequence[Mapping[str, Any]]) -> list[Any]:
        """See ``Computer``."""
        from parity.hulk.precompute import call_fn

        now = datetime.now(UTC)
        contexts = pa.Table.from_pylist([{**k, "at": now} for k in keys])
        if self.feature_sets:
            contexts = self.online.get_features_batch(self.feature_sets, contexts)
        return call_fn(self.fn, contexts)


def parse_key(key: str, key_columns: Sequence[str], key_types: Mapping[str, str]
              ) -> dict[str, Any]:
    """The key columns of a stored key, typed as they were published (int, float or str)."""
    parts = key.split(KEY_SEPARATOR)
    out: dict[str, Any] = {}
    for column, part in zip(key_columns, parts):
        kind = key_types.get(column, "str")
        try:
            out[column] = int(part) if kind == "int" else float(part) if kind == "float" else part
        except ValueError:
            raise ConfigError(f"key {key!r}: {column} must be {kind}, got {part!r}") from None
    return out
