"""`parity publish`, `parity publications ...`, `parity lookup`, as a user runs them."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner
from sklearn.linear_model import LinearRegression

import parity as pt
from parity.cli import main
from parity.hulk import open_publications
from parity.predictor import Predictor
from tests.hulk.helpers import AT

FNS = '''
def spend(table):
    return table.column("spend_30d")
'''


def run(workspace: pt.Workspace, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["-w", str(workspace.root), *args])
    return result.exit_code, result.output


def test_publish_list_show_lookup_rollback(ws: pt.Workspace) -> None:
    (ws.root / "fns.py").write_text(FNS)
    code, output = run(ws, "publish", "spend", "--fn", "fns.py:spend", "-f", "customer_features",
                       "--keys-source", "purchases", "--at", AT, "--fallback", "default:-1")
    assert code == 0, output
    assert "spend v1 is live" in output
    code, output = run(ws, "publish", "spend", "--fn", "fns.py:spend", "-f", "customer_features",
                       "--keys-query", "SELECT 1 AS customer_id", "--at", AT)
    assert code == 1 and "stopped before the swap" in output  # a decision: exit 1
    code, output = run(ws, "lookup", "spend", "1", "77")
    assert code == 0, output
    lines = [json.loads(line) for line in output.strip().splitlines()]
    assert [(x["value"], x["fallback"]) for x in lines] == [(15.0, None), (-1, "default")]
    code, output = run(ws, "publications", "list")
    assert code == 0 and "spend" in output and "v2 rejected" in output
    code, output = run(ws, "publications", "show", "spend")
    assert code == 0 and '"rows": 3' in output and '"lineage"' in output
    assert run(ws, "publish", "spend", "--fn", "fns.py:spend", "-f", "customer_features",
               "--keys-source", "purchases", "--at", AT)[0] == 0
    code, output = run(ws, "publications", "rollback", "spend", "--reason", "test")
    assert code == 0 and "v1 is live again" in output, output
    code, output = run(ws, "publications", "rollback", "spend")
    assert code == 2 and "no earlier version" in output  # an error: exit 2
    code, output = run(ws, "publications", "gc", "spend")
    assert code == 0 and "spend: dropped" in output


def test_publish_a_registered_model_with_compute_fallback(ws: pt.Workspace) -> None:
    fs = ws.definitions.feature_set("customer_features")
    X = np.array([[0.0, 0.0], [10.0, 1.0], [20.0, 2.0]])
    model = LinearRegression().fit(X, np.array([0.0, 1.0, 2.0]))
    predictor = Predictor(model, ["spend_30d", "orders_30d"], output="raw", feature_sets=[fs])
    ws.registry.register("spend_model", predictor, feature_sets=predictor.feature_set_versions)
    code, output = run(ws, "publish", "scores", "--model", "spend_model@1", "--keys-source",
                       "purchases", "--at", AT, "--fallback", "compute")
    assert code == 0, output
    pubs = open_publications(ws)
    manifest = pubs.manifest("scores")
    assert manifest.lineage["model"]["name"] == "spend_model"
    assert manifest.lineage["model"]["version"] == 1
    assert manifest.lineage["feature_sets"] == {"customer_features": fs.version}
    ws.online.materialize()
    result = pubs.lookup("scores", 4)  # no precomputed value: the registered model computes it
    online = ws.online.get_features(fs, {"customer_id": 4})
    assert (result.found, result.fallback) == (False, "compute")
    assert result.value == predictor.predict_rows([online])[0]
    # The docs' last step: read over HTTP; the new key shows the fallback that answered it.
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from parity.hulk.http import publications_router

    app = FastAPI()
    app.include_router(publications_router(open_publications(ws)))
    body = TestClient(app).get("/v1/publications/scores/4").json()
    assert (body["found"], body["fallback"], body["version"]) == (False, "compute", 1)
    assert body["value"] == result.value


def test_publish_needs_one_function_and_one_key_source(ws: pt.Workspace) -> None:
    code, output = run(ws, "publish", "x", "--keys-source", "purchases")
    assert code == 2 and "exactly one of --model" in output
    (ws.root / "fns.py").write_text(FNS)
    code, output = run(ws, "publish", "x", "--fn", "fns.py:spend")
    assert code == 2 and "exactly one of --keys-source" in output
