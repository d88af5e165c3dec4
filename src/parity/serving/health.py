"""What ``/health`` and ``/metrics`` say: models, feature log, online readiness, threads.

``status`` is ``degraded`` (HTTP 503) with a list of ``reasons`` when a model has no loaded
version, a source of a served feature set is not ready (never materialized, or behind the
fact log beyond the tolerance), the feature log's last write failed (a full disk) or its writer
is gone, or a background thread is failing. Otherwise ``ok`` (200). Under ``parity serve
--workers N`` the answer is that of the worker process that took the request (``pid``; its
own feature log ``folder``); every worker runs the same checks on the same models.
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from parity.serving.service import PredictionService


class Watchdog:
    """The state of one background thread: alive, consecutive errors, the last one."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.thread: threading.Thread | None = None
        self.errors = 0
        self.consecutive = 0
        self.last_error: str | None = None
        self.last_ok: float | None = None

    def ok(self) -> None:
        """A round succeeded."""
        self.consecutive = 0
        self.last_ok = time.time()

    def failed(self, exc: BaseException) -> None:
        """A round failed with ``exc``; the thread retries with backoff."""
        self.errors += 1
        self.consecutive += 1
        self.last_error = f"{type(exc).__name__}: {exc}"

    def state(self) -> dict[str, Any]:
        """For /health."""
        return {"alive": self.thread is not None and self.thread.is_alive(),
                "errors": self.errors, "failing": self.consecutive > 0,
                "last_error": self.last_error}


def health_body(service: PredictionService) -> dict[str, Any]:
    """The /health document (see the module docstring)."""
    reasons: list[str] = []
    models = {}
    for name, slot in service.slots.items():
        last = slot.last_swap
        models[name] = {
            "version": slot.current.version if slot.current else None,
            "target": slot.target_version(),
            "swaps": slot.swaps,
            "last_load": None if last is None else {
                "version": last.version, "ok": last.ok, "error": last.error},
        }
        if slot.current is None:
            hint = f": {last.error}" if last is not None and last.error else \
                f"; run `parity models promote {name} VERSION`"
            reasons.append(f"model {name!r} has no version loaded{hint}")
    # With --workers N each process answers for itself: say which one this is.
    out: dict[str, Any] = {"status": "ok", "reasons": reasons, "models": models,
                           "pid": os.getpid()}
    out["online"] = _online(service, reasons)
    threads: dict[str, Any] = {}
    if service.watchdog.thread is not None:
        threads[service.watchdog.name] = state = service.watchdog.state()
        if not state["alive"] or state["failing"]:
            reasons.append(f"the alias watcher is failing: {state['last_error']}")
    log = service.feature_log
    if log is not None:
        stats = log.stats()
        out["feature_log"] = {**stats, "sync": service.sync_log, "last_error": log.last_error,
                              "folder": str(getattr(log, "root", "")) or None}
        threads["feature_log_writer"] = {"alive": bool(stats.get("writer_alive", 1)),
                                         "failing": bool(stats.get("failing", 0))}
        if not stats.get("writer_alive", 1):
            reasons.append(f"the feature log writer is gone: {log.last_error}")
        elif log.failing_since is not None:
            since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(log.failing_since))
            reasons.append(f"the feature log cannot write since {since} ({log.last_error}); "
                           f"records are being lost: free disk space or fix the folder")
    else:
        out["feature_log"] = {"enabled": False}
    out["threads"] = threads
    if reasons:
        out["status"] = "degraded"
    return out


def _used_sources(service: PredictionService) -> set[str]:
    names: set[str] = set()
    for slot in service.slots.values():
        wanted = slot.current.predictor.feature_set_versions if slot.current else {}
        for set_name in wanted:
            fs = slot.feature_sets.get(set_name)
            if fs is not None:
                names.update(s.name for s in fs.sources)
    return names


def _online(service: PredictionService, reasons: list[str]) -> dict[str, Any]:
    if service.readiness is None:
        return {}
    try:
        states = service.readiness()
    except Exception as exc:  # health must answer even when the store does not
        reasons.append(f"online readiness unknown: {type(exc).__name__}: {exc}")
        return {}
    used = _used_sources(service)
    out: dict[str, Any] = {}
    for name, state in states.items():
        behind = state.behind.total_seconds() if state.behind is not None else None
        out[name] = {"materialized": state.materialized, "ready": state.ready,
                     "watermark": state.watermark.isoformat() if state.watermark else None,
                     "behind_seconds": behind}
        if name in used and not state.ready:
            if not state.materialized:
                reasons.append(f"source {name!r} was never materialized: run "
                               f"`parity materialize`")
            else:
                reasons.append(f"source {name!r} is behind the fact log by {behind} s: run "
                               f"`parity materialize`")
    return out


def refresh_metrics(service: PredictionService) -> None:
    """Copy feature log counters, online readiness and thread health into the gauges."""
    m = service.metrics
    m.thread_alive.labels(service.watchdog.name).set(
        int(service.watchdog.state()["alive"] and not service.watchdog.consecutive))
    log = service.feature_log
    if log is not None:
        stats = log.stats()
        m.log_queue.set(stats.get("queue_depth", 0))
        m.log_dropped.set(stats.get("records_dropped", 0))
        m.log_lost.set(stats.get("records_lost", 0))
        m.log_write_errors.set(stats.get("write_errors", 0))
        m.log_failing.set(stats.get("failing", 0))
        m.log_durable.set(stats.get("durable_seq", 0))
        m.thread_alive.labels("feature_log_writer").set(
            int(bool(stats.get("writer_alive", 1)) and not stats.get("failing", 0)))
    if service.readiness is not None:
        try:
            states = service.readiness()
        except Exception:  # reported by /health; metrics keep their last values
            return
        for name, state in states.items():
            m.online_ready.labels(name).set(int(state.ready))
            behind = state.behind.total_seconds() if state.behind is not None else -1
            m.online_behind.labels(name).set(behind)
