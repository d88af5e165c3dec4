"""The HTTP service: predictions, errors that name the field, admin auth, metrics, logging."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parity.featurelog import read_log
from parity.serving.app import create_app
from parity.serving.factory import build_service
from parity.serving.service import PredictionService
from tests.serving.helpers import Served

AUTH = {"Authorization": "Bearer s3cret"}


@pytest.fixture
def service(served: Served) -> Iterator[PredictionService]:
    svc = build_service(served.ws, poll_interval=0.05)
    svc.start()
    yield svc
    svc.stop()


@pytest.fixture
def client(service: PredictionService) -> TestClient:
    return TestClient(create_app(service, admin_token="s3cret"), raise_server_exceptions=False)


def test_predict_one_and_batch(client: TestClient, served: Served) -> None:
    body = {"keys": {"customer_id": 3}, "request": {"discount": 0.5}, "request_id": "r1"}
    response = client.post("/v1/models/churn/predict", json=body)
    assert response.status_code == 200, response.text
    out = response.json()
    assert out["request_id"] == "r1" and out["model"] == "churn" and out["version"] == 1
    assert 0.0 <= out["output"] <= 1.0
    batch = {"contexts": [{"keys": {"customer_id": c}, "request": {"discount": 0}} for c in (1, 2, 99)]}
    response = client.post("/v1/models/churn/predict-batch", json=batch)
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 3


def test_served_features_equal_the_time_machine(client: TestClient, served: Served,
                                               service: PredictionService) -> None:
    at = "2030-01-01T00:00:00Z"
    client.post("/v1/models/churn/predict",
                json={"keys": {"customer_id": 2}, "at": None, "request": {"discount": 0.25}})
    online = served.ws.online.get_features(["customer_features"],
                                           {"customer_id": 2, "discount": 0.25})
    import pandas as pd

    offline = served.ws.training_set(
        pd.DataFrame({"customer_id": [2], "discount": [0.25],
                      "at": [pd.Timestamp.now(tz="UTC")]}), "customer_features").to_pylist()[0]
    for name in ("spend_7d", "orders_7d", "spend_after_discount"):
        assert online[name] == pytest.approx(offline[name], rel=1e-9)
    assert at  # the explicit-at path is covered in the online suite


@pytest.mark.parametrize(
    ("path", "body", "status", "needle"),
    [
        ("/v1/models/nope/predict", {"keys": {"customer_id": 1}}, 404, "not served here"),
        ("/v1/models/churn/predict", {"keys": {"customer_id": "abc"}}, 422, "customer_id"),
        ("/v1/models/churn/predict", {"keys": {}}, 422, "customer_id"),
        ("/v1/models/churn/predict", {"keys": {"customer_id": 1}, "at": "2024-01-01T00:00:00"}, 422, "no time zone"),
        ("/v1/models/churn/predict", {"keys": {"customer_id": 1}, "at": "tomorrow"}, 422, "at"),
        ("/v1/models/churn/predict", {"keys": {"customer_id": 1}, "extra": 1}, 422, "extra"),
        ("/v1/models/churn/predict", {"keys": [1, 2]}, 422, "keys"),
        ("/v1/models/churn/predict-batch", {"contexts": []}, 422, "contexts"),
        ("/v1/models/churn/predict", {"keys": {"customer_id": 1}, "request": {"discount": "x"}}, 422, "request.discount"),
        ("/v1/models/churn/predict", {"keys": {"customer_id": 1}}, 422, "request field 'discount'"),
    ],
)
def test_bad_requests_are_named(client: TestClient, path: str, body: Any, status: int, needle: str) -> None:
    response = client.post(path, json=body)
    assert response.status_code == status, response.text
    assert needle in response.text


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["keys", "at", "request", "request_id", "customer_id", "x"]), inner, max_size=4),
    max_leaves=10))
def test_nothing_a_client_sends_gives_500(client: TestClient, body: Any) -> None:
    response = client.post("/v1/models/churn/predict", content=json.dumps(body, allow_nan=True),
                           headers={"content-type": "application/json"})
    assert response.status_code in (200, 404, 422), response.text
    garbage = client.post("/v1/models/churn/predict", content=b"\xff{not json",
                          headers={"content-type": "application/json"})
    assert garbage.status_code in (400, 422)


def test_admin_endpoints_need_the_token(client: TestClient, served: Served) -> None:
    assert client.post("/admin/models/churn/reload").status_code == 401
    assert client.post("/admin/models/churn/reload",
                       headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.post("/admin/models/churn/reload", headers=AUTH).status_code == 200
    second = served.register()
    response = client.post("/admin/models/churn/promote", headers=AUTH,
                           json={"version": second, "reason": "better"})
    assert response.status_code == 200 and response.json()["version"] == second
    assert client.post("/v1/models/churn/predict",
                       json={"keys": {"customer_id": 1}, "request": {"discount": 0}}).json()["version"] == second
    assert served.ws.registry.alias_history("churn", "live")[-1].reason == "better"


def test_health_metrics_and_openapi(client: TestClient) -> None:
    client.post("/v1/models/churn/predict", json={"keys": {"customer_id": 1}, "request": {"discount": 0}})
    assert client.get("/health").json()["models"]["churn"]["version"] == 1
    text = client.get("/metrics").text
    for name in ("parity_requests_total", "parity_request_seconds_bucket",
                 "parity_model_version", "parity_feature_log_queue_depth"):
        assert name in text
    spec = client.get("/openapi.json").json()
    assert "/v1/models/{model}/predict" in spec["paths"]


def test_every_prediction_is_logged_with_its_features(client: TestClient, served: Served,
                                                     service: PredictionService) -> None:
    outputs = {}
    for customer in (1, 2, 3):
        r = client.post("/v1/models/churn/predict",
                        json={"keys": {"customer_id": customer}, "request_id": f"q{customer}",
                              "request": {"discount": 0.1}}).json()
        outputs[r["request_id"]] = r["output"]
    service.feature_log.flush(timeout=5)
    log = read_log(served.ws.feature_log_dir).to_pylist()
    logged = {row["request_id"]: row for row in log}
    assert set(outputs) <= set(logged)
    online = served.ws.online.get_features(["customer_features"], {"customer_id": 2, "discount": 0.1})
    assert logged["q2"]["feature.spend_7d"] == pytest.approx(online["spend_7d"])
    assert logged["q2"]["key.customer_id"] == 2 and logged["q2"]["request.discount"] == 0.1
    assert logged["q2"]["output"] == pytest.approx(outputs["q2"])
