"""HTTP serving benchmark: fixed-rate load from a separate process, logging off vs on, hot swap.

    python benchmarks/serving.py                  # 200 requests/s for 60 s per phase
    python benchmarks/serving.py --duration 10    # a quick run
    python benchmarks/serving.py --customers 1000 --events 20000 --rate 50 --duration 10 \
        --no-swaps                                # the smallest scale

Phases, each against a fresh `parity serve` process on loopback:
  1. logging off, open-loop at --rate      (latency from the *scheduled* send time, so a slow
  2. logging on,  open-loop at --rate       server cannot hide its queueing)
  3. logging sync (`--sync-log`: each answer waits for its record's group fsync), open loop
  4. logging off / on / sync, closed loop with 8 connections: maximum throughput
  5. in-process, interleaved: queued vs sync logging in alternating 0.5 s rounds of 4 client
     threads (drift in a shared machine's load hits both modes alike): throughput and p99
  6. logging on at --rate while the live alias moves five times: failed requests and p99
     during swaps vs steady state
  7. parity vs a bare FastAPI app (``bare_app`` below: the same model artifact, the same
     features computed in plain Python from a dict of each customer's events, one-row
     ``predict_proba``), closed loop with 8 connections, ``--workers 1`` and ``--workers 2``
     for both, apps alternated, ``--repeats`` rounds: medians of throughput, p50 and p99 and
     parity's ratio to the bare app (goal: >= 0.8). ``--only-bare`` runs just this phase.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench-data" / "serving"
console = Console()
UTC = timezone.utc

DEFINITIONS = """
import parity as pt

customer = pt.Entity("customer", keys={"customer_id": int})
purchases = pt.EventSource("purchases", customer, {"amount": float, "item": str})
profiles = pt.StateSource("profiles", customer, {"segment": str, "score": float})

@pt.transform(dtype="float")
def avg_basket_30d(spend_30d, orders_30d):
    return spend_30d / orders_30d if orders_30d else None

