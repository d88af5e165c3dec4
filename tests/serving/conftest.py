"""A small served workspace: facts, online features, a registered live model."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

import parity as pt
from tests.serving.helpers import DEFINITIONS, NOW, Served


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
