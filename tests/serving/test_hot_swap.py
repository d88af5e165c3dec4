"""Hot swap under load over real HTTP: no failed request, and a bad model never goes live."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from parity.errors import ArtifactIntegrityError
from parity.serving.app import create_app
from parity.serving.factory import build_service
from parity.serving.service import PredictionService
from tests.serving.helpers import Served, free_port


@pytest.fixture
def server(served: Served) -> Iterator[tuple[str, PredictionService]]:
    service = build_service(served.ws, poll_interval=0.05)
    service.start()
    port = free_port()
    config = uvicorn.Config(create_app(service, "s3cret"), host="127.0.0.1", port=port,
                            log_level="error")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not uv.started and time.time() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", service
    uv.should_exit = True
    thread.join(timeout=10)
    service.stop()


def wait_for_version(base: str, version: int, timeout: float = 10) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if httpx.get(f"{base}/health").json()["models"]["churn"]["version"] == version:
            return
        time.sleep(0.02)
    raise AssertionError(f"version {version} never went live")


def test_five_swaps_under_load_lose_no_request(server: tuple[str, PredictionService],
                                               served: Served) -> None:
    base, _ = server
    body = {"keys": {"customer_id": 2}, "request": {"discount": 0.1}}
    failures: list[str] = []
    per_client: list[list[int]] = []
    stop = threading.Event()

    def hammer() -> None:
        seen: list[int] = []
        per_client.append(seen)
        with httpx.Client(base_url=base, timeout=10) as client:
            while not stop.is_set():
                try:
                    r = client.post("/v1/models/churn/predict", json=body)
                    if r.status_code != 200:
                        failures.append(f"{r.status_code} {r.text}")
                    else:
                        seen.append(r.json()["version"])
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for _ in range(5):
            version = served.register()
            served.ws.registry.set_alias("churn", "live", version, reason="swap test")
            wait_for_version(base, version)
            time.sleep(0.1)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    everything = [v for seen in per_client for v in seen]
    assert len(everything) > 50
    assert set(everything) <= set(range(1, 7)) and len(set(everything)) >= 4
    for seen in per_client:  # a client never goes back to an older model
        assert seen == sorted(seen)
        assert seen[-1] == 6


def test_a_model_that_fails_to_load_leaves_the_old_one_serving(
        server: tuple[str, PredictionService], served: Served) -> None:
    base, _ = server
    skewed = served.register(feature_sets={"customer_features": "0000stale0000"})
    served.ws.registry.set_alias("churn", "live", skewed, reason="bad")
    deadline = time.time() + 10
    while time.time() < deadline:
        last = httpx.get(f"{base}/health").json()["models"]["churn"]["last_load"]
        if last and last["version"] == skewed:
            break
        time.sleep(0.02)
    health = httpx.get(f"{base}/health").json()["models"]["churn"]
    assert health["version"] == 1
    assert health["last_load"]["ok"] is False
    assert "has changed since the model was trained" in health["last_load"]["error"]
    assert "0000stale0000" in health["last_load"]["error"]
    r = httpx.post(f"{base}/v1/models/churn/predict",
                   json={"keys": {"customer_id": 2}, "request": {"discount": 0}})
    assert r.status_code == 200 and r.json()["version"] == 1
    assert "parity_model_swaps_total{model=\"churn\",outcome=\"failed\"}" in httpx.get(f"{base}/metrics").text


def test_a_tampered_artifact_is_refused(server: tuple[str, PredictionService], served: Served) -> None:
    base, _ = server
    version = served.register()
    meta = served.ws.registry.get("churn", version)
    path = served.ws.registry.artifacts.path_for(meta.artifact_sha256)
    path.chmod(0o644)
    path.write_bytes(path.read_bytes()[:-10])
    # The registry verifies before it moves an alias: neither the API nor HTTP can promote it.
    with pytest.raises(ArtifactIntegrityError):
        served.ws.registry.set_alias("churn", "live", version)
    response = httpx.post(f"{base}/admin/models/churn/promote", json={"version": version},
                          headers={"Authorization": "Bearer s3cret"})
    assert response.status_code == 409 and "integrity" in response.json()["error"]
    health = httpx.get(f"{base}/health").json()["models"]["churn"]
    assert health["version"] == 1 and health["target"] == 1
