"""The ``serving:`` section of parity.yaml, checked once at startup.

    serving:
      models: [churn]            # default: every model with a live alias
      admin_token: s3cret        # a string; admin endpoints are off without it
      poll_interval: 1.0         # seconds between checks of the live alias
      threads: 1                 # BLAS/OpenMP threads per scoring call (null: no limit)
      max_body_bytes: 1048576    # 1 MiB
      max_field_bytes: 65536     # 64 KiB per key, request field or request_id
      max_batch: 1000            # contexts per predict-batch call
      request_types: {discount: float}   # overrides transform annotations
      feature_log:
        enabled: true
        sync: false              # true: answer only after the record is fsynced
        sync_timeout_s: 5
        sample_rate: 1.0
        on_full: drop            # or block
        queue_size: 10000

Every value of the wrong type is a ConfigError naming the key and the fix, at startup.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from parity.errors import ConfigError
from parity.serving.validation import Limits, declared_type

_KNOWN = {"models", "admin_token", "poll_interval", "threads", "max_body_bytes",
          "max_field_bytes", "max_batch", "request_types", "feature_log"}
_LOG_KNOWN = {"enabled", "sync", "sync_timeout_s", "sample_rate", "on_full", "queue_size"}


@dataclass(frozen=True)
class FeatureLogSettings:
    """``serving.feature_log``."""

    enabled: bool = True
    sync: bool = False
    sync_timeout_s: float = 5.0
    sample_rate: float = 1.0
    on_full: str = "drop"
    queue_size: int = 10_000


@dataclass(frozen=True)
class ServingConfig:
    """The checked ``serving:`` section."""

    models: list[str] = field(default_factory=list)
    admin_token: str | None = None
    poll_interval: float = 1.0
    threads: int | None = 1
    limits: Limits = field(default_factory=Limits)
    request_types: dict[str, Any] = field(default_factory=dict)
    feature_log: FeatureLogSettings = field(default_factory=FeatureLogSettings)

    @classmethod
    def from_mapping(cls, raw: Any) -> ServingConfig:
        """Check ``raw`` (the ``serving`` value of parity.yaml, None when absent)."""
        section = _section(raw, "serving", _KNOWN)
        token = section.get("admin_token")
        if token is not None and (not isinstance(token, str) or not token):
            raise ConfigError(
                f"parity.yaml serving.admin_token: {type(token).__name__} value; it must be a "
                f"non-empty string. Quote it: admin_token: \"{token}\""
            )
        threads = section.get("threads", 1)
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                    or threads < 1):
            raise ConfigError(f"parity.yaml serving.threads: {threads!r} is not a positive "
                              f"integer; write threads: 1, or threads: null for no limit")
        models = section.get("models") or []
        if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
            raise ConfigError(f"parity.yaml serving.models: {models!r} is not a list of model "
                              f"names; write e.g. models: [churn]")
        request_types = section.get("request_types") or {}
        if not isinstance(request_types, Mapping):
            raise ConfigError(f"parity.yaml serving.request_types: {request_types!r} is not a "
                              f"mapping; write e.g. request_types: {{discount: float}}")
        request_types = {str(k): declared_type(str(k), v) for k, v in request_types.items()}
        log = _section(section.get("feature_log"), "serving.feature_log", _LOG_KNOWN)
        settings = FeatureLogSettings(
            enabled=_bool(log, "enabled", True),
            sync=_bool(log, "sync", False),
            sync_timeout_s=_number(log, "sync_timeout_s", 5.0),
            sample_rate=_number(log, "sample_rate", 1.0, upper=1.0),
            on_full=_choice(log, "on_full", ("drop", "block")),
            queue_size=int(_number(log, "queue_size", 10_000, integer=True)),
        )
        return cls(
            models=list(models), admin_token=token,
            poll_interval=_number(section, "poll_interval", 1.0),
            threads=threads, limits=Limits.from_config(section),
            request_types=dict(request_types), feature_log=settings,
        )


def _section(raw: Any, name: str, known: set[str]) -> Mapping[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"parity.yaml {name}: expected a mapping, got {raw!r}")
    unknown = sorted(str(k) for k in raw if k not in known)
    if unknown:
        raise ConfigError(f"parity.yaml {name}: unknown key(s) {', '.join(unknown)}; the known "
                          f"keys are {', '.join(sorted(known))}")
    return raw


def _bool(section: Mapping[str, Any], key: str, default: bool) -> bool:
    value = section.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"parity.yaml serving.feature_log.{key}: {value!r} is not true/false")
    return value


def _number(section: Mapping[str, Any], key: str, default: float, upper: float | None = None,
            integer: bool = False) -> float:
    value = section.get(key, default)
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or value <= 0 or (upper is not None and value > upper):
        bound = f" and at most {upper}" if upper is not None else ""
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"parity.yaml serving {key}: {value!r} must be {kind} above 0{bound}")
    return float(value)


def _choice(section: Mapping[str, Any], key: str, choices: tuple[str, ...]) -> str:
    value = section.get(key, choices[0])
    if value not in choices:
        raise ConfigError(f"parity.yaml serving.feature_log.{key}: {value!r}; use one of "
                          f"{', '.join(choices)}")
    return str(value)
