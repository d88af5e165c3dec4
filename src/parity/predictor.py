"""The predictor: encode features -> model -> decode output. The unit that is registered and served.

One code path for everything: online, a request's feature values become a one-row Arrow table
and go through ``predict_table``, exactly as a whole training set does offline.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from parity.definitions import FeatureSet
from parity.errors import DefinitionError, InputError, SkewError

OUTPUTS = ("probability", "label", "raw", "top_k")




class Predictor:
    """A model together with how its inputs are encoded and its outputs decoded.

    ``features`` are the feature (or request field) names the model reads, in the column order
    it was trained on. Numbers and bools become floats, nulls NaN, timestamps epoch seconds, and
    strings the index in ``categories[name]`` (NaN if unseen). ``output`` is ``"probability"``
    (of the positive class for binary classifiers, else all classes), ``"label"``, ``"raw"``
    (``predict``), ``"top_k"`` (the ``k`` most likely classes with probabilities), or a function
    ``f(model, X) -> sequence`` of one output per row. ``feature_sets`` records the versions the
    model was trained on; serving refuses to run it against different definitions.
    """

    def __init__(
        self,
        model: Any,
        features: Sequence[str],
        *,
        output: str | Callable[[Any, np.ndarray], Sequence[Any]] = "probability",
        categories: Mapping[str, Sequence[str]] | None = None,
        feature_sets: Sequence[FeatureSet] | Mapping[str, str] = (),
        k: int = 3,
    ) -> None:
        if not hasattr(model, "predict"):
            raise DefinitionError(f"model {type(model).__name__} has no predict(X) method")
        if isinstance(output, str) and output not in OUTPUTS:
            raise DefinitionError(f"output {output!r} is not one of {', '.join(OUTPUTS)}")
        if output in ("probability", "top_k") and not hasattr(model, "predict_proba"):
            raise DefinitionError(
                f"output {output!r} needs predict_proba, which {type(model).__name__} lacks; "
                f"use output='raw' or 'label'"
            )
        if not features:
            raise DefinitionError("a predictor needs at least one feature")
        self.model = model
        self.features = list(features)
        self.output = output
        self.categories = {k_: list(v) for k_, v in (categories or {}).items()}
        self.k = k
        if isinstance(feature_sets, Mapping):
            self.feature_set_versions = dict(feature_sets)
        else:
            self.feature_set_versions = {fs.name: fs.version for fs in feature_sets}

    def encode(self, data: pa.Table | pd.DataFrame) -> np.ndarray:
        """The model's input matrix (rows x features, float64) for a table of feature values."""
        table = (
            data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
        )
        missing = [f for f in self.features if f not in table.column_names]
        if missing:
            raise InputError(
                f"the predictor needs feature(s) {', '.join(missing)}, which the input lacks; "
                f"it has {', '.join(table.column_names)}"
            )
        columns = [self._encode_column(name, table.column(name)) for name in self.features]
        return np.column_stack(columns) if columns else np.empty((table.num_rows, 0))

    def _encode_column(self, name: str, column: pa.ChunkedArray) -> np.ndarray:
        kind = column.type
        if pa.types.is_timestamp(kind):
            us = column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
            return np.asarray(us.to_numpy(zero_copy_only=False), dtype="float64") / 1e6
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            known = {value: i for i, value in enumerate(self.categories.get(name, []))}
            return np.array([known.get(v, np.nan) for v in column.to_pylist()], dtype="float64")
        if pa.types.is_null(kind):
            return np.full(len(column), np.nan)
        if pa.types.is_boolean(kind) or pa.types.is_integer(kind) or pa.types.is_floating(kind):
            values = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
            return np.asarray(values, dtype="float64")
        raise InputError(
            f"feature {name!r} of type {kind} cannot be encoded as a number; "
            f"derive a numeric feature from it with a transform"
        )

    def predict_table(self, data: pa.Table | pd.DataFrame) -> list[Any]:
        """One decoded output per row of ``data`` (feature values, e.g. a training set)."""
        X = self.encode(data)
        return self.decode(X)

    def predict(self, data: pa.Table | pd.DataFrame) -> list[Any]:
        """The Model protocol: decoded outputs for a table of feature values."""
        return self.predict_table(data)

    def decode(self, X: np.ndarray) -> list[Any]:
        """Run the model on an encoded matrix and decode its outputs."""
        if callable(self.output):
            return list(self.output(self.model, X))
        if self.output == "probability":
            proba = np.asarray(self.model.predict_proba(X))
            if proba.ndim == 2 and proba.shape[1] == 2:
                return [float(p) for p in proba[:, 1]]
            return [[float(p) for p in row] for row in proba]
        if self.output == "top_k":
            proba = np.asarray(self.model.predict_proba(X))
            classes = list(getattr(self.model, "classes_", range(proba.shape[1])))
            order = np.argsort(-proba, axis=1)[:, : self.k]
            return [
                [{"class": _plain(classes[j]), "probability": float(row[j])} for j in idx]
                for row, idx in zip(proba, order)
            ]
        return [_plain(v) for v in np.asarray(self.model.predict(X)).tolist()]

    def predict_rows(self, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        """Outputs for feature rows (dicts), through the same code path as ``predict_table``."""
        table = pa.Table.from_pylist([{f: row.get(f) for f in self.features} for row in rows])
        return self.predict_table(table)

    def check_definitions(self, current: Mapping[str, FeatureSet]) -> None:
        """Raise SkewError unless every recorded feature set exists now with the same version."""
        for name, version in self.feature_set_versions.items():
            fs = current.get(name)
            if fs is None:
                raise SkewError(
                    f"the model was trained on feature set {name!r} (version {version}), which "
                    f"the current definitions do not have"
                )
            if fs.version != version:
                raise SkewError(
                    f"feature set {name!r} has changed since the model was trained: the model "
                    f"was trained on version {version}, the definitions now compute version "
                    f"{fs.version}. Retrain the model on the new definitions, or restore them"
                )

    def __repr__(self) -> str:
        return (
            f"Predictor({type(self.model).__name__}, features={self.features}, "
            f"output={self.output!r})"
        )


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def as_predictor(model: Any, feature_sets: Sequence[FeatureSet] = ()) -> Predictor:
    """``model`` if it is a Predictor; else a Predictor over every feature of ``feature_sets``."""
    if isinstance(model, Predictor):
        return model
    names = [f.name for fs in feature_sets for f in fs.features]
    output = "probability" if hasattr(model, "predict_proba") else "raw"
    return Predictor(model, names, output=output, feature_sets=feature_sets)
