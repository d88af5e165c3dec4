"""Sentinel benchmark: the full check suite on 100,000 shadow rows against scoring them.

    .venv/bin/python benchmarks/sentinel.py                 # 100,000 rows, 3 runs
    .venv/bin/python benchmarks/sentinel.py --rows 20000 --repeat 1

Two LightGBM classifiers (300 trees, 31 leaves, 30 numeric and 2 categorical features; one
thread per predict call unless ``--threads``),
trained on different samples of one synthetic population, are registered in a SQLite
registry as ``live`` (v1) and a candidate (v2). In each run (a fresh process), after a warm-up:

- **scoring**: ``predict_table`` of the shadow rows by both models, one after the other
  (what any shadow comparison has to do at least);
- **suite**: ``Sentinel.check`` with every check at its default settings (artifact in a
  child process, contract, dependent data, shadow accuracy with a 1,000-resample paired
  bootstrap, drift, calibration, latency over 300 requests), without writing the report;
- **report**: rendering and storing the HTML report of that verdict (reported apart).

Goal: suite time at most 3x scoring time. Peak memory is the run's peak RSS, and the
artifact child's own peak RSS. Data and models are cached under ``bench-data/sentinel``.
"""

from __future__ import annotations

import argparse
import json
import pickle
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from _common import (
    REPO,
    console,
    exact_command,
    machine,
    measure,
    peak_rss_mb,
    render_table,
    report,
)

SCRIPT = Path(__file__).resolve()
CACHE = REPO / "bench-data" / "sentinel"
NOW = datetime(2024, 6, 1, tzinfo=timezone.utc)
N_NUMERIC = 30
CATEGORIES = {"country": [f"c{i}" for i in range(12)], "device": ["ios", "android", "web", "tv"]}


