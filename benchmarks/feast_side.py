"""Feast's half of ``benchmarks/feast_bootstrap.py``: run by a Python that has Feast installed.

    <feast-python> benchmarks/feast_side.py DATA_DIR ONLINE   # ONLINE: sqlite | redis

``DATA_DIR`` holds ``orders.parquet`` and ``profile.parquet`` written by the parity side. This
builds a Feast repository there (file offline store, the given online store), applies two
feature views over the same columns parity serves and times ``FeatureStore.materialize`` over
the whole history. It prints one JSON line: ``{"materialize_s": ..., "rows_in": ...}``.
It imports nothing from parity, so it runs in a separate virtual environment.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow.parquet as pq
from feast import Entity, FeatureStore, FeatureView, Field, FileSource
from feast.types import Float64, Int64, String

CONFIG = """project: parity_bench
registry: {root}/registry.db
provider: local
offline_store:
  type: file
entity_key_serialization_version: 3
online_store:
{online}
"""


def online_config(kind: str, root: Path) -> str:
    """The ``online_store`` block of feature_store.yaml for ``kind``."""
    if kind == "sqlite":
        return f"  type: sqlite\n  path: {root}/online.db"
    if kind == "redis":
        return "  type: redis\n  connection_string: 127.0.0.1:6379,db=1"
    raise SystemExit(f"unknown online store {kind!r}: use sqlite or redis")


def main() -> None:
    """Apply the feature views, materialize the whole history, print the seconds as JSON."""
    root, kind = Path(sys.argv[1]).resolve(), sys.argv[2]
    repo = root / f"feast-{kind}"
    repo.mkdir(exist_ok=True)
    (repo / "feature_store.yaml").write_text(
        CONFIG.format(root=repo, online=online_config(kind, repo))
    )
    customer = Entity(name="customer", join_keys=["customer_id"])
    orders = FeatureView(
        name="orders",
        entities=[customer],
        ttl=timedelta(days=3650),
        schema=[Field(name="amount", dtype=Float64), Field(name="quantity", dtype=Int64)],
        source=FileSource(
            path=str(root / "orders.parquet"),
            timestamp_field="event_time",
            created_timestamp_column="recorded_at",
        ),
    )
    profile = FeatureView(
        name="profile",
        entities=[customer],
        ttl=timedelta(days=3650),
        schema=[
            Field(name="tier", dtype=String),
            Field(name="credit", dtype=Float64),
            Field(name="age", dtype=Int64),
            Field(name="country", dtype=String),
        ],
        source=FileSource(
            path=str(root / "profile.parquet"),
            timestamp_field="event_time",
            created_timestamp_column="recorded_at",
        ),
    )
    store = FeatureStore(repo_path=str(repo))
    store.apply([customer, orders, profile])
    rows = sum(pq.read_metadata(root / f).num_rows for f in ("orders.parquet", "profile.parquet"))
    start = datetime(2000, 1, 1, tzinfo=timezone.utc)
    end = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    store.materialize(start_date=start, end_date=end)
    seconds = time.perf_counter() - t0
    # Proof that the store was loaded: every entity has its latest values online.
    entities = sorted(set(pq.read_table(root / "profile.parquet").column("customer_id")
                          .to_pylist()))
    got = store.get_online_features(
        features=["orders:amount", "profile:tier"],
        entity_rows=[{"customer_id": e} for e in entities],
    ).to_dict()
    loaded = sum(v is not None for v in got["tier"]) + sum(v is not None for v in got["amount"])
    print(json.dumps({"materialize_s": seconds, "rows_in": rows,
                      "entities": len(entities), "values_online": loaded}))


if __name__ == "__main__":
    main()
