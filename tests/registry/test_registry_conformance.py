"""One suite every registry backend must pass (SQLite and PostgreSQL, via ``registry``)."""

from __future__ import annotations

import itertools
import multiprocessing
import os
import pickle
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from parity import Entity, FeatureSet, Transform
from parity.errors import InputError, NotFoundError, TimeError, WorkspaceError
from parity.registry import (
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    InvalidModelError,
    Model,
    NothingToRollBackError,
    ProbabilisticModel,
    Registry,
    open_registry,
)


def Scaler(factor: float) -> Any:
    """A tiny scikit-learn model (stored with skops): predict multiplies by ``factor``."""
    from sklearn.linear_model import LinearRegression

    model = LinearRegression()
    model.fit(np.array([[0.0], [1.0]]), np.array([0.0, factor]))
    return model


def _predict(model: Any, values: list[float]) -> list[float]:
    return [round(float(v), 9) for v in model.predict(np.array(values).reshape(-1, 1))]


LOADED: list[str] = []


class Booby:
    """Records that it was unpickled: proves a tampered artifact is never deserialised."""

    def __init__(self) -> None:
        self.armed = True  # pickle calls __setstate__ only for a non-empty state

    def __setstate__(self, state: dict[str, Any]) -> None:
        LOADED.append("unpickled")

    def predict(self, X: Any) -> Any:
        return X


def _feature_set(name: str = "member_features") -> FeatureSet:
    member = Entity("member", ["member_id"])
    return FeatureSet(
        name, member, [Transform("doubled", lambda amount: 2 * amount, request=("amount",))]
    )


def _register(registry: Registry, factor: float = 2.0, **kwargs: Any) -> Any:
    kwargs.setdefault("feature_sets", {"member_features": "v1"})
    return registry.register("churn", Scaler(factor), **kwargs)


# --- register, get, load ------------------------------------------------------------------


def test_versions_count_up_per_model_and_keep_their_metadata(registry: Registry) -> None:
    fs = _feature_set()
    cutoff = datetime(2024, 5, 1, tzinfo=timezone.utc)
    first = registry.register(
        "churn",
        Scaler(2.0),
        feature_sets=[fs],
        training_set={"source": "plays", "knowledge_cutoff": cutoff, "contexts_fingerprint": "ab"},
        params={"depth": 3, "lr": 0.1},
        metrics={"auc": 0.81},
        description="baseline",
    )
    second = _register(registry, 3.0)
    other = registry.register("ranker", Scaler(1.0), feature_sets={})

    assert (first.version, second.version, other.version) == (1, 2, 1)
    got = registry.get("churn", 1)
    assert got == first
    assert got.feature_sets == {"member_features": fs.version}
    assert got.training_set == {
        "source": "plays",
        "knowledge_cutoff": "2024-05-01T00:00:00+00:00",
        "contexts_fingerprint": "ab",
    }
    assert got.params == {"depth": 3, "lr": 0.1}
    assert got.metrics == {"auc": 0.81}
    assert got.description == "baseline"
    assert got.aliases == ()
    assert got.ref == "churn@1"
    assert got.created_at.tzinfo is not None and got.created_at.utcoffset() == timedelta(0)
    assert abs(datetime.now(timezone.utc) - got.created_at) < timedelta(minutes=1)
    assert registry.get("churn").version == 2  # None means latest
    assert [v.version for v in registry.list_versions("churn")] == [1, 2]
    assert registry.list_models() == ["churn", "ranker"]


def test_load_returns_a_working_model_by_version_alias_or_latest(registry: Registry) -> None:
    _register(registry, 2.0)
    _register(registry, 3.0)
    registry.set_alias("churn", "live", 1)

    assert _predict(registry.load("churn", 1), [1.0, 2.0]) == [2.0, 4.0]
    assert _predict(registry.load("churn", "live"), [1.0]) == [2.0]
    assert _predict(registry.load("churn", "1"), [1.0]) == [2.0]  # a CLI-style string number
    assert _predict(registry.load("churn"), [1.0]) == [3.0]
    latest = registry.load("churn")
    assert isinstance(latest, Model) and not isinstance(latest, ProbabilisticModel)


