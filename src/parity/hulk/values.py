"""What a publication stores: string keys and JSON-encoded outputs of one of four kinds.

- ``scalar``: a number (a score, a probability);
- ``label``: a string or a bool (a class);
- ``vector``: a list of numbers (an embedding);
- ``ranked``: a list of ``{"item": ..., "score": ...}``, best first (top-k).

Keys are the entity key values: one key column gives its value as text (``"12347"``), several
are joined with ``|`` in key-column order. Values are stored as compact JSON bytes, so every
backend stores the same bytes and the manifest's checksum means the same thing everywhere.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from parity.errors import InputError

OutputKind = Literal["scalar", "label", "vector", "ranked"]
KINDS: tuple[OutputKind, ...] = ("scalar", "label", "vector", "ranked")
KEY_SEPARATOR = "|"


def normalize_output(value: Any) -> Any:
    """A plain JSON-ready form of one output; top-k ``{class, probability}`` becomes
    ``{item, score}``, numpy scalars become Python numbers, NaN becomes None (unknown)."""
    if value is None:
        return None
    if hasattr(value, "tolist") and getattr(value, "ndim", None) == 0:
        value = value.item()  # a numpy scalar (an array has ndim >= 1 and is a list below)
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, (bool, int, str)):
        return value
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, Mapping):
        if "item" in value and "score" in value:
            return {"item": _plain(value["item"]), "score": _number(value["score"])}
        if "class" in value and "probability" in value:
            return {"item": _plain(value["class"]), "score": _number(value["probability"])}
        raise InputError(
            f"output {value!r}: a ranked entry must have 'item' and 'score' keys; return "
            f"[{{'item': ..., 'score': ...}}, ...] best first"
        )
    if isinstance(value, (list, tuple)):
        return [normalize_output(v) for v in value]
    raise InputError(
        f"output {value!r} of type {type(value).__name__} cannot be published; return a "
        f"number, a string, a list of numbers or a list of {{'item', 'score'}} entries"
    )


def kind_of(value: Any) -> OutputKind | None:
    """The kind of one normalized output (None for a null, and for an empty list, which
    fits any list kind: an empty top-k is a known "nothing", counted as a value)."""
    if value is None:
        return None
    if isinstance(value, (bool, str)):
        return "label"
    if isinstance(value, (int, float)):
        return "scalar"
    if isinstance(value, list):
        if not value:
            return None
        if all(isinstance(v, dict) for v in value):
            return "ranked"
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            return "vector"
    raise InputError(
        f"output {value!r} mixes kinds; a list must hold only numbers or only "
        f"{{'item', 'score'}} entries"
    )


def numeric_projection(value: Any, kind: OutputKind) -> float | None:
    """One number per output for distribution checks: the value, a vector's L2 norm, or a
    ranked list's top score. None for a null and for labels (compared by category)."""
    if value is None or kind == "label":
        return None
    if kind == "scalar":
        return float(value)
    if kind == "vector":
        return math.sqrt(sum(float(v) * float(v) for v in value))
    return float(value[0]["score"]) if value else None


def encode_value(value: Any) -> bytes:
    """The stored bytes of a normalized output."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, allow_nan=False).encode()


def decode_value(raw: bytes | str | None) -> Any:
    """The output stored as ``raw`` (None stays None: the caller tells missing from null)."""
    if raw is None:
        return None
    return json.loads(raw)


def key_string(key: Any, key_columns: Sequence[str]) -> str:
    """The stored key of an entity key given as a value, a tuple, or a dict by column."""
    if isinstance(key, Mapping):
        missing = [c for c in key_columns if c not in key]
        if missing:
            raise InputError(
                f"key {dict(key)!r} lacks key column(s) {', '.join(missing)}; this publication "
                f"is keyed by {', '.join(key_columns)}"
            )
        parts = [key[c] for c in key_columns]
    elif isinstance(key, (tuple, list)):
        parts = list(key)
    else:
        parts = [key]
    if len(parts) != len(key_columns):
        raise InputError(
            f"key {key!r} has {len(parts)} part(s); this publication is keyed by "
            f"{', '.join(key_columns)} ({len(key_columns)} part(s))"
        )
    return KEY_SEPARATOR.join(_key_part(p) for p in parts)


def _key_part(value: Any) -> str:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 12347.0 from a float column is customer 12347
    if value is None:
        raise InputError("a key value is null; every key column must have a value")
    text = str(value)
    if KEY_SEPARATOR in text:
        raise InputError(f"key value {text!r} contains {KEY_SEPARATOR!r}, the key separator")
    return text


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _number(value: Any) -> float | None:
    number = float(_plain(value))
    return None if math.isnan(number) else number
