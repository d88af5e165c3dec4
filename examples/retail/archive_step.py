"""Demo step: the retail order history as an Online Archive.

The shop's order service keeps every invoice line it records in the archive (SQLite here;
PostgreSQL in production). Its live endpoint serves a customer's last five orders; a
slow-arriving batch of corrections (partial refunds) edits history without overwriting it; and
a training set built through the archive's batch interface equals the one the Time Machine
builds from the fact log the archive syncs into. ``run(demo)`` is the step the main demo calls;
``archive_round_trip(ws)`` does the work and returns what it found (tests call it directly).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from fastapi import FastAPI
from fastapi.testclient import TestClient

import parity as pt
from parity.archive import open_archive, sync, training_set
from parity.archive.http import archive_router

UTC = timezone.utc


@dataclass
class ArchiveRoundTrip:
    """What the step found."""

    customer: int
    last_orders: list[dict[str, Any]]
    corrected: int
    contexts: int
    equal_after_sync: bool
    past_unchanged: bool
    synced_versions: int


def archive_round_trip(ws: pt.Workspace, customers: int = 200) -> ArchiveRoundTrip:
    """Archive the order history of ``customers`` customers, read it live, correct it, and
    compare training sets built through the batch interface and from the synced fact log."""
    fs = ws.definitions.feature_set("customer_features")
    purchases = ws.definitions.source("purchases")
    profiles = ws.definitions.source("profiles")
    for stale in ws.data_dir.glob("archive.db*"):
        stale.unlink()
    url = f"sqlite:///{ws.data_dir / 'archive.db'}"
    with open_archive(url, [purchases, profiles], batch_rows_per_second=500_000) as archive:
        history = ws.fact_log.read(purchases)
        chosen = sorted(set(history.column("customer_id").to_pylist()))[:customers]
        mine = pc.is_in(history.column("customer_id"), pa.array(chosen, pa.int64()))
        lines = history.filter(mine)
        archive.append_canonical(purchases, lines)
        states = ws.fact_log.read(profiles)
        archive.append_canonical(
            profiles, states.filter(pc.is_in(states.column("customer_id"), pa.array(chosen)))
        )
        customer = max(
            chosen, key=lambda c: pc.sum(pc.equal(lines.column("customer_id"), c)).as_py()
        )

        # Live: the customer's last five orders through the HTTP endpoint.
        app = FastAPI()
        app.include_router(archive_router(archive))
        body = TestClient(app).get(f"/v1/archive/purchases/{customer}?n=500").json()
        orders: dict[str, dict[str, Any]] = {}
        for fact in body["facts"]:  # newest first; an order is an invoice of several lines
            order = orders.setdefault(
                fact["invoice"],
                {"invoice": fact["invoice"], "lines": 0, "amount": 0.0, "at": fact["event_time"]},
            )
            order["lines"] += 1
            order["amount"] = round(order["amount"] + fact["amount"], 2)
        last_orders = list(orders.values())[:5]

        # Slow-arriving corrections: 30 past lines refunded by half, recorded now.
        before = datetime.now(UTC)
        fixes = lines.slice(0, 30).to_pandas()
        fixes["amount"] = (fixes["amount"] / 2).round(2)
        fixes = fixes.drop(columns=["recorded_at", "_tombstone"])
        corrected = archive.append(purchases, fixes).stored
        after = datetime.now(UTC) + timedelta(seconds=1)

        # Batch: contexts over the history and after the corrections.
        moments = pd.date_range(end=before - timedelta(days=1), periods=8, freq="30D", tz="UTC")
        ctx = pd.DataFrame(
            [(c, m) for c in chosen for m in [*moments, after]], columns=["customer_id", "at"]
        )
        ctx["at"] = ctx["at"].astype("datetime64[us, UTC]")
        via_archive = training_set(archive, [fs], ctx)
        log = pt.FactLog(ws.data_dir / "archive_sync_log")
        log.reset(purchases), log.reset(profiles)
        synced = sum(r.appended for r in sync(archive, log, through=after))
        via_log = ws.engine.training_set(ctx, [fs], log)
        past = ctx[ctx["at"] < before]
        original = ws.engine.training_set(past, [fs], ws.fact_log)
        past_via_archive = training_set(archive, [fs], past)
    return ArchiveRoundTrip(
        customer,
        last_orders,
        corrected,
        len(ctx),
        via_archive.equals(via_log),
        original.equals(past_via_archive),
        synced,
    )


def run(demo: Any) -> bool:
    """The demo step: print what the archive did; True if both training sets are equal."""
    from demo import console, step
    from rich.table import Table

    step("10. Online Archive: live order history, late corrections, batch training set")
    found = archive_round_trip(demo.ws)
    table = Table(title=f"customer {found.customer}: last five orders (live endpoint)")
    for column in ("invoice", "lines", "amount", "at"):
        table.add_column(column)
    for order in found.last_orders:
        table.add_row(
            order["invoice"], str(order["lines"]), f"{order['amount']:.2f}", order["at"][:19]
        )
    console.print(table)
    console.print(
        f"{found.corrected} corrections recorded; {found.synced_versions:,} versions "
        f"synced to the fact log; {found.contexts:,} contexts"
    )
    demo.expect(
        "archive: training set via the batch interface equals the synced fact log's",
        found.equal_after_sync,
    )
    demo.expect(
        "archive: corrections do not change training rows from before they were known",
        found.past_unchanged,
    )
    return found.equal_after_sync and found.past_unchanged
