"""The content-addressed artifact store, and how models become artifact bytes and back."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from parity.errors import InputError, NotFoundError, ParityError
from parity.registry import (
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    ArtifactStore,
    InvalidModelError,
    Model,
    ModelSerializationError,
    ProbabilisticModel,
    code_version,
)
from parity.registry.model import dumps_model, loads_model


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "artifacts")


def _stored_files(store: ArtifactStore) -> list[Path]:
    return sorted(p for p in store.root.rglob("*") if p.is_file())


# --- the store ----------------------------------------------------------------------------


def test_put_stores_bytes_under_their_sha256(store: ArtifactStore) -> None:
    data = b"model bytes"
    sha = hashlib.sha256(data).hexdigest()

    artifact = store.put(data)

    assert (artifact.sha256, artifact.size) == (sha, len(data))
    assert artifact.path == store.root / "sha256" / sha[:2] / sha
    assert artifact.path.read_bytes() == data
    assert store.exists(sha)
    assert store.read(sha) == data
    assert _stored_files(store) == [artifact.path]  # no temporary file left behind


def test_the_same_content_is_stored_once(store: ArtifactStore) -> None:
    first = store.put(b"same")
    mtime = first.path.stat().st_mtime_ns
    second = store.put(b"same")
    store.put(b"other")

    assert second == first
    assert first.path.stat().st_mtime_ns == mtime  # not rewritten
    assert len(_stored_files(store)) == 2


def test_stored_artifacts_are_read_only(store: ArtifactStore) -> None:
    mode = store.put(b"x").path.stat().st_mode
    assert not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[:-1], id="truncated"),
        pytest.param(lambda data: b"X" + data[1:], id="modified"),
        pytest.param(lambda data: b"", id="emptied"),
    ],
)
def test_reading_a_damaged_artifact_raises_integrity_error(
    store: ArtifactStore, damage: Any
) -> None:
    artifact = store.put(b"0123456789")
    artifact.path.chmod(0o644)
    artifact.path.write_bytes(damage(b"0123456789"))
    actual = hashlib.sha256(artifact.path.read_bytes()).hexdigest()

    with pytest.raises(ArtifactIntegrityError) as caught:
        store.read(artifact.sha256, label="model 'churn' version 3")

    err = caught.value
    assert isinstance(err, ParityError)
    assert (err.expected, err.actual, err.path) == (artifact.sha256, actual, artifact.path)
    message = str(err)
    assert "model 'churn' version 3" in message
    assert artifact.sha256 in message and actual in message


def test_put_repairs_a_damaged_artifact(store: ArtifactStore) -> None:
    artifact = store.put(b"good")
    artifact.path.chmod(0o644)
    artifact.path.write_bytes(b"bad")

    store.put(b"good")

    assert store.read(artifact.sha256) == b"good"


def test_missing_and_malformed_names(store: ArtifactStore) -> None:
    missing = hashlib.sha256(b"never stored").hexdigest()
    with pytest.raises(ArtifactNotFoundError, match=missing) as caught:
        store.read(missing)
    assert isinstance(caught.value, NotFoundError)
    assert not store.exists(missing)
    with pytest.raises(InputError, match="not a sha256"):
        store.read("../../etc/passwd")


def test_a_failed_write_leaves_no_file(store: ArtifactStore, monkeypatch: Any) -> None:
    def broken_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        store.put(b"data")
    assert _stored_files(store) == []


# --- model serialisation ------------------------------------------------------------------


class Linear:
    def __init__(self, slope: float) -> None:
        self.slope = slope

    def predict(self, X: list[float]) -> list[float]:
        return [self.slope * x for x in X]


class Classifier(Linear):
    def predict_proba(self, X: list[float]) -> list[list[float]]:
        return [[1.0, 0.0] for _ in X]


def test_models_round_trip_through_pickles() -> None:
    model = loads_model(dumps_model(Linear(2.0)))
    assert model.predict([1.0, 3.0]) == [2.0, 6.0]
    assert isinstance(model, Model) and not isinstance(model, ProbabilisticModel)
    assert isinstance(Classifier(1.0), ProbabilisticModel)
    assert dumps_model(Linear(2.0)) == dumps_model(Linear(2.0))  # same model, same artifact


def test_a_real_scikit_learn_model_round_trips() -> None:
    linear_model = pytest.importorskip("sklearn.linear_model")
    model = linear_model.LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    loaded = loads_model(dumps_model(model))
    assert loaded.predict([[0.0], [3.0]]).tolist() == [0, 1]
    assert isinstance(loaded, ProbabilisticModel)
    assert loaded.predict_proba([[3.0]]).shape == (1, 2)


def test_objects_that_are_not_models_or_not_picklable_are_rejected() -> None:
    class NoPredict:
        pass

    class Local:  # defined in a function: pickle cannot find it by name
        def predict(self, X: Any) -> Any:
            return X

    with pytest.raises(InvalidModelError, match="NoPredict object is not a model"):
        dumps_model(NoPredict())
    with pytest.raises(ModelSerializationError, match="could not pickle the Local model"):
        dumps_model(Local())
    with pytest.raises(ModelSerializationError, match="could not unpickle model 'x'"):
        loads_model(b"not a pickle", label="model 'x'")


# --- code version -------------------------------------------------------------------------


def test_code_version_is_none_outside_git(tmp_path: Path) -> None:
    assert code_version(tmp_path) is None
    assert code_version(tmp_path / "does-not-exist") is None
