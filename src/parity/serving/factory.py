"""Wiring a workspace into a PredictionService: online features, registry, feature log."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from parity.serving.metrics import ServiceMetrics
from parity.serving.service import FeatureFn, PredictionService
from parity.serving.slot import ModelSlot


def online_feature_fn(online: Any, feature_sets: Mapping[str, Any]) -> FeatureFn:
    """A FeatureFn over an OnlineFeatures: one call per request, batched for many contexts."""

    def features(
        sets: Sequence[str], contexts: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        if len(contexts) == 1:
            return [online.get_features(list(sets), contexts[0])]
        table = online.get_features_batch(list(sets), list(contexts))
        names = [f.name for s in sets for f in feature_sets[s].features]
        rows: list[dict[str, Any]] = table.select(names).to_pylist()
        return rows

    return features


def build_service(
    workspace: Any,
    models: Sequence[str] | None = None,
    log: bool | None = None,
    sample_rate: float | None = None,
    poll_interval: float | None = None,
) -> PredictionService:
    """A service for ``models`` (default: ``serving.models`` in parity.yaml, else every model
    with a ``live`` alias) with feature logging as configured under ``serving.feature_log``."""
    config: dict[str, Any] = dict(workspace.config.get("serving") or {})
    registry = workspace.registry
    names = list(models or config.get("models") or [])
    if not names:
        names = [m for m in registry.list_models() if "live" in registry.aliases(m)]
    feature_sets = workspace.definitions.feature_sets
    slots = {name: ModelSlot(name, registry, feature_sets) for name in names}
    log_config: dict[str, Any] = dict(config.get("feature_log") or {})
    writer = None
    if log if log is not None else log_config.get("enabled", True):
        from parity.featurelog import FeatureLogWriter

        rate = sample_rate if sample_rate is not None else float(log_config.get("sample_rate", 1.0))
        writer = FeatureLogWriter(
            workspace.feature_log_dir, sample_rate=rate,
            on_full="block" if log_config.get("on_full") == "block" else "drop",
            queue_size=int(log_config.get("queue_size", 10_000)),
        )
    return PredictionService(
        slots,
        online_feature_fn(workspace.online, feature_sets),
        feature_log=writer,
        metrics=ServiceMetrics(),
        poll_interval=float(poll_interval or config.get("poll_interval", 1.0)),
    )
