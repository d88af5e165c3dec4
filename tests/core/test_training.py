"""``parity.training.train`` and ``parity train``: encoder first, time holdout, lineage."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import parity as pt
from parity.cli import main
from parity.errors import ConfigError, InputError
from parity.training import file_sha256, train

UTC = timezone.utc
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def training_table(n: int = 200, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    spend = rng.uniform(0, 100, n)
    country = rng.choice(["DE", "FR", "UK"], n).astype(object)
    country[: n // 2][rng.random(n // 2) < 0.1] = None
    country[-5:] = "JP"  # only in the latest rows: unseen by the fitted encoder
    return pa.table({
        "customer_id": np.arange(n),
        "at": pa.array([T0 + timedelta(hours=i) for i in range(n)], pa.timestamp("us", "UTC")),
        "spend_30d": spend,
        "country": pa.array(country, pa.string()),
        "vip": pa.array(rng.random(n) < 0.3),
        "churned": pa.array(spend + rng.normal(0, 20, n) < 50),
        "amount_next": spend * 2 + rng.normal(0, 1, n),
    })


def test_holdout_is_the_latest_rows_and_the_encoder_sees_only_fitted_rows() -> None:
    table = training_table()
    result = train(table, "churned", features=["spend_30d", "country", "vip"], model="hgb")
    lineage = result.lineage
    assert lineage["split"] == "time"
    assert lineage["fit_rows"] + lineage["holdout_rows"] == table.num_rows == lineage["rows"]
    assert lineage["fit_at_max"] < lineage["holdout_start"] <= lineage["train_end"]
    assert lineage["train_end"] == (T0 + timedelta(hours=199)).isoformat()
    assert lineage["holdout_rows"] == 40
    assert "JP" not in result.predictor.categories["country"]  # JP is only in the holdout
    assert result.task == "binary"
    assert {"auc", "accuracy", "log_loss", "positive_rate"} <= set(result.metrics)
    assert result.metrics["auc"] > 0.7  # the label follows spend_30d
    assert len(lineage["table_sha256"]) == 64
    # the trained predictor scores the holdout through the same encoder
    assert len(result.predictor.predict_table(table)) == table.num_rows


def test_same_input_same_model() -> None:
    a = train(training_table(), "churned", features=["spend_30d", "country"], seed=1)
    b = train(training_table(), "churned", features=["spend_30d", "country"], seed=1)
    assert a.predictor.encoder == b.predictor.encoder
    assert a.metrics == b.metrics


@pytest.mark.parametrize("kind", ["lightgbm", "logistic"])
def test_other_model_kinds_train_on_the_encoded_matrix(kind: str) -> None:
    result = train(training_table(), "churned", features=["spend_30d", "country", "vip"],
                   model=kind)
    assert result.metrics["auc"] > 0.7
    assert result.params["model"] == kind


def test_regression_label() -> None:
    result = train(training_table(), "amount_next", features=["spend_30d"])
    assert result.task == "regression" and result.predictor.output == "raw"
    assert result.metrics["r2"] > 0.9
    with pytest.raises(ConfigError, match="logistic is for class labels"):
        train(training_table(), "amount_next", features=["spend_30d"], model="logistic")


def test_mistakes_are_named() -> None:
    table = training_table()
    with pytest.raises(InputError, match="label column 'nope'"):
        train(table, "nope", features=["spend_30d"])
    with pytest.raises(InputError, match="say which columns"):
        train(table, "churned")
    nulls = table.set_column(5, "churned", pa.array([None] * 3 + [True] * 197, pa.bool_()))
    with pytest.raises(InputError, match="null in 3 of 200 rows"):
        train(nulls, "churned", features=["spend_30d"])
    with pytest.raises(ConfigError, match="holdout"):
        train(table, "churned", features=["spend_30d"], holdout=1.5)
    with pytest.raises(ConfigError, match="not one of"):
        train(table, "churned", features=["spend_30d"], model="forest")


DEFINITIONS = '''
import parity as pt
customer = pt.Entity("customer", keys={"customer_id": int})
profiles = pt.StateSource("profiles", customer, {"spend": float, "country": str, "vip": bool})
customer_features = pt.FeatureSet("customer_features", customer, [
    pt.Lookup("spend_30d", profiles, "spend"),
    pt.Lookup("country", profiles, "country"),
    pt.Lookup("vip", profiles, "vip"),
])
'''


def test_cli_trains_registers_with_lineage(tmp_path: Path) -> None:
    root = pt.init(tmp_path / "ws")
    (root / "features.py").write_text(DEFINITIONS)
    path = root / "train.parquet"
    pq.write_table(training_table(), path)
    result = CliRunner().invoke(
        main, ["-w", str(root), "train", str(path), "--label", "churned", "--name", "churn"],
        catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "auc" in result.output and "registered churn@1" in result.output
    assert "parity models promote churn 1" in result.output
    ws = pt.open(root)
    mv = ws.registry.get("churn", 1)
    fs = ws.definitions.feature_set("customer_features")
    assert mv.feature_sets == {"customer_features": fs.version}
    assert mv.training_set["path"] == "train.parquet"  # relative to the workspace
    assert mv.training_set["sha256"] == file_sha256(path)
    assert mv.training_set["features"] == ["spend_30d", "country", "vip"]
    assert mv.metrics["auc"] > 0.7
    loaded = ws.registry.load("churn", 1)
    assert [c.dtype for c in loaded.encoder.columns] == ["float", "str", "bool"]


def test_cli_says_which_feature_set_when_none_fits(tmp_path: Path) -> None:
    root = pt.init(tmp_path / "ws")
    (root / "features.py").write_text(DEFINITIONS)
    path = root / "train.parquet"
    pq.write_table(training_table().drop_columns(["vip"]), path)
    result = CliRunner().invoke(
        main, ["-w", str(root), "train", str(path), "--label", "churned", "--name", "churn"])
    assert result.exit_code != 0
    assert "--feature-set" in result.output
