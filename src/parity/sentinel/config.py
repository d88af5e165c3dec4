"""Sentinel configuration: which checks run, with which thresholds, per model.

In ``parity.yaml`` the ``sentinel:`` section is keyed by model name; ``defaults`` applies to
every model and a model's own section overrides it, one check at a time::

    sentinel:
      defaults:
        shadow_accuracy: {metric: auc, margin: 0.01}
      churn:
        checks: [artifact, contract, dependent_data, shadow_accuracy, drift, calibration, latency]
        dependent_data: {max_age: {plays: 2h}, default_max_age: 1d}
        labels: {source: churned, window: 30d}
        latency: {p99_ms: 20}
        webhook: https://hooks.example.com/ml-alerts

Durations are written like ``90s``, ``15m``, ``2h``, ``7d`` (or a number of seconds). Every
unknown key is refused with the list of known ones, so a typo never silently disables a check.
The same objects can be built in code: ``SentinelConfig(latency=LatencyConfig(p99_ms=20))``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import timedelta
from typing import Any

from parity.errors import DefinitionError, WorkspaceError
from parity.timeutil import parse_duration

CHECK_NAMES = (
    "artifact",
    "contract",
    "dependent_data",
    "shadow_accuracy",
    "drift",
    "calibration",
    "latency",
)
METRICS = ("auc", "log_loss", "accuracy", "brier", "mse", "mae")
DAY = 86_400.0


def _opt(default: Any, kind: str) -> Any:
    """A dataclass field with a default and a coercion ``kind`` used by ``from_dict``."""
    return field(default=default, metadata={"kind": kind})


@dataclass(frozen=True)
class ArtifactConfig:
    """Load and predict in a child process: ``timeout`` (s) and address-space ``memory_mb``."""

    timeout: float = _opt(120.0, "duration")
    memory_mb: int = _opt(4096, "int")
    sample_rows: int = _opt(200, "int")


@dataclass(frozen=True)
class ContractConfig:
    """Declared output range (defaults: [0, 1] for probabilities, unbounded otherwise)."""

    output_min: float | None = _opt(None, "optfloat")
    output_max: float | None = _opt(None, "optfloat")
    check_online: bool = _opt(True, "bool")


@dataclass(frozen=True)
class DependentDataConfig:
    """Freshness limit per source (``max_age``), a default for the rest, and extra needs.

    ``requires`` lists further sources (by name) that must hold fresh data, and files or
    folders (anything containing ``/``) that must exist.
    """

    max_age: dict[str, float] = field(default_factory=dict, metadata={"kind": "durations"})
    default_max_age: float = _opt(DAY, "duration")
    requires: tuple[str, ...] = _opt((), "strs")


@dataclass(frozen=True)
class LabelsConfig:
    """How shadow rows get their labels from the fact log (see ``training_set_from_log``)."""

    source: str | None = _opt(None, "optstr")
    window: float = _opt(DAY, "duration")
    how: str = _opt("any", "str")
    keys: tuple[str, ...] | None = _opt(None, "optstrs")
    name: str = _opt("label", "str")


@dataclass(frozen=True)
class ShadowConfig:
    """Non-inferiority of the candidate on recent labelled traffic.

    Pass when the lower end of the ``confidence`` paired bootstrap interval of the metric
    difference (candidate minus live, oriented so that higher is better) is above
    ``-margin``. With no live model: above ``floor`` if one is set, else strictly better
    than a no-skill baseline. ``anchor`` (a version number or alias) adds the same test
    against a fixed model with ``anchor_margin``.
    """

    metric: str = _opt("auc", "str")
    margin: float = _opt(0.01, "float")
    confidence: float = _opt(0.95, "float")
    bootstrap: int = _opt(1000, "int")
    min_samples: int = _opt(1000, "int")
    min_per_class: int = _opt(50, "int")
    floor: float | None = _opt(None, "optfloat")
    anchor: int | str | None = _opt(None, "ref")
    anchor_margin: float = _opt(0.02, "float")
    window: float | None = _opt(7 * DAY, "optduration")
    max_rows: int = _opt(100_000, "int")


@dataclass(frozen=True)
class DriftConfig:
    """Training vs recent live feature distributions, per feature.

    A feature drifts when its PSI exceeds both ``psi`` and what sampling noise alone would
    give at the ``alpha`` level, *and* its KS (numbers) or chi-squared (categories) test
    rejects at ``alpha`` divided by the number of features. More than ``max_drifted``
    drifted features fail the check.
    """

    psi: float = _opt(0.2, "float")
    alpha: float = _opt(0.01, "float")
    bins: int = _opt(10, "int")
    min_samples: int = _opt(500, "int")
    max_rows: int = _opt(20_000, "int")
    max_drifted: int = _opt(0, "int")
    max_categories: int = _opt(50, "int")
    features: tuple[str, ...] | None = _opt(None, "optstrs")


@dataclass(frozen=True)
class CalibrationConfig:
    """Expected calibration error over ``bins`` equal-mass bins, and mean prediction vs rate.

    Fails when the ECE exceeds both ``max_ece`` and the ``1 - alpha`` quantile of the ECE a
    perfectly calibrated model would show on this many rows; likewise for the gap between
    mean prediction and observed rate against ``max_mean_gap``.
    """

    max_ece: float = _opt(0.05, "float")
    max_mean_gap: float = _opt(0.05, "float")
    bins: int = _opt(10, "int")
    alpha: float = _opt(0.01, "float")
    min_samples: int = _opt(1000, "int")


@dataclass(frozen=True)
class LatencyConfig:
    """The candidate's p99 time to score one request (``batch_rows`` rows), in milliseconds."""

    p99_ms: float = _opt(50.0, "float")
    requests: int = _opt(300, "int")
    warmup: int = _opt(20, "int")
    batch_rows: int = _opt(1, "int")
    max_seconds: float = _opt(60.0, "duration")


