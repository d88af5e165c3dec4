"""Training through the shared encoder: a training set in, a registered predictor out.

    result = train(table, "churned", feature_sets=[customer_features], model="hgb")
    print(result.metrics)                          # on the holdout: the latest rows by `at`
    mv = register_trained(ws.registry, "churn", result)

The encoder is fitted first, on the rows the model is fitted on; the model is fitted on
``encoder.encode(rows)``; the ``Predictor`` that is registered carries that encoder, so serving
feeds the model exactly the matrix it was trained on. ``parity train`` is a thin CLI over this.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from threadpoolctl import threadpool_limits

from parity.definitions import FeatureSet
from parity.encoder import FeatureEncoder, as_table
from parity.errors import ConfigError, InputError
from parity.predictor import Predictor

MODELS = ("hgb", "lightgbm", "logistic")
TASKS = ("binary", "multiclass", "regression")
# A label with at most this many distinct integer or string values is a class label.
MAX_CLASSES = 20
_BUFFER = 1 << 20


class ModelRegistry(Protocol):
    """The part of the registry that ``register_trained`` uses."""

    def register(
        self,
        name: str,
        model: object,
        *,
        feature_sets: Mapping[str, str],
        training_set: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        description: str | None = None,
    ) -> Any:
        """Store ``model`` as the next version of ``name``; return the version's metadata."""
        ...


@dataclass(frozen=True)
class TrainResult:
    """A trained predictor with its holdout metrics and the lineage of its training data."""

    predictor: Predictor
    task: str
    metrics: dict[str, float]
    lineage: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)


def train(
    training_set: Any,
    label: str,
    *,
    features: Sequence[str] | None = None,
    feature_sets: Sequence[FeatureSet] = (),
    exclude: Sequence[str] = (),
    model: str = "hgb",
    holdout: float = 0.2,
    seed: int = 0,
    threads: int | None = 1,
) -> TrainResult:
    """Fit the encoder and a model on ``training_set``; measure them on a holdout.

    ``training_set`` is a Parquet/CSV path, an Arrow table, a pandas or Polars frame.
    The model reads ``features`` (default: every feature of ``feature_sets``, minus
    ``exclude``), typed as the definitions declare. The holdout is the latest ``holdout``
    fraction of rows by ``at`` (every holdout row is at or after every fitted row), or a
    seeded random fraction when there is no ``at`` column. The task follows the label: bool or
    two values -> ``binary``; up to 20 integer or string values -> ``multiclass``; else
    ``regression``. ``model`` is ``hgb`` (scikit-learn histogram gradient boosting),
    ``lightgbm`` or ``logistic`` (imputed, scaled logistic regression; classification only).
    The returned predictor is fitted on the non-holdout rows: the metrics are its own.
    ``threads`` caps the BLAS/OpenMP threads of fitting and scoring (None: every core). One
    is the default because on a shared or busy machine OpenMP threads that wait for each
    other make small fits many times slower; raise it for large training sets.
    """
    if model not in MODELS:
        raise ConfigError(f"model {model!r} is not one of {', '.join(MODELS)}")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"threads {threads!r} must be a positive number, or None for all cores")
    if not 0.0 < holdout < 1.0:
        raise ConfigError(f"holdout {holdout!r} must be a fraction between 0 and 1, e.g. 0.2")
    table, source = _load(training_set)
    names, dtypes = _choose_features(table, label, features, feature_sets, exclude)
    y_all = _labels(table, label)
    task = _task(table.column(label).type, y_all)
    fit_rows, holdout_rows, split = _split(table, holdout, seed)
    fit_table, test_table = table.take(fit_rows), table.take(holdout_rows)
    encoder = FeatureEncoder(names).fit(fit_table, dtypes=dtypes)
    estimator, params = _estimator(model, task, seed, threads)
    with threadpool_limits(limits=threads):
        estimator.fit(encoder.encode(fit_table), y_all[fit_rows])
        metrics = _metrics(task, estimator, encoder.encode(test_table), y_all[holdout_rows])
    output = "raw" if task == "regression" else "probability"
    predictor = Predictor(estimator, encoder=encoder, output=output, feature_sets=feature_sets)
    lineage = {
        **source,
        "rows": table.num_rows,
        "label": label,
        "features": names,
        "fit_rows": len(fit_rows),
        "holdout_rows": len(holdout_rows),
        **split,
    }
    return TrainResult(predictor, task, metrics, lineage, {"model": model, "seed": seed,
                                                            "holdout": holdout, **params})


