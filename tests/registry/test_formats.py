"""Artifacts that run no code: skops for scikit-learn, LightGBM text, the Predictor as data, every
artifact signed with a key outside the metadata database, pickle only as an explicit opt-in."""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from parity.errors import (
    ArtifactIntegrityError,
    ConfigError,
    InputError,
    InvalidModelError,
    ModelSerializationError,
    WorkspaceError,
)
from parity.predictor import Predictor
from parity.registry import Registry, SqliteRegistry, open_registry, registry_from_config
from parity.registry.formats import MAGIC, skops_trusted

rng = np.random.default_rng(7)
X = rng.normal(size=(400, 4))
X[::17, 2] = np.nan  # LightGBM and HistGradientBoosting see missing values too
Y = (np.nan_to_num(X[:, 0]) + X[:, 1] > 0).astype(np.int64)
Y3 = np.digitize(X[:, 0], [-0.5, 0.5])
XF = np.nan_to_num(X)  # for estimators that refuse NaN
FEATURES = ["a", "b", "c", "d"]


class Custom:
    """A model of the user's own class: no safe format can hold it."""

    def __init__(self, factor: float) -> None:
        self.factor = factor

    def predict(self, X: Any) -> Any:
        return np.asarray(X)[:, 0] * self.factor


def double(X: Any) -> Any:
    return np.asarray(X) * 2


def _open(tmp_path: Path, **kwargs: Any) -> Registry:
    return open_registry(f"sqlite://{tmp_path / 'registry.db'}", tmp_path / "artifacts", **kwargs)


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return _open(tmp_path)


def _header(registry: Registry, name: str) -> dict[str, Any]:
    mv = registry.get(name)
    return registry.artifacts.read_verified(mv.artifact_sha256).header


def _table(rows: np.ndarray) -> pa.Table:
    return pa.table({name: rows[:, i] for i, name in enumerate(FEATURES)})


# --- scikit-learn through skops -----------------------------------------------------------


def _sklearn_models() -> list[Any]:
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return [
        HistGradientBoostingClassifier(max_iter=15, random_state=0),
        RandomForestClassifier(n_estimators=5, random_state=0),
        make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression()),
    ]


@pytest.mark.parametrize("index", range(3))
def test_scikit_learn_models_round_trip_bit_exactly_through_skops(
    registry: Registry, index: int
) -> None:
    model = _sklearn_models()[index].fit(X, Y)
    registry.register("m", model, feature_sets={})
    loaded = registry.load("m")
    assert type(loaded) is type(model)
    assert np.array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert np.array_equal(loaded.predict(X), model.predict(X))
    assert _header(registry, "m")["model"]["format"] == "skops"


def test_types_outside_the_allow_list_are_refused_naming_them(registry: Registry) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    model = make_pipeline(FunctionTransformer(double), LogisticRegression()).fit(X[:, :2], Y)
    with pytest.raises(ModelSerializationError, match=r"test_formats\.double") as caught:
        registry.register("m", model, feature_sets={})
    assert "allow-list" in str(caught.value) and "allow_pickle" in str(caught.value)
    assert registry.list_models() == []
    for name in ("builtins.eval", "posix.system", "sklearn.utils.fixes.parse_version"):
        with pytest.raises(ModelSerializationError, match=name.replace(".", r"\.")):
            skops_trusted([name], "x")
    assert skops_trusted(["sklearn.tree._tree.Tree"], "x") == ["sklearn.tree._tree.Tree"]


# --- LightGBM as text ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["binary", "multiclass", "regressor", "booster"])
def test_lightgbm_models_round_trip_bit_exactly_as_text(registry: Registry, kind: str) -> None:
    lgb = pytest.importorskip("lightgbm")
    params = {"n_estimators": 25, "num_leaves": 7, "verbose": -1, "random_state": 0}
    model: Any
    if kind == "binary":
        model = lgb.LGBMClassifier(**params).fit(X, np.where(Y == 1, "yes", "no"))
    elif kind == "multiclass":
        model = lgb.LGBMClassifier(**params).fit(X, Y3)
    elif kind == "regressor":
        model = lgb.LGBMRegressor(**params).fit(X, X[:, 0] * 3)
    else:
        model = lgb.train({"objective": "binary", "verbose": -1}, lgb.Dataset(X, Y), 20)
    registry.register("m", model, feature_sets={})
    loaded = registry.load("m")
    assert np.array_equal(np.asarray(loaded.predict(X)), np.asarray(model.predict(X)))
    if kind in ("binary", "multiclass"):
        assert np.array_equal(loaded.predict_proba(X), model.predict_proba(X))
        assert list(loaded.classes_) == list(model.classes_)
    else:
        assert not hasattr(loaded, "predict_proba")
    header = _header(registry, "m")
    assert header["model"]["format"].startswith("lightgbm-")
    payload = registry.artifacts.read_verified(registry.get("m").artifact_sha256).payload
    assert payload.startswith(b"tree\n")  # LightGBM's own text, not a pickle


