"""Steps 5-9 of the demo: the online half of parity on the retail data."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import numpy as np
import pandas as pd
import prepare
from demo import FEATURES, LABEL, Demo, auc_of, console, fit_predictor, step
from rich.table import Table

from parity.featurelog import compact, read_log, training_set_from_log
from parity.skew import compare_features
from parity.training import file_sha256

UTC = timezone.utc
MODEL = "buy_again"
CUSTOMER = 12347


def online_agrees(demo: Demo) -> bool:
    step("5. online features: fresh facts pushed, the very next request sees them")
    online = demo.ws.online
    report = online.materialize()
    console.print(
        f"materialized {sum(report.facts.values()):,} fact versions for "
        f"{sum(report.entities.values()):,} entities in {report.seconds:.1f}s"
    )
    before_at = datetime.now(UTC)
    before = online.get_features("customer_features", {"customer_id": CUSTOMER, "at": before_at})
    now = pd.Timestamp.now(tz="UTC")
    fresh = pd.DataFrame(
        {
            "customer_id": [CUSTOMER, CUSTOMER],
            "invoice": ["LIVE-1", "LIVE-1"],
            "item": ["85123A", "NEW-ITEM"],
            "quantity": [6, 2],
            "amount": [15.30, 6.78],
            "event_time": [now - pd.Timedelta(minutes=10), now - pd.Timedelta(minutes=5)],
        }
    )
    push = online.push("purchases", fresh)
    at = datetime.now(UTC)
    after = online.get_features("customer_features", {"customer_id": CUSTOMER, "at": at})
    online.flush()  # the pushed facts land in the fact log too
    offline = demo.ws.training_set(
        pd.DataFrame({"customer_id": [CUSTOMER], "at": [at]}), "customer_features"
    ).to_pylist()[0]
    table = Table(
        title=f"customer {CUSTOMER}: online before/after a push of 2 purchases, "
        f"and the Time Machine at the same moment"
    )
    for column in ("feature", "online before", "online after", "Time Machine", "same"):
        table.add_column(column)
    agree = True
    for name in (
        "spend_7d",
        "orders_7d",
        "orders_all",
        "distinct_items_90d",
        "lines_30d",
        "days_since_last_order",
        "country",
    ):
        same = _same(after[name], offline[name])
        agree &= same
        table.add_row(
            name,
            _fmt(before[name]),
            _fmt(after[name]),
            _fmt(offline[name]),
            "[green]yes" if same else "[red]NO",
        )
    console.print(table)
    console.print(f"push to visible: {push.seconds * 1000:.1f} ms for {push.facts} facts")
    return demo.expect("online features equal the Time Machine after a push", agree)


def register(demo: Demo) -> int:
    step("6. registry: the model with its lineage, promoted to live")
    auc = auc_of(demo.predictor, demo.frame[demo.frame["at"] >= demo.test_start])
    predictor = demo.predictor  # the model with the encoder it was trained through
    train = demo.frame[demo.frame["at"] < demo.train_end]
    fingerprint = hashlib.sha256(
        pd.util.hash_pandas_object(train[["customer_id", "at"]], index=False).to_numpy().tobytes()
    ).hexdigest()[:16]
    # The training rows themselves, named in the lineage: the Sentinel reads live's training
    # window and data from them (drift relative to live, shadow rows after training only).
    path = demo.ws.data_dir / "train.parquet"
    train[[*FEATURES, "customer_id", "at", LABEL]].to_parquet(path)
    mv = demo.ws.registry.register(
        MODEL,
        predictor,
        feature_sets=predictor.feature_set_versions,
        training_set={
            "source": "time machine",
            "path": "data/train.parquet",
            "sha256": file_sha256(path),
            "contexts": len(train),
            "contexts_fingerprint": fingerprint,
            "train_end": demo.train_end.isoformat(),
            "fit_at_max": train["at"].max().isoformat(),
        },
        params={"max_iter": 200, "learning_rate": 0.05},
        metrics={"auc_test": auc},
        description="buys again within 30 days",
    )
    demo.ws.registry.set_alias(MODEL, "live", mv.version, reason="demo: first model")
    loaded = demo.ws.registry.load(MODEL, mv.version)
    console.print(
        f"registered {mv.ref}: sha256 {mv.artifact_sha256[:12]}…, feature sets "
        f"{mv.feature_sets}, code {mv.code_version or '-'}"
        f"{' (dirty)' if mv.code_dirty else ''}; live -> {mv.version}"
    )
    demo.expect("the registered predictor carries the training encoder",
                getattr(loaded, "encoder", None) == predictor.encoder)
    return int(mv.version)


def serve_and_log(demo: Demo) -> bool:
    step("7. serve over HTTP on loopback; every prediction is logged")
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "parity.cli", "-w", str(demo.root), "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(base, server)
        # Traffic from the training period (for log and wait) and from after it: the
        # Sentinel judges candidates only on contexts later than their training data.
        before = demo.frame[demo.frame["at"] < demo.train_end].sample(8000, random_state=0)
        after = demo.frame[demo.frame["at"] >= demo.train_end]
        after = after.sample(min(4000, len(after)), random_state=0)
        history = pd.concat([before, after]).sort_values("at")
        started = time.perf_counter()
        served: list[float] = []
        with httpx.Client(base_url=base, timeout=60) as client:
            for start in range(0, len(history), 500):
                chunk = history.iloc[start : start + 500]
                body = {
                    "contexts": [
                        {"keys": {"customer_id": int(c)}, "at": a.isoformat()}
                        for c, a in zip(chunk["customer_id"], chunk["at"])
                    ]
                }
                r = client.post(f"/v1/models/{MODEL}/predict-batch", json=body)
                r.raise_for_status()
                served += [p["output"] for p in r.json()["predictions"]]
            live = client.post(
                f"/v1/models/{MODEL}/predict", json={"keys": {"customer_id": CUSTOMER}}
            ).json()
            bad = client.post(f"/v1/models/{MODEL}/predict", json={"keys": {"customer_id": "x"}})
            metrics = client.get("/metrics").text
        elapsed = time.perf_counter() - started
        offline = demo.predictor.predict_table(history)
        gap = float(np.max(np.abs(np.array(served) - np.array(offline))))
        console.print(
            f"{len(served):,} historical contexts served in {elapsed:.1f}s; largest "
            f"difference from scoring the Time Machine's rows offline: {gap:.2e}"
        )
        console.print(
            f"live request for customer {CUSTOMER} now: p(buys again) = "
            f"{live['output']:.3f} (version {live['version']}, request {live['request_id'][:8]}…)"
        )
        console.print(f"a bad request gets {bad.status_code}: {bad.json()}")
        for line in metrics.splitlines():
            if line.startswith(("parity_requests_total", "parity_model_version{")):
                console.print(f"  {line}")
        return demo.expect("served outputs equal offline scoring", gap < 1e-9)
    finally:
        server.terminate()
        server.wait(timeout=30)


def retrain_from_log(demo: Demo) -> bool:
    step("8. feature log: what was served, checked against recomputation, trained on")
    compact(demo.ws.feature_log_dir)
    log = read_log(demo.ws.feature_log_dir)
    console.print(
        f"feature log: {log.num_rows:,} records, columns e.g. {', '.join(log.column_names[:9])}, …"
    )
    contexts = pa_contexts(log)
    recomputed = demo.ws.training_set(contexts, "customer_features")
    logged = log.rename_columns([c.removeprefix("feature.") for c in log.column_names])
    report = compare_features(recomputed, logged.select(FEATURES), FEATURES, ["customer_id"])
    console.print(
        f"skew check, logged vs Time Machine: {report.total} mismatches in "
        f"{report.rows:,} rows x {len(FEATURES)} features"
    )
    history = log.filter(pa_model_rows(log, demo.train_end))
    train = training_set_from_log(
        history,
        prepare.label_events(demo.raw),
        keys=["customer_id"],
        label_window="30d",
        label_name="buys_within_30d",
        now=prepare.DATA_END + demo.shift,
    ).to_pandas()
    model = fit_predictor(train)
    test = demo.frame[demo.frame["at"] >= demo.test_start]
    log_auc = auc_of(model, test)
    auc = auc_of(demo.predictor, test)
    console.print(
        f"log and wait: {len(train):,} logged predictions labelled 30 days later; "
        f"a model trained on them scores AUC {log_auc:.3f} on the test months "
        f"(Time Machine model on {int((demo.frame['at'] < demo.train_end).sum()):,} "
        f"rows: {auc:.3f})"
    )
    return demo.expect("logged features equal recomputation", report.ok)


def pa_contexts(log: Any) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": log.column("key.customer_id").to_pylist(),
            "at": log.column("logged_at").to_pandas(),
        }
    )


def pa_model_rows(log: Any, train_end: pd.Timestamp) -> Any:
    """Logged rows from the training period whose 30-day label window has closed."""
    import pyarrow.compute as pc

    until = min(train_end, pd.Timestamp.now(tz="UTC") - timedelta(days=31))
    return pc.less(log.column("logged_at"), until.to_pydatetime())


def sentinel(demo: Demo) -> bool:
    """Step 9 (examples/retail/sentinel_step.py): judged by the Sentinel's own verdicts."""
    import sentinel_step

    return demo.expect("the Sentinel promotes the good candidate and stops the broken one",
                       sentinel_step.run(demo))


