"""The retail demo's archive step on a small slice of the real data."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import parity as pt

RETAIL = Path(__file__).resolve().parents[2] / "examples" / "retail"


@pytest.mark.slow
def test_archive_step_on_retail_data(tmp_path: Path) -> None:
    sys.path.insert(0, str(RETAIL))
    try:
        import archive_step
        import prepare
    finally:
        sys.path.remove(str(RETAIL))
    pt.init(tmp_path / "ws", name="retail")
    (tmp_path / "ws" / "features.py").write_text((RETAIL / "features.py").read_text())
    ws = pt.open(tmp_path / "ws")
    raw = prepare.load_raw(shift=prepare.shift_to_now())
    raw = raw[raw["CustomerID"].isin(sorted(raw["CustomerID"].unique())[:60])]
    ws.ingest("purchases", prepare.purchases(raw))
    ws.ingest("profiles", prepare.profiles(raw))
    found = archive_step.archive_round_trip(ws, customers=40)
    assert len(found.last_orders) == 5
    assert found.corrected == 30
    assert found.equal_after_sync
    assert found.past_unchanged
