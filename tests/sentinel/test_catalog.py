"""The catalog of bad candidates: each is stopped by the right check for the right reason,
and good candidates pass. Every case goes through the whole gate: a real SQLite registry, the
artifact loaded in a child process, every check run."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from parity.predictor import Predictor
from tests.sentinel import models, world
from tests.sentinel.helpers import TRAIN_START, Setup, Tables


def corrupted_artifact(s: Setup, t: Tables) -> int:
    version = s.register(t.good)
    path = s.registry.artifacts.path_for(s.registry.get("conv", version).artifact_sha256)
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return version


def crashes_on_load(s: Setup, t: Tables) -> int:
    return s.register(models.CrashesOnLoad(), feature_sets=[world.member_features])


def raises_on_load(s: Setup, t: Tables) -> int:
    return s.register(models.RaisesOnLoad(), feature_sets=[world.member_features])


def hangs(s: Setup, t: Tables) -> int:
    s.config["artifact"]["timeout"] = "4s"
    return s.register(world.wrap(t.good, models.HangsOnPredict(t.good.model)))


def eats_memory(s: Setup, t: Tables) -> int:
    return s.register(models.EatsMemory(), feature_sets=[world.member_features])


def wrong_feature_set_version(s: Setup, t: Tables) -> int:
    stale = Predictor(t.good.model, t.good.features, categories=t.good.categories,
                      feature_sets={"member_features": "0123456789abcdef"})
    return s.register(stale)


def feature_missing_online(s: Setup, t: Tables) -> int:
    extra = t.train.append_column("minutes_30d", pa.array(
        np.asarray(t.train.column("minutes_7d").to_numpy()) * 4, pa.float64()))
    return s.register(world.fit(extra, [*world.FEATURES, "minutes_30d"]))


def stale_source(s: Setup, t: Tables) -> int:
    s.inputs.fresh = {**s.inputs.fresh, "plays": world.NOW - timedelta(days=3)}
    return s.register(t.good)


def nan_outputs(s: Setup, t: Tables) -> int:
    return s.register(world.wrap(t.good, models.SometimesNaN(t.good.model, every=7)))


def worse_accuracy(s: Setup, t: Tables) -> int:
    return s.register(world.wrap(t.good, models.Noisy(t.good.model, scale=1.5)))


def drifted_inputs(s: Setup, t: Tables) -> int:
    drifted = world.rows(8_000, seed=14, minutes_scale=3.0, start=TRAIN_START)
    return s.register(world.fit(drifted), training=drifted, training_path="drifted.parquet")


def miscalibrated(s: Setup, t: Tables) -> int:
    return s.register(world.wrap(t.good, models.Overconfident(t.good.model, factor=3.0)))


def too_slow(s: Setup, t: Tables) -> int:
    return s.register(world.wrap(t.good, models.Slow(t.good.model, delay=0.1)))


CATALOG: list[tuple[Any, str, str]] = [
    (corrupted_artifact, "artifact", "artifact.integrity"),
    (crashes_on_load, "artifact", "artifact.crash"),
    (raises_on_load, "artifact", "artifact.load_error"),
    (hangs, "artifact", "artifact.timeout"),
    (eats_memory, "artifact", "artifact.memory"),
    (wrong_feature_set_version, "contract", "contract.feature_set_version"),
    (feature_missing_online, "contract", "contract.missing_feature"),
    (stale_source, "dependent_data", "dependent_data.stale"),
    (nan_outputs, "contract", "contract.nonfinite_output"),
    (worse_accuracy, "shadow_accuracy", "shadow_accuracy.inferior"),
    (drifted_inputs, "drift", "drift.drifted"),
    (miscalibrated, "calibration", "calibration.ece"),
    (too_slow, "latency", "latency.ratio"),
]


@pytest.mark.parametrize(("make", "check", "code"), CATALOG, ids=[c[0].__name__ for c in CATALOG])
def test_bad_candidate_is_stopped_for_the_right_reason(
    setup: Setup, tables: Tables, make: Any, check: str, code: str
) -> None:
    version = make(setup, tables)
    verdict = setup.sentinel().check("conv", version)
    assert verdict.status == "fail", verdict.headline()
    result = verdict.result(check)
    assert result.status == "fail", result.reason
    assert code in result.codes, (result.codes, result.reason)
    assert f"FAILED: {check}: {result.reason}" in verdict.headline()  # the first reason shown
    assert setup.registry.aliases("conv")["live"] == 1  # a check alone never moves live


def test_broken_artifact_is_never_loaded_in_the_sentinel_process(
    setup: Setup, tables: Tables
) -> None:
    version = crashes_on_load(setup, tables)
    verdict = setup.sentinel().check("conv", version)  # we are still alive to read it
    for name in ("contract", "shadow_accuracy", "calibration", "latency"):
        assert verdict.result(name).status == "skipped"
        assert "artifact check did not pass" in verdict.result(name).reason
    assert verdict.result("dependent_data").status == "pass"  # data checks still ran


def test_miscalibrated_candidate_keeps_its_accuracy(setup: Setup, tables: Tables) -> None:
    verdict = setup.sentinel().check("conv", miscalibrated(setup, tables))
    assert verdict.result("shadow_accuracy").status == "pass"
    assert verdict.codes == {"calibration.ece"}


def test_good_candidate_passes(setup: Setup, tables: Tables) -> None:
    version = setup.register(tables.good)
    verdict = setup.sentinel().check("conv", version)
    assert verdict.status == "pass", [(r.check, r.status, r.reason) for r in verdict.results]
    assert [r.status for r in verdict.results] == ["pass"] * 8
    shadow = verdict.result("shadow_accuracy").evidence
    assert shadow["rows"] == tables.shadow.num_rows
    assert shadow["comparisons"][0]["low"] > -0.02


def test_good_lightgbm_candidate_passes(setup: Setup, tables: Tables) -> None:
    lightgbm = pytest.importorskip("lightgbm")
    shell = Predictor(
        lightgbm.LGBMClassifier(n_estimators=60, num_leaves=7, learning_rate=0.1, verbose=-1,
                                random_state=0),
        world.FEATURES, categories={"country": world.COUNTRIES},
        feature_sets=[world.member_features],
    )
    X = shell.encode(tables.train)
    shell.model.fit(X, np.asarray(tables.train.column("label").to_numpy()))
    version = setup.register(shell)
    verdict = setup.sentinel().check("conv", version)
    assert verdict.status == "pass", [(r.check, r.status, r.reason) for r in verdict.results]


def test_first_model_without_live_must_beat_no_skill(setup: Setup, tables: Tables) -> None:
    mv = setup.registry.register("fresh", tables.good, feature_sets=[world.member_features],
                                 training_set={"path": "train.parquet"})
    verdict = setup.sentinel().check("fresh", mv.version)
    shadow = verdict.result("shadow_accuracy")
    assert shadow.status == "pass"
    assert shadow.evidence["comparisons"][0]["label"] == "candidate vs no-skill"
    useless = world.wrap(tables.good, models.Noisy(tables.good.model, scale=400.0))
    mv = setup.registry.register("fresh", useless, feature_sets=[world.member_features],
                                 training_set={"path": "train.parquet"})
    verdict = setup.sentinel().check("fresh", mv.version)
    assert "shadow_accuracy.no_skill" in verdict.result("shadow_accuracy").codes