def make_rows(n: int, seed: int, days_ago: int = 0) -> Any:
    """``n`` labelled rows of the synthetic population, over the 5 days ending ``days_ago``
    days before ``NOW`` (training rows end before the shadow traffic starts)."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, N_NUMERIC))
    X[:, 5:10] = np.abs(X[:, 5:10]) * 30  # skewed "minutes" columns
    X[rng.random((n, N_NUMERIC)) < 0.02] = np.nan
    country = rng.integers(0, len(CATEGORIES["country"]), n)
    device = rng.integers(0, len(CATEGORIES["device"]), n)
    z = np.nan_to_num(X)
    logit = (-1.0 + 0.8 * z[:, 0] - 0.6 * z[:, 1] + 0.4 * z[:, 2] * z[:, 3]
             + 0.01 * z[:, 5] + 0.3 * np.sin(z[:, 4] * 2) + 0.15 * (country % 3) - 0.2 * device)
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    columns: dict[str, Any] = {
        "member": pa.array(rng.integers(0, 10**9, n), pa.int64()),
        "at": pa.array([NOW - timedelta(days=days_ago, seconds=int(s))
                        for s in rng.integers(0, 86_400 * 5, n)], pa.timestamp("us", tz="UTC")),
    }
    for j in range(N_NUMERIC):
        columns[f"f{j}"] = pa.array(X[:, j], pa.float64(), from_pandas=True)
    columns["country"] = pa.array([CATEGORIES["country"][i] for i in country])
    columns["device"] = pa.array([CATEGORIES["device"][i] for i in device])
    columns["label"] = pa.array(label, pa.int64())
    return pa.table(columns)


def features() -> list[str]:
    return [*(f"f{j}" for j in range(N_NUMERIC)), "country", "device"]


def prepare(rows: int) -> Path:
    """Data and two trained models for ``rows`` shadow rows (cached)."""
    import lightgbm
    import numpy as np
    import pyarrow.parquet as pq

    from parity.predictor import Predictor

    folder = CACHE / f"rows-{rows}-v2"  # v2: training rows end before the shadow window
    if (folder / "models.pkl").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    shadow = make_rows(rows, 1)
    train_live, train_candidate = make_rows(100_000, 2, 10), make_rows(100_000, 3, 10)
    models = []
    for table in (train_live, train_candidate):
        predictor = Predictor(
            lightgbm.LGBMClassifier(n_estimators=300, num_leaves=31, learning_rate=0.05, n_jobs=1,
                                    verbose=-1, random_state=0),
            features(), categories=CATEGORIES, feature_sets={"bench_features": "0" * 16},
        )
        predictor.model.fit(predictor.encode(table), np.asarray(table.column("label")))
        models.append(predictor)
    pq.write_table(shadow, folder / "shadow.parquet")
    pq.write_table(train_candidate, folder / "train.parquet")
    pq.write_table(train_live, folder / "train_live.parquet")
    (folder / "models.pkl").write_bytes(pickle.dumps(models))
    return folder


class _FeatureSet:
    """Stands in for the served feature set (its version and features are all the checks need)."""

    def __init__(self) -> None:
        import parity as pt

        self.name, self.version = "bench_features", "0" * 16
        entity = pt.Entity("member", keys={"member": int})
        self.entity = entity
        kinds = {name: "float" for name in features()} | {"country": "str", "device": "str"}
        self.features = [_Feature(name, dtype) for name, dtype in kinds.items()]
        self.sources: list[Any] = []
        self.request_fields: list[str] = []


class _Feature:
    def __init__(self, name: str, dtype: str) -> None:
        self.name, self.dtype = name, dtype


def child(rows: int, repeat_scoring: int, threads: int) -> None:
    """One measured run: warm up, time scoring of both models, then the suite, then the report."""
    import pyarrow.parquet as pq

    from parity.registry import open_registry
    from parity.sentinel import Sentinel, SentinelConfig, StaticInputs

    folder = prepare(rows)
    shadow = pq.read_table(folder / "shadow.parquet")
    training = pq.read_table(folder / "train.parquet")
    training_live = pq.read_table(folder / "train_live.parquet")
    live, candidate = pickle.loads((folder / "models.pkl").read_bytes())
    for predictor in (live, candidate):  # before registering: the artifacts carry the setting
        predictor.model.set_params(n_jobs=threads)
    with tempfile.TemporaryDirectory() as tmp:
        registry = open_registry(f"sqlite:///{tmp}/registry.db", Path(tmp) / "artifacts",
                                 allow_pickle=True)
        registry.register("bench", live, feature_sets={"bench_features": "0" * 16},
                          training_set={"path": "train_live.parquet"})
        registry.set_alias("bench", "live", 1)
        registry.register("bench", candidate, feature_sets={"bench_features": "0" * 16},
                          training_set={"path": "train.parquet"})
        inputs = StaticInputs(definitions={"bench_features": _FeatureSet()},  # type: ignore[dict-item]
                              shadow=shadow, training=training,
                              training_sets={"train.parquet": training,
                                             "train_live.parquet": training_live})
        sentinel = Sentinel(registry, inputs, config=SentinelConfig(), clock=lambda: NOW)
        live.predict_table(shadow.slice(0, 1000))  # warm-up: imports, thread pools
        candidate.predict_table(shadow.slice(0, 1000))
        scoring = []
        for _ in range(repeat_scoring):
            started = time.perf_counter()
            live.predict_table(shadow)
            candidate.predict_table(shadow)
            scoring.append(time.perf_counter() - started)
        started = time.perf_counter()
        verdict = sentinel.check("bench", 2, save=False)
        suite = time.perf_counter() - started
        started = time.perf_counter()
        sentinel.save(verdict)
        rendering = time.perf_counter() - started
        report(
            seconds=suite,
            scoring_seconds=statistics.median(scoring),
            report_seconds=rendering,
            status=verdict.status,
            reasons={r.check: r.reason for r in verdict.results if r.status != "pass"},
            checks={r.check: r.duration_s for r in verdict.results},
            artifact_child_rss_mb=verdict.result("artifact").evidence.get("peak_rss_mb"),
            suite_peak_rss_mb=peak_rss_mb(),
            rows=shadow.num_rows,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1,
                        help="LightGBM threads per predict call (1: the usual serving setting; "
                        "with more, a one-row predict pays the thread pool's overhead)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="Also write the figures to this JSON file.")
    args = parser.parse_args()
    if args.child:
        child(args.rows, repeat_scoring=3, threads=args.threads)
        return
    started = time.perf_counter()
    console.print(f"preparing {args.rows:,} shadow rows and two LightGBM models (cached)...")
    prepare(args.rows)
    phase = measure("suite", SCRIPT, ["--child", "--rows", str(args.rows),
                                      "--threads", str(args.threads)], args.repeat,
                    budget_seconds=120, timeout=600)
    runs = phase.runs
    suite = statistics.median(r["seconds"] for r in runs)
    scoring = statistics.median(r["scoring_seconds"] for r in runs)
    checks = {name: statistics.median(r["checks"][name] for r in runs) for name in runs[0]["checks"]}
    render_table(
        f"sentinel: full check suite on {args.rows:,} shadow rows, LightGBM with "
        f"{args.threads} thread(s) ({len(runs)} runs, medians)",
        ["phase", "seconds", "x scoring", "note"],
        [["score both models", f"{scoring:.2f}", "1.00", "predict_table x2"],
         ["full check suite", f"{suite:.2f}", f"{suite / scoring:.2f}", "goal <= 3x"],
         *[[f"  {name}", f"{secs:.2f}", f"{secs / scoring:.2f}", ""]
           for name, secs in checks.items()],
         ["report (HTML, stored)", f"{statistics.median(r['report_seconds'] for r in runs):.2f}",
          "", "not in the suite"]],
    )
    peak = max(r["suite_peak_rss_mb"] for r in runs)
    child_peak = max(r["artifact_child_rss_mb"] or 0 for r in runs)
    console.print(f"verdict: {runs[0]['status']} {runs[0]['reasons'] or ''}")
    console.print(f"peak RSS: {peak:.0f} MB (run), {child_peak:.0f} MB (artifact child)")
    console.print(f"ratio suite / scoring: {suite / scoring:.2f}x (goal <= 3x); "
                  f"total {time.perf_counter() - started:.0f}s; command: {exact_command()}")
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "machine": machine(),
                                         "ratio": suite / scoring}, indent=2))


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "src"))
    main()
