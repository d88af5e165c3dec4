"""One encoder for training and serving: feature values -> the model's float64 input matrix.

A ``FeatureEncoder`` is made before the model. ``fit`` learns, from the training set, each
feature's type and, for strings, its categories; ``encode`` then gives the matrix the model is
trained on, and the registered ``Predictor`` carries the same encoder, so serving feeds the model
exactly that matrix (``Predictor.encode`` delegates here). Writing the encoding a second time
for training is how training/serving skew is born; with one encoder it cannot be.

Encoding, per learned type (every value becomes one float64):

======================  ==============================================================
``int``, ``float``      the number (an integer beyond 2**53 rounds to the nearest float)
``bool``                1.0 for true, 0.0 for false
``timestamp``           seconds since the Unix epoch (microseconds / 1e6)
``str``                 the index of the value in ``categories`` (sorted at fit time)
null (any type)         NaN
unseen category         NaN, the same value as null: an unseen value is unknown to the model
======================  ==============================================================

A column whose type does not match what was learned (a string where a number was trained) is
refused with ``SkewError`` rather than coerced. The encoder is plain data: ``to_dict`` /
``from_dict`` give JSON (names, types, categories) that the registry stores beside the model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from parity.dtypes import ARROW_TYPES, can_cast
from parity.errors import DefinitionError, InputError, ModelSerializationError, SkewError

ENCODER_FORMAT = "parity.feature_encoder/1"
DTYPES = ("int", "float", "bool", "str", "timestamp")
# What an unseen category and a null encode to (documented in the module docstring).
MISSING = float("nan")
_NUMBER_TYPES = ("int", "float")


@dataclass(frozen=True)
class EncodedFeature:
    """One column of the matrix: a feature (or request field) name, its type and categories.

    ``dtype`` None means "not fitted": the type is read from each input's Arrow type (the
    behaviour of a ``Predictor`` made without an encoder).
    """

    name: str
    dtype: str | None = None
    categories: tuple[str, ...] = ()


class FeatureEncoder:
    """Turns a table of feature values into the model's float64 matrix, the same everywhere.

    Typical use::

        encoder = FeatureEncoder(["spend_30d", "country", "is_vip"]).fit(train)
        model.fit(encoder.encode(train), train["label"])
        predictor = Predictor(model, encoder=encoder, feature_sets=[customer_features])
    """

    def __init__(
        self,
        features: Sequence[str] | Sequence[EncodedFeature] = (),
        categories: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        columns: list[EncodedFeature] = []
        for item in features:
            if isinstance(item, EncodedFeature):
                columns.append(item)
            elif isinstance(item, str) and item:
                cats = tuple((categories or {}).get(item, ()))
                columns.append(EncodedFeature(item, None, cats))
            else:
                raise DefinitionError(
                    f"encoder feature {item!r} is not a feature name; pass column names as strings"
                )
        names = [c.name for c in columns]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise DefinitionError(
                f"encoder feature(s) {', '.join(duplicated)} are listed twice; list each once"
            )
        for column in columns:
            if column.dtype is not None and column.dtype not in DTYPES:
                raise DefinitionError(
                    f"encoder feature {column.name!r} has dtype {column.dtype!r}; "
                    f"use one of {', '.join(DTYPES)}"
                )
        self.columns = columns

    @property
    def features(self) -> list[str]:
        """The column names, in the matrix's column order."""
        return [c.name for c in self.columns]

    @property
    def fitted(self) -> bool:
        """True when every column's type was learned (or given), so nothing is inferred."""
        return bool(self.columns) and all(c.dtype is not None for c in self.columns)

    @property
    def categories(self) -> dict[str, list[str]]:
        """Name -> categories (index order) of every column that has categories."""
        return {c.name: list(c.categories) for c in self.columns if c.categories}

    def fit(
        self,
        data: Any,
        features: Sequence[str] | None = None,
        *,
        dtypes: Mapping[str, str] | None = None,
    ) -> FeatureEncoder:
        """Learn each feature's type and categories from ``data`` (a training set); return self.

        ``features`` picks the columns (default: those given to the constructor); ``dtypes``
        declares types (e.g. from the feature set definitions) instead of reading them from the
        columns, which is needed for a column that is null in every row. Categories are the
        distinct non-null strings, sorted, so refitting on the same rows gives the same encoder.
        """
        table = as_table(data, "the training set")
        names = list(features) if features is not None else self.features
        if not names:
            raise InputError(
                "the encoder has no features to fit: pass features=[...] (the columns the "
                "model reads, not keys, `at` or labels)"
            )
        missing = [n for n in names if n not in table.column_names]
        if missing:
            raise InputError(
                f"cannot fit the encoder: the training set lacks feature column(s) "
                f"{', '.join(missing)}; it has {', '.join(table.column_names)}"
            )
        declared = dict(dtypes or {})
        columns = []
        for name in names:
            column = _plain(table.column(name))
            dtype = declared.get(name) or _dtype_of(name, column.type)
            if dtype not in DTYPES:
                raise InputError(
                    f"dtypes[{name!r}] is {dtype!r}; use one of {', '.join(DTYPES)}"
                )
            _check_compatible(name, dtype, column.type, "in the training set")
            categories: tuple[str, ...] = ()
            if dtype == "str":
                distinct = pc.unique(column.cast(pa.string())).drop_null().to_pylist()
                categories = tuple(sorted(distinct))
            columns.append(EncodedFeature(name, dtype, categories))
        self.columns = columns
        return self

    def encode(self, data: Any) -> np.ndarray:
        """The model's input matrix (rows x features, float64) for a table of feature values.

        ``data`` is an Arrow table, a pandas frame or anything with ``__arrow_c_stream__``
        (Polars). Extra columns are ignored; a missing feature raises ``InputError`` and a
        column whose type contradicts the fitted type raises ``SkewError``.
        """
        table = as_table(data, "the input")
        missing = [f for f in self.features if f not in table.column_names]
        if missing:
            raise InputError(
                f"the predictor needs feature(s) {', '.join(missing)}, which the input lacks; "
                f"it has {', '.join(table.column_names) or 'no columns'}"
            )
        if not self.columns:
            return np.empty((table.num_rows, 0))
        encoded = [self._encode_column(c, _plain(table.column(c.name))) for c in self.columns]
        return np.column_stack(encoded)

    def arrow_types(self) -> dict[str, pa.DataType | None]:
        """Name -> the Arrow type a value of each column is built as (None: inferred)."""
        return {c.name: ARROW_TYPES[c.dtype] if c.dtype else None for c in self.columns}

    def to_dict(self) -> dict[str, Any]:
        """The encoder as JSON-compatible data (the form stored in the registry)."""
        return {
            "format": ENCODER_FORMAT,
            "unseen_category": "nan",
            "null": "nan",
            "features": [
                {"name": c.name, "dtype": c.dtype, "categories": list(c.categories)}
                for c in self.columns
            ],
        }

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> FeatureEncoder:
        """Rebuild an encoder from ``to_dict`` output; raise ModelSerializationError if invalid."""
        if not isinstance(spec, Mapping) or spec.get("format") != ENCODER_FORMAT:
            found = spec.get("format") if isinstance(spec, Mapping) else type(spec).__name__
            raise ModelSerializationError(
                f"not a parity feature encoder: format is {found!r}, expected "
                f"{ENCODER_FORMAT!r}. Register the model again with this version of parity"
            )
        items = spec.get("features")
        if not isinstance(items, list):
            raise ModelSerializationError("feature encoder: 'features' must be a list")
        columns = []
        for item in items:
            ok = (
                isinstance(item, Mapping)
                and isinstance(item.get("name"), str)
                and (item.get("dtype") is None or item.get("dtype") in DTYPES)
                and isinstance(item.get("categories", []), list)
                and all(isinstance(v, str) for v in item.get("categories", []))
            )
            if not ok:
                raise ModelSerializationError(
                    f"feature encoder: invalid feature entry {item!r}; expected "
                    f"{{'name': str, 'dtype': one of {', '.join(DTYPES)} or null, "
                    f"'categories': [str, ...]}}"
                )
            columns.append(
                EncodedFeature(item["name"], item.get("dtype"), tuple(item.get("categories", [])))
            )
        try:
            return cls(columns)
        except DefinitionError as err:
            raise ModelSerializationError(f"feature encoder: {err}") from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FeatureEncoder) and self.columns == other.columns

    def __hash__(self) -> int:
        return hash(tuple(self.columns))

    def __repr__(self) -> str:
        shown = ", ".join(f"{c.name}:{c.dtype or '?'}" for c in self.columns[:6])
        more = f", … ({len(self.columns)} columns)" if len(self.columns) > 6 else ""
        return f"FeatureEncoder({shown}{more})"

    # --- per column ----------------------------------------------------------------------

    def _encode_column(self, feature: EncodedFeature, column: pa.ChunkedArray) -> np.ndarray:
        dtype = feature.dtype
        if dtype is None:  # not fitted: read the type from the input, as predictors always did
            if pa.types.is_null(column.type):
                return np.full(len(column), MISSING)
            dtype = _dtype_of(feature.name, column.type)
        else:
            _check_compatible(feature.name, dtype, column.type, "in this input")
        if pa.types.is_null(column.type):
            return np.full(len(column), MISSING)
        if dtype == "timestamp":
            # Exact integer microseconds first (< 2**53, so exactly representable), then one
            # correctly rounded division: the same float on every path.
            us = column.cast(pa.timestamp("us", tz="UTC"), safe=False).cast(pa.int64())
            return _floats(us) / 1e6
        if dtype == "str":
            index = pc.index_in(
                column.cast(pa.string()), value_set=pa.array(feature.categories, pa.string())
            )
            return _floats(index)
        return _floats(column)  # int, float, bool


