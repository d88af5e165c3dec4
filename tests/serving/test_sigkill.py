"""SIGKILL `parity serve` under load in sync mode: every answer that said "durable" is in the
log afterwards (goal and assertion: 0 lost)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from parity.featurelog import read_log
from tests.serving.helpers import free_port, served_workspace, wait_healthy


def test_sigkill_under_load_loses_no_durable_record(tmp_path: Path) -> None:
    root = served_workspace(tmp_path / "ws", "serving:\n  feature_log:\n    sync: true\n")
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
        wait_healthy(base, server, 60)
        deadline = time.time() + 60
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
