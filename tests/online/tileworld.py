"""Shared by the tile tests: a small event source, a feature set over it, and a World that
generates facts (new, late, corrected, moved, deleted) and pushes them."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa

import parity as pt
from parity.facts import canonical_schema
from parity.online import OnlineFeatures
from parity.timeutil import TIMESTAMP_TYPE

UTC = timezone.utc
HOUR = 3_600_000_000
DAY = 24 * HOUR
T0 = 1_700_000_000_000_000  # 2023-11-14

customer = pt.Entity("customer", {"customer_id": int})
orders = pt.EventSource("orders", customer, {"amount": float, "quantity": int, "note": str})


def feature_set(windows: tuple[str | None, ...] = ("1h", "1d", "7d")) -> pt.FeatureSet:
    """count/sum/mean/min/max of a float over each window, and a few over an int field."""
    features: list[Any] = []
    for window in windows:
        tag = window or "all"
        features += [
            pt.Aggregate(f"n_{tag}", orders, "count", window=window),
            pt.Aggregate(f"spend_{tag}", orders, "sum", "amount", window=window),
            pt.Aggregate(f"mean_{tag}", orders, "mean", "amount", window=window),
            pt.Aggregate(f"low_{tag}", orders, "min", "amount", window=window),
            pt.Aggregate(f"high_{tag}", orders, "max", "amount", window=window),
        ]
    features += [
        pt.Aggregate("qty_sum", orders, "sum", "quantity", window=windows[-1]),
        pt.Aggregate("qty_mean", orders, "mean", "quantity", window=windows[0]),
        pt.Aggregate("qty_min", orders, "min", "quantity", window=windows[-1]),
        pt.Aggregate("notes", orders, "count", "note", window=windows[-1]),
    ]
    return pt.FeatureSet("spend", customer, features)


@dataclass
class World:
    """Facts pushed so far, and every fact's current version (to correct or delete it)."""

    rng: random.Random
    entities: int
    tables: list[pa.Table] = field(default_factory=list)
    current: dict[str, dict[str, Any]] = field(default_factory=dict)
    serial: int = 0

    def amount(self) -> float | None:
        roll = self.rng.random()
        if roll < 0.05:
            return None
        if roll < 0.1:  # magnitudes far apart: a rounded running sum would drift
            return self.rng.choice([1e16, -1e16, 1e-9, 0.1, 3.3e-5])
        return round(self.rng.random() * 200, 2)

    def fact(self, entity: int, event_time: int) -> dict[str, Any]:
        self.serial += 1
        return {
            "customer_id": entity,
            "amount": self.amount(),
            "quantity": self.rng.randrange(-3, 9),
            "note": None if self.rng.random() < 0.3 else "n",
            "event_time": event_time,
            "fact_id": f"f{self.serial}",
            "_tombstone": False,
        }

    def batch(self, clock: int, size: int, mixed: bool) -> list[dict[str, Any]]:
        """New facts of the last hours, and (``mixed``) late facts, corrections (some moving
        the fact to another entity) and deletes, all recorded at ``clock``."""
        rows: list[dict[str, Any]] = []
        touched: set[str] = set()
        live = [f for f, row in self.current.items() if not row["_tombstone"]]
        for _ in range(size):
            roll = self.rng.random() if mixed else 1.0
            if roll < 0.05 and live:  # a correction, sometimes to another entity
                fid = self.rng.choice(live)
                if fid in touched:
                    continue
                row = dict(self.current[fid])
                row["amount"] = self.amount()
                if self.rng.random() < 0.3:
                    row["customer_id"] = self.rng.randrange(self.entities)
                if self.rng.random() < 0.3:
                    row["event_time"] = clock - self.rng.randrange(1, 3 * DAY)
                touched.add(fid)
            elif roll < 0.08 and live:  # a delete: the latest version's key and event_time
                fid = self.rng.choice(live)
                if fid in touched:
                    continue
                row = {**self.current[fid], "_tombstone": True}
                row.update(amount=None, quantity=None, note=None)
                touched.add(fid)
            elif roll < 0.13:  # a late fact: happened days ago, learned now
                row = self.fact(
                    self.rng.randrange(self.entities), clock - self.rng.randrange(DAY, 9 * DAY)
                )
            else:
                row = self.fact(
                    self.rng.randrange(self.entities), clock - self.rng.randrange(1, 2 * HOUR)
                )
            row["recorded_at"] = clock
            self.current[row["fact_id"]] = row
            rows.append(row)
        return rows

    def push(self, online: OnlineFeatures, rows: list[dict[str, Any]]) -> None:
        table = canonical(rows)
        self.tables.append(table)
        online.push_canonical("orders", table, now=datetime(2031, 1, 1, tzinfo=UTC))

    def facts(self) -> dict[str, pa.Table]:
        return {"orders": pa.concat_tables(self.tables)}


def canonical(rows: list[dict[str, Any]]) -> pa.Table:
    schema = canonical_schema(orders)
    columns: dict[str, Any] = {name: [row[name] for row in rows] for name in schema.names}
    for name in ("event_time", "recorded_at"):
        columns[name] = pa.array(columns[name], pa.int64()).cast(TIMESTAMP_TYPE)
    return pa.table(columns, schema=schema)


def same_values(actual: dict[str, Any], expected: dict[str, Any], names: list[str]) -> bool:
    for name in names:
        a, b = actual[name], expected[name]
        if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
            continue
        if a != b or type(a) is not type(b):
            return False
    return True