_SECTIONS: dict[str, type[Any]] = {
    "artifact": ArtifactConfig,
    "contract": ContractConfig,
    "dependent_data": DependentDataConfig,
    "labels": LabelsConfig,
    "shadow_accuracy": ShadowConfig,
    "drift": DriftConfig,
    "calibration": CalibrationConfig,
    "latency": LatencyConfig,
}


@dataclass(frozen=True)
class SentinelConfig:
    """Everything the sentinel needs to judge one model. Defaults suit a binary classifier.

    ``checks`` are run in order (names of built-in or registered checks);
    ``allow_not_enough_data`` lists checks whose "not enough data" does not hold a model back;
    ``webhook`` is POSTed a JSON alert when a candidate is stopped; ``interval`` is the
    watcher's polling period; ``seed`` fixes every random draw (bootstrap, subsamples).
    """

    checks: tuple[str, ...] = _opt(CHECK_NAMES, "strs")
    allow_not_enough_data: tuple[str, ...] = _opt((), "strs")
    seed: int = _opt(0, "int")
    webhook: str | None = _opt(None, "optstr")
    interval: float = _opt(60.0, "duration")
    artifact: ArtifactConfig = field(default_factory=ArtifactConfig)
    contract: ContractConfig = field(default_factory=ContractConfig)
    dependent_data: DependentDataConfig = field(default_factory=DependentDataConfig)
    labels: LabelsConfig = field(default_factory=LabelsConfig)
    shadow_accuracy: ShadowConfig = field(default_factory=ShadowConfig)
    drift: DriftConfig = field(default_factory=DriftConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    latency: LatencyConfig = field(default_factory=LatencyConfig)

    def __post_init__(self) -> None:
        metric = self.shadow_accuracy.metric
        if metric not in METRICS:
            raise WorkspaceError(
                f"sentinel: shadow_accuracy.metric {metric!r} is not supported; use one of "
                f"{', '.join(METRICS)}"
            )
        if not 0.5 < self.shadow_accuracy.confidence < 1:
            raise WorkspaceError(
                f"sentinel: shadow_accuracy.confidence must lie between 0.5 and 1, got "
                f"{self.shadow_accuracy.confidence}"
            )
        for name in ("alpha",):
            for section in (self.drift, self.calibration):
                value = getattr(section, name)
                if not 0 < value < 1:
                    raise WorkspaceError(f"sentinel: {name} must lie between 0 and 1, got {value}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, where: str = "sentinel") -> SentinelConfig:
        """Build from a parsed YAML mapping; WorkspaceError naming any bad key or value."""
        return _build(cls, data or {}, where)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (durations in seconds)."""
        return asdict(self)

    def with_checks(self, *checks: str) -> SentinelConfig:
        """A copy that runs only ``checks``."""
        return replace(self, checks=tuple(checks))


def config_for(section: Mapping[str, Any] | None, model: str) -> SentinelConfig:
    """The configuration of ``model`` from a ``sentinel:`` section keyed by model name.

    ``section["defaults"]`` applies first, ``section[model]`` overrides it section by section
    (a model's ``latency: {p99_ms: 20}`` keeps the default ``requests``).
    """
    section = section or {}
    if not isinstance(section, Mapping):
        raise WorkspaceError(
            f"parity.yaml: 'sentinel' must map model names to settings, not "
            f"{type(section).__name__}"
        )
    merged: dict[str, Any] = {}
    for part in (section.get("defaults"), section.get(model)):
        if part is None:
            continue
        if not isinstance(part, Mapping):
            raise WorkspaceError(
                f"parity.yaml: sentinel settings must be a mapping, got {part!r}"
            )
        for key, value in part.items():
            if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
    return SentinelConfig.from_dict(merged, where=f"sentinel.{model}")


def _build(cls: type[Any], data: Mapping[str, Any], where: str) -> Any:
    if not isinstance(data, Mapping):
        raise WorkspaceError(f"parity.yaml: {where} must be a mapping, got {data!r}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise WorkspaceError(
            f"parity.yaml: unknown setting(s) {', '.join(f'{where}.{k}' for k in unknown)}; "
            f"known here: {', '.join(known)}"
        )
    values: dict[str, Any] = {}
    for name, value in data.items():
        spec = known[name]
        path = f"{where}.{name}"
        if name in _SECTIONS and cls is SentinelConfig:
            values[name] = _build(_SECTIONS[name], value or {}, path)
        else:
            values[name] = _coerce(value, spec.metadata.get("kind", "any"), path)
    if cls is SentinelConfig and "checks" in values:
        _check_names(values["checks"], where)
    try:
        return cls(**values)
    except (TypeError, DefinitionError) as err:
        raise WorkspaceError(f"parity.yaml: {where}: {err}") from err


def _check_names(checks: tuple[str, ...], where: str) -> None:
    from parity.sentinel.checks import registered_checks

    known = registered_checks()
    bad = [c for c in checks if c not in known]
    if bad:
        raise WorkspaceError(
            f"parity.yaml: {where}.checks names unknown check(s) {', '.join(bad)}; "
            f"known: {', '.join(known)}"
        )


def _coerce(value: Any, kind: str, path: str) -> Any:
    try:
        return _COERCERS[kind](value, path)
    except (TypeError, ValueError, DefinitionError) as err:
        raise WorkspaceError(f"parity.yaml: {path} = {value!r} is not valid: {err}") from None


def _duration(value: Any, path: str) -> float:
    if isinstance(value, bool):
        raise TypeError("expected a duration such as 90s, 15m, 2h or 7d")
    if isinstance(value, (int, float)):
        if value <= 0:
            raise ValueError("a duration must be positive")
        return float(value)
    if isinstance(value, (str, timedelta)):
        us = parse_duration(value, path)
        assert us is not None
        return us / 1e6
    raise TypeError("expected a duration such as 90s, 15m, 2h or 7d")


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError("expected a number")
    return float(value)


def _integer(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TypeError("expected a whole number >= 0")
    return value


def _strings(value: Any, path: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(v, str) for v in items):
        raise TypeError("expected a list of names")
    return tuple(items)


def _ref(value: Any, path: str) -> int | str | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, str):
        return int(value) if value.isdigit() else value
    raise TypeError("expected a version number or an alias name")


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError("expected true or false")
    return value


def _string(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise TypeError("expected text")
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
    "optstrs": lambda v, p: None if v is None else _strings(v, p),
    "ref": _ref,
    "bool": _bool,
}

__all__ = [
    "CHECK_NAMES",
    "METRICS",
    "ArtifactConfig",
    "CalibrationConfig",
    "ContractConfig",
    "DependentDataConfig",
    "DriftConfig",
    "LabelsConfig",
    "LatencyConfig",
    "SentinelConfig",
    "ShadowConfig",
    "config_for",
]
