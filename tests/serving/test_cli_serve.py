"""`parity serve` says where it listens and what it serves, and what to run when nothing is."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

import parity as pt
from tests.serving.helpers import free_port


def test_serve_without_a_live_model_says_what_to_run(tmp_path: Path) -> None:
    root = pt.init(tmp_path / "ws")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "parity.cli", "-w", str(root), "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while time.time() < deadline and server.poll() is None:
            try:
                health = httpx.get(f"{base}/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert health.status_code == 200 and health.json()["models"] == {}
    finally:
        server.terminate()
        server.wait(timeout=30)
    banner = server.stderr.read().decode()  # type: ignore[union-attr]
    assert "no model is live" in banner and "parity models promote NAME VERSION" in banner
    assert f"listening on {base}" in banner
