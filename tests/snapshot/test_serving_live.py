"""A model served over a live source: the feature log says, per prediction, what was served."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from parity.featurelog import read_log
from parity.predictor import Predictor
from tests.serving.helpers import serve
from tests.snapshot.service import LiveService
from tests.snapshot.workspace import make_workspace, snapshot


def test_the_feature_log_records_live_answers_and_fallbacks(
    tmp_path: Path, service: LiveService
) -> None:
    ws = make_workspace(tmp_path / "ws", service.url, timeout="100ms", fallback="snapshot")
    snapshot(ws, 3)
    ws.online.materialize()
    fs = ws.definitions.feature_set("rec_features")
    model = LogisticRegression().fit(np.array([[0.1], [0.9], [0.2], [0.8]]), [0, 1, 0, 1])
    predictor = Predictor(model, ["score"], feature_sets=[fs])
    version = ws.registry.register("recs_model", predictor,
                                   feature_sets=predictor.feature_set_versions).version
    ws.registry.set_alias("recs_model", "live", version, reason="test")
    service.faults.statuses[2] = [503]  # customer 2's live call fails: the snapshot is served
    with serve(ws, {"feature_log": {"sync": True}}) as (client, _):
        for customer in (1, 2):
            got = client.post("/v1/models/recs_model/predict",
                              json={"keys": {"customer_id": customer}})
            assert got.status_code == 200, got.text
            assert got.json()["logged"] == "durable"
    log = read_log(ws.feature_log_dir)
    assert log.num_rows == 2
    used = {row["key.customer_id"]: json.loads(row["live.recs"]) for row in log.to_pylist()}
    assert used[1]["used"] == "live" and used[2]["used"] == "fallback_snapshot", used
    assert "503" in used[2]["detail"]
    # the served features are the stored snapshot's for customer 2, the live answer's for 1
    assert [row["feature.top_item"] for row in log.to_pylist()] == ["i1", "i2"]
    ws.online.close()