def test_artifacts_are_content_addressed_and_stored_once(registry: Registry) -> None:
    first = _register(registry, 2.0)
    again = _register(registry, 2.0)
    different = _register(registry, 5.0)

    assert again.version == 2 and again.artifact_sha256 == first.artifact_sha256
    assert different.artifact_sha256 != first.artifact_sha256
    path = registry.artifacts.path_for(first.artifact_sha256)
    sha = first.artifact_sha256
    assert path == registry.artifacts.root / "sha256" / sha[:2] / sha
    assert path.stat().st_size == first.artifact_size
    stored = [p for p in (registry.artifacts.root / "sha256").rglob("*") if p.is_file()]
    assert len(stored) == 2


@pytest.mark.parametrize("damage", ["tamper", "truncate"])
def test_a_damaged_artifact_is_refused_before_unpickling(
    registry_spec: Any, damage: str
) -> None:
    # Pickle is an opt-in; with it, the booby proves a damaged pickle is never unpickled.
    registry = open_registry(registry_spec.url, registry_spec.artifacts_root, allow_pickle=True)
    mv = registry.register("churn", Booby(), feature_sets={})
    LOADED.clear()
    registry.load("churn", 1)
    assert LOADED == ["unpickled"]  # the booby works: loading an intact artifact unpickles it
    LOADED.clear()

    path = registry.artifacts.path_for(mv.artifact_sha256)
    path.chmod(0o644)
    original = path.read_bytes()
    if damage == "tamper":
        booby = Booby()
        booby.__dict__["evil"] = True  # still a valid pickle that would run __setstate__
        path.write_bytes(pickle.dumps(booby, protocol=5))
    else:
        path.write_bytes(original[: len(original) // 2])

    with pytest.raises(ArtifactIntegrityError) as caught:
        registry.load("churn", 1)
    message = str(caught.value)
    assert "'churn'" in message and "version 1" in message
    assert mv.artifact_sha256 in message and caught.value.actual in message
    assert caught.value.expected == mv.artifact_sha256 != caught.value.actual
    assert LOADED == []


def test_a_missing_artifact_is_a_clear_error(registry: Registry) -> None:
    mv = _register(registry)
    registry.artifacts.path_for(mv.artifact_sha256).unlink()
    with pytest.raises(ArtifactNotFoundError, match=r"model 'churn' version 1 is missing"):
        registry.load("churn", 1)


def test_metadata_survives_reopening(registry: Registry, registry_spec: Any) -> None:
    _register(registry, metrics={"auc": 0.7})
    registry.set_alias("churn", "live", 1, reason="first")
    with open_registry(registry_spec.url, registry_spec.artifacts_root) as reopened:
        assert reopened.get("churn", "live") == registry.get("churn", "live")
        assert reopened.alias_history("churn") == registry.alias_history("churn")


# --- lineage: code version ----------------------------------------------------------------


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-C", str(repo), *args],
        check=True,
        capture_output=True,
    )


def test_code_version_is_the_git_commit_and_dirty_flag(registry: Registry, tmp_path: Path) -> None:
    repo = tmp_path / "code"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "train.py").write_text("print('v1')\n")
    _git(repo, "add", "train.py")
    _git(repo, "commit", "-q", "-m", "v1")
    head = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()

    clean = _register(registry, code_dir=repo)
    (repo / "untracked.csv").write_text("data\n")  # untracked files do not make it dirty
    still_clean = _register(registry, code_dir=repo)
    (repo / "train.py").write_text("print('v2')\n")
    dirty = _register(registry, code_dir=repo)
    outside = _register(registry, code_dir=tmp_path)

    assert (clean.code_version, clean.code_dirty) == (head, False)
    assert (still_clean.code_version, still_clean.code_dirty) == (head, False)
    assert (dirty.code_version, dirty.code_dirty) == (head, True)
    assert (outside.code_version, outside.code_dirty) == (None, None)


# --- aliases ------------------------------------------------------------------------------


