"""Prometheus metrics of a prediction service, in a registry of its own (no global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ServiceMetrics:
    """Request counts, latency, served model version and feature log health."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "parity_requests", "Prediction requests by model and HTTP status.",
            ["model", "status"], registry=self.registry,
        )
        self.latency = Histogram(
            "parity_request_seconds", "Prediction latency (features + model + logging).",
            ["model"], registry=self.registry,
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0),
        )
        self.model_version = Gauge(
            "parity_model_version", "Version of each model being served.", ["model"],
            registry=self.registry,
        )
        self.swaps = Counter(
            "parity_model_swaps", "Model loads by outcome.", ["model", "outcome"],
            registry=self.registry,
        )
        self.log_queue = Gauge(
            "parity_feature_log_queue_depth", "Records waiting in the feature log queue.",
            registry=self.registry,
        )
        self.log_dropped = Gauge(
            "parity_feature_log_dropped", "Records dropped because the feature log queue was full.",
            registry=self.registry,
        )
        self.log_durable = Gauge(
            "parity_feature_log_durable_seq", "Sequence number of the last fsynced log record.",
            registry=self.registry,
        )
