"""Fixtures: the synthetic world's tables and models (built once), and a fresh registry with a
live model and a sentinel over it per test (the pieces are in ``helpers``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from parity.registry import open_registry
from tests.sentinel import world
from tests.sentinel.helpers import (
    LIVE_TRAINING,
    TEST_CONFIG,
    TRAIN_START,
    Setup,
    Tables,
    healthy_inputs,
)


@pytest.fixture(scope="session")
def tables() -> Tables:
    train_live = world.rows(8_000, seed=11, start=TRAIN_START)
    train = world.rows(8_000, seed=12, start=TRAIN_START)
    shadow = world.rows(8_000, seed=13)
    return Tables(train_live, train, shadow, world.fit(train_live), world.fit(train))


@pytest.fixture
def setup(tables: Tables, tmp_path: Path) -> Setup:
    # The catalog models are small picklable test classes (tests/sentinel/models.py).
    registry = open_registry(f"sqlite:///{tmp_path / 'registry.db'}", tmp_path / "artifacts",
                             allow_pickle=True)
    registry.register("conv", tables.live, feature_sets=list(world.FEATURE_SETS.values()),
                      training_set={"path": LIVE_TRAINING})
    registry.set_alias("conv", "live", 1)
    config = {k: dict(v) if isinstance(v, dict) else v for k, v in TEST_CONFIG.items()}
    return Setup(registry, healthy_inputs(tables), config, tmp_path)
