"""Snapshotter benchmark: snapshot job throughput against a service of known latency, and the
cost of a live source on a served request.

    python benchmarks/snapshot.py            # 400 contexts per run, 2,000 online requests
    python benchmarks/snapshot.py --quick    # a smoke run

Phases, each on two response shapes (``flat``: two scalars; ``nested``: a list of 20
``{item, score}`` structs):
  1. contexts snapshotted per second by ``run_job`` (calls, validation, fact-log appends and
     the journal included) against a loopback ``http.server`` answering after --latency-ms,
     at concurrency 1, 8 and 32, as a ratio to the ideal ``concurrency / latency``;
  2. ``OnlineFeatures.answer`` for one context, p50/p99 in microseconds: the same three
     lookups over a stored state source (the baseline, measured in the same run), over a live
     source called over HTTP (service latency 0), and over a live source that is an in-process
     callable (what parity itself adds, without the HTTP round trip).
Medians of --repeats runs are printed, with this process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow as pa
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import parity as pt  # noqa: E402
from parity.online import open_online  # noqa: E402
from parity.snapshot import JobOptions, Sampler, run_job  # noqa: E402

console = Console(highlight=False)
UTC = timezone.utc
SHAPES: dict[str, dict[str, Any]] = {
    "flat": {"top_item": "str", "score": "float"},
    "nested": {"items": "list<struct<item:str,score:float>>", "model": "str"},
}


def body(shape: str, customer: int) -> dict[str, Any]:
    if shape == "flat":
        return {"top_item": f"i{customer}", "score": customer / 7}
    return {"items": [{"item": f"i{customer}-{j}", "score": j / 20} for j in range(20)],
            "model": "v1"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # read by listen() in the constructor: 32 clients connect at once


class Service:
    """A loopback JSON service answering after ``latency_s``, in its own process (so its
    threads do not compete with the job for this process's GIL)."""

    def __init__(self, shape: str, latency_s: float) -> None:
        ready: mp.Queue[int] = mp.Queue()
        self.process = mp.Process(target=_serve, args=(shape, latency_s, ready), daemon=True)
        self.process.start()
        self.url = f"http://127.0.0.1:{ready.get(timeout=30)}/c/{{customer_id}}"

    def close(self) -> None:
        self.process.terminate()
        self.process.join()


def _serve(shape: str, latency_s: float, ready: mp.Queue[int]) -> None:
    answers = {c: json.dumps(body(shape, c)).encode() for c in range(1, 5001)}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a real service would
        disable_nagle_algorithm = True  # else headers + body wait on a delayed ACK (40 ms)

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            if latency_s:
                time.sleep(latency_s)
            payload = answers[int(self.path.rsplit("/", 1)[1])]
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = _Server(("127.0.0.1", 0), Handler)
    ready.put(server.server_address[1])
    server.serve_forever()


customer = pt.Entity("customer", {"customer_id": int})


def workspace(root: Path) -> pt.Workspace:
    pt.init(root)
    (root / "features.py").write_text("")
    (root / "parity.yaml").write_text("definitions: features.py\nonline: memory\n")
    return pt.open(root)


def throughput(shape: str, latency_s: float, concurrency: int, contexts: int) -> float:
    """Contexts per second of one snapshot job."""
    service = Service(shape, latency_s)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            ws = workspace(Path(tmp) / "ws")
            live = pt.LiveSource("recs", customer, SHAPES[shape], url=service.url,
                                 timeout="5s")
            entities = pa.table({"customer_id": list(range(1, contexts + 1)),
                                 "all": ["all"] * contexts})
            sample = Sampler(["all"], default_rate=1.0).sample(ws, customer, entities)
            started = time.perf_counter()
            report = run_job(ws, live, sample, options=JobOptions(concurrency=concurrency))
            seconds = time.perf_counter() - started
            assert report.coverage.total.written == contexts, report.coverage.to_json()
            return contexts / seconds
    finally:
        service.close()


def served_latency(shape: str, requests: int) -> dict[str, tuple[float, float]]:
    """p50/p99 (us) of ``answer`` for one context: stored source, live HTTP, live callable."""
    service = Service(shape, 0.0)
    answers = {c: body(shape, c) for c in range(1, 101)}
    sources: dict[str, pt.StateSource] = {
        "stored": pt.StateSource("stored", customer, SHAPES[shape]),
        "live_http": pt.LiveSource("live_http", customer, SHAPES[shape], url=service.url,
                                   timeout="1s"),
        "live_callable": pt.LiveSource("live_callable", customer, SHAPES[shape],
                                       call=lambda ctx: answers[ctx["customer_id"]],
                                       timeout="1s"),
    }
    first = next(iter(SHAPES[shape]))
    sets = [pt.FeatureSet(f"fs_{name}", customer, [pt.Lookup(f"f_{first}", src, first)])
            for name, src in sources.items()]
    out: dict[str, tuple[float, float]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            ws = workspace(Path(tmp) / "ws")
            when = datetime.now(UTC) - timedelta(days=1)
            rows = [{"customer_id": c, **answers[c], "event_time": when} for c in answers]
            ws.ingest(sources["stored"], rows)
            online = open_online("memory://", ws.fact_log, sets)
            online.materialize()
            for fs, name in zip(sets, sources):
                times = []
                for i in range(requests):
                    context = [{"customer_id": 1 + i % 100, "at": datetime.now(UTC)}]
                    started = time.perf_counter()
                    got = online.answer(fs.name, context)
                    times.append((time.perf_counter() - started) * 1e6)
                    assert got.table.column(f"f_{first}")[0].is_valid
                times.sort()
                out[name] = (statistics.median(times), times[int(0.99 * (len(times) - 1))])
            online.close()
    finally:
        service.close()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="A smoke run (small and fast).")
    parser.add_argument("--contexts", type=int, default=400)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.quick:
        args.contexts, args.requests, args.repeats = 64, 200, 1
    latency = args.latency_ms / 1000
    grid = Table(title=f"snapshot job: contexts/s vs ideal (service latency "
                       f"{args.latency_ms:g} ms, {args.contexts} contexts, median of "
                       f"{args.repeats})")
    for column in ("shape", "concurrency", "contexts/s", "ideal", "ratio"):
        grid.add_column(column, justify="right")
    for shape in SHAPES:
        for concurrency in (1, 8, 32):
            rate = statistics.median(throughput(shape, latency, concurrency, args.contexts)
                                     for _ in range(args.repeats))
            ideal = concurrency / latency
            grid.add_row(shape, str(concurrency), f"{rate:,.0f}", f"{ideal:,.0f}",
                         f"{rate / ideal:.2f}")
    console.print(grid)
    grid = Table(title=f"served request with a live source: answer() for one context, "
                       f"{args.requests} requests, service latency 0")
    for column in ("shape", "path", "p50 us", "p99 us", "p50 vs stored"):
        grid.add_column(column, justify="right")
    for shape in SHAPES:
        runs = [served_latency(shape, args.requests) for _ in range(args.repeats)]
        for name in runs[0]:
            p50 = statistics.median(r[name][0] for r in runs)
            p99 = statistics.median(r[name][1] for r in runs)
            base = statistics.median(r["stored"][0] for r in runs)
            grid.add_row(shape, name, f"{p50:,.0f}", f"{p99:,.0f}", f"{p50 / base:.1f}x")
    console.print(grid)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    console.print(f"peak RSS of this process: {peak:,.0f} MB")


if __name__ == "__main__":
    main()
