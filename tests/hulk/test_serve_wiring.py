"""`parity serve` answers publication lookups and archive reads beside the models."""

from __future__ import annotations

import pyarrow as pa
from fastapi.testclient import TestClient

import parity as pt
from parity.cli.serve import _routers
from parity.hulk import open_publications
from parity.serving.app import create_app
from parity.serving.factory import build_service


def test_serve_mounts_the_publications_router(ws: pt.Workspace) -> None:
    data = pa.table({"customer_id": [1, 2], "output": [15.0, 3.0]})
    open_publications(ws).publish("spend", data, key_columns=["customer_id"])
    service = build_service(ws, [], log=False)
    app = create_app(service, None, routers=_routers(ws))
    with TestClient(app) as client:
        assert client.get("/v1/publications").status_code == 200
        found = client.get("/v1/publications/spend/1")
        assert found.status_code == 200, found.text
        assert found.json()["value"] == 15.0
        assert client.get("/v1/publications/nope/1").status_code == 404
        paths = client.get("/openapi.json").json()["paths"]
        assert "/v1/archive/{source}/{key}" in paths
