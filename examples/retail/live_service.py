"""A "recommended items" service for the retail demo, and the Snapshotter's round trip over it.

``RecommendationService`` answers ``GET /recs/<customer_id>`` on loopback with the customer's
five most bought items, each scored by its share of the customer's lines, after a known latency
(``http.server`` in a thread). Like a real recommender it keeps no history: it answers for now.

``snapshot_round_trip(ws)`` declares a ``LiveSource`` over it, samples customers stratified by
country x tenure band (the strata read from the fact log through the Time Machine), snapshots
the service over the sample, and then, with the service switched off, trains on a feature
invented after the snapshots were taken (the mean score of the recommended items). The demo's
Snapshotter step prints and judges what it returns; a test calls it on a slice of the data.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

import parity as pt
from parity import listagg
from parity.snapshot import Coverage, JobOptions, Sampler, run_job, sample_entities
from parity.snapshot.sampling import known_entities

RECS_SCHEMA = {"items": "list<struct<item:str,score:float>>", "model": str}


class RecommendationService:
    """Top items per customer from the purchases in the fact log, served over HTTP."""

    def __init__(self, purchases: pa.Table, latency_s: float = 0.005, top: int = 5) -> None:
        bought: dict[int, Counter[str]] = {}
        for customer, item in zip(purchases.column("customer_id").to_pylist(),
                                  purchases.column("item").to_pylist()):
            bought.setdefault(customer, Counter())[item] += 1
        self.answers: dict[int, bytes] = {}
        for customer, counts in bought.items():
            total = sum(counts.values())
            items = [{"item": item, "score": n / total} for item, n in counts.most_common(top)]
            self.answers[customer] = json.dumps({"items": items, "model": "top5-v1"}).encode()
        self.latency_s = latency_s
        self.calls = 0
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                time.sleep(service.latency_s)
                service.calls += 1
                body = service.answers.get(int(self.path.rsplit("/", 1)[1]))
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", "application/json")
                payload = body or b'{"error": "unknown customer"}'
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/recs/{{customer_id}}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


@pt.transform(dtype="str")
def tenure_band(first_order_at, at):
    if first_order_at is None:
        return None
    days = (at - first_order_at).days
    return "new" if days < 180 else "loyal"


@dataclass
class SnapshotRoundTrip:
    """What the Snapshotter step found."""

    sampled: int
    strata: dict[str, int]
    coverage: Coverage
    trained_rows: int
    calls_while_training: int
    invented_matches_service: bool


def snapshot_round_trip(ws: pt.Workspace, rate: float = 0.08) -> SnapshotRoundTrip:
    """Snapshot the recommendation service over a stratified sample; train a new feature on it."""
    purchases = ws.definitions.source("purchases")
    customer = purchases.entity
    service = RecommendationService(ws.fact_log.read(purchases).select(["customer_id", "item"]))
    try:
        recs = pt.LiveSource("recommendations", customer, RECS_SCHEMA, url=service.url,
                             timeout="500ms")
        strata_set = pt.FeatureSet("customer_strata", customer, [
            pt.Lookup("country", ws.definitions.source("profiles"), "country"),
            pt.Aggregate("first_order_at", purchases, "min", "event_time"), tenure_band,
        ])
        entities = sample_entities(ws, strata_set, known_entities(ws, strata_set),
                                   ["country", "tenure_band"])
        # the home market is large: a lower rate there keeps every other country represented
        rates = {("United Kingdom", band): rate / 4 for band in ("new", "loyal")}
        sample = Sampler(["country", "tenure_band"], rates=rates, default_rate=rate,
                         seed=14).sample(ws, customer, entities)
        report = run_job(ws, recs, sample, options=JobOptions(concurrency=16))
    finally:
        service.close()
    # Invented after the snapshots were taken; the service is gone, the snapshots remain.
    items = pt.Lookup("recommended", recs, "items")
    invented = pt.FeatureSet("recommendation_features", customer, [
        items, listagg.transform("mean_rec_score", "mean", of=items, field="score"),
        listagg.transform("n_recs", "count", of=items),
    ])
    calls = service.calls
    contexts = pq.read_table(report.folder / "contexts.parquet")
    table = ws.training_set(contexts, [invented])
    matches = True
    for row in table.to_pylist():
        served = [i["score"] for i in json.loads(service.answers[row["customer_id"]])["items"]]
        mean = math.fsum(served) / len(served)
        matches &= row["n_recs"] == len(served) and abs(row["mean_rec_score"] - mean) < 1e-12
    return SnapshotRoundTrip(sample.table.num_rows, sample.per_stratum(), report.coverage,
                             table.num_rows, service.calls - calls, matches)
