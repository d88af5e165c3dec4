"""Online Archive benchmark: appends, live latency with and without a concurrent export,
export throughput, and as_of against the DuckDB engine on the same facts.

    python benchmarks/archive.py                       # SQLite and PostgreSQL, 100k versions
    python benchmarks/archive.py --rows 20000 --seconds 3 --contexts 2000   # the smallest scale
    python benchmarks/archive.py --backends sqlite

Phases, per backend:
  1. appends/s through ``Archive.append`` (validation included) and ``append_canonical``,
     against a raw ``executemany`` (SQLite) / ``COPY`` (PostgreSQL) of the same rows into a
     bare table in the same run;
  2. ``latest(key, 5)`` p50/p99 idle and while another *process* runs full exports in a
     loop (a batch job is another process in production), unbudgeted and with the token bucket
     at --budget rows/s: the ratio during/idle is the isolation figure (goal <= 2x);
  3. export rows/s (a full scan to Parquet, no budget);
  4. ``training_set`` through ``as_of`` for --contexts contexts vs the DuckDB engine on a fact
     log synced from the same archive (the two answers are also compared).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import parity as pt  # noqa: E402
from parity.archive import Archive, export, open_archive, sync, training_set  # noqa: E402
from parity.archive.model import to_rows  # noqa: E402
from parity.engines.duckdb import DuckDBEngine  # noqa: E402
from parity.facts import canonical_schema, normalize_facts  # noqa: E402

PG = "postgresql://127.0.0.1:5432/test"
T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
customer = pt.Entity("customer", {"customer_id": int})
orders = pt.EventSource("orders", customer, {"amount": float, "item": str})
FS = pt.FeatureSet(
    "c",
    customer,
    [
        pt.Aggregate("orders_30d", orders, "count", window="30d"),
        pt.Aggregate("spend_30d", orders, "sum", "amount", window="30d"),
        pt.Aggregate("last_items", orders, "last_k", "item", window="30d", k=5),
    ],
)


def facts(n: int, customers: int, seed: int = 0) -> pd.DataFrame:
    rng = random.Random(seed)
    times = [T0 + timedelta(seconds=rng.randrange(0, 60 * 86_400)) for _ in range(n)]
    return pd.DataFrame(
        {
            "customer_id": [rng.randrange(customers) for _ in range(n)],
            "amount": [round(rng.uniform(1, 200), 2) for _ in range(n)],
            "item": [f"item{rng.randrange(500)}" for _ in range(n)],
            "event_time": times,
            "recorded_at": [
                t + timedelta(seconds=rng.choice([0, 0, 0, 60, 86_400])) for t in times
            ],
            "fact_id": [f"o{i}" for i in range(n)],
        }
    )


def url_for(backend: str, folder: Path) -> str:
    if backend == "sqlite":
        return f"sqlite://{folder / 'archive.db'}"
    return f"{PG}?schema=bench_{uuid.uuid4().hex[:10]}"


def bench_appends(backend: str, url: str, data: pd.DataFrame, batch: int) -> dict[str, float]:
    out: dict[str, float] = {}
    with open_archive(url, [orders]) as archive:
        half = len(data) // 2
        start = time.perf_counter()
        for i in range(0, half, batch):
            archive.append(orders, data.iloc[i : i + batch])
        out["append (validated) rows/s"] = half / (time.perf_counter() - start)
        canonical = normalize_facts(orders, data.iloc[half:])
        start = time.perf_counter()
        for i in range(0, canonical.num_rows, batch):
            archive.append_canonical(orders, canonical.slice(i, batch))
        out["append_canonical rows/s"] = canonical.num_rows / (time.perf_counter() - start)
        rows = [("orders", *r) for r in to_rows(orders, canonical)]
    out["raw insert rows/s"] = raw_insert(backend, url, rows, batch)
    return out


def raw_insert(backend: str, url: str, rows: list[tuple[Any, ...]], batch: int) -> float:
    """The same rows into a bare table with the same primary key: the floor to compare with."""
    ddl = (
        "CREATE TABLE raw_versions (source TEXT, entity TEXT, event_time BIGINT, "
        "recorded_at BIGINT, fact_id TEXT, tombstone BOOLEAN, payload TEXT, "
        "PRIMARY KEY (source, fact_id, recorded_at))"
    )
    if backend == "sqlite":
        conn = sqlite3.connect(
            url[len("sqlite://") :].replace("archive.db", "raw.db"), isolation_level=None
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(ddl)
        start = time.perf_counter()
        for i in range(0, len(rows), batch):
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO raw_versions VALUES (?,?,?,?,?,?,?)", rows[i : i + batch])
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - start
        conn.close()
        return len(rows) / elapsed
    import psycopg

    schema = url.split("schema=")[1]
    with psycopg.connect(PG, autocommit=True, options=f"-c search_path={schema}") as conn:
        conn.execute(ddl)
        start = time.perf_counter()
        for i in range(0, len(rows), batch):
            with conn.transaction(), conn.cursor().copy("COPY raw_versions FROM STDIN") as copy:
                for row in rows[i : i + batch]:
                    copy.write_row(row)
        return len(rows) / (time.perf_counter() - start)


def latencies(archive: Archive, customers: int, seconds: float) -> list[float]:
    rng = random.Random(1)
    out = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        key = rng.randrange(customers)
        start = time.perf_counter()
        archive.latest(orders, key, 5)
        out.append((time.perf_counter() - start) * 1000)
    return out


def _exporter(url: str, folder: str, budget: float | None, go: Any, stop: Any) -> None:
    """Full exports to Parquet in a loop, pausing between chunks while ``go`` is clear."""
    with open_archive(url, [orders], batch_rows_per_second=budget, batch_rows=1_000) as archive:
        while not stop.is_set():
            path = Path(folder) / f"export-{uuid.uuid4().hex}.parquet"
            with pq.ParquetWriter(path, canonical_schema(orders)) as writer:
                for chunk in archive.scan(orders):
                    while not go.is_set():
                        if stop.is_set():
                            return
                        go.wait(0.05)
                    writer.write_table(chunk)
            path.unlink()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_isolation(
    url: str, folder: Path, customers: int, seconds: float, budget: float, rounds: int = 6
) -> dict[str, float]:
    """Live latency idle, during an unbudgeted export and during a budgeted one, measured in
    interleaved rounds (idle, unbudgeted, budgeted, idle, ...) so that drift in the shared
    machine's load hits every mode alike. Exporters are separate processes, started once and
    paused between their rounds (holding their snapshot, as a long export does)."""
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    modes: dict[str, Any] = {"idle": None}
    workers = []
    for label, cap in (("unbudgeted", None), (f"budget {budget:.0f} rows/s", budget)):
        go = ctx.Event()
        modes[label] = go
        worker = ctx.Process(target=_exporter, args=(url, str(folder), cap, go, stop))
        worker.start()
        workers.append(worker)
    samples: dict[str, list[float]] = {label: [] for label in modes}
    with open_archive(url, [orders]) as archive:
        time.sleep(5)  # the exporters import and connect before the first round
        latencies(archive, customers, 0.5)  # warm up
        for _ in range(rounds):
            for label, go in modes.items():
                if go is not None:
                    go.set()
                    time.sleep(0.3)  # let it reach full speed
                samples[label] += latencies(archive, customers, seconds / rounds)
                if go is not None:
                    go.clear()
    stop.set()
    for worker in workers:
        worker.join(60)
    out: dict[str, float] = {}
    idle99 = pct(samples["idle"], 0.99)
    for label, values in samples.items():
        out[f"latest p50 {label} ms"] = statistics.median(values)
        out[f"latest p99 {label} ms"] = pct(values, 0.99)
        if label != "idle":
            out[f"p99 ratio {label} / idle"] = pct(values, 0.99) / idle99
    return out


def bench_batch(url: str, folder: Path, customers: int, n_contexts: int) -> dict[str, float]:
    out: dict[str, float] = {}
    with open_archive(url, [orders]) as archive:
        start = time.perf_counter()
        report = export(archive, orders, folder / "full.parquet")
        out["export rows/s"] = report.rows / (time.perf_counter() - start)
        rng = random.Random(2)
        ctx = pd.DataFrame(
            {
                "customer_id": [rng.randrange(customers) for _ in range(n_contexts)],
                "at": [
                    T0 + timedelta(seconds=rng.randrange(0, 61 * 86_400)) for _ in range(n_contexts)
                ],
            }
        )
        start = time.perf_counter()
        via_archive = training_set(archive, [FS], ctx)
        out["as_of training set s"] = time.perf_counter() - start
        log = pt.FactLog(folder / "facts")
        sync(archive, log)
        start = time.perf_counter()
        via_engine = DuckDBEngine(memory_limit="1GB", threads=1).training_set(ctx, [FS], log)
        out["DuckDB training set s"] = time.perf_counter() - start
        out["answers equal"] = float(via_archive.equals(via_engine))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--budget", type=float, default=5_000, help="export budget, rows/s")
    parser.add_argument("--contexts", type=int, default=10_000)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgres"])
    args = parser.parse_args()
    data = facts(args.rows, args.customers)
    for backend in args.backends:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            url = url_for(backend, folder)
            results: dict[str, float] = {}
            try:
                results.update(bench_appends(backend, url, data, args.batch))
                results.update(
                    bench_isolation(url, folder, args.customers, args.seconds, args.budget)
                )
                results.update(bench_batch(url, folder, args.customers, args.contexts))
            finally:
                if backend == "postgres":
                    import psycopg

                    with psycopg.connect(PG, autocommit=True) as conn:
                        conn.execute(f'DROP SCHEMA IF EXISTS "{url.split("schema=")[1]}" CASCADE')
            print(f"\n== {backend}: {args.rows} versions, {args.customers} customers")
            for name, value in results.items():
                print(f"  {name:<48} {value:>12,.3f}")


if __name__ == "__main__":
    main()
