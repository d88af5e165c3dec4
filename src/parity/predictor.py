"""The predictor: encode features -> model -> decode output. The unit that is registered and served.

One code path for everything: online, a request's feature values become a one-row Arrow table
and go through ``predict_table``, exactly as a whole training set does offline.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from parity.definitions import FeatureSet
from parity.encoder import FeatureEncoder
from parity.errors import DefinitionError, InputError, ModelSerializationError, SkewError

OUTPUTS = ("probability", "label", "raw", "top_k")
PREDICTOR_FORMAT = "parity.predictor/1"


class Predictor:
    """A model together with how its inputs are encoded and its outputs decoded.

    The inputs are encoded by a ``FeatureEncoder`` (see ``parity.encoder``): pass the one the
    model was trained through as ``encoder=`` and serving feeds the model exactly the matrix it
    was trained on. Without one, ``features`` names the columns (feature or request field
    names, in training order) and their types are read from each input: numbers and bools
    become floats, nulls NaN, timestamps epoch seconds, strings the index in
    ``categories[name]`` (NaN if unseen). ``output`` is ``"probability"`` (of the positive
    class for binary classifiers, else all classes), ``"label"``, ``"raw"`` (``predict``),
    ``"top_k"`` (the ``k`` most likely classes with probabilities), or a function
    ``f(model, X) -> sequence`` of one output per row. ``feature_sets`` records the versions the
    model was trained on; serving refuses to run it against different definitions.
    """

    def __init__(
        self,
        model: Any,
        features: Sequence[str] | None = None,
        *,
        encoder: FeatureEncoder | None = None,
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
        if encoder is not None:
            if categories:
                raise DefinitionError(
                    "pass categories to the encoder (it learns them in fit), not to the Predictor"
                )
            if features is not None and list(features) != encoder.features:
                raise DefinitionError(
                    f"features {list(features)} differ from the encoder's {encoder.features}; "
                    f"leave features out when passing encoder="
                )
        else:
            encoder = FeatureEncoder(list(features or ()), categories)
        if not encoder.features:
            raise DefinitionError("a predictor needs at least one feature")
        self.model = model
        self.encoder = encoder
        self.output = output
        self.k = k
        if isinstance(feature_sets, Mapping):
            self.feature_set_versions = dict(feature_sets)
        else:
            self.feature_set_versions = {fs.name: fs.version for fs in feature_sets}

    @property
    def features(self) -> list[str]:
        """The columns the model reads, in the matrix's column order."""
        return self.encoder.features

    @property
    def categories(self) -> dict[str, list[str]]:
        """Name -> categories of every string column (the index is the encoded value)."""
        return self.encoder.categories

    def encode(self, data: pa.Table | pd.DataFrame) -> np.ndarray:
        """The model's input matrix (rows x features, float64) for a table of feature values.

        Exactly ``self.encoder.encode(data)``: the matrix the model was trained on when it was
        trained through the same encoder.
        """
        return self.encoder.encode(data)

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
        return self.predict_table(self.rows_table(rows))

    def example_row(self) -> dict[str, Any]:
        """A row of valid values of every feature's type that encodes to zeros (a warm-up row).

        Numbers 0, bools false, timestamps the Unix epoch, strings the first category; a string
        column without categories gets null (NaN), the only value it can encode.
        """
        epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
        row: dict[str, Any] = {}
        for column in self.encoder.columns:
            if column.dtype == "str" or (column.dtype is None and column.categories):
                row[column.name] = column.categories[0] if column.categories else None
            else:
                row[column.name] = {"int": 0, "bool": False, "timestamp": epoch}.get(
                    column.dtype or "float", 0.0)
        return row

    def rows_table(self, rows: Sequence[Mapping[str, Any]]) -> pa.Table:
        """Feature rows (dicts) as a table typed like the training set where the type is known.

        A value that does not fit its fitted type keeps the type Arrow infers for it, so the
        encoder can name the mismatch (``SkewError``) instead of a conversion error.
        """
        types = self.encoder.arrow_types()
        columns = {}
        for name in self.features:
            values = [row.get(name) for row in rows]
            kind = types[name]
            try:
                columns[name] = pa.array(values, type=kind) if kind else pa.array(values)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                try:
                    columns[name] = pa.array(values)
                except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
                    raise InputError(
                        f"feature {name!r}: values {values[:3]!r} cannot be read as one "
                        f"column ({err}); every row must give the same type"
                    ) from None
        return pa.table(columns) if columns else pa.table({})

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

    def to_artifact_state(self) -> dict[str, Any]:
        """Everything but the model, as JSON-compatible data: encoder, output, feature sets.

        The registry stores this beside the model's own artifact, so a predictor is never
        pickled. A function ``output`` is code, not data, and raises ModelSerializationError.
        """
        if callable(self.output):
            raise ModelSerializationError(
                f"the predictor's output is the function {getattr(self.output, '__name__', '?')}"
                f", which cannot be stored as data; use output='probability', 'label', 'raw' "
                f"or 'top_k'"
            )
        return {
            "format": PREDICTOR_FORMAT,
            "encoder": self.encoder.to_dict(),
            "output": self.output,
            "k": self.k,
            "feature_sets": dict(self.feature_set_versions),
        }

    @classmethod
    def from_artifact_state(cls, spec: Mapping[str, Any], model: Any) -> Predictor:
        """The predictor ``to_artifact_state`` described, around ``model`` (loaded separately)."""
        if not isinstance(spec, Mapping) or spec.get("format") != PREDICTOR_FORMAT:
            found = spec.get("format") if isinstance(spec, Mapping) else type(spec).__name__
            raise ModelSerializationError(
                f"not a parity predictor: format is {found!r}, expected {PREDICTOR_FORMAT!r}"
            )
        output = spec.get("output")
        k = spec.get("k", 3)
        feature_sets = spec.get("feature_sets", {})
        if not (
            output in OUTPUTS
            and isinstance(k, int)
            and isinstance(feature_sets, Mapping)
            and all(isinstance(v, str) for v in feature_sets.values())
        ):
            raise ModelSerializationError(
                f"predictor spec is invalid: output {output!r}, k {k!r}, feature_sets "
                f"{feature_sets!r}"
            )
        encoder = FeatureEncoder.from_dict(spec.get("encoder", {}))
        try:
            return cls(model, encoder=encoder, output=str(output), k=k,
                       feature_sets=dict(feature_sets))
        except DefinitionError as err:
            raise ModelSerializationError(f"predictor spec is invalid: {err}") from None

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A Predictor pickled before the encoder existed held ``features`` and ``categories``;
        # (only reachable with the registry's explicit pickle opt-in) rebuild its encoder.
        if "encoder" not in state:
            state = dict(state)
            state["encoder"] = FeatureEncoder(
                list(state.pop("features", [])), state.pop("categories", None)
            )
        self.__dict__.update(state)

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
