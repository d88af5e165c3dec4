"""Picklable models for the sentinel tests: a small numpy logistic regression and the catalog
of bad candidates built around it. The artifact check unpickles these in a child process, so
they live in an importable module (not in a test function)."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np


class NumpyLogit:
    """Logistic regression fitted by Newton steps; no scikit-learn, so children start fast."""

    def __init__(self) -> None:
        self.coef_ = np.zeros(0)
        self.mean_ = np.zeros(0)
        self.classes_ = np.array([0, 1])

    def fit(self, X: np.ndarray, y: np.ndarray, l2: float = 1e-3) -> NumpyLogit:
        self.mean_ = np.nanmean(X, axis=0)
        Z = self._design(X)
        w = np.zeros(Z.shape[1])
        for _ in range(25):
            p = 1 / (1 + np.exp(-Z @ w))
            grad = Z.T @ (p - y) + l2 * w
            hess = (Z * (p * (1 - p))[:, None]).T @ Z + l2 * np.eye(len(w))
            step = np.linalg.solve(hess, grad)
            w -= step
            if np.max(np.abs(step)) < 1e-10:
                break
        self.coef_ = w
        return self

    def _design(self, X: np.ndarray) -> np.ndarray:
        X = np.where(np.isnan(X), self.mean_, X)
        return np.column_stack([np.ones(len(X)), X])

    def logit(self, X: np.ndarray) -> np.ndarray:
        return self._design(np.asarray(X, dtype=np.float64)) @ self.coef_

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        p = 1 / (1 + np.exp(-self.logit(X)))
        return np.column_stack([1 - p, p])

    def predict(self, X: np.ndarray) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


class Wrapped:
    """Base for models that change what an inner model predicts."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.classes_ = np.array([0, 1])

    def predict(self, X: np.ndarray) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        p = self.probability(np.asarray(X, dtype=np.float64))
        return np.column_stack([1 - p, p])

    def probability(self, X: np.ndarray) -> np.ndarray:
        return self.inner.predict_proba(X)[:, 1]


class Noisy(Wrapped):
    """Adds deterministic per-row noise to the logit: a clearly worse ranking."""

    def __init__(self, inner: Any, scale: float) -> None:
        super().__init__(inner)
        self.scale = scale

    def probability(self, X: np.ndarray) -> np.ndarray:
        noise = np.sin(np.nan_to_num(X) @ np.arange(1, X.shape[1] + 1) * 7919.0)
        return 1 / (1 + np.exp(-(self.inner.logit(X) + self.scale * noise * 1.7)))


class Overconfident(Wrapped):
    """Multiplies the logit: the same ranking (same AUC), badly calibrated probabilities."""

    def __init__(self, inner: Any, factor: float) -> None:
        super().__init__(inner)
        self.factor = factor

    def probability(self, X: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-self.factor * self.inner.logit(X)))


class SometimesNaN(Wrapped):
    """Returns NaN for every row whose first feature is a multiple of ``every``."""

    def __init__(self, inner: Any, every: int) -> None:
        super().__init__(inner)
        self.every = every

    def probability(self, X: np.ndarray) -> np.ndarray:
        p = self.inner.predict_proba(X)[:, 1].copy()
        p[np.nan_to_num(X[:, 0]).astype(int) % self.every == 0] = np.nan
        return p


class FakeClock:
    """A clock that moves only when told: every read advances it by ``tick`` seconds (so a
    fast call measures ``tick``), and a slow model advances it by its delay instead of
    sleeping. Latency tests read it instead of the wall clock."""

    def __init__(self, tick: float = 0.0005) -> None:
        self.now = 0.0
        self.tick = tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Slow(Wrapped):
    """Takes ``delay`` seconds on every call (slept, or advanced on a FakeClock)."""

    def __init__(self, inner: Any, delay: float, clock: FakeClock | None = None) -> None:
        super().__init__(inner)
        self.delay = delay
        self.sleep = clock.sleep if clock is not None else time.sleep

    def probability(self, X: np.ndarray) -> np.ndarray:
        self.sleep(self.delay)
        return self.inner.predict_proba(X)[:, 1]


