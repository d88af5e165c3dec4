"""Validation at the edge: every key and request field checked against the definitions.

A request is checked before anything is computed or logged. Entity keys take their type from
the entity (``int`` keys are int64: 2**70 is refused, ``"12348"`` for an int key is refused);
request fields take theirs from, in order: ``serving.request_types`` in parity.yaml, the type
annotation of the transform parameter that reads them, else ``any`` (a JSON scalar: null, bool,
int64, finite float or string, logged as JSON text). Unknown key or request field names are
refused, so no request can add a column to the feature log. Sizes are bounded by ``Limits``.
"""

from __future__ import annotations

import inspect
import math
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from parity.definitions import FeatureSet, Transform
from parity.dtypes import ARROW_TYPES
from parity.errors import ConfigError, RequestError

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
ANY = "any"  # a request field without a declared type
REQUEST_TYPES = (*ARROW_TYPES, ANY)
_AT_MIN = datetime(1900, 1, 1, tzinfo=timezone.utc)
_AT_MAX = datetime(2200, 1, 1, tzinfo=timezone.utc)
_ANNOTATIONS: dict[Any, str] = {int: "int", float: "float", str: "str", bool: "bool",
                                datetime: "timestamp"}


@dataclass(frozen=True)
class Limits:
    """Bounds on what one HTTP request may carry (``serving:`` in parity.yaml)."""

    max_body_bytes: int = 1 << 20
    max_field_bytes: int = 64 << 10
    max_batch: int = 1000

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Limits:
        """Limits from the ``serving`` section; ConfigError naming a key that is not a
        positive integer."""
        values: dict[str, int] = {}
        for name in ("max_body_bytes", "max_field_bytes", "max_batch"):
            if name not in config:
                continue
            value = config[name]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(
                    f"parity.yaml serving.{name}: {value!r} is not a positive integer; "
                    f"write e.g. `{name}: {getattr(cls, name)}`"
                )
            values[name] = value
        return cls(**values)


@dataclass(frozen=True)
class RequestSchema:
    """What a model accepts: its entity keys (name -> dtype) and request fields (name -> type)."""

    keys: dict[str, str]
    request: dict[str, str] = field(default_factory=dict)


