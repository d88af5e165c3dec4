"""Contract: what the model needs exists online, as it was trained, and its outputs are sane.

1. Every feature set version the model was trained on equals what serving computes now
   (the registry's record and the predictor's own must agree, too).
2. Every feature the model reads is available online, with a type the model can encode:
   a string where the model has categories for it, a number (int, float, bool, timestamp)
   elsewhere, and the same kind as in its training rows.
3. On the shadow rows (else a sample of training rows) the outputs have one value per row,
   of the declared shape, within the declared range, with no NaN or infinity.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from parity.sentinel.checks import candidate_missing
from parity.sentinel.context import CANDIDATE, CheckContext, as_numbers
from parity.sentinel.verdict import CheckResult, Finding

_NUMERIC = {"int", "float", "bool", "timestamp"}
_OUTPUT_SAMPLE = 10_000


class ContractCheck:
    """Feature set versions, features online with their types, output shape and range."""

    name = "contract"
    needs_candidate = True

    def run(self, ctx: CheckContext) -> CheckResult:
        """Collect every contract breach (not just the first) into one result."""
        skipped = candidate_missing(self.name, ctx)
        if skipped is not None:
            return skipped
        predictor = ctx.candidate
        findings: list[Finding] = []
        evidence: dict[str, Any] = {}
        findings += _versions(ctx, predictor, evidence)
        findings += _features(ctx, predictor, evidence)
        findings += _outputs(ctx, predictor, evidence)
        if findings:
            return CheckResult.failed(self.name, findings, evidence=evidence)
        return CheckResult.passed(
            self.name,
            f"{len(evidence.get('feature_sets', {}))} feature set version(s) match serving, "
            f"{len(predictor.features)} feature(s) available online with the right types, "
            f"{evidence.get('outputs', {}).get('rows', 0)} outputs finite and in range",
            evidence=evidence,
        )


def _versions(ctx: CheckContext, predictor: Any, evidence: dict[str, Any]) -> list[Finding]:
    trained: Mapping[str, str] = dict(getattr(predictor, "feature_set_versions", {}) or {})
    registered = dict(ctx.registered_feature_sets or {})
    findings: list[Finding] = []
    if registered and trained and registered != trained:
        findings.append(Finding(
            "contract.metadata_mismatch",
            f"the registry records feature set versions {registered} but the predictor was "
            f"built with {trained}; register the model with the feature sets it was trained on",
        ))
    recorded = trained or registered
    current = ctx.feature_sets
    evidence["feature_sets"] = {
        name: {"trained": version,
               "serving": None if current is None or name not in current
               else current[name].version}
        for name, version in recorded.items()
    }
    if current is None:
        return findings
    for name, version in recorded.items():
        fs = current.get(name)
        if fs is None:
            findings.append(Finding(
                "contract.feature_set_missing",
                f"the model was trained on feature set {name!r} (version {version}), which "
                f"serving does not define; restore the definition or retrain without it",
            ))
        elif fs.version != version:
            findings.append(Finding(
                "contract.feature_set_version",
                f"feature set {name!r}: the model was trained on version {version}, serving "
                f"computes version {fs.version}; retrain the model on the current definitions "
                f"or restore the old ones",
            ))
    return findings


def _features(ctx: CheckContext, predictor: Any, evidence: dict[str, Any]) -> list[Finding]:
    online = ctx.online_types
    categories = getattr(predictor, "categories", {}) or {}
    training_kinds = _kinds(ctx.training) if ctx.training is not None else {}
    rows: list[dict[str, Any]] = []
    missing: list[str] = []
    wrong: list[str] = []
    for name in predictor.features:
        expected = "str" if name in categories else "number"
        served = None if online is None else online.get(name)
        trained = training_kinds.get(name)
        row = {"feature": name, "model_expects": expected, "online": served, "training": trained}
        rows.append(row)
        if online is not None and name not in online:
            missing.append(name)
            continue
        kinds = {k for k in (_kind(served), trained) if k not in (None, "any", "null")}
        bad = [k for k in kinds if k != expected]
        if bad or (trained and _kind(served) not in (None, "any", "null", trained)):
            wrong.append(
                f"{name} (the model encodes a {expected}; online it is {served or '?'}, in "
                f"training {trained or '?'})"
            )
    evidence["features"] = rows
    findings = []
    if missing:
        findings.append(Finding(
            "contract.missing_feature",
            f"feature(s) {', '.join(missing)} that the model reads are not available online; "
            f"add them to a served feature set (or the request), or retrain without them",
        ))
    if wrong:
        findings.append(Finding(
            "contract.feature_type",
            f"feature type mismatch: {'; '.join(wrong)}; serve the type the model was "
            f"trained on",
        ))
    return findings


def _outputs(ctx: CheckContext, predictor: Any, evidence: dict[str, Any]) -> list[Finding]:
    rows, outputs, error = _predict(ctx, predictor)
    if error:
        evidence["outputs"] = {"error": error}
        return [Finding("contract.predict_error", error)]
    if outputs is None:
        evidence["outputs"] = {"rows": 0, "note": "no rows holding every feature the model "
                               "reads: outputs not checked"}
        return []
    low, high = _range(ctx, predictor)
    values, shape_problem = _flatten(outputs, rows, getattr(predictor, "output", None))
    finite = values[np.isfinite(values)]
    nonfinite = int(len(values) - len(finite))
    outside = int(np.sum((finite < low) | (finite > high)))
    evidence["outputs"] = {
        "rows": rows,
        "values": len(values),
        "nonfinite": nonfinite,
        "min": float(finite.min()) if len(finite) else None,
        "max": float(finite.max()) if len(finite) else None,
        "declared_min": low if math.isfinite(low) else None,
        "declared_max": high if math.isfinite(high) else None,
    }
    findings = []
    if shape_problem:
        findings.append(Finding("contract.output_shape", shape_problem))
    if nonfinite:
        findings.append(Finding(
            "contract.nonfinite_output",
            f"{nonfinite} of {len(values)} output values are NaN or infinite (on {rows} rows); "
            f"a served prediction must be a number: fix the model or its input handling",
        ))
    if outside:
        findings.append(Finding(
            "contract.output_range",
            f"{outside} of {len(finite)} outputs lie outside the declared range [{low:g}, "
            f"{high:g}] (seen {finite.min():g} to {finite.max():g})",
        ))
    return findings


def _predict(ctx: CheckContext, predictor: Any) -> tuple[int, Any, str | None]:
    """Rows predicted, their outputs (None: nothing to predict on) and any error."""
    if ctx.shadow is not None and ctx.shadow.num_rows and not ctx.missing_features(CANDIDATE):
        try:
            return ctx.shadow.num_rows, ctx.scores(CANDIDATE), None
        except TypeError:
            pass  # several values per row: predict a sample below and check the lists
        except RuntimeError as err:
            return ctx.shadow.num_rows, None, str(err)
    features = list(getattr(predictor, "features", []))
    table = next(
        (t for t in (ctx.shadow, ctx.training)
         if t is not None and t.num_rows and all(f in t.column_names for f in features)),
        None,
    )
    if table is None:
        return 0, None, None
    sample = table.slice(0, _OUTPUT_SAMPLE)
    try:
        return sample.num_rows, predictor.predict_table(sample), None
    except Exception as err:
        return sample.num_rows, None, (
            f"predicting on {sample.num_rows} rows raised {type(err).__name__}: {err}"
        )


def _range(ctx: CheckContext, predictor: Any) -> tuple[float, float]:
    config = ctx.config.contract
    probability = getattr(predictor, "output", None) in ("probability", "top_k")
    low = (0.0 if probability else -math.inf) if config.output_min is None else config.output_min
    high = (1.0 if probability else math.inf) if config.output_max is None else config.output_max
    return low, high


def _flatten(outputs: Any, rows: int, output: Any) -> tuple[np.ndarray, str | None]:
    """All numbers in ``outputs`` and a description of any shape problem."""
    if isinstance(outputs, np.ndarray):
        problem = None if len(outputs) == rows else (
            f"the model returned {len(outputs)} outputs for {rows} rows")
        return outputs.astype(np.float64), problem
    values = list(outputs)
    problem = None if len(values) == rows else (
        f"the model returned {len(values)} outputs for {rows} rows; it must return one per row")
    if values and isinstance(values[0], (list, tuple)):
        lengths = {len(v) for v in values}
        numbers = np.asarray([x for v in values for x in v], dtype=np.float64)
        if len(lengths) > 1:
            problem = f"rows have different numbers of outputs ({sorted(lengths)})"
        elif output == "probability":
            sums = np.asarray([sum(v) for v in values], dtype=np.float64)
            bad = int(np.sum(np.abs(sums - 1) > 1e-6))
            if bad:
                problem = f"{bad} rows of class probabilities do not sum to 1"
        return numbers, problem
    if values and isinstance(values[0], dict):
        numbers = np.asarray(
            [x.get("probability", np.nan) for v in values for x in ([v] if isinstance(v, dict)
                                                                     else v)],
            dtype=np.float64,
        )
        return numbers, problem
    try:
        return as_numbers(values), problem
    except TypeError:
        return np.empty(0), problem  # labels that are not numbers: nothing numeric to range-check


def _kinds(table: pa.Table) -> dict[str, str]:
    return {f.name: _arrow_kind(f.type) for f in table.schema}


def _arrow_kind(kind: pa.DataType) -> str:
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "str"
    if pa.types.is_null(kind):
        return "null"
    if (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
            or pa.types.is_timestamp(kind)):
        return "number"
    return str(kind)


def _kind(dtype: str | None) -> str | None:
    if dtype is None or dtype in ("any", "null"):
        return dtype
    return "number" if dtype in _NUMERIC else ("str" if dtype == "str" else dtype)