def _part(module: str, promise: str) -> Callable[[Demo], bool]:
    """A step kept in its own module (``run(demo) -> bool``); its promise joins the verdict
    unless the module records its own expectations."""

    def run(demo: Demo) -> bool:
        recorded = len(demo.results)
        held = bool(importlib.import_module(module).run(demo))
        if len(demo.results) == recorded or not held:
            demo.expect(promise, held)
        return held

    return run


# (name, step) in order; demo.main runs them after step 4 and names failures in its verdict.
STEPS: list[tuple[str, Callable[[Demo], Any]]] = [
    ("online features", online_agrees),
    ("registry", register),
    ("serving", serve_and_log),
    ("feature log", retrain_from_log),
    ("sentinel", sentinel),
]
for _module, _name, _promise in (
    ("archive_step", "Online Archive",
     "the Online Archive's batch training set equals the Time Machine's"),
    ("hulk_step", "Hulk", "Hulk publishes, stops a bad publication and serves lookups"),
):
    if importlib.util.find_spec(_module) is not None:  # parts that ship their own step
        STEPS.append((_name, _part(_module, _promise)))
# Closed last: the Sentinel and Hulk read the store through the same workspace.
STEPS.append(("closing the online store", lambda d: d.ws.online.close()))


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1e-9 * max(1.0, abs(a))
    return bool(a == b)


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.time() + 60
    while time.time() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"parity serve exited: {server.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("parity serve did not become healthy in 60 s")
