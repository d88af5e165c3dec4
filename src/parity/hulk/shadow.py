"""The shadow period after a swap: sampled live lookups are also read from the previous
version and compared; a version that disagrees too often is rolled back.

A comparison *disagrees* when the new version has no value where the previous one had, or
the values differ beyond tolerance: numbers (and vectors, by L2 distance) by more than
``abs_tol + rel_tol * |previous|``, ranked lists when the Jaccard overlap of their items is
below ``min_overlap``, labels when they differ. Keys the previous version lacked are not
compared (nothing to compare with).

The decision is sample-size aware: after ``min_samples`` comparisons the version is rolled
back when the Wilson lower bound (``confidence``) of its disagreement rate exceeds
``max_disagreement``, so a handful of unlucky samples cannot trigger it. After
``period_samples`` comparisons without that, the version is confirmed and no longer shadowed.
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass
from typing import Any, Literal

from parity.errors import ConfigError
from parity.sentinel.stats import normal_ppf, wilson_interval

ShadowState = Literal["watching", "confirmed", "rolled_back"]


@dataclass(frozen=True)
class ShadowPolicy:
    """How the shadow period samples, compares and decides (see the module docstring)."""

    sample_rate: float = 0.05
    min_samples: int = 100
    period_samples: int = 2_000
    max_disagreement: float = 0.2
    confidence: float = 0.99
    abs_tol: float = 0.05
    rel_tol: float = 0.5
    min_overlap: float = 0.3
    max_age_s: float = 86_400.0
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("sample_rate", "max_disagreement", "min_overlap"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"shadow {name}={getattr(self, name)!r} is not a fraction "
                                  f"in [0, 1]")
        if not 0 < self.confidence < 1 or self.min_samples < 1 or self.period_samples < 1:
            raise ConfigError("shadow confidence must lie in (0, 1) and min_samples, "
                              "period_samples be at least 1")


def disagrees(new: Any, old: Any, policy: ShadowPolicy) -> bool:
    """True when ``new`` (the live version's value) disagrees with ``old`` (the previous)."""
    if new is None:
        return True
    if isinstance(old, (bool, str)) or isinstance(new, (bool, str)):
        return bool(new != old)
    if isinstance(old, (int, float)) and isinstance(new, (int, float)):
        return abs(new - old) > policy.abs_tol + policy.rel_tol * abs(old)
    if isinstance(old, list) and isinstance(new, list):
        if old and isinstance(old[0], dict):
            a = {str(e.get("item")) for e in new if isinstance(e, dict)}
            b = {str(e.get("item")) for e in old}
            union = a | b
            return bool(union) and len(a & b) / len(union) < policy.min_overlap
        if len(old) != len(new):
            return True
        distance = math.sqrt(sum((float(x) - float(y)) ** 2 for x, y in zip(new, old)))
        norm = math.sqrt(sum(float(y) ** 2 for y in old))
        return distance > policy.abs_tol + policy.rel_tol * norm
    return True  # different shapes


class ShadowMonitor:
    """The shadow state of one live version in this process."""

    def __init__(self, name: str, version: int, previous: int, policy: ShadowPolicy) -> None:
        self.name = name
        self.version = version
        self.previous = previous
        self.policy = policy
        self.samples = 0
        self.disagreements = 0
        self.state: ShadowState = "watching"
        self._rng = random.Random(policy.seed)
        self._lock = threading.Lock()

    def sample(self, count: int) -> list[int]:
        """Which of ``count`` looked-up keys to compare (indexes); none once decided."""
        if self.state != "watching":
            return []
        with self._lock:
            return [i for i in range(count) if self._rng.random() < self.policy.sample_rate]

    def record(self, compared: int, disagreed: int) -> ShadowState | None:
        """Add comparisons; returns the state it just moved to (``rolled_back``: roll back
        now), None if it did not move. Only one caller ever sees a transition."""
        with self._lock:
            if self.state != "watching":
                return None
            self.samples += compared
            self.disagreements += disagreed
            if self.samples >= self.policy.min_samples and self.low_bound() > (
                    self.policy.max_disagreement):
                self.state = "rolled_back"
                return self.state
            if self.samples >= self.policy.period_samples:
                self.state = "confirmed"
                return self.state
            return None

    @property
    def rate(self) -> float:
        """The observed disagreement rate."""
        return self.disagreements / self.samples if self.samples else 0.0

    def low_bound(self) -> float:
        """The Wilson lower bound of the disagreement rate at ``confidence``."""
        z = normal_ppf(1 - (1 - self.policy.confidence) / 2)
        return wilson_interval(self.rate, self.samples, z)[0]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready snapshot."""
        return {"version": self.version, "previous": self.previous, "state": self.state,
                "samples": self.samples, "disagreements": self.disagreements,
                "rate": self.rate, "low_bound": self.low_bound() if self.samples else 0.0}