# --- the Predictor as data ----------------------------------------------------------------


def test_a_predictor_is_stored_as_json_around_its_model(registry: Registry) -> None:
    lgb = pytest.importorskip("lightgbm")
    model = lgb.LGBMClassifier(n_estimators=10, verbose=-1).fit(X, Y3)
    predictor = Predictor(model, FEATURES, output="top_k", k=2, feature_sets={"fs": "v1"})
    registry.register("p", predictor, feature_sets={"fs": "v1"})
    loaded = registry.load("p")
    assert isinstance(loaded, Predictor)
    assert loaded.features == FEATURES and loaded.feature_set_versions == {"fs": "v1"}
    assert loaded.predict_table(_table(X)) == predictor.predict_table(_table(X))
    header = _header(registry, "p")
    assert header["wrapper"]["name"] == "parity.predictor.Predictor"
    assert header["model"]["format"] == "lightgbm-classifier"


def test_a_predictor_with_a_function_output_needs_the_pickle_opt_in(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(X[:, :2], Y)
    predictor = Predictor(model, ["a", "b"], output=_first_column)
    with pytest.raises(ModelSerializationError, match="function") as caught:
        _open(tmp_path).register("p", predictor, feature_sets={})
    assert "allow_pickle=True" in str(caught.value)
    opted = _open(tmp_path, allow_pickle=True)
    opted.register("p", predictor, feature_sets={})
    assert opted.load("p").predict_table(_table(X)) == predictor.predict_table(_table(X))


def _first_column(model: Any, X: np.ndarray) -> list[float]:
    return [float(p) for p in model.predict_proba(X)[:, 1]]


# --- pickle: refused, unless opted in ------------------------------------------------------


def test_a_custom_model_is_refused_without_the_pickle_opt_in(registry: Registry) -> None:
    with pytest.raises(ModelSerializationError) as caught:
        registry.register("c", Custom(2.0), feature_sets={})
    message = str(caught.value)
    assert "allow_pickle" in message and "runs arbitrary code" in message
    assert registry.list_models() == []
    with pytest.raises(InvalidModelError, match="not a model"):
        registry.register("c", object(), feature_sets={})


def test_pickle_is_an_explicit_opt_in_on_write_and_on_load(tmp_path: Path) -> None:
    opted = _open(tmp_path, allow_pickle=True)
    opted.register("c", Custom(2.0), feature_sets={})
    assert np.array_equal(opted.load("c").predict(X), X[:, 0] * 2)
    assert _header(opted, "c")["model"]["format"] == "pickle"
    strict = _open(tmp_path)  # same database and key, no opt-in
    with pytest.raises(ModelSerializationError, match="allow_pickle: true"):
        strict.load("c")
    with pytest.raises(ModelSerializationError, match="does not allow pickle"):
        strict.set_alias("c", "live", 1)  # promotion checks the format too
    assert strict.aliases("c") == {}


def test_an_old_unsigned_pickle_artifact_is_refused_with_what_to_do(
    registry: Registry, tmp_path: Path
) -> None:
    from sklearn.linear_model import LogisticRegression

    mv = registry.register("m", LogisticRegression().fit(XF, Y), feature_sets={})
    legacy = pickle.dumps(Custom(1.0), protocol=5)  # what parity wrote before signing
    sha = hashlib.sha256(legacy).hexdigest()
    registry.artifacts.put(legacy)
    _rewrite_sha(tmp_path / "registry.db", mv.artifact_sha256, sha)
    with pytest.raises(ArtifactIntegrityError) as caught:
        registry.load("m")
    message = str(caught.value)
    assert "plain pickle, as older parity versions wrote" in message
    assert "register it again" in message


def _rewrite_sha(db: Path, old: str, new: str) -> None:
    import sqlite3

    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE registry_versions SET artifact_sha256 = ? WHERE artifact_sha256 = ?", (new, old)
        )


