"""The child process of ``parity.sentinel.isolation``: load one artifact, predict, report.

Run as ``python -m parity.sentinel._child JOB.json``. It limits its own address space, loads
the artifact the parent already verified (sha256 and signature; the verified payload is copied
into the job's private folder), predicts on the sample rows and writes a JSON result (see
``IsolatedRun``). It decodes with the registry's decoders (``parity.registry.formats``): skops
with an allow-list of types, LightGBM text, pickle only if the registry opted in. Kept apart
from ``isolation`` so that the parent's package imports nothing the child runs as ``__main__``.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq


def main(job_path: str) -> int:
    """Run the job described in ``job_path``; always exits 0 once a result is written."""
    job = json.loads(Path(job_path).read_text())
    result_path = Path(job["result"])
    memory = int(job["memory_mb"]) * 1024 * 1024
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ImportError, ValueError, OSError):  # pragma: no cover - non-POSIX platforms
        pass
    result = _load_and_predict(job)
    try:
        import resource

        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    except ImportError:  # pragma: no cover
        pass
    tmp = result_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, default=str))
    os.replace(tmp, result_path)
    return 0


def _load_and_predict(job: dict[str, Any]) -> dict[str, Any]:
    from parity.errors import InvalidModelError, ModelSerializationError
    from parity.registry.formats import Envelope, decode

    path = Path(job["payload"])
    try:
        envelope = Envelope(job["header"], path.read_bytes())
    except FileNotFoundError:
        return {"kind": "missing", "message": f"no verified payload at {path}"}
    started = time.perf_counter()
    try:
        model = decode(envelope, allow_pickle=bool(job["allow_pickle"]), what="the candidate")
    except MemoryError:
        return {"kind": "memory", "message": "loading the model ran out of memory"}
    except InvalidModelError as err:
        return {"kind": "not_a_model", "message": str(err)}
    except ModelSerializationError as err:
        cause = err.__cause__
        if isinstance(cause, MemoryError):
            return {"kind": "memory", "message": "loading the model ran out of memory"}
        return {"kind": "load_error", "message": str(err)}
    except BaseException as err:
        return {"kind": "load_error", "message": f"loading raised {type(err).__name__}: {err}"}
    load_seconds = time.perf_counter() - started
    if not callable(getattr(model, "predict", None)):
        return {
            "kind": "not_a_model",
            "message": f"the artifact holds a {type(model).__name__}, which has no predict()",
            "load_seconds": load_seconds,
        }
    info = _describe(model)
    out: dict[str, Any] = {"kind": "ok", "load_seconds": load_seconds, "predictor": info}
    if job["sample"] is None:
        return out
    sample = pq.read_table(job["sample"])
    features = info.get("features") or []
    missing = [f for f in features if f not in sample.column_names]
    if missing:
        out["missing_features"] = missing
        out["message"] = "the sample rows lack feature(s) " + ", ".join(missing)
        return out
    started = time.perf_counter()
    try:
        if hasattr(model, "predict_table"):
            outputs = model.predict_table(sample)
        else:
            outputs = list(model.predict(sample.to_pandas()))
    except MemoryError:
        return {**out, "kind": "memory", "message": "predicting ran out of memory"}
    except BaseException as err:
        return {**out, "kind": "predict_error",
                "message": f"predicting on {sample.num_rows} sample rows raised "
                f"{type(err).__name__}: {err}"}
    out["predict_seconds"] = time.perf_counter() - started
    out["outputs"] = summarize_outputs(outputs, sample.num_rows)
    return out


def _describe(model: Any) -> dict[str, Any]:
    info: dict[str, Any] = {"type": f"{type(model).__module__}.{type(model).__qualname__}"}
    if hasattr(model, "features") and hasattr(model, "feature_set_versions"):
        output = getattr(model, "output", None)
        info.update(
            features=list(model.features),
            feature_set_versions=dict(model.feature_set_versions),
            output=output if isinstance(output, str) else "custom",
            model_type=type(getattr(model, "model", model)).__name__,
        )
    return info


def summarize_outputs(outputs: Any, rows: int) -> dict[str, Any]:
    """Counts and range of predicted outputs: rows, non-finite numbers, min and max."""
    values = list(outputs)
    flat: list[float] = []
    shapes: set[str] = set()
    for value in values:
        if isinstance(value, (list, tuple)):
            shapes.add(f"list[{len(value)}]")
            flat.extend(v for v in value if isinstance(v, (int, float)))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            shapes.add("number")
            flat.append(float(value))
        else:
            shapes.add(type(value).__name__)
    nonfinite = sum(1 for v in flat if not math.isfinite(v))
    finite = [v for v in flat if math.isfinite(v)]
    return {
        "rows": rows,
        "outputs": len(values),
        "shapes": sorted(shapes),
        "nonfinite": nonfinite,
        "min": min(finite) if finite else None,
        "max": max(finite) if finite else None,
    }


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
