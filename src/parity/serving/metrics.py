"""Prometheus metrics of a prediction service, in a registry of its own (no global state).

With ``parity serve --workers N`` the workers share one port, so a scrape reaches any one of
them; each must answer for all. That is prometheus-client's multiprocess mode: the CLI sets
``PROMETHEUS_MULTIPROC_DIR`` to a fresh folder before the workers start, every worker's
counters, histograms and gauges live in files there, and ``render`` merges them. Counters and
histograms add up over the workers (dead ones included, so totals never go back). Gauges say
how they combine (``multiprocess_mode``): queue depth and the feature log's error counters are
summed, readiness and thread health take the worst worker (``livemin``), lag the largest, and
the served model version and ``durable_seq`` (a per-worker sequence) are kept per worker with
a ``pid`` label. Each worker refreshes its gauges every ``poll_interval`` (the alias watcher),
so a scrape sees the other workers' gauges at most that old.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

_PID_FILE = re.compile(r"^gauge_live\w+_(\d+)\.db$")


class ServiceMetrics:
    """Request counts, latency, served model version, feature log health, online readiness.

    ``multiprocess_dir``: the ``PROMETHEUS_MULTIPROC_DIR`` this process writes to (see the
    module docstring); None for one process.
    """

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, multiprocess_dir: str | Path | None = None) -> None:
        self.multiprocess_dir = None if multiprocess_dir is None else str(multiprocess_dir)
        if self.multiprocess_dir is not None:
            forget_dead_workers(self.multiprocess_dir)
        self.registry = r = CollectorRegistry()
        self.requests = Counter(
            "parity_requests", "Prediction requests by model and HTTP status.",
            ["model", "status"], registry=r,
        )
        self.latency = Histogram(
            "parity_request_seconds", "Prediction latency (features + model + logging).",
            ["model"], registry=r,
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0),
        )
        self.model_version = Gauge(
            "parity_model_version", "Version of each model being served.", ["model"], registry=r,
            multiprocess_mode="liveall",
        )
        self.swaps = Counter(
            "parity_model_swaps", "Model loads by outcome.", ["model", "outcome"], registry=r,
        )
        self.not_found = Counter(
            "parity_entities_not_found", "Predictions for entities with no facts at all.",
            ["model"], registry=r,
        )
        self.logged = Counter(
            "parity_feature_log_records", "Predictions by what became of their log record "
            "(durable, queued, lost, dropped, sampled_out, off).", ["model", "logged"],
            registry=r,
        )
        self.log_queue = Gauge(
            "parity_feature_log_queue_depth", "Records waiting in the feature log queue.",
            registry=r, multiprocess_mode="livesum",
        )
        self.log_dropped = Gauge(
            "parity_feature_log_dropped", "Records dropped because the feature log queue was "
            "full (or its writer was gone).", registry=r, multiprocess_mode="sum",
        )
        self.log_lost = Gauge(
            "parity_feature_log_lost", "Accepted records lost to write errors.", registry=r,
            multiprocess_mode="sum",
        )
        self.log_write_errors = Gauge(
            "parity_feature_log_write_errors", "Write errors of the feature log (disk full, "
            "I/O error).", registry=r, multiprocess_mode="sum",
        )
        self.log_failing = Gauge(
            "parity_feature_log_failing", "1 while the feature log's last write failed.",
            registry=r, multiprocess_mode="livemax",
        )
        self.log_durable = Gauge(
            "parity_feature_log_durable_seq", "Sequence number of the last fsynced log record.",
            registry=r, multiprocess_mode="liveall",
        )
        self.online_ready = Gauge(
            "parity_online_source_ready", "1 when the source is materialized and not behind "
            "the fact log beyond the tolerance.", ["source"], registry=r,
            multiprocess_mode="livemin",
        )
        self.online_behind = Gauge(
            "parity_online_source_behind_seconds", "How far the online store is behind the "
            "fact log, per source (-1: unknown).", ["source"], registry=r,
            multiprocess_mode="livemax",
        )
        self.thread_alive = Gauge(
            "parity_background_thread_healthy", "1 when a background thread runs and its last "
            "round succeeded.", ["thread"], registry=r, multiprocess_mode="livemin",
        )

    def render(self) -> bytes:
        """The Prometheus text exposition: this process's registry, or every worker's
        metrics merged from ``multiprocess_dir``."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged, path=self.multiprocess_dir)
        return generate_latest(merged)


def forget_dead_workers(folder: str) -> None:
    """Drop the live gauges of worker processes that no longer run (a worker replaced after a
    crash), so that ``livesum``/``livemin`` gauges count only running workers."""
    for name in os.listdir(folder):
        match = _PID_FILE.match(name)
        if match and not _running(int(match.group(1))):
            multiprocess.mark_process_dead(int(match.group(1)), folder)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
