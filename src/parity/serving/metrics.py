"""Prometheus metrics of a prediction service, in a registry of its own (no global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ServiceMetrics:
    """Request counts, latency, served model version, feature log health, online readiness."""

    def __init__(self) -> None:
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
            registry=r,
        )
        self.log_dropped = Gauge(
            "parity_feature_log_dropped", "Records dropped because the feature log queue was "
            "full (or its writer was gone).", registry=r,
        )
        self.log_lost = Gauge(
            "parity_feature_log_lost", "Accepted records lost to write errors.", registry=r,
        )
        self.log_write_errors = Gauge(
            "parity_feature_log_write_errors", "Write errors of the feature log (disk full, "
            "I/O error).", registry=r,
        )
        self.log_failing = Gauge(
            "parity_feature_log_failing", "1 while the feature log's last write failed.",
            registry=r,
        )
        self.log_durable = Gauge(
            "parity_feature_log_durable_seq", "Sequence number of the last fsynced log record.",
            registry=r,
        )
        self.online_ready = Gauge(
            "parity_online_source_ready", "1 when the source is materialized and not behind "
            "the fact log beyond the tolerance.", ["source"], registry=r,
        )
        self.online_behind = Gauge(
            "parity_online_source_behind_seconds", "How far the online store is behind the "
            "fact log, per source (-1: unknown).", ["source"], registry=r,
        )
        self.thread_alive = Gauge(
            "parity_background_thread_healthy", "1 when a background thread runs and its last "
            "round succeeded.", ["thread"], registry=r,
        )