class HangsOnPredict(Wrapped):
    """Never returns from predict."""

    def probability(self, X: np.ndarray) -> np.ndarray:
        while True:
            time.sleep(1)


class CrashesOnLoad:
    """Unpickling it aborts the interpreter (SIGABRT), as a broken native extension would."""

    def predict(self, X: Any) -> Any:
        return X

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return (os.abort, ())


class RaisesOnLoad:
    """Unpickling it raises, as a class renamed since training would."""

    def predict(self, X: Any) -> Any:
        return X

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (_missing_class, ("churn.models.OldModel",))


def _missing_class(name: str) -> Any:
    raise ImportError(f"cannot import {name}: the module was renamed")


class EatsMemory:
    """Unpickling it allocates 64 GB."""

    def predict(self, X: Any) -> Any:
        return X

    def __reduce__(self) -> tuple[Any, tuple[int]]:
        return (np.ones, (8 * 1024**3,))


class Memorizer(Wrapped):
    """An overfit model: exact recall of its training rows, noise everywhere else.

    On rows it was trained on it predicts the label it saw (with a little smoothing); on any
    other row it predicts the inner model's logit plus heavy deterministic noise, like a deep
    tree grown to purity.
    """

    def __init__(self, inner: Any, X: np.ndarray, y: np.ndarray, noise: float = 3.0) -> None:
        super().__init__(inner)
        self.seen = {self._key(row): float(label) for row, label in zip(X, y)}
        self.noise = noise

    @staticmethod
    def _key(row: np.ndarray) -> bytes:
        return np.round(np.nan_to_num(row), 6).tobytes()

    def probability(self, X: np.ndarray) -> np.ndarray:
        jitter = np.sin(np.nan_to_num(X) @ np.arange(1, X.shape[1] + 1) * 7919.0)
        p = 1 / (1 + np.exp(-(self.inner.logit(X) + self.noise * jitter)))
        for i, row in enumerate(X):
            label = self.seen.get(self._key(row))
            if label is not None:
                p[i] = 0.05 + 0.9 * label
        return p


class InvertedSegment(Wrapped):
    """The inner model everywhere, except that its ranking is reversed where feature
    ``column`` (an index into X) is at least ``threshold`` (a top-spender segment, say).

    The reversed scores are mirrored around ``centre`` (the segment's median score), so the
    segment keeps its place among the other rows and the pooled metric barely moves.
    """

    def __init__(self, inner: Any, column: int, threshold: float, centre: float) -> None:
        super().__init__(inner)
        self.column = column
        self.threshold = threshold
        self.centre = centre

    def probability(self, X: np.ndarray) -> np.ndarray:
        p = self.inner.predict_proba(X)[:, 1].copy()
        top = np.nan_to_num(X[:, self.column], nan=-np.inf) >= self.threshold
        p[top] = np.clip(2 * self.centre - p[top], 0.001, 0.999)
        return p


class Constant(Wrapped):
    """Predicts the same probability (the base rate) for every row."""

    def __init__(self, inner: Any, rate: float) -> None:
        super().__init__(inner)
        self.rate = rate

    def probability(self, X: np.ndarray) -> np.ndarray:
        return np.full(len(X), self.rate)


class SlowAtFirst(Wrapped):
    """Sleeps ``delay`` seconds on each of its first ``calls`` calls, then is fast: a model
    that hit a busy moment during the first latency run only."""

    def __init__(self, inner: Any, delay: float, calls: int,
                 clock: FakeClock | None = None) -> None:
        super().__init__(inner)
        self.delay = delay
        self.calls = calls
        self.sleep = clock.sleep if clock is not None else time.sleep

    def probability(self, X: np.ndarray) -> np.ndarray:
        if self.calls > 0:
            self.calls -= 1
            self.sleep(self.delay)
        return self.inner.predict_proba(X)[:, 1]
