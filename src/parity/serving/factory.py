"""Wiring a workspace into a PredictionService: online features, registry, feature log."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from parity.definitions import FeatureSet
from parity.errors import InputError
from parity.featurelog import FeatureLogWriter, LogSchema, open_worker_writer
from parity.featurelog.columns import KEY_PREFIX, REQUEST_PREFIX
from parity.serving.config import ServingConfig
from parity.serving.metrics import ServiceMetrics
from parity.serving.protocols import ModelRegistry, OnlineReader
from parity.serving.service import FeatureFn, Features, PredictionService
from parity.serving.slot import ModelSlot
from parity.serving.validation import ANY, request_types
from parity.timeutil import TIMESTAMP_TYPE

_ARROW = {"int": pa.int64(), "float": pa.float64(), "str": pa.string(), "bool": pa.bool_()}


class Definitions(Protocol):
    """What serving reads of the workspace's definitions."""

    @property
    def feature_sets(self) -> Mapping[str, FeatureSet]: ...


class ServedWorkspace(Protocol):
    """What ``build_service`` reads of a ``parity.Workspace``."""

    @property
    def config(self) -> Mapping[str, Any]: ...

    @property
    def registry(self) -> ModelRegistry: ...

    @property
    def definitions(self) -> Definitions: ...

    @property
    def online(self) -> OnlineReader: ...

    @property
    def feature_log_dir(self) -> Path: ...


def online_feature_fn(online: OnlineReader, feature_sets: Mapping[str, FeatureSet]) -> FeatureFn:
    """A FeatureFn over an OnlineFeatures: one ``answer`` call per request (any batch size)."""

    def features(sets: Sequence[str], contexts: Sequence[Mapping[str, Any]]) -> Features:
        try:
            # An Arrow table, not dicts: answer() would go through pandas (~5 ms per call).
            table = pa.Table.from_pylist(list(contexts))
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise InputError(
                f"request fields of different types in one batch ({exc}); send each field "
                f"with one type, or declare it under serving.request_types in parity.yaml"
            ) from exc
        answer = online.answer(list(sets), table)
        names = [f.name for s in sets for f in feature_sets[s].features]
        rows: list[dict[str, Any]] = answer.table.select(names).to_pylist()
        return Features(rows, list(answer.found), list(answer.live))

    return features


def log_schema(feature_sets: Sequence[FeatureSet], declared: Mapping[str, Any]) -> LogSchema:
    """The feature log's fixed column types: keys from the entities, request fields from
    their declared types (``any`` fields as JSON text). A name two definitions type
    differently is left to the values."""
    types: dict[str, pa.DataType] = {}
    conflicts: set[str] = set()
    for fs in feature_sets:
        for key, dtype in fs.entity.keys.items():
            name, typ = KEY_PREFIX + key, _ARROW[dtype]
            if types.setdefault(name, typ) != typ:
                conflicts.add(name)
    json: set[str] = set()
    for field, kind in request_types(feature_sets, declared).items():
        name = REQUEST_PREFIX + field
        if kind == ANY:
            json.add(name)
        elif kind == "timestamp":
            types[name] = TIMESTAMP_TYPE
        else:
            types[name] = _ARROW[kind]
    for name in conflicts:
        types.pop(name, None)
    return LogSchema(types, frozenset(json))


def build_service(
    workspace: ServedWorkspace,
    models: Sequence[str] | None = None,
    log: bool | None = None,
    sample_rate: float | None = None,
    poll_interval: float | None = None,
    sync: bool | None = None,
    *,
    worker: bool = False,
    metrics_dir: str | None = None,
) -> PredictionService:
    """A service for ``models`` (default: ``serving.models`` in parity.yaml, else every model
    with a ``live`` alias) configured from the ``serving`` section (see ``config``); the
    arguments override it. ConfigError for a wrong value in parity.yaml.

    ``worker=True`` (a ``parity serve --workers N`` process) logs to the first free worker
    folder of the feature log (``w0``, ``w1``, ...; readers merge them) instead of the log's
    own folder, and ``metrics_dir`` is its Prometheus multiprocess folder (see ``metrics``).
    """
    config = ServingConfig.from_mapping(workspace.config.get("serving"))
    registry = workspace.registry
    names = list(models or config.models)
    if not names:
        names = [m for m in registry.list_models() if "live" in registry.aliases(m)]
    feature_sets = dict(workspace.definitions.feature_sets)
    slots = {name: ModelSlot(name, registry, feature_sets) for name in names}
    settings = config.feature_log
    writer = None
    if log if log is not None else settings.enabled:
        options: dict[str, Any] = {
            "sample_rate": sample_rate if sample_rate is not None else settings.sample_rate,
            "on_full": "block" if settings.on_full == "block" else "drop",
            "queue_size": settings.queue_size,
            "schema": log_schema(list(feature_sets.values()), config.request_types),
        }
        if worker:
            _index, writer = open_worker_writer(workspace.feature_log_dir, **options)
        else:
            writer = FeatureLogWriter(workspace.feature_log_dir, **options)
    online = workspace.online
    return PredictionService(
        slots,
        online_feature_fn(online, feature_sets),
        feature_log=writer,
        metrics=ServiceMetrics(metrics_dir),
        poll_interval=float(poll_interval or config.poll_interval),
        readiness=online.readiness,
        limits=config.limits,
        request_types=config.request_types,
        sync_log=settings.sync if sync is None else sync,
        sync_timeout=settings.sync_timeout_s,
        threads=config.threads,
    )
