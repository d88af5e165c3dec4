"""The Spark engine against the DuckDB engine on the same fact log, in the same run.

    .venv/bin/python benchmarks/spark.py --scale tiny      # smoke run (a few minutes on local[2])
    .venv/bin/python benchmarks/spark.py --scale small     # 200k -> 1M events, 100k contexts
    .venv/bin/python benchmarks/spark.py --scale full      # issue 15: 1M -> 10M events, 1M contexts

Per size and key distribution (``uniform``; ``skewed``: Zipf keys, one key holds a large share
of the events) it builds count/sum/mean over three windows plus two lookups, runs the DuckDB
engine and the Spark engine (``local[2]`` unless ``--master``), checks that both training sets
are equal (floats bit for bit), and prints wall time, the Spark/DuckDB ratio, growth with size
and peak memory: the Python process (``ru_maxrss``) and the Spark driver JVM (``VmHWM``).
Both engines first run once on a tiny log (not timed), so the JVM's start-up and warm-up are
not charged to the first size; Spark's time still includes its job planning and scheduling.
With ``--repeat N`` each engine runs N times per size and the medians are printed.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

import parity as pt
from parity.engines.duckdb import DuckDBEngine

DAY_US = 86_400_000_000
START_US = 1_704_067_200_000_000  # 2024-01-01 UTC


@dataclass(frozen=True)
class Scale:
    sizes: tuple[int, ...]
    contexts: int
    entities: int


SCALES = {
    "tiny": Scale((20_000, 60_000), 5_000, 2_000),
    "small": Scale((200_000, 1_000_000), 100_000, 20_000),
    "full": Scale((1_000_000, 3_000_000, 10_000_000), 1_000_000, 200_000),
}


def definitions() -> tuple[list[pt.FeatureSet], pt.EventSource, pt.StateSource]:
    member = pt.Entity("member", {"member_id": int})
    events = pt.EventSource("events", member, {"amount": float}, lag="1h")
    profiles = pt.StateSource("profiles", member, {"score": float, "tier": str}, lag="1h")
    features: list[Any] = []
    for window in ("1d", "7d", None):
        tag = window or "all"
        features += [
            pt.Aggregate(f"n_{tag}", events, "count", window=window),
            pt.Aggregate(f"sum_{tag}", events, "sum", "amount", window),
            pt.Aggregate(f"mean_{tag}", events, "mean", "amount", window),
        ]
    features += [pt.Lookup("score", profiles, "score"), pt.Lookup("tier", profiles, "tier")]
    return [pt.FeatureSet("bench", member, features)], events, profiles


def keys_for(rng: np.random.Generator, n: int, entities: int, skewed: bool) -> np.ndarray:
    if not skewed:
        return rng.integers(0, entities, n, dtype=np.int64)
    return np.minimum(rng.zipf(1.3, n) - 1, entities - 1).astype(np.int64)


def build(folder: Path, size: int, scale: Scale, skewed: bool) -> tuple[pt.FactLog, pa.Table]:
    _, events, profiles = definitions()
    rng = np.random.default_rng(size + skewed)
    span = 90 * DAY_US
    log = pt.FactLog(folder)
    times = START_US + rng.integers(0, span, size, dtype=np.int64)
    log.ingest(events, pa.table({
        "member_id": keys_for(rng, size, scale.entities, skewed),
        "amount": np.round(rng.lognormal(3, 1, size), 2),
        "event_time": pa.array(times).cast(pa.timestamp("us", tz="UTC")),
        "fact_id": pa.array(np.arange(size)).cast(pa.string()),
    }))
    states = max(size // 10, 1)
    log.ingest(profiles, pa.table({
        "member_id": keys_for(rng, states, scale.entities, skewed),
        "score": rng.normal(0, 1, states),
        "tier": pa.array(rng.choice(["gold", "silver", "bronze"], states)),
        "event_time": pa.array(START_US + rng.integers(0, span, states, dtype=np.int64))
        .cast(pa.timestamp("us", tz="UTC")),
        "fact_id": pa.array(np.arange(states)).cast(pa.string()),
    }))
    contexts = pa.table({
        "member_id": keys_for(rng, scale.contexts, scale.entities, skewed),
        "at": pa.array(START_US + rng.integers(0, span, scale.contexts, dtype=np.int64))
        .cast(pa.timestamp("us", tz="UTC")),
    })
    return log, contexts


def jvm_peak_mb(spark: Any) -> float:
    """Peak resident memory of the Spark driver JVM (VmHWM), in MB (Linux)."""
    pid = spark._jvm.java.lang.ProcessHandle.current().pid()
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="tiny")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--skew", choices=["uniform", "skewed", "both"], default="both")
    parser.add_argument("--repeat", type=int, default=1, help="runs per engine and size")
    parser.add_argument("--driver-memory", default=None,
                        help="Spark driver memory (local mode: all of Spark's heap); "
                        "default 2g, 8g for --scale full (1M contexts)")
    args = parser.parse_args()
    scale = SCALES[args.scale]
    from parity.engines.spark import SparkEngine

    spark_engine = SparkEngine(master=args.master, conf={
        "spark.sql.shuffle.partitions": "8", "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.memory": args.driver_memory or ("8g" if args.scale == "full" else "2g"),
    })
    spark_engine.spark.sparkContext.setLogLevel("ERROR")
    duck = DuckDBEngine(memory_limit="2GB", threads=2)
    feature_sets = definitions()[0]
    names = [f.name for f in feature_sets[0].features]
    warm = Path(tempfile.mkdtemp(prefix="parity-bench-spark-warm-"))
    try:
        log, contexts = build(warm / "log", 2_000, Scale((2_000,), 500, 100), False)
        duck.training_set(contexts, feature_sets, log)
        spark_engine.training_set(contexts, feature_sets, log)
    finally:
        shutil.rmtree(warm, ignore_errors=True)
    kinds = ["uniform", "skewed"] if args.skew == "both" else [args.skew]
    print(f"Spark engine vs DuckDB engine, scale={args.scale}, master={args.master}")
    print(f"{'keys':8} {'events':>10} {'contexts':>9} {'duckdb s':>9} {'spark s':>8} "
          f"{'ratio':>6} {'growth':>7} {'equal':>6}")
    for kind in kinds:
        previous: float | None = None
        for size in scale.sizes:
            folder = Path(tempfile.mkdtemp(prefix="parity-bench-spark-"))
            try:
                log, contexts = build(folder / "log", size, scale, kind == "skewed")
                duck_times, spark_times = [], []
                for _ in range(max(args.repeat, 1)):
                    started = time.perf_counter()
                    expected = duck.training_set(contexts, feature_sets, log)
                    duck_times.append(time.perf_counter() - started)
                    started = time.perf_counter()
                    actual = spark_engine.training_set(contexts, feature_sets, log)
                    spark_times.append(time.perf_counter() - started)
                duck_s = statistics.median(duck_times)
                spark_s = statistics.median(spark_times)
            finally:
                shutil.rmtree(folder, ignore_errors=True)
            equal = all(expected.column(n).equals(actual.column(n)) for n in names)
            growth = f"{spark_s / previous:6.2f}x" if previous else "      -"
            previous = spark_s
            print(f"{kind:8} {size:>10,} {scale.contexts:>9,} {duck_s:>9.2f} {spark_s:>8.2f} "
                  f"{spark_s / duck_s:>6.1f} {growth:>7} {equal!s:>6}", flush=True)
    python_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory: python {python_mb:.0f} MB, Spark driver JVM "
          f"{jvm_peak_mb(spark_engine.spark):.0f} MB")


if __name__ == "__main__":
    main()
