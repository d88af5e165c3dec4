"""The prediction service: online features -> predictor -> output, logged for Lumberjack.

It is independent of HTTP: ``app.py`` puts FastAPI in front of it, tests call it directly.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from parity.errors import NotFoundError, NotServingError, ParityError
from parity.serving.metrics import ServiceMetrics
from parity.serving.slot import ModelSlot
from parity.timeutil import to_utc_datetime

UTC = timezone.utc
# (feature set names, contexts) -> one dict of feature values per context. Contexts are dicts
# with the entity keys, "at" and the request fields. Raises InputError for bad contexts.
FeatureFn = Callable[[Sequence[str], Sequence[Mapping[str, Any]]], list[dict[str, Any]]]




@dataclass
class Context:
    """One prediction request: entity keys, moment, request fields."""

    keys: dict[str, Any]
    at: datetime | None = None
    request: dict[str, Any] = field(default_factory=dict)
    request_id: str | None = None


@dataclass
class Prediction:
    """The answer to one context."""

    request_id: str
    model: str
    version: int
    output: Any
    logged: bool


class PredictionService:
    """Serves one or more models; watches their ``live`` alias and hot-swaps new versions."""

    def __init__(
        self,
        slots: Mapping[str, ModelSlot],
        features: FeatureFn,
        feature_log: Any | None = None,
        metrics: ServiceMetrics | None = None,
        poll_interval: float = 1.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.slots = dict(slots)
        self.features = features
        self.feature_log = feature_log
        self.metrics = metrics or ServiceMetrics()
        self.poll_interval = poll_interval
        self.clock = clock
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, watch: bool = True) -> None:
        """Load every model's live version, then watch the aliases in the background."""
        for slot in self.slots.values():
            self._load(slot)
        if watch and self._watcher is None:
            self._watcher = threading.Thread(target=self._watch, name="parity-alias-watch",
                                             daemon=True)
            self._watcher.start()

    def stop(self) -> None:
        """Stop watching and flush the feature log."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        if self.feature_log is not None:
            self.feature_log.close()

    def reload(self, model: str) -> dict[str, Any]:
        """Load the version the alias points at now (blocking); the old one serves meanwhile."""
        report = self._load(self.slot(model))
        return {"model": model, "version": report.version, "ok": report.ok, "error": report.error,
                "seconds": round(report.seconds, 4)}

    def _load(self, slot: ModelSlot) -> Any:
        report = slot.load(slot.target_version())
        self.metrics.swaps.labels(slot.name, "ok" if report.ok else "failed").inc()
        if slot.current is not None:
            self.metrics.model_version.labels(slot.name).set(slot.current.version)
        return report

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_interval):
            for slot in self.slots.values():
                target = slot.target_version()
                current = slot.current.version if slot.current else None
                failed = slot.last_swap is not None and not slot.last_swap.ok \
                    and slot.last_swap.version == target
                if target is not None and target != current and not failed:
                    self._load(slot)
            self.export_log_stats()

    def export_log_stats(self) -> None:
        """Copy the feature log writer's counters into the Prometheus gauges."""
        if self.feature_log is None:
            return
        stats = self.feature_log.stats()
        self.metrics.log_queue.set(stats.get("queue_depth", 0))
        self.metrics.log_dropped.set(stats.get("dropped", 0))
        self.metrics.log_durable.set(stats.get("durable_seq", 0))

    # -- predictions -----------------------------------------------------------------------

    def slot(self, model: str) -> ModelSlot:
        """The slot serving ``model``; NotFoundError listing the served models otherwise."""
        if model not in self.slots:
            raise NotFoundError(
                f"model {model!r} is not served here; served: {', '.join(self.slots) or '(none)'}"
            )
        return self.slots[model]

    def predict(self, model: str, contexts: Sequence[Context]) -> list[Prediction]:
        """Compute features, run the live predictor and log what was served, for each context."""
        started = time.perf_counter()
        status = "200"
        try:
            loaded = self.slot(model).current
            if loaded is None:
                error = self.slot(model).last_swap
                raise NotServingError(
                    f"model {model!r} has no version loaded yet"
                    + (f": {error.error}" if error and error.error else "")
                )
            now = self.clock()
            rows = [
                {**c.keys, "at": to_utc_datetime(c.at, "at") if c.at else now, **c.request}
                for c in contexts
            ]
            predictor = loaded.predictor
            values = self.features(list(predictor.feature_set_versions), rows)
            inputs = [{**c.request, **v} for c, v in zip(contexts, values)]
            outputs = predictor.predict_rows(inputs)
            results = []
            for c, row, feats, out in zip(contexts, rows, values, outputs):
                request_id = c.request_id or uuid.uuid4().hex
                logged = self._log(loaded.name, loaded.version, predictor.feature_set_versions,
                                   request_id, c, row["at"], feats, out)
                results.append(Prediction(request_id, loaded.name, loaded.version, out, logged))
            return results
        except NotFoundError:
            status = "404"
            raise
        except ParityError:
            status = "422"
            raise
        except Exception:
            status = "500"
            raise
        finally:
            self.metrics.requests.labels(model, status).inc(max(len(contexts), 1))
            self.metrics.latency.labels(model).observe(time.perf_counter() - started)

    def _log(self, model: str, version: int, fs_versions: Mapping[str, str], request_id: str,
             context: Context, at: datetime, features: Mapping[str, Any], output: Any) -> bool:
        if self.feature_log is None:
            return False
        from parity.featurelog import FeatureLogRecord

        record = FeatureLogRecord(
            request_id=request_id, logged_at=at, model=model, model_version=version,
            feature_set_versions=dict(fs_versions), keys=dict(context.keys),
            features=dict(features), request=dict(context.request), output=output,
        )
        return bool(self.feature_log.log(record))

    def health(self) -> dict[str, Any]:
        """What is served, the outcome of each model's last load, and the feature log's state."""
        models = {}
        for name, slot in self.slots.items():
            last = slot.last_swap
            models[name] = {
                "version": slot.current.version if slot.current else None,
                "target": slot.target_version(),
                "swaps": slot.swaps,
                "last_load": None if last is None else {
                    "version": last.version, "ok": last.ok, "error": last.error},
            }
        healthy = all(slot.current is not None for slot in self.slots.values())
        out: dict[str, Any] = {"status": "ok" if healthy else "degraded", "models": models}
        if self.feature_log is not None:
            out["feature_log"] = self.feature_log.stats()
        return out