def register_trained(
    registry: ModelRegistry, name: str, result: TrainResult, description: str | None = None
) -> Any:
    """Register ``result``'s predictor as the next version of ``name`` with its lineage."""
    return registry.register(
        name,
        result.predictor,
        feature_sets=result.predictor.feature_set_versions,
        training_set=result.lineage,
        params=result.params,
        metrics=result.metrics,
        description=description,
    )


def file_sha256(path: Path) -> str:
    """The sha256 hex digest of a file, streamed."""
    hasher = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_BUFFER):
            hasher.update(chunk)
    return hasher.hexdigest()


# --- steps ---------------------------------------------------------------------------------


def _load(data: Any) -> tuple[pa.Table, dict[str, Any]]:
    if isinstance(data, (str, Path)):
        path = Path(data)
        if not path.is_file():
            raise InputError(f"training set {str(path)!r} does not exist")
        if path.suffix.lower() == ".csv":
            import pyarrow.csv as pacsv

            table = pacsv.read_csv(path)
        else:
            table = pq.read_table(path)
        return table, {"path": str(path), "sha256": file_sha256(path)}
    table = as_table(data, "the training set")
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return table, {"table_sha256": hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()}


def _choose_features(
    table: pa.Table,
    label: str,
    features: Sequence[str] | None,
    feature_sets: Sequence[FeatureSet],
    exclude: Sequence[str],
) -> tuple[list[str], dict[str, str]]:
    if label not in table.column_names:
        raise InputError(
            f"label column {label!r} is not in the training set; it has "
            f"{', '.join(table.column_names)}"
        )
    declared = {f.name: f.dtype for fs in feature_sets for f in fs.features}
    if features is None:
        if not feature_sets:
            raise InputError(
                "say which columns the model reads: pass feature_sets=[...] (the CLI: "
                "--feature-set NAME) or features=[...]"
            )
        features = list(declared)
    unknown = [c for c in exclude if c not in features]
    if unknown:
        raise InputError(
            f"--exclude {', '.join(unknown)}: not among the features {', '.join(features)}"
        )
    names = [f for f in features if f not in exclude]
    if label in names:
        raise InputError(f"the label {label!r} cannot also be a feature; exclude it")
    if not names:
        raise InputError("no features left to train on after --exclude")
    dtypes = {n: declared[n] for n in names if n in declared}
    return names, dtypes


def _labels(table: pa.Table, label: str) -> np.ndarray:
    column = table.column(label)
    if column.null_count:
        raise InputError(
            f"label {label!r} is null in {column.null_count:,} of {table.num_rows:,} rows; a "
            f"model cannot learn from unknown outcomes. Drop those rows from the training set"
        )
    return np.asarray(column.to_numpy(zero_copy_only=False))


def _task(kind: pa.DataType, y: np.ndarray) -> str:
    if pa.types.is_boolean(kind):
        return "binary"
    distinct = len(np.unique(y))
    if distinct < 2:
        raise InputError(
            f"the label has a single value ({y[0]!r}) in every row; there is nothing to learn"
        )
    if pa.types.is_floating(kind):
        return "binary" if distinct == 2 and set(np.unique(y)) <= {0.0, 1.0} else "regression"
    if pa.types.is_integer(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind):
        if distinct == 2:
            return "binary"
        if distinct <= MAX_CLASSES or not pa.types.is_integer(kind):
            return "multiclass"
        return "regression"
    raise InputError(f"a label of type {kind} is not supported; use bool, int, float or str")