def request_types(
    feature_sets: Sequence[FeatureSet], declared: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """The type of every request field the feature sets' transforms read (see module doc)."""
    out: dict[str, str] = {}
    for fs in feature_sets:
        for feature in fs.features:
            if isinstance(feature, Transform):
                for name in feature.request:
                    if name in feature.inputs:
                        out.setdefault(name, _annotated(feature, name))
    for name, value in (declared or {}).items():
        out[str(name)] = declared_type(str(name), value)
    return out


def schema_for(
    feature_sets: Sequence[FeatureSet],
    model_inputs: Sequence[str] = (),
    declared: Mapping[str, Any] | None = None,
) -> RequestSchema:
    """The schema of a model reading ``feature_sets``. ``model_inputs`` are the predictor's
    input names; those that are no feature are request fields the model reads directly."""
    keys: dict[str, str] = {}
    for fs in feature_sets:
        keys.update(fs.entity.keys)
    request = request_types(feature_sets, declared)
    features = {f.name for fs in feature_sets for f in fs.features}
    for name in model_inputs:
        if name not in features and name not in keys and name not in request:
            request[name] = declared_type(name, (declared or {}).get(name, ANY))
    return RequestSchema(keys, request)


def declared_type(name: str, value: Any) -> str:
    """The request type ``value`` declares for field ``name``; ConfigError if it is none."""
    kind = _ANNOTATIONS.get(value, value) if isinstance(value, (str, type)) else value
    if kind not in REQUEST_TYPES:
        raise ConfigError(
            f"parity.yaml serving.request_types.{name}: {value!r} is not a type; use one of "
            f"{', '.join(REQUEST_TYPES)}"
        )
    return str(kind)


def _annotated(transform: Transform, name: str) -> str:
    """The dtype the transform's parameter annotation declares, else ``any``."""
    try:
        annotation = inspect.signature(transform.fn).parameters[name].annotation
    except (KeyError, TypeError, ValueError):
        return ANY
    if isinstance(annotation, str):  # `from __future__ import annotations`
        parts = [p.strip() for p in annotation.replace("Optional[", "").rstrip("]").split("|")]
        names = [p for p in parts if p != "None"]
        by_name = {"int": "int", "float": "float", "str": "str", "bool": "bool",
                   "datetime": "timestamp"}
        return by_name.get(names[0], ANY) if len(names) == 1 else ANY
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = args[0] if len(args) == 1 else None
    return _ANNOTATIONS.get(annotation, ANY)


def check_keys(keys: Any, schema: RequestSchema, limits: Limits, where: str) -> dict[str, Any]:
    """``keys`` checked against the entity: every key present, of its type, nothing else."""
    if not isinstance(keys, Mapping):
        raise RequestError(f"{where}keys", keys, "must be an object of entity key columns",
                           f"send e.g. {_example(schema)}")
    unknown = [k for k in keys if k not in schema.keys]
    if unknown:
        raise RequestError(f"{where}keys.{_short(unknown[0])}", keys[unknown[0]],
                           "is not an entity key of this model",
                           f"send exactly the keys {', '.join(schema.keys)}")
    out: dict[str, Any] = {}
    for name, dtype in schema.keys.items():
        if name not in keys:
            raise RequestError(f"{where}keys.{name}", None, "is missing",
                               f"send e.g. {_example(schema)}")
        out[name] = _check_value(f"{where}keys.{name}", keys[name], dtype, limits,
                                 nullable=False)
    return out


def check_request(request: Any, schema: RequestSchema, limits: Limits,
                  where: str) -> dict[str, Any]:
    """Request fields checked against their declared types; unknown names refused. A missing
    field is left out (the feature code names it if it needs it)."""
    if not isinstance(request, Mapping):
        raise RequestError(f"{where}request", request, "must be an object of request fields",
                           "send e.g. {\"request\": {\"name\": value}}")
    out: dict[str, Any] = {}
    for name, value in request.items():
        dtype = schema.request.get(name)
        if dtype is None:
            known = ", ".join(schema.request) or "(none)"
            raise RequestError(f"{where}request.{_short(name)}", value,
                               "is not a request field this model reads",
                               f"send only {known}")
        out[name] = _check_value(f"{where}request.{name}", value, dtype, limits, nullable=True)
    return out


def check_at(at: datetime | None, name: str) -> datetime | None:
    """An aware time (field ``name``) within 1900..2200 as UTC, or None (the server's now)."""
    if at is None:
        return None
    if at.tzinfo is None or at.utcoffset() is None:
        raise RequestError(name, at.isoformat(), "has no time zone",
                           f"send e.g. '{at.isoformat()}Z'")
    try:
        utc = at.astimezone(timezone.utc)
    except (OverflowError, ValueError) as exc:
        raise RequestError(name, at.isoformat(), "is out of range",
                           "send a time between 1900 and 2200") from exc
    if not _AT_MIN <= utc < _AT_MAX:
        raise RequestError(name, at.isoformat(), "is out of range",
                           "send a time between 1900 and 2200")
    return utc


def check_text(name: str, value: str | None, limits: Limits) -> None:
    """A free text field (``request_id``) within the field size."""
    if value is not None and _too_long(value, limits):
        raise RequestError(name, value, f"is longer than {limits.max_field_bytes} bytes",
                           "send a shorter value (serving.max_field_bytes)")


def _check_value(name: str, value: Any, dtype: str, limits: Limits, nullable: bool) -> Any:
    if value is None:
        if nullable:
            return None
        raise RequestError(name, value, "may not be null", f"send a {_noun(dtype)}")
    if dtype in ("int", "float", ANY) and isinstance(value, int) and not isinstance(value, bool):
        if not INT64_MIN <= value <= INT64_MAX:
            raise RequestError(name, value, "is outside the int64 range",
                               f"send an integer between {INT64_MIN} and {INT64_MAX}")
        return float(value) if dtype == "float" else value
    if dtype in ("float", ANY) and isinstance(value, float):
        if not math.isfinite(value):
            raise RequestError(name, value, "is not a finite number", "send a finite number")
        return value
    if dtype in ("str", ANY) and isinstance(value, str):
        if _too_long(value, limits):
            raise RequestError(name, value, f"is longer than {limits.max_field_bytes} bytes",
                               "send a shorter value (serving.max_field_bytes)")
        return value
    if dtype in ("bool", ANY) and isinstance(value, bool):
        return value
    if dtype == "timestamp" and isinstance(value, str) and not _too_long(value, limits):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return check_at(parsed, name)
    raise RequestError(name, value, f"is not a {_noun(dtype)}", f"send a {_noun(dtype)}")


def _too_long(value: str, limits: Limits) -> bool:
    # Each character takes at most 4 UTF-8 bytes: count bytes only when it may matter.
    return len(value) * 4 > limits.max_field_bytes and (
        len(value.encode("utf-8", "surrogatepass")) > limits.max_field_bytes
    )


def _noun(dtype: str) -> str:
    return {
        "int": "JSON integer (int64)", "float": "JSON number", "str": "JSON string",
        "bool": "JSON true/false", "timestamp": "ISO 8601 time with a zone, e.g. "
        "'2024-05-01T12:00:00Z'", ANY: "JSON number, string, true/false or null",
    }[dtype]


def _short(name: Any) -> str:
    text = str(name)
    return text if len(text) <= 40 else text[:37] + "..."


def _example(schema: RequestSchema) -> str:
    sample = {"int": 42, "str": "abc"}
    return "{\"keys\": {" + ", ".join(
        f"\"{k}\": {sample.get(d, 42)!r}".replace("'", "\"") for k, d in schema.keys.items()
    ) + "}}"
