"""The ``Model`` protocol: anything with ``predict(X)``; ``predict_proba(X)`` is optional.

How a model becomes artifact bytes (skops, LightGBM text, signed) is in ``formats.py``.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from parity.errors import InvalidModelError


@runtime_checkable
class Model(Protocol):
    """Anything that predicts: ``predict(X)`` returns one output per row of ``X``."""

    def predict(self, X: Any) -> Any:
        """Predict an output for each row of ``X``."""
        ...


@runtime_checkable
class ProbabilisticModel(Model, Protocol):
    """A model that also returns class probabilities with ``predict_proba(X)``."""

    def predict_proba(self, X: Any) -> Any:
        """Return, for each row of ``X``, the probability of each class."""
        ...


def check_model(model: object) -> Model:
    """Return ``model`` if it has a callable ``predict``; raise ``InvalidModelError`` if not."""
    if not callable(getattr(model, "predict", None)):
        raise InvalidModelError(
            f"{type(model).__name__} object is not a model: it has no callable predict(X). "
            f"Register an object with a predict method (a scikit-learn estimator, a LightGBM "
            f"model, or your own class)"
        )
    proba = getattr(model, "predict_proba", None)
    if proba is not None and not callable(proba):
        raise InvalidModelError(
            f"{type(model).__name__}.predict_proba exists but is not callable; make it a method "
            f"or remove it"
        )
    return model  # type: ignore[return-value]  # checked structurally above
