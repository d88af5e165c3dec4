"""Bootstrap (materialize) time: parity's online stores against Feast's, on the same data.

    .venv/bin/python benchmarks/feast_bootstrap.py --feast-python /tmp/feastenv/bin/python
    .venv/bin/python benchmarks/feast_bootstrap.py --feast-python ... --entities 200   # quick

Feast is not a dependency of parity: install it in a separate virtual environment
(``python3 -m venv /tmp/feastenv && /tmp/feastenv/bin/pip install 'feast[redis]'``) and pass
its interpreter. The data is the online benchmark's (``benchmarks/online.py``: orders with 20
to 1,000 events per entity, a tenth with 1,000, and three profile versions per entity). Both
sides load the whole history into an empty online store:

- parity: ``OnlineFeatures.materialize()`` for the 20-feature set (every version kept that a
  request can need, so windowed aggregates can be served);
- Feast: ``FeatureStore.materialize`` of two feature views over the same columns (Feast keeps
  the latest row per entity and view: it serves no windowed aggregate at all).

Each pair runs ``--repeat`` times alternately (parity, Feast, parity, ...) so drift in a shared
machine's load hits both; the medians and their ratio are printed, plus parity's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

import parity as pt
from parity.online import open_online

sys.path.insert(0, str(Path(__file__).resolve().parent))
from online import REDIS, feature_set, generate, orders, profile, redis_up


def with_recorded_at(table: pa.Table) -> pa.Table:
    """The table as Feast reads it: a created timestamp equal to event_time (no source lag,
    as parity's ``recorded_at="lag"`` gives for these sources), no fact id column."""
    table = table.append_column("recorded_at", table.column("event_time"))
    return table.drop_columns([c for c in ("fact_id",) if c in table.column_names])


def parity_run(log: pt.FactLog, url: str) -> float:
    """Seconds for one materialize of the whole log into an empty store at ``url``."""
    online = open_online(url, log, [feature_set()], lookback="1h")
    try:
        t0 = time.perf_counter()
        online.materialize()
        return time.perf_counter() - t0
    finally:
        online.close()


def feast_run(python: str, data: Path, kind: str) -> float:
    """Seconds Feast's materialize took, as its side printed it."""
    done = subprocess.run(
        [python, str(Path(__file__).with_name("feast_side.py")), str(data), kind],
        capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"Feast side failed ({kind}):\n{done.stderr[-3000:]}")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["materialize_s"])


def main() -> None:
    """Measure both sides alternately and print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--feast-python", required=True, help="an interpreter with Feast")
    parser.add_argument("--entities", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    order_table, profile_table, _ = generate(args.entities)
    print(f"data: {args.entities} entities, {order_table.num_rows:,} orders, "
          f"{profile_table.num_rows:,} profile versions")
    kinds = ["sqlite"] + (["redis"] if redis_up() else [])
    with tempfile.TemporaryDirectory(prefix="parity-feast-") as tmp:
        root = Path(tmp)
        log = pt.FactLog(root / "facts")
        log.ingest(orders, order_table, recorded_at="lag")
        log.ingest(profile, profile_table, recorded_at="lag")
        pq.write_table(with_recorded_at(order_table), root / "orders.parquet")
        pq.write_table(with_recorded_at(profile_table), root / "profile.parquet")
        print("| online store | parity materialize s | Feast materialize s | parity / Feast |")
        print("|---|---|---|---|")
        for kind in kinds:
            ours: list[float] = []
            theirs: list[float] = []
            for i in range(args.repeat):
                url = (f"sqlite:///{root / f'parity-{i}.db'}" if kind == "sqlite"
                       else f"{REDIS}?prefix=parity-feast-{uuid.uuid4().hex[:8]}")
                ours.append(parity_run(log, url))
                theirs.append(feast_run(args.feast_python, root, kind))
            a, b = statistics.median(ours), statistics.median(theirs)
            print(f"| {kind} | {a:.2f} | {b:.2f} | {a / b:.2f}x |")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"parity peak RSS {peak:.0f} MB (medians of {args.repeat}, run alternately)")


if __name__ == "__main__":
    main()
