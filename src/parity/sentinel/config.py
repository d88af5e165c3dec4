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
        latency: {budget_ms: 20}
        webhook: https://hooks.example.com/ml-alerts

Durations are written like ``90s``, ``15m``, ``2h``, ``7d`` (or a number of seconds). Every
unknown key is refused with the list of known ones, so a typo never silently disables a check.
The same objects can be built in code: ``SentinelConfig(latency=LatencyConfig(budget_ms=20))``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from parity.errors import DefinitionError, WorkspaceError
from parity.sentinel.config_values import coerce

CHECK_NAMES = (
    "artifact",
    "contract",
    "dependent_data",
    "shadow_accuracy",
    "segments",
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
    """Non-inferiority of the candidate on recent labelled traffic it was not trained on.

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
    gap: float | None = _opt(None, "optduration")
    require_training_window: bool = _opt(True, "bool")


@dataclass(frozen=True)
class SegmentsConfig:
    """Per-segment comparison with live (see ``parity.sentinel.checks.segments``).

    ``columns``: segment columns (None: each categorical feature and request field, and the
    ``top_numeric`` numeric features most associated with live's scores); ``bands`` quantile
    bands and the top/bottom ``tails`` per numeric column; ``min_rows`` and ``min_per_class``
    for a segment to be judged; ``metric`` and ``margin`` default to shadow_accuracy's;
    ``alpha`` is the Holm family-wise level.
    """

    columns: tuple[str, ...] | None = _opt(None, "optstrs")
    top_numeric: int = _opt(3, "int")
    bands: int = _opt(4, "int")
    tails: tuple[float, ...] = _opt((0.1, 0.02), "floats")
    max_categories: int = _opt(20, "int")
    min_rows: int = _opt(100, "int")
    min_per_class: int = _opt(10, "int")
    metric: str | None = _opt(None, "optstr")
    margin: float | None = _opt(None, "optfloat")
    alpha: float = _opt(0.05, "float")
    bootstrap: int = _opt(400, "int")


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

    Absolute: the ECE exceeds both ``max_ece`` and the ``1 - alpha`` quantile of the ECE a
    perfectly calibrated model would show on this many rows (likewise the gap between mean
    prediction and observed rate against ``max_mean_gap``). Relative: the paired bootstrap
    ``confidence`` interval of (candidate ECE - live ECE) on the same rows lies wholly above
    ``max_ece_increase`` or ``relative_increase`` times live's ECE, whichever is larger (a
    world that miscalibrates both models makes small differences between them large in
    absolute terms); the mean gap likewise. With a live model the relative test decides (a
    candidate over the absolute limit but no worse than live gets a warning); without one,
    the absolute test.
    """

    max_ece: float = _opt(0.05, "float")
    max_mean_gap: float = _opt(0.05, "float")
    max_ece_increase: float = _opt(0.01, "float")
    relative_increase: float = _opt(0.25, "float")
    confidence: float = _opt(0.95, "float")
    bootstrap: int = _opt(200, "int")
    bins: int = _opt(10, "int")
    alpha: float = _opt(0.01, "float")
    min_samples: int = _opt(1000, "int")


@dataclass(frozen=True)
class LatencyConfig:
    """Scoring time of one request (``batch_rows`` rows), judged two ways.

    Relative: the candidate/live ratio of median per-call times, timed interleaved on the same
    rows, fails when its ``confidence`` interval lies wholly above ``max_ratio`` (None: off)
    and the candidate's median exceeds ``min_ms``. Absolute: the ``budget_quantile`` of
    per-call times against ``budget_ms`` (None: off), confirmed by a second run before failing.
    """

    budget_ms: float | None = _opt(50.0, "optfloat")
    budget_quantile: float = _opt(0.9, "float")
    max_ratio: float | None = _opt(2.0, "optfloat")
    min_ms: float = _opt(1.0, "float")
    confidence: float = _opt(0.95, "float")
    bootstrap: int = _opt(1000, "int")
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
    "segments": SegmentsConfig,
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
    watcher's polling period; ``seed`` fixes every random draw (bootstrap, subsamples);
    ``scoring_threads`` caps BLAS/OpenMP threads while the sentinel scores models (0: no cap).
    """

    checks: tuple[str, ...] = _opt(CHECK_NAMES, "strs")
    allow_not_enough_data: tuple[str, ...] = _opt((), "strs")
    seed: int = _opt(0, "int")
    webhook: str | None = _opt(None, "optstr")
    interval: float = _opt(60.0, "duration")
    scoring_threads: int = _opt(1, "int")
    artifact: ArtifactConfig = field(default_factory=ArtifactConfig)
    contract: ContractConfig = field(default_factory=ContractConfig)
    dependent_data: DependentDataConfig = field(default_factory=DependentDataConfig)
    labels: LabelsConfig = field(default_factory=LabelsConfig)
    shadow_accuracy: ShadowConfig = field(default_factory=ShadowConfig)
    segments: SegmentsConfig = field(default_factory=SegmentsConfig)
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
        if not 0 < self.latency.budget_quantile < 1:
            raise WorkspaceError(
                f"sentinel: latency.budget_quantile must lie between 0 and 1 (0.9 judges the "
                f"p90), got {self.latency.budget_quantile}")
        if self.segments.metric is not None and self.segments.metric not in METRICS:
            raise WorkspaceError(
                f"sentinel: segments.metric {self.segments.metric!r} is not supported; use one "
                f"of {', '.join(METRICS)}")
        bad_tails = [t for t in self.segments.tails if not 0 < t < 0.5]
        if bad_tails:
            raise WorkspaceError(
                f"sentinel: segments.tails must lie between 0 and 0.5 (0.02 is the top and "
                f"bottom 2%), got {bad_tails}")
        for name in ("alpha",):
            for section in (self.drift, self.calibration, self.segments):
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
    (a model's ``latency: {budget_ms: 20}`` keeps the default ``requests``).
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
            values[name] = coerce(value, spec.metadata.get("kind", "any"), path)
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
    "SegmentsConfig",
    "SentinelConfig",
    "ShadowConfig",
    "config_for",
]
