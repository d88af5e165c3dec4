"""The publications router in a small FastAPI app."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from parity.hulk import Fallback, Publications, open_publication_store
from parity.hulk.http import publications_router
from tests.hulk.helpers import scores


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    pubs = Publications(open_publication_store(f"sqlite:///{tmp_path / 'p.db'}"))
    pubs.publish("churn", scores(10), key_columns=["customer_id"],
                 fallback=Fallback.default(0.1))
    pubs.publish("pairs", pa.table({"a": ["x"], "b": [1], "output": [0.5]}),
                 key_columns=["a", "b"])
    pubs.publish("stopped", scores(0), key_columns=["customer_id"])
    app = FastAPI()
    app.include_router(publications_router(lambda: pubs))
    return TestClient(app)


def test_get_one_key_with_its_version(client: TestClient) -> None:
    answer = client.get("/v1/publications/churn/3")
    assert answer.status_code == 200
    assert answer.json() == {"publication": "churn", "key": "3", "value": 3 / 97, "version": 1,
                             "found": True, "fallback": None}


def test_a_new_key_shows_its_fallback(client: TestClient) -> None:
    body = client.get("/v1/publications/churn/424242").json()
    assert (body["value"], body["found"], body["fallback"]) == (0.1, False, "default")


def test_batch_lookup_and_composite_keys(client: TestClient) -> None:
    answer = client.post("/v1/publications/churn/lookup", json={"keys": [1, "2", 99]})
    assert answer.status_code == 200
    results = answer.json()["results"]
    assert [r["found"] for r in results] == [True, True, False]
    assert client.get("/v1/publications/pairs/x|1").json()["value"] == 0.5
    batch = client.post("/v1/publications/pairs/lookup", json={"keys": [["x", 1]]}).json()
    assert batch["results"][0]["value"] == 0.5


def test_listing_and_manifest(client: TestClient) -> None:
    listed = client.get("/v1/publications").json()["publications"]
    assert {"name": "churn", "live_version": 1} in listed
    manifest = client.get("/v1/publications/churn").json()
    assert manifest["summary"]["rows"] == 10 and "sample" not in manifest["summary"]


def test_errors_map_to_status_codes(client: TestClient) -> None:
    assert client.get("/v1/publications/nope/1").status_code == 404
    assert client.get("/v1/publications/stopped/1").status_code == 503
    assert client.get("/v1/publications/pairs/x").status_code == 422
    assert client.post("/v1/publications/churn/lookup", json={"keys": []}).status_code == 422
