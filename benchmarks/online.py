"""Online features benchmark: request latency, batched cost, ingestion throughput, memory,
materialize (bootstrap) time and the cost of a one-fact push, each also as a ratio to a
baseline measured in the same run.

    .venv/bin/python benchmarks/online.py            # full run (a few minutes)
    .venv/bin/python benchmarks/online.py --quick    # smaller data, fewer calls
    .venv/bin/python benchmarks/online.py --history [--quick]  # the history curve only
    .venv/bin/python benchmarks/online.py --push-only          # the one-fact push only

The history curve (``online_history``): get_features p50/p99 at 10, 100, 1,000 and 10,000
events per entity, 15 aggregates, with tiles and with tiles off (raw facts) in the same run,
bootstrap (materialize) time, and for Redis the ratio to a raw pipelined round trip.

Baselines: materialize against the generic path it replaced (every version routed through
``routing.apply`` in 200k-row chunks, then every entity compacted one by one) and against
merely reading the fact log; a one-fact push against a raw SQLite INSERT + COMMIT of a blob of
the same size in WAL mode (the floor), and against ``push_canonical`` (no validation). The
pushed fact is new each time (its own event_time); a re-push of the same fact (a new version
of a stored fact: the correction path, which reads the entity) is printed next to it.

One feature set of 20 features: count/sum/mean/max of an event source over 1h, 1d, 7d and 30d
windows (16 aggregates) and 4 lookups of a state source. Entities hold 20 to 1,000 events in
the 30-day window; a tenth of them hold exactly 1,000. The data is generated here, ingested
into a fact log, materialized into each store, then measured. Latency figures are the medians
of three runs of ``--calls`` requests; Redis figures are set against a raw round trip
(PING and GET of a small key) measured in the same run. Redis is skipped if unreachable.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import parity as pt
from parity.online import OnlineFeatures, open_online

UTC = timezone.utc
END = datetime(2024, 6, 1, tzinfo=UTC)
DAY_US = 86_400_000_000
REDIS = "redis://127.0.0.1:6379/0"

customer = pt.Entity("customer", {"customer_id": int})
orders = pt.EventSource("orders", customer, {"amount": float, "quantity": int})
profile = pt.StateSource(
    "profile", customer, {"tier": str, "credit": float, "age": int, "country": str}
)


def feature_set() -> pt.FeatureSet:
    """16 aggregates over four windows and 4 lookups."""
    features: list[Any] = []
    for window in ("1h", "1d", "7d", "30d"):
        features += [
            pt.Aggregate(f"orders_{window}", orders, "count", window=window),
            pt.Aggregate(f"spend_{window}", orders, "sum", "amount", window=window),
            pt.Aggregate(f"mean_{window}", orders, "mean", "amount", window=window),
            pt.Aggregate(f"max_{window}", orders, "max", "amount", window=window),
        ]
    features += [pt.Lookup(n, profile, n) for n in ("tier", "credit", "age", "country")]
    return pt.FeatureSet("customer_live", customer, features)


def generate(entities: int, seed: int = 7) -> tuple[pa.Table, pa.Table, list[int]]:
    """Orders (20..1,000 per entity in the last 30 days, a tenth with 1,000) and profiles."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(20, 1001, entities)
    sizes[: entities // 10] = 1000
    ids = np.repeat(np.arange(entities), sizes)
    n = len(ids)
    end_us = int(END.timestamp() * 1_000_000)
    event_us = end_us - rng.integers(1, 30 * DAY_US - 60_000_000, n)
    # The last hour is dense enough that 1h windows are not empty.
    recent = rng.random(n) < 0.02
    event_us[recent] = end_us - rng.integers(1, 3_600_000_000, int(recent.sum()))
    order_table = pa.table(
        {
            "customer_id": ids.astype(np.int64),
            "amount": np.round(rng.gamma(2.0, 20.0, n), 2),
            "quantity": rng.integers(1, 5, n),
            "event_time": pa.array(event_us, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            "fact_id": pa.array([f"o{i}" for i in range(n)]),
        }
    )
    versions = 3
    pid = np.repeat(np.arange(entities), versions)
    profile_us = end_us - rng.integers(1, 60 * DAY_US, len(pid))
    profile_table = pa.table(
        {
            "customer_id": pid.astype(np.int64),
            "tier": rng.choice(["gold", "silver", "bronze"], len(pid)),
            "credit": np.round(rng.random(len(pid)) * 1000, 2),
            "age": rng.integers(18, 90, len(pid)),
            "country": rng.choice(["GB", "FR", "DE", "ES"], len(pid)),
            "event_time": pa.array(profile_us, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        }
    )
    full = [int(i) for i in range(entities // 10)]
    return order_table, profile_table, full


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p99 of samples (seconds), in milliseconds."""
    ordered = sorted(samples)
    return ordered[len(ordered) // 2] * 1e3, ordered[int(len(ordered) * 0.99)] * 1e3


def timed(fn: Callable[[], Any], calls: int) -> list[float]:
    """Seconds per call of ``fn``."""
    out = []
    clock = time.perf_counter
    for _ in range(calls):
        start = clock()
        fn()
        out.append(clock() - start)
    return out


def median_runs(make: Callable[[], list[float]], runs: int = 3) -> tuple[float, float]:
    """Median over ``runs`` of (p50, p99)."""
    results = [percentiles(make()) for _ in range(runs)]
    return statistics.median(r[0] for r in results), statistics.median(r[1] for r in results)


def latency(
    online: OnlineFeatures, entities: int, calls: int, rng: np.random.Generator
) -> dict[str, Any]:
    """Single-context and batched latency over random entities at moments near the end."""
    name = "customer_live"
    end = END

    def single() -> list[float]:
        keys = rng.integers(0, entities, calls).tolist()
        offsets = rng.integers(0, 1_800_000_000, calls).tolist()
        contexts = [
            {"customer_id": k, "at": end + timedelta(microseconds=o)} for k, o in zip(keys, offsets)
        ]
        it = iter(contexts)
        return timed(lambda: online.get_features(name, next(it)), calls)

    def full_entities() -> list[float]:
        keys = rng.integers(0, entities // 10, calls).tolist()
        it = iter(keys)
        return timed(lambda: online.get_features(name, {"customer_id": next(it), "at": end}), calls)

    online.get_features(name, {"customer_id": 0, "at": end})  # warm up
    p50, p99 = median_runs(single)
    f50, f99 = median_runs(full_entities)
    batches = max(20, calls // 100)
    contexts = [
        [{"customer_id": int(k), "at": end} for k in rng.integers(0, entities, 100)]
        for _ in range(batches)
    ]
    it = iter(contexts * 3)
    per_call = [
        s / 100 for s in timed(lambda: online.get_features_batch(name, next(it)), batches * 3)
    ]
    return {
        "p50": p50,
        "p99": p99,
        "full_p50": f50,
        "full_p99": f99,
        "batch_per_context": statistics.median(per_call) * 1e3,
    }


def ingestion(url: str, root: Path, events: int, per_push: int, entities: int) -> dict[str, float]:
    """Events per second pushed (validated, stored, visible), then with the fact log flush."""
    online = open_online(
        url,
        pt.FactLog(root / f"ingest-{uuid.uuid4().hex[:6]}"),
        [feature_set()],
        flush_every=10**9,
        flush_seconds=10**9,
    )
    online.reset()
    rng = np.random.default_rng(1)
    end_us = int(END.timestamp() * 1_000_000)
    batches = []
    for b in range(events // per_push):
        batches.append(
            pa.table(
                {
                    "customer_id": rng.integers(0, entities, per_push),
                    "amount": np.round(rng.random(per_push) * 100, 2),
                    "quantity": rng.integers(1, 5, per_push),
                    "event_time": pa.array(
                        end_us + b * 1_000_000 + np.arange(per_push), pa.int64()
                    ).cast(pa.timestamp("us", tz="UTC")),
                }
            )
        )
    now = END + timedelta(days=1)
    start = time.perf_counter()
    latencies = []
    for i, batch in enumerate(batches):
        report = online.push("orders", batch, now=now + timedelta(seconds=i))
        latencies.append(report.seconds)
    stored = time.perf_counter() - start
    online.flush()
    logged = time.perf_counter() - start
    online.reset()
    online.close()
    return {
        "store": events / stored,
        "with_log": events / logged,
        "push_to_visible_ms": statistics.median(latencies) * 1e3,
    }


def materialize_baseline(url: str, log: pt.FactLog) -> dict[str, float]:
    """Seconds to read the fact log, and to load it the generic way (the previous materialize)."""
    from parity.online.routing import apply

    fs = feature_set()
    t0 = time.perf_counter()
    tables = {s.name: log.read(s) for s in fs.sources}
    read = time.perf_counter() - t0
    online = open_online(url, log, [fs], lookback="1h")
    state = online._state  # the benchmark reaches inside on purpose: the old algorithm
    t0 = time.perf_counter()
    for source in fs.sources:
        table = tables[source.name].sort_by([(k, "ascending") for k in source.entity.keys])
        latest = pc.max(table.column("recorded_at").cast(pa.int64())).as_py()
        if latest is not None:
            state.advance(int(latest))
        state.store.clear(source)
        for start in range(0, table.num_rows, 200_000):
            apply(state, source, table.slice(start, 200_000), None)
        online.compact(source)
    generic = time.perf_counter() - t0
    online.reset()
    online.close()
    return {"read": read, "generic": generic}


def push_one(url: str, root: Path, calls: int) -> dict[str, float]:
    """p50 ms of a one-fact push, of push_canonical, and of a raw SQLite insert + commit."""
    import sqlite3

    from parity.facts import normalize_facts

    fs = feature_set()
    online = open_online(
        url,
        pt.FactLog(root / f"push-{uuid.uuid4().hex[:6]}"),
        [fs],
        flush_every=10**9,
        flush_seconds=10**9,
    )
    online.reset()
    now = END + timedelta(days=2)
    fact = {"customer_id": 1, "amount": 2.5, "quantity": 1, "event_time": END}
    counter = iter(range(10**9))

    def push() -> None:  # a new fact (its own event_time, so its own content-hash fact id)
        i = next(counter)
        row = {**fact, "customer_id": i % 100, "event_time": END + timedelta(microseconds=i)}
        online.push("orders", [row], now=now + timedelta(seconds=i))

    def repush() -> None:  # the same fact again: a new version of a stored fact (a correction)
        i = next(counter)
        online.push("orders", [{**fact, "customer_id": i % 100}], now=now + timedelta(seconds=i))

    canonicals = iter(
        [
            normalize_facts(
                orders, [{**fact, "event_time": END + timedelta(microseconds=i)}], "now", now=1
            )
            for i in range(3 * calls + 1)
        ]
    )

    def push_canonical() -> None:
        i = next(counter)
        online.push_canonical("orders", next(canonicals), now=now + timedelta(seconds=i))

    raw_path = root / f"raw-{uuid.uuid4().hex[:6]}.db"
    con = sqlite3.connect(raw_path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute("CREATE TABLE t (k TEXT, n INTEGER, v BLOB)")
    blob = b"x" * 200

    def raw() -> None:
        con.execute("BEGIN IMMEDIATE")
        con.execute("INSERT INTO t VALUES (?, ?, ?)", ("[1]", next(counter), blob))
        con.execute("COMMIT")

    result = {
        "push": median_runs(lambda: timed(push, calls))[0],
        "repush": median_runs(lambda: timed(repush, calls))[0],
        "push_canonical": median_runs(lambda: timed(push_canonical, calls))[0],
        "raw": median_runs(lambda: timed(raw, calls))[0],
    }
    con.close()
    online.reset()
    online.close()
    return result


def report_push(url: str, root: Path, calls: int) -> None:
    """Print the one-fact push figures of ``push_one`` as ratios to the raw SQLite floor."""
    one = push_one(url, root, calls)
    print(
        f" sqlite: push of 1 fact p50 {one['push']:.3f} ms = "
        f"{one['push'] / one['raw']:.1f}x a raw SQLite INSERT+COMMIT "
        f"({one['raw']:.3f} ms); push_canonical (no validation) "
        f"{one['push_canonical']:.3f} ms = {one['push_canonical'] / one['raw']:.1f}x raw; "
        f"validation is {1 - one['push_canonical'] / one['push']:.0%} of the push; "
        f"re-push of a stored fact (correction path) {one['repush']:.3f} ms"
    )


def memory_per_entity(online: OnlineFeatures, full: list[int]) -> float:
    """Mean bytes the store holds for an entity with 1,000 events (and 3 profile versions)."""
    from parity.online.base import entity_id

    fs = feature_set()
    sample = full[:50]
    total = 0
    for key in sample:
        for source in fs.sources:
            total += online.store.entity_bytes(source, entity_id([key]))
    return total / len(sample)


def redis_round_trip(calls: int) -> dict[str, tuple[float, float]]:
    """Raw PING and GET round trips with the same client library."""
    import redis

    client = redis.Redis.from_url(REDIS)
    key = f"parity-bench-{uuid.uuid4().hex}"
    client.set(key, b"x" * 64)
    try:
        return {
            "ping": median_runs(lambda: timed(client.ping, calls)),
            "get": median_runs(lambda: timed(lambda: client.get(key), calls)),
        }
    finally:
        client.delete(key)
        client.close()


def redis_up() -> bool:
    """Whether Redis answers."""
    try:
        import redis

        redis.Redis.from_url(REDIS, socket_connect_timeout=1).ping()
        return True
    except Exception:
        return False


def main() -> None:
    """Run every measurement and print a summary for BENCHMARKS.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entities", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--ingest-events", type=int, default=200_000)
    parser.add_argument("--quick", action="store_true", help="200 entities, 2,000 calls")
    parser.add_argument("--push-only", action="store_true", help="only the one-fact push")
    parser.add_argument(
        "--history", action="store_true", help="only the history curve (10..10,000 events)"
    )
    args = parser.parse_args()
    if args.push_only:  # seconds instead of minutes: no data set, no materialize
        with tempfile.TemporaryDirectory(prefix="parity-bench-") as tmp:
            report_push(f"sqlite:///{Path(tmp) / 'online.db'}", Path(tmp), args.calls)
        return
    if args.history:
        import online_history

        backends = ["memory", "sqlite"] + (["redis"] if redis_up() else [])
        with tempfile.TemporaryDirectory(prefix="parity-bench-") as tmp:
            online_history.run(Path(tmp), backends, args.quick)
        return
    if args.quick:
        args.entities, args.calls, args.ingest_events = 200, 2_000, 50_000
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    order_table, profile_table, full = generate(args.entities)
    print(
        f"data: {args.entities} entities, {order_table.num_rows} orders, "
        f"{profile_table.num_rows} profile versions; {len(full)} entities hold 1,000 orders"
    )
    backends = ["memory", "sqlite"] + (["redis"] if redis_up() else [])
    if "redis" not in backends:
        print("Redis not reachable at 127.0.0.1:6379: Redis figures skipped", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="parity-bench-") as tmp:
        root = Path(tmp)
        log = pt.FactLog(root / "facts")
        t0 = time.perf_counter()
        log.ingest(orders, order_table, recorded_at="lag")
        log.ingest(profile, profile_table, recorded_at="lag")
        print(f"fact log ingest: {time.perf_counter() - t0:.1f}s")
        rows = []
        prefix = f"parity-bench-{uuid.uuid4().hex[:8]}"
        urls = {
            "memory": "memory://",
            "sqlite": f"sqlite:///{root / 'online.db'}",
            "redis": f"{REDIS}?prefix={prefix}",
        }
        try:
            for backend in backends:
                base = materialize_baseline(urls[backend], log)
                online = open_online(urls[backend], log, [feature_set()], lookback="1h")
                t0 = time.perf_counter()
                online.materialize()
                materialized = time.perf_counter() - t0
                print(
                    f"{backend:>7}: materialize {materialized:.2f}s = "
                    f"{materialized / base['generic']:.2f}x the generic path "
                    f"({base['generic']:.2f}s), {materialized / base['read']:.1f}x reading "
                    f"the fact log ({base['read']:.2f}s)"
                )
                result = latency(online, args.entities, args.calls, rng)
                result["materialize_s"] = materialized
                result["bytes_per_entity"] = memory_per_entity(online, full)
                online.close()
                rows.append((backend, result))
                r = result
                print(
                    f"{backend:>7}: get_features p50 {r['p50']:.3f} ms, p99 {r['p99']:.3f} ms;"
                    f" 1,000-event entities p50 {r['full_p50']:.3f} ms,"
                    f" p99 {r['full_p99']:.3f} ms;"
                    f" batch of 100: {r['batch_per_context']:.3f} ms/context;"
                    f" {r['bytes_per_entity'] / 1024:.1f} KiB/entity"
                    " (1,000 orders + 3 profiles);"
                    f" materialize {materialized:.1f}s"
                )
            if "redis" in backends:
                trips = redis_round_trip(args.calls)
                ping50, ping99 = trips["ping"]
                get50, get99 = trips["get"]
                redis_row = dict(rows)["redis"]
                print(
                    f"  raw Redis round trip: PING p50 {ping50:.3f} ms p99 {ping99:.3f} ms; "
                    f"GET p50 {get50:.3f} ms p99 {get99:.3f} ms"
                )
                print(
                    f"  redis get_features / raw GET: p50 {redis_row['p50'] / get50:.1f}x, "
                    f"p99 {redis_row['p99'] / get99:.1f}x"
                )
            report_push(urls["sqlite"], root, max(200, args.calls // 10))
            for backend in [b for b in backends if b != "memory"]:
                speed = ingestion(urls[backend], root, args.ingest_events, 10_000, args.entities)
                print(
                    f"{backend:>7}: ingestion {speed['store']:,.0f} events/s into the store "
                    f"({speed['with_log']:,.0f}/s including the fact log flush), "
                    f"push of 10,000 visible after {speed['push_to_visible_ms']:.1f} ms"
                )
        finally:
            if "redis" in backends:
                from parity.online.redis import RedisStore

                cleaner = RedisStore(urls["redis"])
                cleaner.delete_prefix()
                cleaner.close()
    print(f"total {time.perf_counter() - started:.0f}s")


if __name__ == "__main__":
    main()
