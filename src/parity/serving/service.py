"""The prediction service: online features -> predictor -> output, logged for Lumberjack.

It is independent of HTTP: ``app.py`` puts FastAPI in front of it, tests call it directly.
Every context is checked against the definitions before anything is computed or logged (see
``validation``); each prediction says whether its entity was ever seen (``found``) and what
became of its feature log record (``logged``):

- ``durable``: fsynced before the answer (``feature_log: {sync: true}``);
- ``queued``: accepted by the writer, not yet known to be on disk (the default);
- ``lost``: a write error (full disk, ...) lost it; ``dropped``: the queue was full;
- ``sampled_out``: the entity is not in the logging sample; ``off``: logging is disabled.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa

from parity.errors import (
    InputError,
    NotFoundError,
    NotReadyError,
    NotServingError,
    ParityError,
    RequestError,
)
from parity.featurelog import FeatureLogRecord
from parity.serving.health import Watchdog, health_body, refresh_metrics
from parity.serving.metrics import ServiceMetrics
from parity.serving.protocols import FeatureLog, SourceReadinessLike
from parity.serving.slot import Loaded, ModelSlot
from parity.serving.threads import ThreadLimiter
from parity.serving.validation import (
    Limits,
    RequestSchema,
    check_at,
    check_keys,
    check_request,
    check_text,
    schema_for,
)

UTC = timezone.utc


@dataclass(frozen=True)
class Features:
    """Feature values per context, whether each context's entity was ever seen, and per
    context what each live source served (``{source: {"used", "latency_ms", "detail"}}``;
    empty when the feature sets read no live source)."""

    rows: list[dict[str, Any]]
    found: list[bool]
    live: list[dict[str, Any]] = field(default_factory=list)


# (feature set names, contexts) -> Features. Contexts are dicts with the entity keys, "at" and
# the request fields. Raises InputError for bad contexts, NotReadyError when it cannot know.
FeatureFn = Callable[[Sequence[str], Sequence[Mapping[str, Any]]], Features]
ReadinessFn = Callable[[], Mapping[str, SourceReadinessLike]]


@dataclass
class Context:
    """One prediction request: entity keys, moment, request fields."""

    keys: dict[str, Any]
    at: datetime | None = None
    request: dict[str, Any] = field(default_factory=dict)
    request_id: str | None = None


@dataclass
class Prediction:
    """The answer to one context (``logged``: see the module docstring)."""

    request_id: str
    model: str
    version: int
    output: Any
    found: bool
    logged: str


class PredictionService:
    """Serves one or more models; watches their ``live`` alias and hot-swaps new versions."""

    def __init__(
        self,
        slots: Mapping[str, ModelSlot],
        features: FeatureFn,
        feature_log: FeatureLog | None = None,
        metrics: ServiceMetrics | None = None,
        poll_interval: float = 1.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        *,
        readiness: ReadinessFn | None = None,
        limits: Limits | None = None,
        request_types: Mapping[str, Any] | None = None,
        sync_log: bool = False,
        sync_timeout: float = 5.0,
        threads: int | None = 1,
    ) -> None:
        self.slots = dict(slots)
        self.features = features
        self.feature_log = feature_log
        self.metrics = metrics or ServiceMetrics()
        self.poll_interval = poll_interval
        self.clock = clock
        self.readiness = readiness
        self.limits = limits or Limits()
        self.request_types = dict(request_types or {})
        self.sync_log = sync_log
        self.sync_timeout = sync_timeout
        self.limiter = ThreadLimiter(threads)
        self.watchdog = Watchdog("alias_watch")
        self._schemas: dict[tuple[str, int], RequestSchema] = {}
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
            self.watchdog.thread = self._watcher

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
        """Poll the aliases; an error (a locked or failing registry) is recorded in /health
        and retried with backoff, never the end of the thread."""
        delay = self.poll_interval
        while not self._stop.wait(delay):
            try:
                for slot in self.slots.values():
                    target = slot.target_version(raise_errors=True)
                    current = slot.current.version if slot.current else None
                    failed = slot.last_swap is not None and not slot.last_swap.ok \
                        and slot.last_swap.version == target
                    if target is not None and target != current and not failed:
                        self._load(slot)
                self.refresh_metrics()
                self.watchdog.ok()
                delay = self.poll_interval
            except Exception as exc:  # keep watching: the next poll may succeed
                self.watchdog.failed(exc)
                delay = min(max(delay, self.poll_interval) * 2, 30.0)

    def refresh_metrics(self) -> None:
        """Copy feature log counters and online readiness into the Prometheus gauges."""
        refresh_metrics(self)

    def health(self) -> dict[str, Any]:
        """What is served, the feature log, online readiness and background threads; ``status``
        is ``degraded`` (with ``reasons``) when something cannot be served or logged."""
        return health_body(self)

    # -- predictions -----------------------------------------------------------------------

    def slot(self, model: str) -> ModelSlot:
        """The slot serving ``model``; NotFoundError listing the served models otherwise."""
        if model not in self.slots:
            raise NotFoundError(
                f"model {model!r} is not served here; served: {', '.join(self.slots) or '(none)'}"
            )
        return self.slots[model]

    def schema(self, loaded: Loaded) -> RequestSchema:
        """The keys and request fields the loaded version accepts (from the definitions)."""
        key = (loaded.name, loaded.version)
        schema = self._schemas.get(key)
        if schema is None:
            slot = self.slot(loaded.name)
            sets = [slot.feature_sets[n] for n in loaded.predictor.feature_set_versions
                    if n in slot.feature_sets]
            schema = self._schemas[key] = schema_for(sets, loaded.predictor.features,
                                                     self.request_types)
        return schema

    def predict(self, model: str, contexts: Sequence[Context]) -> list[Prediction]:
        """Check each context, compute features, run the live predictor, log what was served.

        Raises RequestError (a client mistake, naming the field), NotFoundError, NotServingError
        (no version loaded) or NotReadyError (the online store cannot answer truthfully).
        """
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
            rows = self._check(loaded, contexts)
            predictor = loaded.predictor
            answer = self.features(list(predictor.feature_set_versions), rows)
            inputs = [{**row_request, **v} for row_request, v in
                      zip((self._request_of(r, loaded) for r in rows), answer.rows)]
            _check_finite(inputs, predictor.features, len(contexts) > 1)
            with self.limiter:
                try:
                    outputs = predictor.predict_rows(inputs)
                except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                    raise InputError(
                        f"request fields of different types in one batch cannot be scored "
                        f"({exc}); send each field with one type, or declare it under "
                        f"serving.request_types in parity.yaml"
                    ) from exc
                except ValueError as exc:
                    if isinstance(exc, ParityError):
                        raise
                    # Models validate their input with ValueError (sklearn: NaN, inf): the
                    # request (its entity, its fields) gave inputs this model cannot score.
                    raise InputError(
                        f"model {model!r} version {loaded.version} cannot score this input: "
                        f"{exc}. The features of this request (or its request fields) hold "
                        f"values the model was not trained to accept"
                    ) from exc
            not_found = answer.found.count(False)
            if not_found:
                self.metrics.not_found.labels(model).inc(not_found)
            return self._log_all(loaded, contexts, rows, answer, outputs)
        except NotFoundError:
            status = "404"
            raise
        except (NotServingError, NotReadyError):
            status = "503"
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

    def _check(self, loaded: Loaded, contexts: Sequence[Context]) -> list[dict[str, Any]]:
        if len(contexts) > self.limits.max_batch:
            raise RequestError("contexts", f"{len(contexts)} contexts",
                               f"is more than {self.limits.max_batch} contexts",
                               "split the batch (serving.max_batch)")
        schema = self.schema(loaded)
        now = self.clock()
        rows = []
        for i, c in enumerate(contexts):
            where = f"contexts[{i}]." if len(contexts) > 1 else ""
            check_text(f"{where}request_id", c.request_id, self.limits)
            keys = check_keys(c.keys, schema, self.limits, where)
            request = check_request(c.request, schema, self.limits, where)
            at = check_at(c.at, f"{where}at") or now
            rows.append({**keys, "at": at, **request})
        return rows

    def _request_of(self, row: Mapping[str, Any], loaded: Loaded) -> dict[str, Any]:
        schema = self.schema(loaded)
        return {k: v for k, v in row.items() if k in schema.request}

    def _log_all(self, loaded: Loaded, contexts: Sequence[Context], rows: list[dict[str, Any]],
                 answer: Features, outputs: list[Any]) -> list[Prediction]:
        log = self.feature_log
        versions = dict(loaded.predictor.feature_set_versions)
        schema = self.schema(loaded)
        statuses: list[str] = []
        ordinals: dict[int, int] = {}
        request_ids = [c.request_id or uuid.uuid4().hex for c in contexts]
        for i, (row, feats, out) in enumerate(zip(rows, answer.rows, outputs)):
            if log is None:
                statuses.append("off")
                continue
            record = FeatureLogRecord(
                request_id=request_ids[i], logged_at=row["at"], model=loaded.name,
                model_version=loaded.version, feature_set_versions=versions,
                keys={k: row[k] for k in schema.keys},
                features=dict(feats), request=self._request_of(row, loaded), output=out,
                live=answer.live[i] if answer.live else {},
            )
            receipt = log.enqueue(record, flush=self.sync_log)
            statuses.append(receipt.status)
            if receipt.ordinal is not None:
                ordinals[i] = receipt.ordinal
        if log is not None and self.sync_log and ordinals:
            outcomes = log.wait_durable(list(ordinals.values()), self.sync_timeout)
            for i, outcome in zip(ordinals, outcomes):
                statuses[i] = {"durable": "durable", "lost": "lost"}.get(outcome, "queued")
        for status in statuses:
            self.metrics.logged.labels(loaded.name, status).inc()
        return [
            Prediction(request_ids[i], loaded.name, loaded.version, outputs[i],
                       bool(answer.found[i]), statuses[i])
            for i in range(len(contexts))
        ]


def _check_finite(inputs: list[dict[str, Any]], names: Sequence[str], batch: bool) -> None:
    """Refuse model inputs that are infinite: request fields can make a transform overflow
    (a discount of 1e308), and no model can score that; it is the request's doing, so a 422."""
    for i, row in enumerate(inputs):
        for name in names:
            value = row.get(name)
            if isinstance(value, float) and math.isinf(value):
                where = f"contexts[{i}]." if batch else ""
                raise RequestError(
                    f"{where}request", row.get(name), f"makes the model input {name!r} infinite",
                    "send request field values in the range the features are meant for",
                )
