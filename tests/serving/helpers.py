"""Test helpers: the served workspace's definitions and handle, a free port, a workspace seen
with another ``serving:`` section, and an HTTP client. A non-test module: test modules import
these from here, never from ``conftest`` or another test module."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
from fastapi.testclient import TestClient
from sklearn.linear_model import LogisticRegression

import parity as pt
from parity.predictor import Predictor
from parity.serving.app import create_app
from parity.serving.factory import build_service
from parity.serving.service import PredictionService

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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def served_workspace(folder: Path, serving_yaml: str = "") -> Path:
    """A workspace on disk for a `parity serve` subprocess: purchases of customers 1-5
    materialized, churn version 1 live, ``serving_yaml`` appended to parity.yaml."""
    root = pt.init(folder)
    (root / "features.py").write_text(DEFINITIONS)
    config = (root / "parity.yaml").read_text()
    (root / "parity.yaml").write_text(config + serving_yaml)
    ws = pt.open(root)
    rows = [{"customer_id": c, "amount": float(c), "event_time": NOW - timedelta(days=1)}
            for c in range(1, 6)]
    ws.ingest("purchases", pd.DataFrame(rows), recorded_at="lag")
    ws.online.materialize()
    served = Served(ws, [])
    ws.registry.set_alias("churn", "live", served.register())
    ws.online.close()
    return root


def wait_healthy(base: str, server: subprocess.Popen[bytes], seconds: float) -> None:
    """Wait until the `parity serve` subprocess at ``base`` answers /health with 200; fail
    with its stderr if it exits first, or after ``seconds``."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert server.poll() is None, server.stderr.read().decode()  # type: ignore[union-attr]
        time.sleep(0.1)
    raise AssertionError(f"parity serve at {base} was not healthy within {seconds} s")


AUTH = {"Authorization": "Bearer s3cret"}
BODY = {"keys": {"customer_id": 2}, "request": {"discount": 0.1}}


class WithServing:
    """The real workspace, seen with ``serving`` replaced (build_service reads only config)."""

    def __init__(self, ws: pt.Workspace, serving: dict[str, Any]) -> None:
        self._ws = ws
        self.config = {**ws.config, "serving": serving}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ws, name)


@contextmanager
def serve(ws: pt.Workspace, serving: dict[str, Any] | None = None,
          **kw: Any) -> Iterator[tuple[TestClient, PredictionService]]:
    """A started service over ``ws`` (with ``serving`` as its config) and a client for it."""
    config = {"admin_token": "s3cret", **(serving or {})}
    service = build_service(WithServing(ws, config), poll_interval=0.05, **kw)  # type: ignore[arg-type]
    service.start()
    try:
        yield TestClient(create_app(service, "s3cret"), raise_server_exceptions=False), service
    finally:
        service.stop()
