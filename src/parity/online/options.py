"""Online store settings, in every form the docs show.

An online store is named by a URL whose query may carry settings, or, in ``parity.yaml``,
by a word or a mapping::

    online: sqlite                                   # the workspace's data/online.db
    online: sqlite?lookback=none&tolerance=1h        # same file, with settings
    online: memory
    online: redis://127.0.0.1:6379/0?prefix=shop&lookback=6h
    online: {kind: sqlite, lookback: 30d, tolerance: 1h}
    online: {kind: redis, url: "redis://127.0.0.1:6379/0", prefix: shop}

Settings: ``lookback`` (a duration or ``none``: keep everything), ``tolerance`` (how far the
store may be behind the fact log and still be ready; default 0), ``flush_every``,
``flush_seconds``, ``max_segments``, and ``prefix`` (Redis only). Anything else is refused
with ConfigError naming the setting and the known ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from parity.errors import ConfigError, DefinitionError
from parity.timeutil import parse_duration

SETTINGS = ("lookback", "tolerance", "flush_every", "flush_seconds", "max_segments")
STORE_SETTINGS = ("prefix",)  # read by the store itself (Redis), not by OnlineFeatures
_KINDS = ("sqlite", "memory", "redis")
_MAPPING_KEYS = ("kind", "url", *SETTINGS, *STORE_SETTINGS)


def split_url(url: str) -> tuple[str, dict[str, Any]]:
    """``url`` without its ``OnlineFeatures`` settings, and those settings, parsed.

    Store settings (``prefix``) stay in the URL. ConfigError for an unknown setting or a
    value that does not parse.
    """
    parts = urlsplit(url)
    settings: dict[str, Any] = {}
    kept: list[tuple[str, str]] = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in STORE_SETTINGS:
            kept.append((name, value))
        elif name in SETTINGS:
            settings[name] = parse_setting(name, value, url)
        else:
            raise ConfigError(_unknown(name, f"online store URL {url!r}"))
    base = url.split("?", 1)[0]  # not urlunsplit: it drops the empty host of sqlite:///path
    return (f"{base}?{urlencode(kept)}" if kept else base), settings


def parse_setting(name: str, value: Any, where: str) -> Any:
    """One setting's value, checked and converted (durations stay strings or None)."""
    text = str(value).strip()
    try:
        if name == "lookback":
            if value is None or text.lower() in ("none", "all", "null", ""):
                return None
            parse_duration(text, "lookback")
            return text
        if name == "tolerance":
            if text in ("0", "0s", "none", "", "None"):
                return "0s"
            parse_duration(text, "tolerance")
            return text
        if name in ("flush_every", "max_segments"):
            number = int(text)
            if number < 1:
                raise ConfigError(f"must be a whole number >= 1, got {text}")
            return number
        if name == "flush_seconds":
            seconds = float(text)
            if seconds < 0:
                raise ConfigError(f"must be a number of seconds >= 0, got {text}")
            return seconds
    except (ValueError, DefinitionError) as exc:
        raise ConfigError(
            f"{where}: online setting {name}={value!r} is not valid ({exc}); {_HINTS.get(name, '')}"
        ) from None
    raise ConfigError(_unknown(name, where))


def tolerance_us(value: str | timedelta | None) -> int:
    """The tolerance in microseconds: 0 for None, ``0``/``0s`` or a zero timedelta.

    ConfigError for anything else that is not a positive duration.
    """
    if value is None or value == timedelta(0):
        return 0
    if isinstance(value, str) and value.strip() in ("0", "0s"):
        return 0
    try:
        return parse_duration(value, "tolerance") or 0
    except DefinitionError as exc:
        raise ConfigError(f"online setting tolerance={value!r}: {exc}") from None


def from_config(
    value: str | Mapping[str, Any] | None, sqlite_path: Path
) -> tuple[str, dict[str, Any]]:
    """The store URL and settings that ``online:`` in parity.yaml names.

    ``sqlite_path`` is the workspace's own file, used for ``sqlite`` without a path.
    """
    if value is None:
        value = "sqlite"
    if isinstance(value, Mapping):
        return _from_mapping(value, sqlite_path)
    if not isinstance(value, str):
        raise ConfigError(
            f"parity.yaml online: {value!r} is not a store; write a word (sqlite, memory), a "
            f"URL (redis://127.0.0.1:6379/0) or a mapping (online: {{kind: sqlite, "
            f"lookback: 30d}})"
        )
    word, _, query = value.partition("?")
    if word == "sqlite":
        url = f"sqlite:///{sqlite_path.as_posix().lstrip('/')}"
    elif word in ("memory", "memory://"):
        url = "memory://"
    else:
        return split_url(value)
    return split_url(f"{url}?{query}" if query else url)


def _from_mapping(value: Mapping[str, Any], sqlite_path: Path) -> tuple[str, dict[str, Any]]:
    unknown = [k for k in value if k not in _MAPPING_KEYS]
    if unknown:
        raise ConfigError(_unknown(str(unknown[0]), "parity.yaml online", mapping=True))
    kind = str(value.get("kind") or "")
    if kind not in _KINDS:
        raise ConfigError(
            f"parity.yaml online: kind={value.get('kind')!r} is not a store; use one of "
            f"{', '.join(_KINDS)}, e.g. online: {{kind: sqlite, lookback: 30d}}"
        )
    url = str(value.get("url") or "")
    if not url:
        url = {
            "sqlite": f"sqlite:///{sqlite_path.as_posix().lstrip('/')}",
            "memory": "memory://",
            "redis": "redis://127.0.0.1:6379/0",
        }[kind]
    elif {"rediss": "redis"}.get(urlsplit(url).scheme, urlsplit(url).scheme) != kind:
        raise ConfigError(
            f"parity.yaml online: kind={kind!r} but url={url!r} names another store; make "
            f"them agree, e.g. kind: redis with url: redis://127.0.0.1:6379/0"
        )
    url, settings = split_url(url)
    if value.get("prefix") is not None:
        if kind != "redis":
            raise ConfigError(
                f"parity.yaml online: prefix is a Redis setting and kind is {kind!r}; remove it"
            )
        url = f"{url}{'&' if '?' in url else '?'}{urlencode({'prefix': value['prefix']})}"
    for name in SETTINGS:
        if name in value:
            settings[name] = parse_setting(name, value[name], "parity.yaml online")
    return url, settings


_HINTS = {
    "lookback": "write a duration such as 6h or 30d, or none to keep everything",
    "tolerance": "write a duration such as 15m or 1h, or 0",
    "flush_every": "write a whole number of facts, at least 1",
    "max_segments": "write a whole number, at least 1",
    "flush_seconds": "write a number of seconds, 0 or more",
}


def _unknown(name: str, where: str, mapping: bool = False) -> str:
    known = list(_MAPPING_KEYS) if mapping else [*SETTINGS, *STORE_SETTINGS]
    return (
        f"{where}: unknown online setting {name!r}; the known settings are "
        f"{', '.join(known)} (prefix for Redis only)"
    )
