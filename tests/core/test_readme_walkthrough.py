"""The README's paved road, run exactly as written, on small synthetic data.

The test reads the first ``sh`` block under "The paved road" in README.md and runs it line by
line: ``parity ...`` through click's CliRunner, ``parity serve ... &`` as a real server process
on a free loopback port, ``curl`` through httpx. It then checks the served prediction equals
scoring the Time Machine's row offline with the registered predictor, and runs the README's
Python example (training through the shared encoder) in the same workspace. If the README
changes, this test runs the new text.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import parity as pt
from parity.cli import main

README = Path(__file__).resolve().parents[2] / "README.md"
UTC = timezone.utc
CUSTOMERS = range(1, 31)
COUNTRIES = ["DE", "FR", "UK"]


def _block(language: str) -> str:
    text = README.read_text()
    section = text.split("## The paved road", 1)[1]
    match = re.search(rf"```{language}\n(.*?)```", section, re.S)
    assert match, f"README has no ```{language} block under 'The paved road'"
    return match.group(1)


def _write_inputs(folder: Path, now: datetime) -> None:
    """purchases.csv, profiles.csv and contexts.parquet as the README describes them.

    Every fact lies 6 hours off a whole day before ``now``, so no window edge (30 d, 90 d)
    falls between a request and the offline recomputation a few seconds later.
    """
    rng = np.random.default_rng(3)
    purchases = []
    for customer in CUSTOMERS:
        gap = int(rng.integers(3, 40))  # loyal customers buy often, churners rarely
        for days in range(1 + customer % 3, 200, gap):
            when = now - timedelta(days=days, hours=6)
            purchases.append({
                "customer_id": customer,
                "amount": round(float(rng.uniform(2, 80)), 2),
                "item": f"sku-{int(rng.integers(0, 12))}",
                "ts": when.isoformat().replace("+00:00", "Z"),
            })
    pd.DataFrame(purchases).to_csv(folder / "purchases.csv", index=False)
    profiles = [
        {"customer_id": c, "country": COUNTRIES[c % 3],
         "event_time": (now - timedelta(days=300)).isoformat().replace("+00:00", "Z")}
        for c in CUSTOMERS if c % 5  # every fifth customer has no profile: null country
    ]
    pd.DataFrame(profiles).to_csv(folder / "profiles.csv", index=False)
    frame = pd.DataFrame(purchases)
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    contexts = []
    for weeks in range(5, 26):
        at = now - timedelta(weeks=weeks)
        for customer in CUSTOMERS:
            mine = frame[frame["customer_id"] == customer]["ts"]
            bought = ((mine > at) & (mine <= at + timedelta(days=30))).any()
            contexts.append({"customer_id": customer, "at": at, "churned": not bought})
    pd.DataFrame(contexts).to_parquet(folder / "contexts.parquet")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_until_serving(base: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120  # generous: the suite may run on a loaded machine
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"parity serve exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base}/v1/models", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"parity serve did not answer within 120 s: {log.read_text()[-3000:]}")


def _curl(words: list[str], port: int) -> tuple[str, dict[str, object]]:
    url = next(w for w in words if w.startswith("http"))
    body = json.loads(words[words.index("-d") + 1])
    return url.replace(":8000", f":{port}"), body


@pytest.mark.slow
def test_readme_paved_road_serves_what_offline_scoring_computes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    _write_inputs(tmp_path, now)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    server: subprocess.Popen[bytes] | None = None
    port = _free_port()
    outputs: dict[str, str] = {}
    served: dict[str, object] = {}
    asked: dict[str, object] = {}
    log = tmp_path / "serve.log"
    try:
        for line in _block("sh").splitlines():
            for command in line.split("&&"):
                words = shlex.split(command, comments=True)
                if not words:
                    continue
                if words[0] == "cd":
                    monkeypatch.chdir(Path.cwd() / words[1])
                elif words[0] == "parity" and words[-1] == "&":
                    assert words[1] == "serve"
                    args = [a.replace("8000", str(port)) for a in words[1:-1]]
                    server = subprocess.Popen(
                        [sys.executable, "-m", "parity.cli", *args],
                        cwd=Path.cwd(), stdout=log.open("wb"), stderr=subprocess.STDOUT,
                        env={**os.environ, "PYTHONUNBUFFERED": "1"},
                    )
                    _wait_until_serving(f"http://127.0.0.1:{port}", server, log)
                elif words[0] == "parity":
                    result = runner.invoke(main, words[1:], catch_exceptions=False)
                    assert result.exit_code == 0, f"{command}\n{result.output}"
                    outputs[words[1]] = result.output
                elif words[0] == "curl":
                    url, asked = _curl(words, port)
                    response = httpx.post(url, json=asked, timeout=60)
                    assert response.status_code == 200, (response.text, log.read_text())
                    served = response.json()
                    asked_until = datetime.now(UTC)
                    # the same request at an explicit moment, for an exact comparison
                    pinned_at = now - timedelta(minutes=1)
                    pinned = httpx.post(url, json={**asked, "at": pinned_at.isoformat()},
                                        timeout=60)
                    assert pinned.status_code == 200, (pinned.text, log.read_text())
                else:
                    raise AssertionError(f"the README runs {words[0]!r}, which this test "
                                         f"does not know how to run")
        assert server is not None and served, "the README never served a prediction"
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)

    assert "auc" in outputs["train"] and "registered churn@1" in outputs["train"]
    ws = pt.open(".")
    predictor = ws.registry.load("churn", "live")
    customer = int(asked["keys"]["customer_id"])  # type: ignore[index]

    def offline(at: datetime) -> float:
        row = ws.training_set(pd.DataFrame({"customer_id": [customer], "at": [at]}),
                              "customer_features")
        return float(predictor.predict_table(row)[0])

    assert served["version"] == 1
    assert served["output"] == offline(asked_until)
    assert pinned.json()["output"] == offline(pinned_at)

    # The README's Python example: the same road, training through the shared encoder.
    namespace: dict[str, object] = {}
    exec(compile(_block("python"), "README.md", "exec"), namespace)
    mv = namespace["mv"]
    trained = namespace["predictor"]
    assert mv.version == 2  # type: ignore[attr-defined]
    again = ws.registry.load("churn", 2)
    assert again.encoder == trained.encoder  # type: ignore[attr-defined]
    assert "country" in again.categories  # a string feature went through the encoder