customer_features = pt.FeatureSet("customer_features", customer, [
    pt.Aggregate("orders_1d", purchases, "count", window="1d"),
    pt.Aggregate("orders_7d", purchases, "count", window="7d"),
    pt.Aggregate("orders_30d", purchases, "count", window="30d"),
    pt.Aggregate("spend_1d", purchases, "sum", "amount", window="1d"),
    pt.Aggregate("spend_7d", purchases, "sum", "amount", window="7d"),
    pt.Aggregate("spend_30d", purchases, "sum", "amount", window="30d"),
    pt.Aggregate("mean_amount_30d", purchases, "mean", "amount", window="30d"),
    pt.Aggregate("max_amount_30d", purchases, "max", "amount", window="30d"),
    pt.Lookup("score", profiles, "score"),
    avg_basket_30d,
])
"""
FEATURES = [
    "orders_1d",
    "orders_7d",
    "orders_30d",
    "spend_1d",
    "spend_7d",
    "spend_30d",
    "mean_amount_30d",
    "max_amount_30d",
    "score",
    "avg_basket_30d",
]


def build_workspace(customers: int, events: int) -> Path:
    from sklearn.ensemble import HistGradientBoostingClassifier

    import parity as pt
    from parity.predictor import Predictor

    ws_dir = DATA / "ws"
    if ws_dir.exists():
        shutil.rmtree(ws_dir)
    pt.init(ws_dir)
    (ws_dir / "features.py").write_text(DEFINITIONS)
    ws = pt.open(ws_dir)
    rng = np.random.default_rng(7)
    now = datetime.now(UTC)
    purchases = pd.DataFrame(
        {
            "customer_id": rng.integers(0, customers, events),
            "amount": rng.gamma(2.0, 20.0, events).round(2),
            "item": rng.integers(0, 500, events).astype(str),
            "event_time": pd.to_datetime(now)
            - pd.to_timedelta(rng.uniform(0, 40, events), unit="D"),
        }
    )
    profiles = pd.DataFrame(
        {
            "customer_id": np.arange(customers),
            "segment": "a",
            "score": rng.normal(size=customers),
            "event_time": pd.to_datetime(now - timedelta(days=60)),
        }
    )
    ws.ingest("purchases", purchases)
    ws.ingest("profiles", profiles)
    purchases.to_parquet(DATA / "bare-purchases.parquet")  # what the bare app serves from
    profiles.to_parquet(DATA / "bare-profiles.parquet")
    ws.online.materialize()
    contexts = pd.DataFrame(
        {"customer_id": np.arange(min(customers, 5000)), "at": pd.Timestamp(now)}
    )
    train = ws.training_set(contexts, "customer_features").to_pandas()
    y = (train["orders_7d"] > train["orders_7d"].median()).astype(int)
    fs = ws.definitions.feature_set("customer_features")

    def register() -> int:
        model = HistGradientBoostingClassifier(max_iter=30, random_state=0)
        model.fit(train[FEATURES].astype(float).to_numpy(), y)
        predictor = Predictor(model, FEATURES, feature_sets=[fs])
        return int(
            ws.registry.register(
                "churn", predictor, feature_sets=predictor.feature_set_versions
            ).version
        )

    ws.registry.set_alias("churn", "live", register())
    for _ in range(5):
        register()  # versions 2..6 for the swap phase
    ws.online.close()
    return ws_dir


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, ws_dir: Path, log: bool, sync: bool = False, workers: int = 1,
                 bare: bool = False) -> None:
        self.port = free_port()
        if bare:  # the bare app on the same listener as parity's (see run_workers)
            args = [sys.executable, __file__, "--serve-bare", str(self.port), str(workers)]
        else:
            args = [
                sys.executable,
                "-m",
                "parity.cli",
                "-w",
                str(ws_dir),
                "serve",
                "--port",
                str(self.port),
                "--log" if log else "--no-log",
                "--sync-log" if sync else "--no-sync-log",
                "--workers",
                str(workers),
            ]
        # The bare app gets parity's `serving.threads: 1` (one OpenMP thread per scoring call).
        env = {**os.environ, BARE_ENV: str(ws_dir), **({"OMP_NUM_THREADS": "1"} if bare else {})}
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     env=env)
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(f"{self.base}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not start: {self.proc.stderr.read().decode()[-2000:]}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def open_loop(
    base: str, rate: float, duration: float, customers: int, marks: list[float] | None = None
) -> dict[str, Any]:
    """Send at a fixed rate regardless of answers; latency measured from the scheduled time."""
    rng = np.random.default_rng(1)
    latencies: list[tuple[float, float]] = []
    errors = 0
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=base, timeout=10, limits=limits) as client:
        start = time.perf_counter()
        tasks = []

        async def one(scheduled: float, customer: int) -> None:
            nonlocal errors
            try:
                r = await client.post(
                    "/v1/models/churn/predict", json={"keys": {"customer_id": customer}}
                )
                if r.status_code != 200:
                    errors += 1
            except httpx.HTTPError:
                errors += 1
            latencies.append((scheduled - start, time.perf_counter() - scheduled))

        n = int(rate * duration)
        for i in range(n):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(scheduled, int(rng.integers(0, customers)))))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    lat = np.array([d for _, d in latencies]) * 1000
    out = {
        "requests": n,
        "errors": errors,
        "throughput": n / elapsed,
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
    }
    if marks is not None:
        during = np.array([d for t, d in latencies if any(m <= t <= m + 2.0 for m in marks)])
        steady = np.array([d for t, d in latencies if not any(m - 1 <= t <= m + 3 for m in marks)])
        out["p99_swaps_ms"] = float(np.percentile(during * 1000, 99)) if len(during) else None
        out["p99_steady_ms"] = float(np.percentile(steady * 1000, 99)) if len(steady) else None
    return out


async def closed_loop(base: str, duration: float, customers: int, connections: int = 8) -> float:
    """Requests per second with ``connections`` clients each sending as soon as answered."""
    return float((await closed_loop_stats(base, duration, customers, connections))["throughput"])


async def closed_loop_stats(base: str, duration: float, customers: int,
                            connections: int = 8) -> dict[str, float]:
    """Closed loop: throughput, p50 and p99 (ms) and non-200 answers."""
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + duration
    rng = np.random.default_rng(2)
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop_at:
                sent = time.perf_counter()
                r = await client.post(
                    "/v1/models/churn/predict",
                    json={"keys": {"customer_id": int(rng.integers(0, customers))}},
                )
                latencies.append(time.perf_counter() - sent)
                errors += r.status_code != 200

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {"throughput": len(latencies) / elapsed, "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)), "errors": errors,
            "requests": len(latencies)}


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its live descendants (Linux /proc)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = (int(fields[11]) + int(fields[12])) / tick
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, pp in parents.items() if pp == parent and p not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(times.get(p, 0.0) for p in tree)


def swap_phase(ws_dir: Path, rate: float, duration: float, customers: int) -> dict[str, Any]:
    import parity as pt

    server = Server(ws_dir, log=True)
    try:
        marks: list[float] = []

        async def run() -> dict[str, Any]:
            load = asyncio.create_task(open_loop(server.base, rate, duration, customers, marks))
            registry = pt.open(ws_dir).registry
            start = time.perf_counter()
            for i, version in enumerate(range(2, 7)):
                await asyncio.sleep(
                    max(0.0, (i + 1) * duration / 6 - (time.perf_counter() - start))
                )
                marks.append(time.perf_counter() - start)
                await asyncio.to_thread(registry.set_alias, "churn", "live", version, "bench")
            return await load

        result = asyncio.run(run())
        result["final_version"] = httpx.get(f"{server.base}/health").json()["models"]["churn"][
            "version"
        ]
        return result
    finally:
        server.stop()


BARE_ENV = "PARITY_BENCH_WS"


def bare_app() -> Any:
    """The baseline: a bare FastAPI app serving the same model artifact (a uvicorn factory).

    Features are computed with plain Python from dicts built at startup (each customer's
    purchase times and amounts, sorted; each customer's score): counts, sums, means and maxima
    over the 1/7/30-day windows before now, by bisection. No validation beyond the key, no
    logging, no metrics: what a hand-written endpoint does.
    """
    import bisect
    import uuid
    from collections import defaultdict

    from fastapi import FastAPI

    import parity as pt

    ws_dir = Path(os.environ[BARE_ENV])
    registry = pt.open(ws_dir).registry
    version = registry.get("churn", "live")
    model = registry.load_version(version).model  # the sklearn estimator
    purchases = pd.read_parquet(DATA / "bare-purchases.parquet")
    profiles = pd.read_parquet(DATA / "bare-profiles.parquet")
    events: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for cid, t, amount in zip(purchases["customer_id"].tolist(),
                              (purchases["event_time"].astype("int64") / 1e9).tolist(),
                              purchases["amount"].tolist()):
        events[cid].append((t, amount))
    history = {cid: ([t for t, _ in sorted(e)], [a for _, a in sorted(e)])
               for cid, e in events.items()}
    scores = dict(zip(profiles["customer_id"].tolist(), profiles["score"].tolist()))
    nan = float("nan")

    def features(cid: int, now: float) -> list[float]:
        times, amounts = history.get(cid, ([], []))
        end = bisect.bisect_left(times, now)
        row = []
        for days in (1, 7, 30):
            start = bisect.bisect_left(times, now - days * 86400.0)
            row.append((start, end))
        (s1, e1), (s7, e7), (s30, e30) = row
        spend = [sum(amounts[a:b]) for a, b in row]
        orders_30d = e30 - s30
        window = amounts[s30:e30]
        return [e1 - s1, e7 - s7, orders_30d, *spend,
                spend[2] / orders_30d if orders_30d else nan, max(window) if window else nan,
                scores.get(cid, nan), spend[2] / orders_30d if orders_30d else nan]

    app = FastAPI()

    @app.post("/v1/models/churn/predict")
    def predict(body: dict[str, Any]) -> dict[str, Any]:
        cid = int(body["keys"]["customer_id"])
        row = features(cid, time.time())
        output = float(model.predict_proba(np.array([row], dtype=float))[0, 1])
        return {"request_id": body.get("request_id") or uuid.uuid4().hex, "model": "churn",
                "version": version.version, "output": output, "found": cid in history}

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def bare_ratio_phase(ws_dir: Path, duration: float, customers: int,
                     repeats: int) -> dict[str, Any]:
    """parity vs the bare app with 1 and 2 workers; apps alternate within each round."""
    out: dict[str, Any] = {}
    for workers in (1, 2):
        runs: dict[str, list[dict[str, float]]] = {"bare": [], "parity": []}
        for round_no in range(repeats):
            order = ("bare", "parity") if round_no % 2 == 0 else ("parity", "bare")
            for name in order:
                server = Server(ws_dir, log=True, workers=workers, bare=name == "bare")
                try:
                    asyncio.run(closed_loop_stats(server.base, 1.0, customers))  # warm-up
                    cpu = tree_cpu_seconds(server.proc.pid)
                    r = asyncio.run(closed_loop_stats(server.base, duration, customers))
                    # Server CPU per request: what the machine's load cannot inflate much.
                    r["cpu_ms"] = (tree_cpu_seconds(server.proc.pid) - cpu) / r["requests"] * 1e3
                    r["load"] = os.getloadavg()[0]
                    runs[name].append(r)
                finally:
                    server.stop()
                console.print(f"  workers {workers} {name:6s} round {round_no + 1}: "
                              f"{r['throughput']:.0f} req/s, p50 {r['p50_ms']:.2f} ms, p99 "
                              f"{r['p99_ms']:.2f} ms, server CPU {r['cpu_ms']:.2f} ms/request, "
                              f"errors {r['errors']:.0f}, load average {r['load']:.1f}")
        out[str(workers)] = {
            name: {key: float(np.median([r[key] for r in rs])) for key in rs[0]}
            for name, rs in runs.items()
        }
    return out


def report_bare(results: dict[str, Any], args: argparse.Namespace) -> None:
    table = Table(title=f"parity vs bare FastAPI, closed loop, 8 connections, medians of "
                  f"{args.repeats} x {args.bare_duration:.0f}s (parity logging on, queued)")
    for column in ("workers", "bare req/s", "parity req/s", "ratio (goal >= 0.8)",
                   "p50 ms bare / parity", "p99 ms bare / parity",
                   "CPU ms/req bare / parity", "CPU ratio"):
        table.add_column(column, justify="right")
    for workers, r in results.items():
        bare, par = r["bare"], r["parity"]
        table.add_row(workers, f"{bare['throughput']:.0f}", f"{par['throughput']:.0f}",
                      f"{par['throughput'] / bare['throughput']:.2f}",
                      f"{bare['p50_ms']:.2f} / {par['p50_ms']:.2f}",
                      f"{bare['p99_ms']:.2f} / {par['p99_ms']:.2f}",
                      f"{bare['cpu_ms']:.2f} / {par['cpu_ms']:.2f}",
                      f"{bare['cpu_ms'] / par['cpu_ms']:.2f}")
    console.print(table)
    console.print("CPU ratio: bare CPU per request / parity CPU per request, the throughput "
                  "ratio to expect on a machine nothing else loads. Median load average "
                  f"{np.median([x['load'] for r in results.values() for x in r.values()]):.1f}")


class _LogDirWorkspace:
    """The benchmark workspace with its feature log in another folder (one writer per folder)."""

    def __init__(self, ws: Any, log_dir: Path) -> None:
        self._ws = ws
        self.feature_log_dir = log_dir

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ws, name)


def interleaved_sync_cost(ws_dir: Path, duration: float, customers: int) -> dict[str, Any]:
    """Queued vs sync logging, in-process, alternating rounds so both see the same load."""
    import threading

    import parity as pt
    from parity.serving.factory import build_service
    from parity.serving.service import Context

    ws = pt.open(ws_dir)
    services = {}
    for mode in ("queued", "sync"):
        log_dir = DATA / f"feature_log_{mode}"
        shutil.rmtree(log_dir, ignore_errors=True)
        services[mode] = build_service(_LogDirWorkspace(ws, log_dir), log=True,
                                       sync=(mode == "sync"), poll_interval=3600)
        services[mode].start(watch=False)
    latencies: dict[str, list[float]] = {"queued": [], "sync": []}
    seconds = {"queued": 0.0, "sync": 0.0}
    rng = np.random.default_rng(3)
    try:
        deadline = time.perf_counter() + duration
        round_no = 0
        while time.perf_counter() < deadline:
            mode = ("queued", "sync")[round_no % 2]
            round_no += 1
            service, lat = services[mode], latencies[mode]
            stop_at = time.perf_counter() + 0.5
            keys = rng.integers(0, customers, 10_000).tolist()

            def client(offset: int, service: Any = service, lat: list[float] = lat,
                       stop_at: float = stop_at, keys: list[int] = keys) -> None:
                i = offset
                while time.perf_counter() < stop_at:
                    started = time.perf_counter()
                    service.predict("churn", [Context(keys={"customer_id": keys[i % 10_000]})])
                    lat.append(time.perf_counter() - started)
                    i += 4

            started = time.perf_counter()
            threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            seconds[mode] += time.perf_counter() - started
    finally:
        for service in services.values():
            service.stop()
        ws.online.close()
    out: dict[str, Any] = {}
    for mode, lat in latencies.items():
        ms = np.array(lat) * 1000
        out[mode] = {"requests": len(lat), "throughput": len(lat) / seconds[mode],
                     "p50_ms": float(np.percentile(ms, 50)),
                     "p99_ms": float(np.percentile(ms, 99))}
    return out


def serve_bare(port: int, workers: int) -> None:
    """Run ``bare_app`` with ``workers`` processes, as ``parity serve`` runs its own."""
    if workers > 1:
        from parity.cli.serve import run_workers

        run_workers("serving:bare_app", "127.0.0.1", port, workers)
        return
    import uvicorn

    uvicorn.run(bare_app(), host="127.0.0.1", port=port, log_level="warning")


def main() -> None:
    if sys.argv[1:2] == ["--serve-bare"]:
        serve_bare(int(sys.argv[2]), int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--no-swaps", action="store_true", help="skip the hot swap phase")
    parser.add_argument("--only-bare", action="store_true",
                        help="run only the parity vs bare FastAPI phase")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of the bare phase")
    parser.add_argument("--bare-duration", type=float, default=10,
                        help="seconds of closed loop per app and round in the bare phase")
    args = parser.parse_args()
    console.print(f"building workspace: {args.customers:,} customers, {args.events:,} events")
    ws_dir = build_workspace(args.customers, args.events)
    results: dict[str, Any] = {}
    console.print("parity vs bare FastAPI (closed loop, 8 connections), workers 1 and 2")
    results["bare"] = bare_ratio_phase(ws_dir, args.bare_duration, args.customers,
                                       args.repeats)
    report_bare(results["bare"], args)
    if args.only_bare:
        (DATA / "serving-bare.json").write_text(json.dumps(results, indent=1))
        console.print(f"command: python benchmarks/serving.py --customers {args.customers} "
                      f"--events {args.events} --only-bare --repeats {args.repeats} "
                      f"--bare-duration {args.bare_duration:.0f}; cores: {os.cpu_count()}")
        return
    for name, log, sync in (("logging off", False, False), ("logging on", True, False),
                            ("logging sync", True, True)):
        server = Server(ws_dir, log, sync)
        try:
            console.print(f"{name}: {args.rate:.0f} req/s for {args.duration:.0f}s")
            results[name] = asyncio.run(
                open_loop(server.base, args.rate, args.duration, args.customers)
            )
            results[name]["max_throughput"] = asyncio.run(
                closed_loop(server.base, min(args.duration, 20), args.customers)
            )
        finally:
            server.stop()
    console.print(f"in-process, interleaved: queued vs sync logging for {args.duration:.0f}s")
    results["interleaved"] = interleaved_sync_cost(ws_dir, args.duration, args.customers)
    if not args.no_swaps:
        console.print("hot swap: five moves of the live alias under load")
        results["swaps"] = swap_phase(ws_dir, args.rate, max(args.duration, 30), args.customers)
    report(results, args)
    (DATA / "serving.json").write_text(json.dumps(results, indent=1))


def report(results: dict[str, Any], args: argparse.Namespace) -> None:
    off, on, sync = results["logging off"], results["logging on"], results["logging sync"]
    table = Table(
        title=f"HTTP predict on loopback, {args.rate:.0f} req/s open loop, "
        f"{args.duration:.0f}s per phase (one 10-feature model)"
    )
    for column in ("phase", "requests", "errors", "p50 ms", "p99 ms", "max req/s (8 conns)"):
        table.add_column(column, justify="right")
    for name, r in (("logging off", off), ("logging on", on), ("logging sync", sync)):
        table.add_row(
            name,
            f"{r['requests']:,}",
            str(r["errors"]),
            f"{r['p50_ms']:.2f}",
            f"{r['p99_ms']:.2f}",
            f"{r['max_throughput']:.0f}",
        )
    console.print(table)
    cost_tp = 1 - on["max_throughput"] / off["max_throughput"]
    cost_p99 = on["p99_ms"] / off["p99_ms"] - 1
    console.print(
        f"logging cost: throughput {cost_tp:+.1%} (goal <= 10%), p99 {cost_p99:+.1%} (goal <= 10%)"
    )
    console.print(
        f"synchronous logging vs queued (open loop and closed loop, separate runs): "
        f"throughput x{sync['max_throughput'] / on['max_throughput']:.2f}, p50 "
        f"{sync['p50_ms'] - on['p50_ms']:+.2f} ms, p99 {sync['p99_ms'] - on['p99_ms']:+.2f} ms"
    )
    inter = results["interleaved"]
    q, y = inter["queued"], inter["sync"]
    console.print(
        f"interleaved in-process (4 client threads): queued {q['throughput']:.0f} req/s, p50 "
        f"{q['p50_ms']:.2f} ms, p99 {q['p99_ms']:.2f} ms; sync {y['throughput']:.0f} req/s, "
        f"p50 {y['p50_ms']:.2f} ms, p99 {y['p99_ms']:.2f} ms; sync/queued: throughput x"
        f"{y['throughput'] / q['throughput']:.2f}, p99 x{y['p99_ms'] / q['p99_ms']:.2f}"
    )
    swaps = results.get("swaps")
    if swaps is None:
        console.print(f"command: python benchmarks/serving.py --customers {args.customers} "
                      f"--events {args.events} --rate {args.rate:.0f} --duration "
                      f"{args.duration:.0f} --no-swaps; cores: {os.cpu_count()}")
        return
    ratio = (swaps["p99_swaps_ms"] or 0) / (swaps["p99_steady_ms"] or 1)
    console.print(
        f"hot swap: {swaps['errors']} failed of {swaps['requests']:,} requests during "
        f"5 swaps (goal 0); p99 during swaps {swaps['p99_swaps_ms']:.2f} ms vs steady "
        f"{swaps['p99_steady_ms']:.2f} ms = {ratio:.2f}x (goal <= 2x); final version "
        f"{swaps['final_version']}"
    )
    console.print(
        f"command: python benchmarks/serving.py --rate {args.rate:.0f} "
        f"--duration {args.duration:.0f}; cores: {os.cpu_count()}"
    )


if __name__ == "__main__":
    main()
