"""The sentinel tests' shared pieces: the test configuration, the tables and the set-up
(registry, inputs, sentinel) the fixtures in ``conftest`` build. A non-test module: test
modules import these from here, never from ``conftest``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from parity.predictor import Predictor
from parity.registry import Registry
from parity.sentinel import Sentinel, SentinelConfig, StaticInputs
from tests.sentinel import world

# Small but decisive: every good/bad case is far from its threshold at these sizes.
TEST_CONFIG: dict[str, Any] = {
    "artifact": {"timeout": "20s", "memory_mb": 2048, "sample_rows": 200},
    "shadow_accuracy": {"bootstrap": 400, "margin": 0.02, "min_samples": 1000},
    "drift": {"min_samples": 500},
    "calibration": {"min_samples": 1000, "bootstrap": 100},
    "segments": {"bootstrap": 200},
    "latency": {"requests": 100, "warmup": 5, "budget_ms": 40, "max_seconds": 1.0},
    "dependent_data": {"max_age": {"plays": "1h"}, "default_max_age": "1d"},
}


@dataclass
class Tables:
    """Training rows of the live model and of candidates, and recent labelled traffic."""

    train_live: pa.Table
    train: pa.Table
    shadow: pa.Table
    live: Predictor
    good: Predictor


# Training data ends a week before the shadow traffic starts: the sentinel judges only rows
# after both models' training data (see parity.sentinel.window).
TRAIN_START = world.NOW - timedelta(days=10)
LIVE_TRAINING, TRAINING = "live.parquet", "train.parquet"


@dataclass
class Setup:
    """A registry with version 1 live, inputs describing a healthy online world, a sentinel."""

    registry: Registry
    inputs: StaticInputs
    config: dict[str, Any]
    root: Path
    hooks: list[Any] = field(default_factory=list)

    def sentinel(self, **kwargs: Any) -> Sentinel:
        kwargs.setdefault("render_reports", False)  # rendering is tested where it matters
        return Sentinel(self.registry, self.inputs,
                        config=SentinelConfig.from_dict(self.config),
                        clock=lambda: world.NOW, **kwargs)

    def register(self, predictor: Any, alias: str | None = "candidate",
                 feature_sets: Any = None, training: pa.Table | None = None,
                 training_path: str = TRAINING) -> int:
        """Register a candidate; ``training`` (its rows) is filed under ``training_path``."""
        if training is not None:
            self.inputs.training_sets = {**self.inputs.training_sets, training_path: training}
        fs = feature_sets if feature_sets is not None else getattr(
            predictor, "feature_set_versions", None) or list(world.FEATURE_SETS.values())
        mv = self.registry.register("conv", predictor, feature_sets=fs,
                                    training_set={"path": training_path})
        if alias:
            self.registry.set_alias("conv", alias, mv.version)
        return mv.version


def healthy_inputs(t: Tables) -> StaticInputs:
    """Inputs of a healthy online world: fresh sources, the shadow rows, both training sets."""
    return StaticInputs(
        definitions=world.FEATURE_SETS,
        fresh={"plays": world.NOW - timedelta(minutes=5),
               "profiles": world.NOW - timedelta(hours=3)},
        shadow=t.shadow,
        training=t.train,
        training_sets={LIVE_TRAINING: t.train_live, TRAINING: t.train},
    )


Configure = Callable[[Setup, Tables], Any]
