"""The snapshot tests' workspace: definitions whose live source calls the loopback service."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

import parity as pt
from parity.snapshot import JobOptions, Sampler, run_job

UTC = timezone.utc
T0 = datetime(2024, 5, 1, tzinfo=UTC)
COUNTRIES = ["UK", "FR", "DE"]

DEFINITIONS = '''
import parity as pt
from parity import listagg

customer = pt.Entity("customer", {{"customer_id": int}})
profiles = pt.StateSource("profiles", customer, {{"country": str, "tenure_days": int}})
recs = pt.LiveSource(
    "recs", customer,
    {{"top_item": str, "score": float, "items": "list<struct<item:str,score:float>>"}},
    url="{url}", timeout="{timeout}", fallback="{fallback}",
)


@pt.transform(dtype="str")
def tenure_band(tenure_days):
    if tenure_days is None:
        return None
    return "new" if tenure_days < 100 else "loyal"


customers = pt.FeatureSet("customers", customer, [
    pt.Lookup("country", profiles, "country"),
    pt.Lookup("tenure_days", profiles, "tenure_days"),
    tenure_band,
])
rec_features = pt.FeatureSet("rec_features", customer, [
    pt.Lookup("top_item", recs, "top_item"),
    pt.Lookup("score", recs, "score"),
    pt.Lookup("items", recs, "items"),
])
'''


def make_workspace(
    root: Path, url: str, timeout: str = "300ms", fallback: str = "snapshot", customers: int = 30
) -> pt.Workspace:
    """A workspace whose definitions point the live source ``recs`` at ``url``."""
    pt.init(root)
    (root / "features.py").write_text(
        DEFINITIONS.format(url=url, timeout=timeout, fallback=fallback)
    )
    (root / "parity.yaml").write_text("definitions: features.py\nonline: memory\n")
    ws = pt.open(root)
    ws.ingest("profiles", profiles_frame(customers))
    return ws


def profiles_frame(customers: int) -> pd.DataFrame:
    """One profile per customer, known from T0 - 30 days."""
    return pd.DataFrame({
        "customer_id": list(range(1, customers + 1)),
        "country": [COUNTRIES[i % 3] for i in range(customers)],
        "tenure_days": [(i * 37) % 400 for i in range(customers)],
        "event_time": [T0 - timedelta(days=30)] * customers,
    })


def population(n: int = 3000) -> pa.Table:
    """n entities in six equal strata of country x band."""
    return pa.table({
        "customer_id": list(range(n)),
        "country": [["UK", "FR", "DE"][i % 3] for i in range(n)],
        "band": [["new", "loyal"][(i // 3) % 2] for i in range(n)],
    })


def chosen(sampler: Sampler, table: pa.Table) -> list[int]:
    """The customer ids ``sampler`` chooses from ``table``."""
    return sampler.select(table, ["customer_id"]).column("customer_id").to_pylist()


FAST = JobOptions(concurrency=4, backoff_s=0.001)


def snapshot(ws: pt.Workspace, n: int = 6) -> pa.Table:
    """Run a job over the first n customers; return its contexts (at = snapshot time + 1 us)."""
    profiles = ws.fact_log.read(ws.definitions.source("profiles")).select(
        ["customer_id", "country"]).slice(0, n)
    sample = Sampler(["country"], default_rate=1.0).sample(
        ws, ws.definitions.entities["customer"], profiles, at=T0)
    report = run_job(ws, "recs", sample, options=FAST)
    return pq.read_table(report.folder / "contexts.parquet")
