"""One encoder for training and serving (issue 8.3).

The central test trains through ``FeatureEncoder`` on a Time Machine training set with string,
bool, timestamp and null features, registers the predictor, and checks that the matrix the
served model receives -- through ``ws.online.get_features`` after ``materialize`` and through
the HTTP app that ``parity serve`` runs -- equals the training matrix bit for bit.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import parity as pt
from parity.encoder import FeatureEncoder
from parity.errors import InputError, ModelSerializationError, SkewError
from parity.predictor import Predictor

UTC = timezone.utc
T0 = datetime(2024, 3, 1, tzinfo=UTC)

DEFINITIONS = '''
import parity as pt

customer = pt.Entity("customer", keys={"customer_id": int})
purchases = pt.EventSource("purchases", customer,
                           {"amount": float, "item": str, "express": bool})
profiles = pt.StateSource("profiles", customer,
                          {"country": str, "vip": bool, "signup_at": "timestamp"})

customer_features = pt.FeatureSet("customer_features", customer, [
    pt.Aggregate("spend_30d", purchases, "sum", "amount", window="30d"),
    pt.Aggregate("orders_30d", purchases, "count", window="30d"),
    pt.Aggregate("last_item", purchases, "last", "item"),
    pt.Aggregate("last_express", purchases, "last", "express"),
    pt.Aggregate("last_order_at", purchases, "max", "event_time"),
    pt.Lookup("country", profiles, "country"),
    pt.Lookup("vip", profiles, "vip"),
    pt.Lookup("signup_at", profiles, "signup_at"),
])
'''
FEATURES = ["spend_30d", "orders_30d", "last_item", "last_express", "last_order_at",
            "country", "vip", "signup_at"]


# --- the encoder on its own ---------------------------------------------------------------


def small_table() -> pa.Table:
    return pa.table({
        "n": pa.array([1, None, 3], pa.int64()),
        "x": pa.array([0.5, 2.0, None], pa.float64()),
        "flag": pa.array([True, False, None]),
        "when": pa.array([T0, None, T0 + timedelta(seconds=1, microseconds=5)],
                         pa.timestamp("us", tz="UTC")),
        "city": pa.array(["b", None, "a"]),
        "label": [0, 1, 0],
    })


def test_fit_learns_types_and_sorted_categories() -> None:
    encoder = FeatureEncoder(["n", "x", "flag", "when", "city"]).fit(small_table())
    assert [c.dtype for c in encoder.columns] == ["int", "float", "bool", "timestamp", "str"]
    assert encoder.categories == {"city": ["a", "b"]}
    X = encoder.encode(small_table())
    nan = np.nan
    epoch = T0.timestamp()
    expected = np.array([
        [1.0, 0.5, 1.0, epoch, 1.0],
        [nan, 2.0, 0.0, nan, nan],
        [3.0, nan, nan, epoch + 1.000005, 0.0],
    ])
    np.testing.assert_array_equal(X, expected)
    assert X.dtype == np.float64


def test_unseen_category_encodes_as_null_does() -> None:
    encoder = FeatureEncoder(["city"]).fit(small_table())
    X = encoder.encode(pa.table({"city": ["a", "zz", None, "b"]}))
    assert X[0, 0] == 0.0 and X[3, 0] == 1.0
    assert np.isnan(X[1, 0]) and np.isnan(X[2, 0])


def test_pandas_polars_and_arrow_give_the_same_matrix() -> None:
    import polars as pl

    table = small_table()
    encoder = FeatureEncoder(["n", "x", "flag", "when", "city"]).fit(table)
    from_arrow = encoder.encode(table)
    np.testing.assert_array_equal(encoder.encode(pl.from_arrow(table)), from_arrow)
    frame = table.to_pandas()
    frame["city"] = frame["city"].astype("category")  # a dictionary column on the way in
    np.testing.assert_array_equal(encoder.encode(frame), from_arrow)


def test_a_type_unlike_training_is_refused_not_coerced() -> None:
    encoder = FeatureEncoder(["x", "city"]).fit(small_table())
    with pytest.raises(SkewError, match="'x'.*fitted on float"):
        encoder.encode(pa.table({"x": ["1.5"], "city": ["a"]}))
    with pytest.raises(SkewError, match="'city'.*fitted on str"):
        encoder.encode(pa.table({"x": [1.5], "city": [3]}))
    with pytest.raises(InputError, match="lacks"):
        encoder.encode(pa.table({"x": [1.5]}))


def test_all_null_column_needs_a_declared_type() -> None:
    table = pa.table({"x": pa.nulls(3), "y": [1.0, 2.0, 3.0]})
    with pytest.raises(InputError, match="null in every training row"):
        FeatureEncoder(["x", "y"]).fit(table)
    encoder = FeatureEncoder(["x", "y"]).fit(table, dtypes={"x": "str"})
    assert encoder.columns[0].dtype == "str"
    assert np.isnan(encoder.encode(pa.table({"x": ["q"], "y": [1.0]}))[0, 0])


def test_json_round_trip_is_exact_and_rejects_garbage() -> None:
    encoder = FeatureEncoder(["n", "x", "flag", "when", "city"]).fit(small_table())
    spec = json.loads(json.dumps(encoder.to_dict()))
    again = FeatureEncoder.from_dict(spec)
    assert again == encoder
    np.testing.assert_array_equal(again.encode(small_table()), encoder.encode(small_table()))
    with pytest.raises(ModelSerializationError, match="format"):
        FeatureEncoder.from_dict({"format": "pickle"})
    with pytest.raises(ModelSerializationError, match="invalid feature entry"):
        FeatureEncoder.from_dict({**spec, "features": [{"name": "x", "dtype": "complex"}]})


def test_predictor_state_is_data_and_round_trips() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    table = small_table()
    encoder = FeatureEncoder(["n", "x", "flag", "when", "city"]).fit(table)
    model = HistGradientBoostingClassifier(max_iter=5).fit(encoder.encode(table), [0, 1, 0])
    predictor = Predictor(model, encoder=encoder, feature_sets={"fs": "abc"})
    state = json.loads(json.dumps(predictor.to_artifact_state()))
    again = Predictor.from_artifact_state(state, model)
    assert again.encoder == encoder and again.feature_set_versions == {"fs": "abc"}
    assert again.predict_table(table) == predictor.predict_table(table)
    with pytest.raises(ModelSerializationError, match="function"):
        Predictor(model, ["n"], output=lambda m, X: [0] * len(X)).to_artifact_state()


def test_rows_are_typed_like_training_so_one_row_equals_the_batch() -> None:
    table = small_table()
    encoder = FeatureEncoder(["n", "x", "flag", "when", "city"]).fit(table)

    class Echo:  # decode() needs a model; "raw" outputs are what it returns
        def predict(self, X: np.ndarray) -> np.ndarray:
            return X

    predictor = Predictor(Echo(), encoder=encoder, output="raw")
    rows = table.to_pylist()
    one_by_one = np.array([encoder.encode(predictor.rows_table([r]))[0] for r in rows])
    np.testing.assert_array_equal(one_by_one, encoder.encode(table))
    with pytest.raises(SkewError, match="'flag'"):
        predictor.predict_rows([{**rows[0], "flag": "yes"}])


# --- training and serving agree, bit for bit ----------------------------------------------


@dataclass
class World:
    ws: pt.Workspace
    train: pa.Table      # the training rows the encoder and model were fitted on
    everything: pa.Table  # every context, later ones with an unseen category
    predictor: Predictor
    version: int


def _facts() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(7)
    purchases = []
    for customer in (1, 2, 5):  # 3 never buys; 4 is never seen at all
        for day in range(0, 60, 2 if customer == 1 else 5):
            purchases.append({
                "customer_id": customer,
                "amount": float(np.round(rng.uniform(1, 100), 2)) / 3,
                "item": ["apple", "pear", "fig"][int(rng.integers(0, 3))]
                if customer != 5 or day < 40 else "kiwi",  # kiwi appears only late
                "express": bool(rng.integers(0, 2)) if day % 3 else None,
                "event_time": T0 + timedelta(days=day, hours=9, microseconds=day * 7),
            })
    profiles = [
        {"customer_id": 1, "country": "DE", "vip": True,
         "signup_at": T0 - timedelta(days=400, microseconds=3), "event_time": T0},
        {"customer_id": 3, "country": "FR", "vip": False, "signup_at": None,
         "event_time": T0 + timedelta(days=1)},
        {"customer_id": 3, "country": "JP", "vip": None,  # JP: never seen in training
         "signup_at": T0 - timedelta(days=20), "event_time": T0 + timedelta(days=45)},
        {"customer_id": 5, "country": "DE", "vip": None, "signup_at": None,
         "event_time": T0 + timedelta(days=2)},
    ]
    return pd.DataFrame(purchases), pd.DataFrame(profiles)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    from sklearn.ensemble import HistGradientBoostingClassifier

    root = pt.init(tmp_path / "ws")
    (root / "features.py").write_text(DEFINITIONS)
    config = (root / "parity.yaml").read_text().replace(
        "online: sqlite", f"online: sqlite:///{root}/data/online.db?lookback=none")
    (root / "parity.yaml").write_text(config)
    ws = pt.open(root)
    purchases, profiles = _facts()
    ws.ingest("purchases", purchases)
    ws.ingest("profiles", profiles)
    contexts = pd.DataFrame(
        [{"customer_id": c, "at": T0 + timedelta(days=d, hours=12), "label": (c + d) % 3 == 0}
         for d in range(0, 62) for c in (1, 2, 3, 4, 5)]
    )
    everything = ws.training_set(contexts, "customer_features")
    train = everything.filter(pa.compute.less(everything.column("at"),
                                              pa.scalar(T0 + timedelta(days=30), everything.column("at").type)))
    fs = ws.definitions.feature_set("customer_features")
    encoder = FeatureEncoder(FEATURES).fit(train, dtypes={f.name: f.dtype for f in fs.features})
    model = HistGradientBoostingClassifier(max_iter=20, min_samples_leaf=5, random_state=0)
    model.fit(encoder.encode(train), train.column("label").to_numpy())
    predictor = Predictor(model, encoder=encoder, feature_sets=[fs])
    mv = ws.registry.register("churn", predictor, feature_sets=predictor.feature_set_versions,
                              training_set={"source": "test"})
    ws.registry.set_alias("churn", "live", mv.version, reason="test")
    ws.online.materialize()
    yield World(ws, train, everything, predictor, int(mv.version))
    ws.online.close()


class Recorder:
    """Wraps the served model to record the matrix it is handed; the real model still scores."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.seen: list[np.ndarray] = []
        self.classes_ = model.classes_

    def predict(self, X: np.ndarray) -> Any:
        self.seen.append(np.array(X, copy=True))
        return self.model.predict(X)

    def predict_proba(self, X: np.ndarray) -> Any:
        self.seen.append(np.array(X, copy=True))
        return self.model.predict_proba(X)


