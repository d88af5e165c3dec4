"""The retail example on Spark: ``engine: spark`` in ``parity.yaml`` (one line) gives the
training set the DuckDB engine gives, cell for cell, on a slice of the real Online Retail data
(``examples/retail``: its feature definitions, its fact preparation and its contexts)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

import parity as pt
from tests.conformance import assert_same

pytestmark = pytest.mark.spark

RETAIL = Path(__file__).resolve().parents[2] / "examples" / "retail"
CUSTOMERS = 80


def test_retail_training_set_on_spark_equals_duckdb(spark: Any, tmp_path: Path) -> None:
    sys.path.insert(0, str(RETAIL))
    try:
        import prepare
    finally:
        sys.path.remove(str(RETAIL))
    if not prepare.DATA.exists():
        pytest.skip(f"the Online Retail data is missing at {prepare.DATA}")
    root = tmp_path / "ws"
    pt.init(root, name="retail")
    (root / "features.py").write_text((RETAIL / "features.py").read_text())
    raw = prepare.load_raw()
    raw = raw[raw["CustomerID"].isin(sorted(raw["CustomerID"].unique())[:CUSTOMERS])]
    ws = pt.open(root)
    ws.ingest("purchases", prepare.purchases(raw))
    ws.ingest("profiles", prepare.profiles(raw))
    contexts = prepare.contexts_and_labels(raw)
    assert ws.engine.name == "duckdb"
    expected = ws.training_set(contexts, "customer_features")

    config = root / "parity.yaml"
    text = config.read_text()
    assert "engine: duckdb " in text
    config.write_text(text.replace("engine: duckdb ", "engine: spark  "))  # the one line
    on_spark = pt.open(root)
    assert on_spark.engine.name == "spark"
    actual = on_spark.training_set(contexts, "customer_features")

    assert expected.num_rows == len(contexts) > 1_000
    assert actual.column_names == expected.column_names
    assert_same(expected, actual, expected.column_names)
    # the slice exercises what the comparison is about: non-empty windows, corrections of
    # nothing (a history load), lookups and exact float sums that are not round numbers
    assert expected.column("orders_90d").to_pylist().count(0) < expected.num_rows
    assert any(v not in (None, 0.0) for v in expected.column("spend_30d").to_pylist())