def _split(
    table: pa.Table, holdout: float, seed: int
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    n = table.num_rows
    n_holdout = math.ceil(n * holdout)
    if n < 10 or n_holdout >= n:
        raise InputError(f"the training set has {n} rows; at least 10 are needed to hold out "
                         f"{holdout:.0%} for metrics")
    if "at" in table.column_names and pa.types.is_timestamp(table.column("at").type):
        at = table.column("at")
        if at.null_count:
            raise InputError(f"`at` is null in {at.null_count:,} rows of the training set")
        order = np.asarray(pc.sort_indices(at).to_numpy(zero_copy_only=False))
        cut = at.take(pa.array([order[n - n_holdout]]))[0]
        # Every row at the holdout start goes to the holdout, so no moment is split in two.
        in_holdout = np.asarray(pc.greater_equal(at, cut).to_numpy(zero_copy_only=False))
        fit_rows, holdout_rows = np.flatnonzero(~in_holdout), np.flatnonzero(in_holdout)
        if len(fit_rows) == 0:
            raise InputError("every training row has the same `at`; there is no past to "
                             "fit on and future to measure on")
        stats = pc.min_max(at)
        fit_max = pc.max(at.take(pa.array(fit_rows)))
        return fit_rows, holdout_rows, {
            "split": "time",
            "at_min": stats["min"].as_py().isoformat(),
            "at_max": stats["max"].as_py().isoformat(),
            # Everything in the file, holdout included, informed this version: the Sentinel
            # judges it only on traffic after this moment.
            "train_end": stats["max"].as_py().isoformat(),
            "fit_at_max": fit_max.as_py().isoformat(),
            "holdout_start": cut.as_py().isoformat(),
        }
    permuted = np.random.default_rng(seed).permutation(n)
    return np.sort(permuted[n_holdout:]), np.sort(permuted[:n_holdout]), {"split": "random"}


def _estimator(model: str, task: str, seed: int, threads: int | None) -> tuple[Any, dict[str, Any]]:
    try:
        if model == "lightgbm":
            import lightgbm as lgb

            params: dict[str, Any] = {"n_estimators": 200, "learning_rate": 0.05}
            cls = lgb.LGBMRegressor if task == "regression" else lgb.LGBMClassifier
            return cls(**params, random_state=seed, verbose=-1, n_jobs=threads or -1), params
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
    except ImportError as err:
        extra = "lightgbm" if model == "lightgbm" else "scikit-learn (the `examples` extra)"
        raise ConfigError(f"--model {model} needs {extra}, which is not installed: {err}") from None
    if model == "logistic":
        if task == "regression":
            raise ConfigError("--model logistic is for class labels; this label is numeric "
                              "(regression): use --model hgb or lightgbm")
        params = {"C": 1.0, "max_iter": 1000}
        # NaN (null, unseen category) is imputed by the median plus a was-missing indicator.
        return make_pipeline(SimpleImputer(strategy="median", add_indicator=True),
                             StandardScaler(), LogisticRegression(**params)), params
    params = {"max_iter": 200, "learning_rate": 0.05}
    cls = HistGradientBoostingRegressor if task == "regression" else HistGradientBoostingClassifier
    return cls(**params, random_state=seed), params


def _metrics(task: str, estimator: Any, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    from sklearn import metrics as m

    if task == "regression":
        predicted = np.asarray(estimator.predict(X), dtype="float64")
        return {
            "rmse": float(np.sqrt(m.mean_squared_error(y, predicted))),
            "mae": float(m.mean_absolute_error(y, predicted)),
            "r2": float(m.r2_score(y, predicted)),
            "holdout_rows": float(len(y)),
        }
    proba = np.asarray(estimator.predict_proba(X))
    classes = list(estimator.classes_)
    result = {
        "accuracy": float(m.accuracy_score(y, np.asarray(classes)[proba.argmax(axis=1)])),
        "log_loss": float(m.log_loss(y, proba, labels=classes)),
        "holdout_rows": float(len(y)),
    }
    if task == "binary":
        positive = classes[-1]
        truth = np.asarray(y == positive)
        result["positive_rate"] = float(truth.mean())
        # AUC is undefined when the holdout holds one class only: leave it out, not 0.5.
        if 0 < truth.sum() < len(truth):
            result["auc"] = float(m.roc_auc_score(truth, proba[:, -1]))
    return result
