"""Honest durability: `logged` says what is true; a full disk and a failing registry are
reported in /health and metrics, and the background threads survive them."""

from __future__ import annotations

import errno
import sqlite3
import threading
import time
from typing import Any

import pytest

import parity.featurelog.writer_thread as writer_module
from parity.featurelog import read_log
from tests.serving.helpers import BODY, Served, serve


def _full_disk(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Make the feature log writer's writes fail with ENOSPC while ``full[0]`` is True."""
    full = [True]
    real = writer_module._os_write

    def write(fd: int, data: Any) -> int:
        if full[0]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data)

    monkeypatch.setattr(writer_module, "_os_write", write)
    return full


def test_default_mode_says_queued_and_sync_mode_says_durable(served: Served) -> None:
    with serve(served.ws) as (client, _):
        assert client.post("/v1/models/churn/predict", json=BODY).json()["logged"] == "queued"
    with serve(served.ws, {"feature_log": {"sync": True}}) as (client, _):
        answer = client.post("/v1/models/churn/predict", json={**BODY, "request_id": "d1"}).json()
        assert answer["logged"] == "durable"
        # Durable means on disk now, before any flush or close.
        assert "d1" in read_log(served.ws.feature_log_dir).column("request_id").to_pylist()
    with serve(served.ws, {"feature_log": {"enabled": False}}) as (client, _):
        assert client.post("/v1/models/churn/predict", json=BODY).json()["logged"] == "off"


def test_a_full_disk_loses_nothing_it_called_durable_and_says_so(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serve(served.ws, {"feature_log": {"sync": True}}) as (client, _):
        before = client.post("/v1/models/churn/predict", json={**BODY, "request_id": "ok-1"})
        assert before.json()["logged"] == "durable"
        full = _full_disk(monkeypatch)
        during = [client.post("/v1/models/churn/predict",
                              json={**BODY, "request_id": f"full-{i}"}).json() for i in range(4)]
        assert all(a["logged"] == "lost" for a in during), during
        health = client.get("/health")
        assert health.status_code == 503 and health.json()["status"] == "degraded"
        assert any("No space left" in r for r in health.json()["reasons"]), health.json()
        metrics = client.get("/metrics").text
        assert "parity_feature_log_lost 4.0" in metrics
        assert "parity_feature_log_failing 1.0" in metrics
        assert 'parity_feature_log_records_total{logged="lost",model="churn"} 4.0' in metrics
        full[0] = False  # space is freed: the writer recovers by itself
        after = client.post("/v1/models/churn/predict", json={**BODY, "request_id": "ok-2"})
        assert after.json()["logged"] == "durable"
        assert client.get("/health").status_code == 200
    logged = set(read_log(served.ws.feature_log_dir).column("request_id").to_pylist())
    assert {"ok-1", "ok-2"} <= logged


def test_a_full_disk_in_queued_mode_makes_health_degraded(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    with serve(served.ws) as (client, service):
        _full_disk(monkeypatch)
        answers = [client.post("/v1/models/churn/predict", json=BODY).json() for _ in range(3)]
        assert all(a["logged"] == "queued" for a in answers)  # never "durable"
        deadline = time.time() + 10
        while client.get("/health").status_code != 503 and time.time() < deadline:
            time.sleep(0.02)
        assert client.get("/health").status_code == 503
        assert service.feature_log is not None
        stats = service.feature_log.stats()
        assert stats["write_errors"] >= 1 and stats["writer_alive"] == 1


def test_the_alias_watcher_survives_registry_errors(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = served.ws.registry
    real = registry.aliases

    def broken(name: str) -> dict[str, int]:
        raise sqlite3.OperationalError("disk I/O error")

    with serve(served.ws) as (client, service):
        monkeypatch.setattr(registry, "aliases", broken)
        deadline = time.time() + 10
        while not service.watchdog.errors and time.time() < deadline:
            time.sleep(0.02)
        health = client.get("/health")
        assert health.status_code == 503
        watch = health.json()["threads"]["alias_watch"]
        assert watch["alive"] and watch["failing"] and "disk I/O error" in watch["last_error"]
        monkeypatch.setattr(registry, "aliases", real)  # the disk comes back
        second = served.register()
        registry.set_alias("churn", "live", second)
        deadline = time.time() + 40  # the watcher backs off (at most 30 s) before retrying
        while time.time() < deadline:
            if client.get("/health").json()["models"]["churn"]["version"] == second:
                break
            time.sleep(0.05)
        assert client.post("/v1/models/churn/predict", json=BODY).json()["version"] == second
        assert client.get("/health").json()["threads"]["alias_watch"]["failing"] is False


def test_dropped_records_are_counted_in_the_gauge_and_said_in_the_answer(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered, release = threading.Event(), threading.Event()
    real = writer_module.encode_batches

    def stalled(records: Any, schema: Any = None) -> Any:
        entered.set()
        release.wait(10)
        return real(records, schema)

    monkeypatch.setattr(writer_module, "encode_batches", stalled)
    try:
        with serve(served.ws, {"feature_log": {"queue_size": 1}}) as (client, _):
            first = client.post("/v1/models/churn/predict", json=BODY).json()
            assert first["logged"] == "queued" and entered.wait(10)  # the writer is stuck
            answers = [client.post("/v1/models/churn/predict", json=BODY).json()["logged"]
                       for _ in range(3)]
            assert answers == ["queued", "dropped", "dropped"]
            assert "parity_feature_log_dropped 2.0" in client.get("/metrics").text
            release.set()
    finally:
        release.set()
