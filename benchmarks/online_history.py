"""The online history curve: request latency at 10 to 10,000 events per entity, with tiles
and with the raw-fact evaluation (tiles off) measured in the same run as the baseline.

    .venv/bin/python benchmarks/online.py --history            # 10 .. 10,000 events/entity
    .venv/bin/python benchmarks/online.py --history --quick    # fewer entities and calls

One feature set of 15 aggregates: count/sum/mean/min/max of ``amount`` over 1h, 1d and 7d.
Each entity holds N events spread over the 7 days before END (all inside the longest
window, so the raw evaluation reads every one of them); requests ask at END plus up to 30
minutes. For each N and store (memory, SQLite, Redis when reachable) it prints the
materialize (bootstrap) time, then p50/p99 of ``get_features`` with tiles and with tiles off
(medians of three runs), and for Redis the ratio to a raw pipelined round trip (one HMGET in
a pipeline, the shape of a tile read) measured in the same run.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

import parity as pt
from online import median_runs, timed  # benchmarks/online.py, which runs this module
from parity.online import OnlineFeatures, open_online

UTC = timezone.utc
END = datetime(2024, 6, 1, tzinfo=UTC)
END_US = int(END.timestamp() * 1_000_000)
DAY_US = 86_400_000_000
REDIS = "redis://127.0.0.1:6379/0"

customer = pt.Entity("customer", {"customer_id": int})
orders = pt.EventSource("orders", customer, {"amount": float, "quantity": int})


def feature_set() -> pt.FeatureSet:
    """15 aggregates: count/sum/mean/min/max of amount over 1h, 1d and 7d."""
    features: list[Any] = []
    for window in ("1h", "1d", "7d"):
        features += [
            pt.Aggregate(f"orders_{window}", orders, "count", window=window),
            pt.Aggregate(f"spend_{window}", orders, "sum", "amount", window=window),
            pt.Aggregate(f"mean_{window}", orders, "mean", "amount", window=window),
            pt.Aggregate(f"min_{window}", orders, "min", "amount", window=window),
            pt.Aggregate(f"max_{window}", orders, "max", "amount", window=window),
        ]
    return pt.FeatureSet("history", customer, features)


def generate(entities: int, per_entity: int, seed: int = 5) -> pa.Table:
    """``per_entity`` orders for each entity, uniformly over the 7 days before END."""
    rng = np.random.default_rng(seed)
    n = entities * per_entity
    event_us = END_US - rng.integers(1, 7 * DAY_US - 60_000_000, n)
    return pa.table(
        {
            "customer_id": np.repeat(np.arange(entities), per_entity).astype(np.int64),
            "amount": np.round(rng.gamma(2.0, 20.0, n), 2),
            "quantity": rng.integers(1, 5, n),
            "event_time": pa.array(event_us, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            "fact_id": pa.array([f"o{i}" for i in range(n)]),
        }
    )


def requests(online: OnlineFeatures, entities: int, calls: int, seed: int) -> list[float]:
    """Latencies of ``get_features`` for random entities at END + up to 30 minutes."""
    rng = np.random.default_rng(seed)
    contexts = [
        {"customer_id": int(k), "at": END + timedelta(microseconds=int(o))}
        for k, o in zip(rng.integers(0, entities, calls), rng.integers(1, 1_800_000_000, calls))
    ]
    it = iter(contexts)
    return timed(lambda: online.get_features("history", next(it)), calls)


def redis_pipelined_trip(calls: int) -> tuple[float, float]:
    """p50/p99 ms of one HMGET in a pipeline, with the client parity uses."""
    import redis

    client = redis.Redis.from_url(REDIS)
    key = f"parity-bench-{uuid.uuid4().hex}"
    client.hset(key, mapping={"s": b"x" * 2048, "1": b"y" * 256})
    try:

        def trip() -> None:
            pipe = client.pipeline(transaction=False)
            pipe.hmget(key, ["s", "1", "2"])
            pipe.execute()

        return median_runs(lambda: timed(trip, calls))
    finally:
        client.delete(key)
        client.close()


def run(root: Path, backends: list[str], quick: bool) -> None:
    """Print the history curve for each store."""
    sizes = [10, 100, 1_000, 10_000]
    entities = 20 if quick else 50
    calls = 300 if quick else 2_000
    fs = feature_set()
    if "redis" in backends:
        trip50, trip99 = redis_pipelined_trip(calls)
        print(f"history: raw Redis pipelined round trip (HMGET) p50 {trip50:.3f} ms p99 {trip99:.3f}")
    print(
        f"history: {entities} entities per size, 15 aggregates, {calls} requests x 3 runs; "
        "p50/p99 ms with tiles | tiles off (raw facts) | ratio of p50s"
    )
    for per_entity in sizes:
        log = pt.FactLog(root / f"history-{per_entity}")
        log.ingest(orders, generate(entities, per_entity), recorded_at="lag")
        for backend in backends:
            url = {
                "memory": "memory://",
                "sqlite": f"sqlite:///{root / f'history-{per_entity}.db'}",
                "redis": f"{REDIS}?prefix=parity-bench-{uuid.uuid4().hex[:8]}",
            }[backend]
            online = open_online(url, log, [fs], lookback="1h")
            try:
                t0 = time.perf_counter()
                online.materialize()
                bootstrap = time.perf_counter() - t0
                online.get_features("history", {"customer_id": 0, "at": END})  # warm up
                measure = lambda on=online: requests(on, entities, calls, 1)  # noqa: E731
                tiled = median_runs(measure)
                online._state.read_tiles = False  # the baseline: raw facts, same store
                raw = median_runs(measure)
                online._state.read_tiles = True
                line = (
                    f"{backend:>7} {per_entity:>6} events/entity: tiles p50 {tiled[0]:.3f} "
                    f"p99 {tiled[1]:.3f} | raw p50 {raw[0]:.3f} p99 {raw[1]:.3f} | "
                    f"raw/tiles {raw[0] / tiled[0]:.1f}x; bootstrap {bootstrap:.2f}s"
                )
                if backend == "redis":
                    line += f"; tiles p50 = {tiled[0] / trip50:.1f}x the raw pipelined trip"
                print(line, flush=True)
            finally:
                if backend == "redis":
                    from parity.online.redis import RedisStore

                    store = online.store
                    if isinstance(store, RedisStore):
                        store.delete_prefix()
                online.close()
