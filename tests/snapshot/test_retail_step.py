"""The retail demo's Snapshotter step on a slice of the real data."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

import parity as pt

RETAIL = Path(__file__).resolve().parents[2] / "examples" / "retail"


@pytest.mark.slow
def test_snapshot_step_on_retail_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(RETAIL))
    prepare = importlib.import_module("prepare")
    live_service = importlib.import_module("live_service")
    root = pt.init(tmp_path / "retail")
    (root / "features.py").write_text((RETAIL / "features.py").read_text())
    ws = pt.open(root)
    raw = prepare.load_raw(shift=prepare.shift_to_now())
    first = sorted(raw["CustomerID"].unique())[:300]
    raw = raw[raw["CustomerID"].isin(first)]
    for source, facts in (("purchases", prepare.purchases(raw)),
                          ("profiles", prepare.profiles(raw))):
        ws.ingest(source, facts)
    found = live_service.snapshot_round_trip(ws, rate=0.5)
    total = found.coverage.total
    assert found.sampled == total.contexts > 50
    assert total.written == total.contexts  # nothing lost
    assert len(found.strata) >= 4  # country x tenure band
    assert found.trained_rows == total.written
    assert found.calls_while_training == 0 and found.invented_matches_service
