"""The ``Model`` protocol and how models are turned into artifact bytes and back.

A model is anything with ``predict(X)``; ``predict_proba(X)`` is optional. Artifacts are
pickles (protocol 5). Unpickling runs code, so the registry only unpickles bytes whose sha256
matches the hash recorded at registration (see ``ArtifactStore.read``): a tampered artifact is
refused before it is deserialised. Only load artifacts from a registry you trust.
"""

from __future__ import annotations

import pickle
from typing import Any, Protocol, runtime_checkable

from parity.errors import InvalidModelError, ModelSerializationError

PICKLE_PROTOCOL = 5


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


def dumps_model(model: object) -> bytes:
    """Serialise a model to bytes (a pickle), after checking it follows the protocol."""
    check_model(model)
    try:
        return pickle.dumps(model, protocol=PICKLE_PROTOCOL)
    except Exception as err:  # pickling raises many types (PicklingError, TypeError, ...)
        raise ModelSerializationError(
            f"could not pickle the {type(model).__name__} model: {err}. Models must be "
            f"picklable: define classes and functions at module level (no lambdas or local "
            f"classes) and drop open handles such as connections before registering"
        ) from err


def loads_model(data: bytes, *, label: str = "the model") -> Model:
    """Deserialise model bytes produced by ``dumps_model``. Call only on verified bytes."""
    try:
        model = pickle.loads(data)
    except Exception as err:  # unpickling raises many types (ModuleNotFoundError, EOFError, ...)
        raise ModelSerializationError(
            f"could not unpickle {label}: {type(err).__name__}: {err}. The code that defines "
            f"the model's classes must be importable here, in compatible versions (the same "
            f"packages as at training time)"
        ) from err
    return check_model(model)
