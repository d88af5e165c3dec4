"""`parity serve --workers 2`: two processes on one port, one log folder each, merged on read;
metrics add up over the workers; an alias move reaches every worker; a SIGKILLed worker is
replaced and its folder recovered without losing a durable answer."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx

import parity as pt
from parity.featurelog import read_log
from parity.featurelog.layout import worker_folders
from tests.serving.helpers import BODY, Served, free_port, served_workspace, wait_healthy

SYNC = "serving:\n  poll_interval: 0.2\n  feature_log:\n    sync: true\n"


def _predict(http: httpx.Client, rid: str) -> dict[str, object]:
    response = http.post("/v1/models/churn/predict", json={**BODY, "request_id": rid})
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def _requests_total(text: str) -> float:
    found = re.findall(r'^parity_requests_total\{model="churn",status="200"\} (\S+)$', text, re.M)
    return sum(float(v) for v in found)


def test_two_workers_serve_log_and_count_together(tmp_path: Path) -> None:
    root = served_workspace(tmp_path / "ws", SYNC)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "parity.cli", "-w", str(root), "serve", "--port", str(port),
         "--workers", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    durable: list[str] = []
    try:
        wait_healthy(base, server, 90)
        pids: Counter[int] = Counter()
        with httpx.Client(base_url=base, timeout=10) as http:
            for i in range(120):
                answer = _predict(http, f"a{i}")
                assert answer["logged"] == "durable" and answer["version"] == 1
                durable.append(f"a{i}")
                pids[httpx.get(f"{base}/health", timeout=5).json()["pid"]] += 1
            # Every worker counts into the one /metrics, whichever worker answers the scrape.
            for _ in range(4):
                assert _requests_total(http.get("/metrics").text) == len(durable)

            # An alias move reaches every worker through its own watcher.
            ws = pt.open(root)
            ws.registry.set_alias("churn", "live", Served(ws, [1]).register(coef_sign=-1.0))
            deadline = time.time() + 30
            rounds = 0
            while time.time() < deadline:
                batch = [f"v{rounds}-{i}" for i in range(20)]
                versions = {_predict(http, rid)["version"] for rid in batch}
                durable.extend(batch)
                rounds += 1
                if versions == {2}:
                    break
                time.sleep(0.2)
            assert versions == {2}

            # A worker SIGKILLed under way is replaced; its replacement takes over its folder.
            victim = next(iter(pids))
            os.kill(victim, signal.SIGKILL)
            deadline = time.time() + 60
            seen: set[int] = set()
            i = 0
            while time.time() < deadline and not (seen - set(pids)):
                try:
                    answer = _predict(http, f"k{i}")
                    durable.append(f"k{i}")
                    seen.add(httpx.get(f"{base}/health", timeout=5).json()["pid"])
                except (httpx.HTTPError, AssertionError):
                    pass
                i += 1
            assert seen - set(pids), "no replacement worker answered"
        assert len(pids) >= 1
    finally:
        server.terminate()  # SIGTERM: uvicorn stops the workers, each seals its folder
        server.wait(timeout=60)
    banner = server.stderr.read().decode()  # type: ignore[union-attr]
    assert "workers: 2 processes" in banner and "one folder per worker" in banner, banner

    log = read_log(root / "data" / "feature_log")
    ids = Counter(log.column("request_id").to_pylist())
    assert [rid for rid in durable if ids[rid] != 1] == [], "each durable answer logged once"
    assert set(log.column("worker").to_pylist()) <= {i for i, _ in worker_folders(
        root / "data" / "feature_log")}
    assert len(worker_folders(root / "data" / "feature_log")) >= 2
