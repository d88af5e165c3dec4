"""Setting values of the ``sentinel:`` section: durations, numbers, names, refs, flags.

``coerce(value, kind, path)`` turns one parsed YAML value into what the configuration
dataclasses hold (durations in seconds), or raises WorkspaceError naming the setting.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from parity.errors import ConfigError, DefinitionError, WorkspaceError
from parity.timeutil import parse_duration


def coerce(value: Any, kind: str, path: str) -> Any:
    """``value`` as the setting kind ``kind``; WorkspaceError naming ``path`` if invalid."""
    try:
        return _COERCERS[kind](value, path)
    except (TypeError, ValueError, DefinitionError) as err:
        raise WorkspaceError(f"parity.yaml: {path} = {value!r} is not valid: {err}") from None


def _duration(value: Any, path: str) -> float:
    if isinstance(value, bool):
        raise ConfigError("expected a duration such as 90s, 15m, 2h or 7d")
    if isinstance(value, (int, float)):
        if value <= 0:
            raise ConfigError("a duration must be positive")
        return float(value)
    if isinstance(value, (str, timedelta)):
        us = parse_duration(value, path)
        assert us is not None
        return us / 1e6
    raise ConfigError("expected a duration such as 90s, 15m, 2h or 7d")


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError("expected a number")
    return float(value)


def _integer(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError("expected a whole number >= 0")
    return value


def _floats(value: Any, path: str) -> tuple[float, ...]:
    items = [value] if isinstance(value, (int, float)) else value
    if not isinstance(items, (list, tuple)):
        raise ConfigError("expected a list of numbers")
    return tuple(_number(v, path) for v in items)


def _strings(value: Any, path: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(v, str) for v in items):
        raise ConfigError("expected a list of names")
    return tuple(items)


def _ref(value: Any, path: str) -> int | str | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, str):
        return int(value) if value.isdigit() else value
    raise ConfigError("expected a version number or an alias name")


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError("expected true or false")
    return value


def _string(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise ConfigError("expected text")
    return value


_COERCERS: dict[str, Any] = {
    "any": lambda v, p: v,
    "duration": _duration,
    "optduration": lambda v, p: None if v is None else _duration(v, p),
    "durations": lambda v, p: {str(k): _duration(d, f"{p}.{k}") for k, d in dict(v).items()},
    "float": _number,
    "optfloat": lambda v, p: None if v is None else _number(v, p),
    "int": _integer,
    "str": _string,
    "optstr": lambda v, p: None if v is None else _string(v, p),
    "strs": _strings,
    "floats": _floats,
    "optstrs": lambda v, p: None if v is None else _strings(v, p),
    "ref": _ref,
    "bool": _bool,
}