def as_table(data: Any, what: str) -> pa.Table:
    """``data`` as an Arrow table: Arrow, pandas, or anything with ``__arrow_c_stream__``."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pd.DataFrame):
        return pa.Table.from_pandas(data, preserve_index=False)
    if hasattr(data, "__arrow_c_stream__"):
        return pa.table(data)
    raise InputError(
        f"{what} must be a pyarrow Table, a pandas DataFrame or a Polars DataFrame, "
        f"not {type(data).__name__}"
    )


def _floats(column: pa.ChunkedArray) -> np.ndarray:
    values = pc.fill_null(column.cast(pa.float64(), safe=False), MISSING)
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype="float64")


def _plain(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Other layouts of the same values as the plain type: dictionary-encoded columns (pandas
    categoricals) as their value type; large and view strings (Polars) as strings."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if pa.types.is_large_string(column.type) or _is_string_view(column.type):
        column = column.cast(pa.string())
    return column


def _is_string_view(kind: pa.DataType) -> bool:
    check = getattr(pa.types, "is_string_view", None)  # pyarrow >= 16
    return bool(check and check(kind))


def _dtype_of(name: str, kind: pa.DataType) -> str:
    if pa.types.is_boolean(kind):
        return "bool"
    if pa.types.is_integer(kind):
        return "int"
    if pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return "float"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "str"
    if pa.types.is_timestamp(kind):
        return "timestamp"
    if pa.types.is_null(kind):
        raise InputError(
            f"feature {name!r} is null in every training row, so its type cannot be learned; "
            f"declare it (dtypes={{{name!r}: 'float'}}), or leave the feature out"
        )
    raise InputError(
        f"feature {name!r} of type {kind} cannot be encoded as a number; "
        f"derive a numeric, bool, string or timestamp feature from it with a transform"
    )


def _check_compatible(name: str, dtype: str, kind: pa.DataType, where: str) -> None:
    if dtype in _NUMBER_TYPES:
        ok = can_cast(kind, "float")
    elif dtype == "timestamp":
        ok = pa.types.is_timestamp(kind) or pa.types.is_null(kind)
        if ok and pa.types.is_timestamp(kind) and kind.tz is None:
            raise SkewError(
                f"feature {name!r} holds naive timestamps {where}; parity encodes only "
                f"time-zone-aware UTC timestamps (naive ones are never guessed)"
            )
    else:
        ok = can_cast(kind, dtype)
    if not ok:
        raise SkewError(
            f"feature {name!r} is {kind} {where}, but the encoder was fitted on {dtype} "
            f"values; the model would see inputs unlike its training. Compute the feature "
            f"with the same definition, or refit the encoder"
        )
