"""SIGKILL `parity serve` under load in sync mode: every answer that said "durable" is in the
log afterwards (goal and assertion: 0 lost)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pandas as pd

import parity as pt
from parity.featurelog import read_log
from tests.serving.helpers import DEFINITIONS, NOW, Served, free_port


def _workspace(tmp_path: Path) -> Path:
    root = pt.init(tmp_path / "ws")
    (root / "features.py").write_text(DEFINITIONS)
    config = (root / "parity.yaml").read_text()
    (root / "parity.yaml").write_text(config + "serving:\n  feature_log:\n    sync: true\n")
    ws = pt.open(root)
    rows = [{"customer_id": c, "amount": float(c), "event_time": NOW - timedelta(days=1)}
            for c in range(1, 6)]
    ws.ingest("purchases", pd.DataFrame(rows), recorded_at="lag")
    ws.online.materialize()
    served = Served(ws, [])
    ws.registry.set_alias("churn", "live", served.register())
    ws.online.close()
    return root


def test_sigkill_under_load_loses_no_durable_record(tmp_path: Path) -> None:
    root = _workspace(tmp_path)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "parity.cli", "-w", str(root), "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=os.getcwd(),
    )
    base = f"http://127.0.0.1:{port}"
    durable: list[str] = []
    answered: list[str] = []
    stop = threading.Event()

    def client(n: int) -> None:
        with httpx.Client(base_url=base, timeout=10) as http:
            for i in range(100_000):
                if stop.is_set():
                    return
                rid = f"c{n}-{i}"
                try:
                    r = http.post("/v1/models/churn/predict",
                                  json={"keys": {"customer_id": 1 + i % 5}, "request_id": rid,
                                        "request": {"discount": 0.1}})
                except httpx.HTTPError:
                    return  # the server is gone
                answered.append(r.json()["logged"])
                if r.json()["logged"] == "durable":
                    durable.append(rid)

    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, server.stderr.read().decode()  # type: ignore[union-attr]
            time.sleep(0.1)
        threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        while len(durable) < 150 and time.time() < deadline:
            time.sleep(0.05)
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
    finally:
        stop.set()
        if server.poll() is None:
            server.kill()
    for t in threads:
        t.join(timeout=20)
    logged = set(read_log(root / "data" / "feature_log").column("request_id").to_pylist())
    lost = [rid for rid in durable if rid not in logged]
    print(f"SIGKILL under load: {len(durable)} answers said durable, {len(lost)} of them lost; "
          f"{len(logged)} records in the log")
    banner = server.stderr.read().decode()  # type: ignore[union-attr]
    assert f"serving churn version 1: POST {base}/v1/models/churn/predict" in banner, banner
    assert f"listening on {base}" in banner and "durable before each answer" in banner
    assert len(durable) >= 150 and set(answered) == {"durable"}
    assert lost == [], f"{len(lost)} of {len(durable)} durable answers lost"