def test_the_data_exercises_every_kind_of_value(world: World) -> None:
    X = world.predictor.encode(world.everything)
    rows = world.everything.to_pylist()
    col = {name: i for i, name in enumerate(FEATURES)}
    assert any(r["country"] == "JP" for r in rows)                 # unseen category
    assert "JP" not in world.predictor.categories["country"]
    assert "kiwi" not in world.predictor.categories["last_item"]
    assert any(r["last_item"] == "kiwi" for r in rows)
    for name in ("country", "vip", "signup_at", "last_item", "last_express", "last_order_at"):
        assert np.isnan(X[:, col[name]]).any(), f"{name} has no null"
        assert (~np.isnan(X[:, col[name]])).any(), f"{name} is always null"
    assert X[:, col["signup_at"]][~np.isnan(X[:, col["signup_at"]])].min() < T0.timestamp()


def test_online_features_encode_exactly_like_the_training_set(world: World) -> None:
    rows = world.everything.to_pylist()
    online = [
        world.ws.online.get_features("customer_features",
                                     {"customer_id": r["customer_id"], "at": r["at"]})
        for r in rows
    ]
    served = world.predictor.encode(world.predictor.rows_table(online))
    offline = world.predictor.encode(world.everything)
    assert served.tobytes() == offline.tobytes()  # bit for bit, NaN included