def test_alias_moves_are_recorded_and_visible_on_versions(registry: Registry) -> None:
    for factor in (1.0, 2.0, 3.0):
        _register(registry, factor)
    first = registry.set_alias("churn", "live", 1, reason="launch", actor="ana")
    second = registry.set_alias("churn", "live", 2, reason="better auc", actor="bo")
    registry.set_alias("churn", "candidate", 3)

    assert first is not None and second is not None
    assert (first.from_version, first.to_version, first.reason, first.actor) == (
        None,
        1,
        "launch",
        "ana",
    )
    assert (second.from_version, second.to_version) == (1, 2)
    assert second.moved_at.utcoffset() == timedelta(0) and second.moved_at >= first.moved_at
    assert registry.aliases("churn") == {"candidate": 3, "live": 2}
    assert registry.get("churn", "live").version == 2
    assert registry.get("churn", 2).aliases == ("live",)
    assert registry.get("churn", 1).aliases == ()
    assert [v.aliases for v in registry.list_versions("churn")] == [(), ("live",), ("candidate",)]

    live = registry.alias_history("churn", "live")
    assert live == [first, second]
    assert [(e.alias, e.to_version) for e in registry.alias_history("churn")] == [
        ("live", 1),
        ("live", 2),
        ("candidate", 3),
    ]


def test_setting_an_alias_to_where_it_points_records_nothing(registry: Registry) -> None:
    _register(registry)
    assert registry.set_alias("churn", "live", 1) is not None
    assert registry.set_alias("churn", "live", 1) is None
    assert len(registry.alias_history("churn", "live")) == 1


def test_rollback_undoes_the_latest_move_and_is_recorded(registry: Registry) -> None:
    for factor in (1.0, 2.0, 3.0):
        _register(registry, factor)
    registry.set_alias("churn", "live", 1)
    registry.set_alias("churn", "live", 3)

    back = registry.rollback("churn", reason="alert fired", actor="oncall")
    assert (back.from_version, back.to_version, back.reason, back.actor) == (
        3,
        1,
        "alert fired",
        "oncall",
    )
    assert registry.get("churn", "live").version == 1
    assert registry.rollback("churn").to_version == 3  # rolling back a rollback redoes
    assert registry.alias_history("churn", "live")[-1].reason == "rollback"
    assert len(registry.alias_history("churn", "live")) == 4


def test_rollback_without_an_earlier_version_is_an_error(registry: Registry) -> None:
    _register(registry)
    with pytest.raises(NothingToRollBackError, match="never been set"):
        registry.rollback("churn")
    registry.set_alias("churn", "live", 1)
    with pytest.raises(NothingToRollBackError, match="no earlier version"):
        registry.rollback("churn")
    assert registry.get("churn", "live").version == 1
    assert len(registry.alias_history("churn")) == 1


# --- errors -------------------------------------------------------------------------------


def test_unknown_names_raise_not_found_listing_what_exists(registry: Registry) -> None:
    with pytest.raises(NotFoundError, match="none are registered yet"):
        registry.get("churn")
    _register(registry)
    _register(registry)
    registry.set_alias("churn", "live", 2)

    with pytest.raises(NotFoundError, match=r"no model named 'chrun'; registered models: churn"):
        registry.get("chrun", 1)
    with pytest.raises(NotFoundError, match=r"has no version 7; it has versions 1, 2"):
        registry.get("churn", 7)
    with pytest.raises(NotFoundError, match=r"no alias 'prod'; its aliases: live -> 2"):
        registry.load("churn", "prod")
    with pytest.raises(NotFoundError, match="has no version 9"):
        registry.set_alias("churn", "live", 9)
    with pytest.raises(NotFoundError, match="registered models: churn"):
        registry.list_versions("nope")
    with pytest.raises(NotFoundError, match="registered models: churn"):
        registry.alias_history("nope")
    with pytest.raises(NotFoundError, match="registered models: churn"):
        registry.rollback("nope")
    assert registry.get("churn", "live").version == 2  # nothing moved


def test_invalid_input_is_rejected_before_anything_is_stored(registry: Registry) -> None:
    with pytest.raises(InvalidModelError, match="no callable predict"):
        registry.register("churn", object(), feature_sets={})
    with pytest.raises(InputError, match="model name"):
        registry.register("churn@2", Scaler(1.0), feature_sets={})
    with pytest.raises(TimeError, match="training_set: naive datetime"):
        _register(registry, training_set={"knowledge_cutoff": datetime(2024, 1, 1)})
    with pytest.raises(InputError, match="metric 'auc'"):
        _register(registry, metrics={"auc": "high"})
    with pytest.raises(InputError, match="listed twice"):
        _register(registry, feature_sets=[_feature_set(), _feature_set_with_other_version()])
    with pytest.raises(InputError, match="params cannot be stored"):
        _register(registry, params={"fn": object()})
    assert registry.list_models() == []
    _register(registry)
    with pytest.raises(InputError, match="alias 'bad alias'"):
        registry.set_alias("churn", "bad alias", 1)
    with pytest.raises(InputError, match="version 0"):
        registry.set_alias("churn", "live", 0)


