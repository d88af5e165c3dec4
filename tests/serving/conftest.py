"""A small served workspace: facts, online features, a registered live model."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import parity as pt
from parity.predictor import Predictor

UTC = timezone.utc
NOW = datetime.now(UTC).replace(microsecond=0)

DEFINITIONS = '''
import parity as pt

customer = pt.Entity("customer", keys={"customer_id": int})
purchases = pt.EventSource("purchases", customer, {"amount": float})

@pt.transform(dtype="float", request=["discount"])
def spend_after_discount(spend_7d, discount: float):
    return spend_7d * (1 - (discount or 0))

customer_features = pt.FeatureSet("customer_features", customer, [
    pt.Aggregate("spend_7d", purchases, "sum", "amount", window="7d"),
    pt.Aggregate("orders_7d", purchases, "count", window="7d"),
    spend_after_discount,
])
'''


@dataclass
class Served:
    ws: pt.Workspace
    versions: list[int]

    def register(self, coef_sign: float = 1.0, **kw: Any) -> int:
        fs = self.ws.definitions.feature_set("customer_features")
        X = np.array([[0, 0, 0], [10, 1, 9], [50, 3, 45], [100, 5, 90]], dtype=float)
        model = LogisticRegression().fit(X * coef_sign, [0, 0, 1, 1])
        predictor = Predictor(model, ["spend_7d", "orders_7d", "spend_after_discount"],
                              feature_sets=kw.pop("feature_sets", [fs]))
        mv = self.ws.registry.register("churn", predictor,
                                       feature_sets=predictor.feature_set_versions, **kw)
        self.versions.append(mv.version)
        return int(mv.version)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    root = pt.init(tmp_path / "ws")
    (root / "features.py").write_text(DEFINITIONS)
    config = (root / "parity.yaml").read_text().replace("online: sqlite", "online: memory")
    (root / "parity.yaml").write_text(config + "serving:\n  admin_token: s3cret\n")
    ws = pt.open(root)
    rows = [{"customer_id": c, "amount": float(10 * c + i),
             "event_time": NOW - timedelta(days=1 + i)} for c in range(1, 6) for i in range(3)]
    ws.ingest("purchases", pd.DataFrame(rows), recorded_at="lag")
    ws.online.materialize()
    served = Served(ws, [])
    first = served.register()
    ws.registry.set_alias("churn", "live", first, reason="first")
    yield served
    ws.online.close()