def test_served_model_receives_the_training_matrix_bit_for_bit(world: World) -> None:
    from fastapi.testclient import TestClient

    from parity.serving.app import create_app
    from parity.serving.factory import build_service

    service = build_service(world.ws, log=False)
    service.start(watch=False)
    try:
        loaded = service.slot("churn").current
        assert loaded is not None, service.slot("churn").last_swap
        assert loaded.version == world.version
        # The registry's copy carries the same encoder as the one trained through, stored
        # as JSON data beside the model (not a pickled Predictor).
        assert loaded.predictor.encoder == world.predictor.encoder
        stored = world.ws.registry.get("churn", world.version).artifact_sha256
        assert b"parity.feature_encoder/1" in world.ws.registry.artifacts.read(stored)
        recorder = Recorder(loaded.predictor.model)
        loaded.predictor.model = recorder
        contexts = [{"keys": {"customer_id": r["customer_id"]}, "at": r["at"].isoformat()}
                    for r in world.everything.select(["customer_id", "at"]).to_pylist()]
        outputs: list[float] = []
        with TestClient(create_app(service)) as client:
            for start in range(0, len(contexts), 100):
                r = client.post("/v1/models/churn/predict-batch",
                                json={"contexts": contexts[start:start + 100]})
                assert r.status_code == 200, r.text
                outputs += [p["output"] for p in r.json()["predictions"]]
            one = client.post("/v1/models/churn/predict", json=contexts[-1])
            assert one.status_code == 200, one.text
    finally:
        service.stop()
    served = np.vstack(recorder.seen[:-1])
    training = world.predictor.encode(world.everything)
    assert served.shape == training.shape
    assert served.tobytes() == training.tobytes()
    assert recorder.seen[-1].tobytes() == training[-1:].tobytes()  # a one-row request too
    assert outputs == world.predictor.predict_table(world.everything)
    # and the training rows themselves are what the model was fitted on
    train_X = world.predictor.encode(world.train)
    assert train_X.tobytes() == training[: world.train.num_rows].tobytes()


def test_a_predictor_pickled_before_the_encoder_still_loads() -> None:
    import pickle

    class Constant:
        def predict(self, X: np.ndarray) -> np.ndarray:
            return X[:, 1]

    old = Predictor.__new__(Predictor)
    old.__dict__.update({"model": None, "features": ["x", "city"], "output": "raw",
                         "categories": {"city": ["a", "b"]}, "k": 3, "feature_set_versions": {}})
    state = old.__dict__.copy()
    again = Predictor.__new__(Predictor)
    again.__setstate__(state)
    again.model = Constant()
    assert again.features == ["x", "city"] and again.categories == {"city": ["a", "b"]}
    assert again.predict_rows([{"x": 1.0, "city": "b"}]) == [1.0]
    current = pickle.loads(pickle.dumps(Predictor(_Raw(), ["x"], output="raw")))
    assert current.features == ["x"] and current.predict_rows([{"x": 2.5}]) == [2.5]


class _Raw:
    def predict(self, X: np.ndarray) -> np.ndarray:
        return X[:, 0]