def _feature_set_with_other_version() -> FeatureSet:
    member = Entity("member", ["member_id"])
    return FeatureSet(
        "member_features", member, [Transform("tripled", lambda x: 3 * x, request=("x",))]
    )


def test_open_registry_rejects_unknown_or_relative_urls(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="not supported"):
        open_registry("mysql://db/registry", tmp_path)
    with pytest.raises(WorkspaceError, match="relative path"):
        open_registry("sqlite://registry.db", tmp_path)


# --- concurrency --------------------------------------------------------------------------

WORKERS = 4
MOVES_PER_WORKER = 25


def _register_and_promote(url: str, root: str, barrier: Any, worker: int) -> None:
    """Child process: register versions and point `live` at each, racing the others."""
    registry = open_registry(url, root)
    barrier.wait(timeout=60)
    for i in range(MOVES_PER_WORKER):
        mv = registry.register(
            "race",
            Scaler(worker * 1000 + i),
            feature_sets={},
            params={"worker": worker, "i": i},
            code_dir=root,  # not a git tree: skips the git calls, keeps the race tight
        )
        event = registry.set_alias("race", "live", mv.version, reason=f"w{worker}-{i}")
        if event is None or event.to_version != mv.version:
            raise SystemExit(f"move to {mv.version} was not recorded: {event}")


def test_concurrent_registers_and_alias_moves_lose_nothing(
    registry: Registry, registry_spec: Any
) -> None:
    context = multiprocessing.get_context("spawn")  # no inherited connections or locks
    barrier = context.Barrier(WORKERS)
    processes = [
        context.Process(
            target=_register_and_promote,
            args=(registry_spec.url, str(registry_spec.artifacts_root), barrier, worker),
        )
        for worker in range(WORKERS)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    exit_codes = [p.exitcode for p in processes]
    assert exit_codes == [0] * WORKERS, "a worker failed: its traceback is in the captured stderr"

    total = WORKERS * MOVES_PER_WORKER
    versions = registry.list_versions("race")
    assert [v.version for v in versions] == list(range(1, total + 1))
    assert len({(v.params["worker"], v.params["i"]) for v in versions}) == total

    history = registry.alias_history("race", "live")
    assert len(history) == total
    assert history[0].from_version is None
    for before, after in itertools.pairwise(history):
        assert after.from_version == before.to_version
    assert sorted(e.to_version for e in history) == list(range(1, total + 1))
    assert registry.get("race", "live").version == history[-1].to_version
    assert os.listdir(registry_spec.artifacts_root)  # artifacts were written by the children


# --- driver errors: translated in one place per backend -----------------------------------


def test_a_locked_sqlite_database_is_a_transient_error(tmp_path: Path) -> None:
    import sqlite3

    from parity.errors import TransientError
    from parity.registry import SqliteRegistry

    registry = SqliteRegistry(tmp_path / "registry.db", tmp_path / "artifacts", busy_timeout=0.2)
    blocker = sqlite3.connect(tmp_path / "registry.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holding a long write
    try:
        with pytest.raises(TransientError, match="stayed locked") as caught:
            registry.register("churn", Scaler(2.0), feature_sets={})
        assert caught.value.transient and str(tmp_path / "registry.db") in str(caught.value)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert registry.register("churn", Scaler(2.0), feature_sets={}).version == 1


def test_a_damaged_sqlite_database_is_a_storage_error_naming_the_file(tmp_path: Path) -> None:
    from parity.errors import StorageError

    database = tmp_path / "registry.db"
    database.write_bytes(b"not a database at all " * 200)
    with pytest.raises(StorageError, match="damaged or is not a SQLite database") as caught:
        open_registry(f"sqlite://{database}", tmp_path / "artifacts")
    assert str(database) in str(caught.value) and not caught.value.transient


def test_an_unreachable_postgres_server_is_a_transient_error(tmp_path: Path) -> None:
    pytest.importorskip("psycopg")
    from parity.errors import TransientError

    with pytest.raises(TransientError, match="cannot connect to the PostgreSQL registry"):
        open_registry("postgresql://nobody@127.0.0.1:1/none", tmp_path / "artifacts")
