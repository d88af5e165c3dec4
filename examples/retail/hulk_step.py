"""Demo step: Hulk on the retail data. Precompute every key, publish, validate, swap, look up
over HTTP, and stop a bad publication before the swap.

  - "bought together": for every item, the 5 items most often on the same invoices (cosine of
    invoice co-occurrence), a ranked list per item;
  - per-customer scores: the step-4 model applied to every customer's features as of now;
  - a buggy job that drops half the customers is stopped by validation: readers keep the
    good version;
  - over HTTP, a known customer is read from the publication and a customer it lacks is
    computed on demand by the same predictor (the fallback is shown in the answer).

Call ``run(demo)`` after steps 1-4 (``demo.ws``, ``demo.predictor``); ``python hulk_step.py``
runs steps 1-4 and then this step on its own.
"""

from __future__ import annotations

import math
import socket
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from demo import Demo, console, step
from rich.table import Table

from parity._duck import connect, query_arrow
from parity.hulk import (
    Fallback,
    Keys,
    OnDemand,
    Precompute,
    PublishReport,
    open_publications,
    publish,
)

UTC = timezone.utc
TOP_K = 5


def bought_together(ws: Any, at: datetime, top_k: int = TOP_K) -> dict[str, list[dict[str, Any]]]:
    """item -> its ``top_k`` co-bought items, best first, from invoices before ``at``."""
    files = ", ".join(f"'{p}'" for p in ws.fact_log.paths("purchases"))
    con = connect()
    sql = f"""
    WITH lines AS (
        SELECT DISTINCT invoice, item FROM read_parquet([{files}])
        WHERE event_time < TIMESTAMPTZ '{at.isoformat()}'
          AND recorded_at < TIMESTAMPTZ '{at.isoformat()}' AND quantity > 0),
    sized AS (SELECT invoice FROM lines GROUP BY invoice HAVING count(*) <= 60),
    kept AS (SELECT l.* FROM lines l JOIN sized USING (invoice)),
    counts AS (SELECT item, count(*) AS n FROM kept GROUP BY item),
    pairs AS (SELECT a.item AS item, b.item AS other, count(*) AS together
              FROM kept a JOIN kept b ON a.invoice = b.invoice AND a.item <> b.item
              GROUP BY 1, 2 HAVING count(*) >= 3)
    SELECT p.item, p.other, p.together / sqrt(ca.n * cb.n) AS score
    FROM pairs p JOIN counts ca ON ca.item = p.item JOIN counts cb ON cb.item = p.other
    QUALIFY row_number() OVER (PARTITION BY p.item ORDER BY score DESC, p.other) <= {top_k}
    ORDER BY p.item, score DESC
    """
    table = query_arrow(con, sql)
    con.close()
    out: dict[str, list[dict[str, Any]]] = {}
    for item, other, score in zip(*(table.column(c).to_pylist() for c in
                                    ("item", "other", "score"))):
        out.setdefault(item, []).append({"item": other, "score": round(score, 4)})
    return out


def _show(report: PublishReport) -> None:
    table = Table(title=f"{report.name} v{report.version}: validation")
    for column in ("check", "status", "reason"):
        table.add_column(column)
    for o in report.validation.outcomes:
        color = {"pass": "green", "fail": "red"}.get(o.status, "dim")
        table.add_row(o.check, f"[{color}]{o.status}[/]", o.reason)
    console.print(table)
    console.print(("[green]" if report.live else "[red]") + report.headline(), highlight=False)


def _serve(app: Any) -> tuple[str, Any, threading.Thread]:
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server, thread


def run(demo: Demo) -> bool:
    """Publish, validate, swap, look up over HTTP; True if everything behaved as expected."""
    from fastapi import FastAPI

    from parity.hulk.http import publications_router

    step("Hulk: precompute every key, validate before the swap, look up over HTTP")
    ws = demo.ws
    at = datetime.now(UTC)
    fs = ws.definitions.feature_set("customer_features")
    pubs = open_publications(ws)
    pubs.add_computer("buy_again_scores", OnDemand(demo.predictor, ws.online, [fs]))
    ok = True

    started = time.perf_counter()
    similar = bought_together(ws, at)
    console.print(f"co-occurrence of items on invoices: {len(similar):,} items with neighbours "
                  f"({time.perf_counter() - started:.1f}s)")
    items = Precompute("bought_together", at=at,
                       keys=Keys.from_query("SELECT DISTINCT item FROM purchases ORDER BY item"),
                       fn=lambda t: [similar.get(i, []) for i in t.column("item").to_pylist()])
    report = publish(ws, items, fallback=Fallback.default([]), publications=pubs)
    _show(report)
    ok &= report.live

    scores = Precompute("buy_again_scores", keys=Keys.from_source("purchases"),
                        fn=demo.predictor, feature_sets=[fs], at=at, batch_size=2_000)
    report = publish(ws, scores, fallback=Fallback.compute(), publications=pubs)
    _show(report)
    ok &= report.live
    good = report.version

    step("Hulk: a buggy job drops half the customers; validation stops it before the swap")
    buggy = Precompute("buy_again_scores", fn=demo.predictor, feature_sets=[fs], at=at,
                       keys=Keys.from_query("SELECT DISTINCT customer_id FROM purchases "
                                            "WHERE customer_id % 2 = 0"))
    report = publish(ws, buggy, fallback=Fallback.compute(), publications=pubs)
    _show(report)
    ok &= (not report.live) and pubs.live_version("buy_again_scores") == good

    step("Hulk: lookups over HTTP (GET /v1/publications/{name}/{key})")
    app = FastAPI()
    app.include_router(publications_router(pubs))
    base, server, thread = _serve(app)
    try:
        known = httpx.get(f"{base}/v1/publications/buy_again_scores/12347", timeout=30).json()
        new = httpx.get(f"{base}/v1/publications/buy_again_scores/99999", timeout=30).json()
        item = next(iter(similar))
        together = httpx.get(f"{base}/v1/publications/bought_together/{item}", timeout=30).json()
    finally:
        server.should_exit = True
        thread.join(10)
    table = Table(title="lookups")
    for column in ("publication", "key", "version", "found", "fallback", "value"):
        table.add_column(column)
    for answer in (known, new, together):
        value = answer["value"]
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)[:60]
        table.add_row(answer["publication"], answer["key"], str(answer["version"]),
                      str(answer["found"]), str(answer["fallback"]), shown)
    console.print(table)
    ok &= known["found"] and known["version"] == good
    ok &= (not new["found"]) and new["fallback"] == "compute" and isinstance(new["value"], float)
    ok &= together["found"] and len(together["value"]) >= 1
    ok &= math.isfinite(known["value"])
    console.print(f"fallbacks counted in this process: {pubs.reader.stats()}")
    return bool(ok)


def main() -> int:
    """Steps 1-4 of the demo, then this step (online features materialized for the fallback)."""
    import demo as d

    state = Demo((HERE / "hulk-workspace").resolve())
    d.make_workspace(state)
    d.load_history(state)
    d.build_training_set(state)
    d.train_and_evaluate(state)
    state.ws.online.materialize()
    good = run(state)
    console.rule("[bold green]hulk step passed" if good else "[bold red]hulk step failed")
    return 0 if good else 1


if __name__ == "__main__":
    raise SystemExit(main())
