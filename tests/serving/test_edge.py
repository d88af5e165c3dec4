"""Validation at the edge: hostile input is a 4xx naming the field, and never reaches the log."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from threadpoolctl import threadpool_info

import parity as pt
from parity.errors import ConfigError
from parity.featurelog import read_log, training_set_from_log
from parity.serving.factory import build_service
from tests.serving.helpers import AUTH, BODY, DEFINITIONS, NOW, Served, WithServing, serve

BIG = 2**70


def test_a_key_beyond_int64_is_refused_and_the_log_keeps_its_types(served: Served) -> None:
    with serve(served.ws) as (client, service):
        poison = client.post("/v1/models/churn/predict", json={"keys": {"customer_id": BIG}})
        assert poison.status_code == 422, poison.text
        body = poison.json()
        assert body["field"] == "keys.customer_id" and "int64" in body["error"]
        assert body["value"] == "1180591620717411303424" and "between" in body["fix"]
        for customer in (1, 2, 3):
            r = client.post("/v1/models/churn/predict",
                            json={"keys": {"customer_id": customer}, "request": {"discount": 0}})
            assert r.status_code == 200, r.text
        assert service.feature_log is not None
    log = read_log(served.ws.feature_log_dir)
    assert log.num_rows == 3
    assert log.schema.field("key.customer_id").type == pa.int64()
    assert log.schema.field("request.discount").type == pa.float64()
    labels = pd.DataFrame({"customer_id": [1, 3], "event_time": [NOW + timedelta(hours=1)] * 2})
    train = training_set_from_log(log, labels, keys=["customer_id"], label_window="1d",
                                  now=NOW + timedelta(days=3))
    assert sorted(zip(train.column("customer_id").to_pylist(),
                      train.column("label").to_pylist())) == [(1, 1), (2, 0), (3, 1)]


@pytest.mark.parametrize(
    ("body", "field", "needle"),
    [
        ({"keys": {"customer_id": "12348"}}, "keys.customer_id", "JSON integer"),
        ({"keys": {"customer_id": 1.5}}, "keys.customer_id", "JSON integer"),
        ({"keys": {"customer_id": True}}, "keys.customer_id", "JSON integer"),
        ({"keys": {"customer_id": None}}, "keys.customer_id", "null"),
        ({"keys": {"customer_id": 1, "shop": 2}}, "keys.shop", "not an entity key"),
        ({"keys": {"customer_id": 1}, "request": {"discount": 0, "evil": 1}}, "request.evil",
         "not a request field"),
        ({"keys": {"customer_id": 1}, "request": {"discount": BIG}}, "request.discount", "int64"),
        ({"keys": {"customer_id": 1}, "request": {"discount": [1]}}, "request.discount",
         "JSON number"),
        ({"keys": {"customer_id": 1}, "request": {"discount": 0},
          "at": "0001-01-01T00:00:00+14:00"}, "at", "out of range"),
        ({"keys": {"customer_id": 1}, "request": {"discount": 0},
          "request_id": "x" * 70_000}, "request_id", "longer than"),
    ],
)
def test_client_mistakes_name_the_field_value_and_fix(served: Served, body: dict[str, object],
                                                       field: str, needle: str) -> None:
    with serve(served.ws) as (client, _):
        response = client.post("/v1/models/churn/predict", json=body)
    assert response.status_code == 422, response.text
    out = response.json()
    assert out["field"] == field and needle in out["error"] and out["fix"], out
    assert len(out["value"]) <= 80


def test_mixed_key_types_in_a_batch_name_the_row(served: Served) -> None:
    with serve(served.ws) as (client, _):
        batch = {"contexts": [{"keys": {"customer_id": 12347}, "request": {"discount": 0}},
                              {"keys": {"customer_id": "12348"}, "request": {"discount": 0}}]}
        response = client.post("/v1/models/churn/predict-batch", json=batch)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "contexts[1].keys.customer_id"


def test_sizes_are_bounded(served: Served) -> None:
    limits = {"max_body_bytes": 200_000, "max_field_bytes": 1000, "max_batch": 3}
    with serve(served.ws, limits) as (client, _):
        huge = client.post("/v1/models/churn/predict",
                           json={"keys": {"customer_id": 1}, "request_id": "x" * 10_000_000})
        assert huge.status_code == 413 and "max_body_bytes" in huge.text
        chunked = client.post("/v1/models/churn/predict", content=iter([b"{" + b" " * 300_000]),
                              headers={"content-type": "application/json"})
        assert chunked.status_code == 413, chunked.text
        field = client.post("/v1/models/churn/predict",
                            json={"keys": {"customer_id": 1}, "request_id": "é" * 600})
        assert field.status_code == 422 and field.json()["field"] == "request_id"
        batch = client.post("/v1/models/churn/predict-batch",
                            json={"contexts": [BODY] * 4})
        assert batch.status_code == 422 and "max_batch" in batch.json()["fix"]
        assert client.post("/v1/models/churn/predict-batch",
                           json={"contexts": [BODY] * 3}).status_code == 200


def test_admin_tokens_are_compared_as_bytes(served: Served) -> None:
    with serve(served.ws) as (client, _):
        for token in ("Bearer tökén".encode(), b"Bearer \xff\xfe", b"Bearer s3cret"):
            response = client.post("/admin/models/churn/reload",
                                   headers={"Authorization": token})  # type: ignore[dict-item]
            expected = 200 if token == b"Bearer s3cret" else 401
            assert response.status_code == expected, (token, response.text)


def test_promote_to_a_version_beyond_int64_is_a_4xx(served: Served) -> None:
    with serve(served.ws) as (client, _):
        for version in (BIG, 0, -1, 99):
            response = client.post("/admin/models/churn/promote", headers=AUTH,
                                   json={"version": version})
            assert 400 <= response.status_code < 500, (version, response.text)
    assert served.ws.registry.aliases("churn")["live"] == 1


@pytest.mark.parametrize(
    ("serving", "needle"),
    [
        ({"admin_token": 12345}, "serving.admin_token"),
        ({"max_batch": 0}, "serving.max_batch"),
        ({"threads": "one"}, "serving.threads"),
        ({"feature_log": {"sync": "yes"}}, "feature_log.sync"),
        ({"wat": 1}, "unknown key(s) wat"),
        ({"request_types": {"discount": "decimal"}}, "request_types.discount"),
    ],
)
def test_bad_serving_config_is_refused_at_startup(served: Served, serving: dict[str, object],
                                                  needle: str) -> None:
    with pytest.raises(ConfigError, match="serving") as info:
        build_service(WithServing(served.ws, serving), log=False)  # type: ignore[arg-type]
    assert needle in str(info.value)


def test_found_says_which_entities_were_never_seen(served: Served) -> None:
    with serve(served.ws) as (client, _):
        batch = {"contexts": [{"keys": {"customer_id": c}, "request": {"discount": 0}}
                              for c in (1, 424242)]}
        response = client.post("/v1/models/churn/predict-batch", json=batch)
        assert [p["found"] for p in response.json()["predictions"]] == [True, False]
        metrics = client.get("/metrics").text
    assert 'parity_entities_not_found_total{model="churn"} 1.0' in metrics


def test_an_unmaterialized_source_is_a_503_with_the_hint(tmp_path: Path) -> None:
    root = pt.init(tmp_path / "ws")
    (root / "features.py").write_text(DEFINITIONS)
    ws = pt.open(root)
    rows = [{"customer_id": 1, "amount": 5.0, "event_time": NOW - timedelta(days=1)}]
    ws.ingest("purchases", pd.DataFrame(rows), recorded_at="lag")  # no materialize
    served = Served(ws, [])
    ws.registry.set_alias("churn", "live", served.register())
    try:
        with serve(ws) as (client, _):
            response = client.post("/v1/models/churn/predict", json=BODY)
            assert response.status_code == 503, response.text
            assert "parity materialize" in response.json()["error"]
            health = client.get("/health")
            assert health.status_code == 503
            assert any("never materialized" in r for r in health.json()["reasons"])
            assert 'parity_online_source_ready{source="purchases"} 0.0' in \
                client.get("/metrics").text
    finally:
        ws.online.close()


def test_scoring_uses_one_blas_openmp_thread_per_worker_thread(served: Served) -> None:
    seen: list[list[int]] = []

    def score() -> None:
        with serve(served.ws, log=False) as (_, service):
            ctx = service.predict("churn", [_context()])
            assert ctx[0].logged == "off"
            seen.append([lib["num_threads"] for lib in threadpool_info()])

    worker = threading.Thread(target=score)
    worker.start()
    worker.join()
    assert seen and all(n == 1 for n in seen[0]), seen


def test_docs_are_served_without_a_cdn(served: Served) -> None:
    with serve(served.ws) as (client, _):
        page = client.get("/docs")
        assert page.status_code == 200
        urls = [part.split('"')[0] for part in page.text.split('src="')[1:]]
        urls += [part.split('"')[0] for part in page.text.split('href="')[1:]]
        assert urls and all(u.startswith("/") for u in urls), urls
        for url in urls:
            assert client.get(url).status_code == 200, url
        spec = client.get("/openapi.json").json()
        at = spec["components"]["schemas"]["ContextIn"]["properties"]["at"]
        assert "time zone" in at["description"]


def _context() -> object:
    from parity.serving.service import Context

    return Context(keys={"customer_id": 1}, request={"discount": 0.0})


def test_untyped_request_fields_of_mixed_types_are_a_422_and_logged_as_json(
    served: Served,
) -> None:
    with serve(served.ws, {"request_types": {"discount": "any"}}) as (client, _):
        batch = {"contexts": [{"keys": {"customer_id": 1}, "request": {"discount": 0.1}},
                              {"keys": {"customer_id": 2}, "request": {"discount": "x"}}]}
        response = client.post("/v1/models/churn/predict-batch", json=batch)
        assert response.status_code == 422 and "request_types" in response.json()["error"]
        ok = client.post("/v1/models/churn/predict",
                         json={"keys": {"customer_id": 1}, "request": {"discount": 0.5}})
        assert ok.status_code == 200, ok.text
    log = read_log(served.ws.feature_log_dir)
    assert log.num_rows == 1 and log.schema.field("request.discount").type == pa.string()


def test_a_store_behind_the_fact_log_is_reported_not_refused(served: Served) -> None:
    late = [{"customer_id": 1, "amount": 1.0, "event_time": NOW - timedelta(minutes=1)}]
    served.ws.ingest("purchases", pd.DataFrame(late), recorded_at="lag")  # not materialized
    with serve(served.ws) as (client, _):
        assert client.post("/v1/models/churn/predict", json=BODY).status_code == 200
        health = client.get("/health")
        assert health.status_code == 503, health.json()
        assert any("behind the fact log" in r for r in health.json()["reasons"])
        assert health.json()["online"]["purchases"]["behind_seconds"] > 3600
        metrics = client.get("/metrics").text
    assert 'parity_online_source_ready{source="purchases"} 0.0' in metrics


@pytest.mark.parametrize("discount", [1e308, -1e308])
def test_request_fields_that_make_a_feature_infinite_are_a_422(served: Served,
                                                               discount: float) -> None:
    with serve(served.ws) as (client, _):
        response = client.post("/v1/models/churn/predict",
                               json={"keys": {"customer_id": 3}, "request": {"discount": discount}})
    assert response.status_code == 422, response.text
    assert "spend_after_discount" in response.json()["error"]
