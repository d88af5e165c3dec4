"""One feature log record per prediction, and JSON text for values that need it.

Records are stored as Arrow columns (see ``columns``). Values that fit no column type (an int
in one record and a str in another, a dict output) are stored as JSON text, in which an aware
datetime is written ``{"$t": <microseconds since the epoch>}`` and read back as a UTC
datetime; the one-key object ``{"$t": <int>}`` is therefore reserved. NumPy scalars and arrays
are written as plain numbers and lists.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from parity.errors import InputError, InputTypeError, TimeError
from parity.timeutil import UTC, us_to_datetime

FeatureScalar = int | float | str | bool | datetime | None
FeatureValue = FeatureScalar | list[FeatureScalar]
KeyValue = int | str

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TIME_TAG = "$t"
_SCALARS = (int, float, str, bool, type(None))


@dataclass(frozen=True)
class FeatureLogRecord:
    """What the online path computed and served for one prediction.

    ``logged_at`` is the context's ``at`` (aware; stored as UTC). ``keys`` holds the entity key
    columns, ``features`` every feature value the model received (int, float, str, bool, None,
    aware datetime, or a list of those), ``request`` the request fields and ``output`` any
    JSON-able value the predictor returned. ``live`` says, per live source read (issue 14), what
    was served: ``{"recs": {"used": "live" | "fallback_snapshot" | "fallback_none",
    "latency_ms": 3.2, "detail": ""}}``, so the skew check can tell a live answer from a
    fallback. ``seq`` is assigned by the log when the record is
    read back (1, 2, 3, ... across the whole log) and is ignored by equality.
    """

    request_id: str
    logged_at: datetime
    model: str
    model_version: int
    feature_set_versions: dict[str, str]
    keys: dict[str, KeyValue]
    features: dict[str, FeatureValue]
    request: dict[str, Any] = field(default_factory=dict)
    output: Any = None
    live: dict[str, dict[str, Any]] = field(default_factory=dict)
    seq: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        # Cheap checks only: this runs on the serving path for every prediction.
        if not isinstance(self.request_id, str):
            raise InputError(
                f"feature log record: request_id must be a str, got {self.request_id!r}"
            )
        at = self.logged_at
        if not isinstance(at, datetime) or at.tzinfo is None or at.utcoffset() is None:
            raise TimeError(
                f"feature log record {self.request_id!r}: logged_at {at!r} must be an aware "
                f"datetime (the context's `at`); parity never guesses a time zone"
            )
        if not isinstance(self.model_version, int) or isinstance(self.model_version, bool):
            raise InputError(
                f"feature log record {self.request_id!r}: model_version must be an int, "
                f"got {self.model_version!r}"
            )

    def validate(self) -> None:
        """Check every key and feature value against the allowed types (slower; for tests).

        Raises InputError naming the offending field, or TimeError for a naive datetime.
        """
        for name, key in self.keys.items():
            if isinstance(key, bool) or not isinstance(key, (int, str)):
                raise InputError(
                    f"feature log record {self.request_id!r}: key {name!r} = {key!r} must be "
                    f"an int or a str"
                )
        for name, value in self.features.items():
            items = value if isinstance(value, list) else [value]
            for item in items:
                _check_scalar(self.request_id, name, item)


def _check_scalar(request_id: str, name: str, value: object) -> None:
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise TimeError(
                f"feature log record {request_id!r}: feature {name!r} holds the naive "
                f"datetime {value.isoformat()}; give it a time zone"
            )
    elif not isinstance(value, _SCALARS):
        raise InputError(
            f"feature log record {request_id!r}: feature {name!r} = {value!r} has type "
            f"{type(value).__name__}; use int, float, str, bool, None, an aware datetime, "
            f"or a list of those"
        )


def _default(value: object) -> object:
    """JSON fallback for values the C encoder does not know: datetimes and NumPy values."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InputTypeError(
                f"naive datetime {value.isoformat()} cannot be logged; give it a time zone (UTC)"
            )
        delta = value - _EPOCH
        return {_TIME_TAG: (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds}
    tolist = getattr(value, "tolist", None)  # NumPy scalars and arrays
    if tolist is not None:
        return tolist()
    raise InputTypeError(
        f"{type(value).__name__} value {value!r} is not JSON-serialisable; log int, float, "
        f"str, bool, None, an aware datetime, or lists and dicts of those"
    )


# JSON is only the fallback for values no Arrow column type fits, so the public API is fast enough.
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_default).encode


def encode_value(value: object) -> str:
    """One value as compact JSON text; aware datetimes become ``{"$t": <microseconds>}``.

    Raises TypeError for a naive datetime or a value JSON cannot represent, and ValueError
    for a value that refers to itself.
    """
    return _encode(value)


def decode_value(text: str) -> Any:
    """The value of JSON text written by ``encode_value``, with timestamps revived."""
    return _revive(json.loads(text))


def _revive(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and _TIME_TAG in value:
            return us_to_datetime(value[_TIME_TAG])
        return {name: _revive(item) for name, item in value.items()}
    if isinstance(value, list):
        return [_revive(item) for item in value]
    return value