# --- the signing key -----------------------------------------------------------------------


def test_the_key_file_is_created_private_beside_the_artifacts(
    registry: Registry, tmp_path: Path
) -> None:
    from sklearn.linear_model import LogisticRegression

    registry.register("m", LogisticRegression().fit(XF, Y), feature_sets={})
    key = tmp_path / "keys" / "artifacts.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert not (tmp_path / "artifacts" / "keys").exists()
    data = (tmp_path / "artifacts").rglob("*")
    stored = [p.read_bytes() for p in data if p.is_file()]
    assert stored and all(b.startswith(MAGIC) for b in stored)
    assert all(key.read_text().strip().encode() not in b for b in stored)


def test_an_artifact_signed_with_another_key_is_refused(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    first = _open(tmp_path, signing_key="11" * 32)
    first.register("m", LogisticRegression().fit(XF, Y), feature_sets={})
    other = _open(tmp_path, signing_key="22" * 32)
    with pytest.raises(ArtifactIntegrityError, match="signature does not match the key"):
        other.load("m")
    with pytest.raises(ArtifactIntegrityError):
        other.set_alias("m", "live", 1)
    assert first.load("m") is not None and first.verify("m").version == 1


def test_a_key_readable_by_others_or_too_short_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("ab" * 32)
    os.chmod(key, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        _open(tmp_path, key_path=key).artifacts.signer  # noqa: B018 - loads the key
    with pytest.raises(ConfigError, match="too short"):
        _open(tmp_path, signing_key="abcd")


def test_the_workspace_config_names_url_key_and_opt_in(tmp_path: Path) -> None:
    registry = registry_from_config(
        {"allow_pickle": True, "key_env": "MY_KEY"}, tmp_path, environ={"MY_KEY": "33" * 32}
    )
    assert isinstance(registry, SqliteRegistry) and registry.artifacts.allow_pickle
    assert registry.path == tmp_path / "registry.db"
    registry.register("c", Custom(1.0), feature_sets={})
    assert not (tmp_path / "keys").exists()  # the key came from the environment
    with pytest.raises(WorkspaceError, match="MY_KEY"):
        registry_from_config({"key_env": "MY_KEY"}, tmp_path, environ={})
    with pytest.raises(WorkspaceError, match="unknown setting"):
        registry_from_config({"alow_pickle": True}, tmp_path)
    with pytest.raises(WorkspaceError, match="true or false"):
        registry_from_config({"allow_pickle": "yes"}, tmp_path)
    path_config = registry_from_config({"key_path": "secrets/k"}, tmp_path)
    assert path_config.artifacts.key_path == tmp_path / "secrets" / "k"


# --- versions too large for any store -----------------------------------------------------


def test_a_huge_version_number_is_an_input_error_not_an_overflow(registry: Registry) -> None:
    from sklearn.linear_model import LogisticRegression

    registry.register("m", LogisticRegression().fit(XF, Y), feature_sets={})
    for call in (
        lambda: registry.set_alias("m", "live", 2**70),
        lambda: registry.get("m", 2**70),
        lambda: registry.load("m", str(2**70)),
    ):
        with pytest.raises(InputError, match="versions are integers from 1 to 2147483647"):
            call()


def test_a_predictor_with_a_fitted_encoder_round_trips_bit_exactly(registry: Registry) -> None:
    from datetime import datetime, timezone

    from sklearn.ensemble import HistGradientBoostingClassifier

    from parity.encoder import FeatureEncoder

    table = pa.table({
        "s": ["a", "b", None, "a"] * 25,
        "b": [True, False, None, True] * 25,
        "ts": [datetime(2024, 1, i % 28 + 1, tzinfo=timezone.utc) for i in range(100)],
        "x": [1.5, None, 3.0, float("nan")] * 25,
    })
    encoder = FeatureEncoder(["s", "b", "ts", "x"]).fit(table)
    model = HistGradientBoostingClassifier(max_iter=5).fit(encoder.encode(table), Y[:100])
    predictor = Predictor(model, encoder=encoder, feature_sets={"fs": "v1"})
    registry.register("p", predictor, feature_sets={"fs": "v1"})
    loaded = registry.load("p")
    assert isinstance(loaded, Predictor)
    assert np.array_equal(loaded.encode(table), predictor.encode(table), equal_nan=True)
    assert loaded.predict_table(table) == predictor.predict_table(table)
    assert _header(registry, "p")["model"]["format"] == "skops"
