"""LightGBM models stored as LightGBM's own text format, never pickled.

A ``lightgbm.Booster`` is saved with ``model_to_string()`` and restored with
``lightgbm.Booster(model_str=...)``: the text holds trees and thresholds, no code. The
scikit-learn API models (``LGBMClassifier``, ``LGBMRegressor``, ``LGBMRanker``) are a booster
plus a few attributes (the classes); they are restored as the small wrappers below, which
predict exactly as the originals do (the same booster call and the same post-processing as
``lightgbm.sklearn``), so ``predict`` and ``predict_proba`` give bit-identical outputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from parity.errors import ModelSerializationError

BOOSTER = "lightgbm-booster"
CLASSIFIER = "lightgbm-classifier"
REGRESSOR = "lightgbm-regressor"


def is_lightgbm(model: object) -> bool:
    """Whether ``model`` is a LightGBM model (or a wrapper below) that the text format holds."""
    module = type(model).__module__
    return module.startswith("lightgbm") or isinstance(
        model, (LightGBMClassifierModel, LightGBMRegressorModel)
    )


def dump_lightgbm(model: Any) -> tuple[str, dict[str, Any], bytes]:
    """``(kind, metadata, text bytes)`` of a LightGBM model."""
    import lightgbm as lgb

    if isinstance(model, (LightGBMClassifierModel, LightGBMRegressorModel)):
        booster = model.booster
    elif isinstance(model, lgb.Booster):
        return BOOSTER, {}, model.model_to_string().encode("utf-8")
    elif isinstance(model, lgb.LGBMModel):
        if not model.__sklearn_is_fitted__():
            raise ModelSerializationError(
                f"the {type(model).__name__} is not fitted; fit it before registering"
            )
        if callable(getattr(model, "_objective", None)):
            raise ModelSerializationError(
                f"the {type(model).__name__} uses a custom objective function, which the "
                f"LightGBM text format cannot hold; register its booster_ (raw scores) instead"
            )
        booster = model.booster_
    else:
        raise ModelSerializationError(
            f"{type(model).__module__}.{type(model).__name__} is not a LightGBM model that "
            f"parity can store as text (Booster, LGBMClassifier, LGBMRegressor, LGBMRanker)"
        )
    text = booster.model_to_string().encode("utf-8")
    classes = getattr(model, "classes_", None)
    if isinstance(model, LightGBMClassifierModel) or (
        classes is not None and isinstance(model, lgb.LGBMClassifier)
    ):
        assert classes is not None
        return CLASSIFIER, {"classes": np.asarray(classes).tolist(),
                            "classes_dtype": np.asarray(classes).dtype.str}, text
    return REGRESSOR, {}, text


def load_lightgbm(kind: str, meta: dict[str, Any], data: bytes) -> Any:
    """The model a ``dump_lightgbm`` triple describes."""
    import lightgbm as lgb

    booster = lgb.Booster(model_str=data.decode("utf-8"))
    if kind == BOOSTER:
        return booster
    if kind == CLASSIFIER:
        classes = np.asarray(meta["classes"], dtype=np.dtype(meta["classes_dtype"]))
        return LightGBMClassifierModel(booster, classes)
    if kind == REGRESSOR:
        return LightGBMRegressorModel(booster)
    raise ModelSerializationError(f"unknown LightGBM artifact kind {kind!r}")


class LightGBMRegressorModel:
    """A LightGBM scikit-learn regressor (or ranker) restored from text: ``predict`` only."""

    def __init__(self, booster: Any) -> None:
        self.booster = booster
        self.n_features_in_ = booster.num_feature()

    def predict(self, X: Any) -> np.ndarray:
        """The booster's prediction for each row (as ``LGBMRegressor.predict``)."""
        return np.asarray(self.booster.predict(X))


class LightGBMClassifierModel(LightGBMRegressorModel):
    """A LightGBM scikit-learn classifier restored from text; predicts as ``LGBMClassifier``."""

    def __init__(self, booster: Any, classes: np.ndarray) -> None:
        super().__init__(booster)
        self.classes_ = classes
        self.n_classes_ = len(classes)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, one column per class (binary: ``[1 - p, p]``)."""
        result = np.asarray(self.booster.predict(X))
        if result.ndim == 2:
            return result
        return np.vstack((1.0 - result, result)).transpose()

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
