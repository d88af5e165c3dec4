"""Tiles (parity.online.tiles): reads from tiles agree with the reference evaluator at any
history length, and incremental tile updates equal a recomputation from the raw facts."""

from __future__ import annotations

import math
import random
import tempfile
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import parity as pt
from parity import reference
from parity.contexts import normalize_contexts
from parity.facts import canonical_schema
from parity.online import OnlineFeatures, open_online
from parity.online.base import Block, concat
from parity.online.evaluate import evaluate_source, prepare
from parity.online.exactsum import from_partials, partials, total
from parity.online.state import OnlineState
from parity.online.tileread import read_plans, uses_tiles
from parity.online.tiles import Summary, build, empty, split
from parity.online.tilewrite import rebuild
from parity.timeutil import TIMESTAMP_TYPE, us_to_datetime
from tests.conformance import assert_same

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


def contexts(entities: list[int], times: list[int]) -> pa.Table:
    rows = [{"customer_id": e, "at": us_to_datetime(t)} for t in times for e in entities]
    return normalize_contexts(rows, [feature_set()])


def tile_answers(state: OnlineState, entities: list[int], t: int) -> list[dict[str, Any] | None]:
    plan = state.plans["spend"].sources[0]
    assert uses_tiles(state, plan)
    return [values for values, _ in read_plans(state, [(plan, f"[{e}]", t) for e in entities])]


def test_ten_thousand_events_per_entity_agree_with_the_reference(store_url: str) -> None:
    """10,000 events per entity pushed in batches with corrections, deletes, late facts and
    facts moving between entities: every read at many moments equals the reference."""
    fs = feature_set()
    names = [f.name for f in fs.features]
    world = World(random.Random(11), entities=2)
    with tempfile.TemporaryDirectory() as root:
        online = open_online(store_url, pt.FactLog(root), [fs], lookback="1d", max_segments=6)
        online.reset()
        clock = T0
        served = 0
        for step in range(100):
            clock += 2 * HOUR
            world.push(online, world.batch(clock, 225, mixed=step % 3 != 0))
            if step % 10 != 9:
                continue
            now = [clock + 1, clock + HOUR // 2 + 7, clock + 3 * HOUR // 2]
            # "now" requests are served from tiles (nothing recorded after them) ...
            answers = tile_answers(online._state, [0, 1], now[0])
            assert all(a is not None for a in answers)
            served += len(answers)
            # ... and a past request (recorded facts after it) falls back to raw facts.
            asked = contexts([0, 1], [*now, clock - 5 * HOUR])
            expected = reference.evaluate([fs], world.facts(), asked)
            assert_same(expected, online.get_features_batch("spend", asked), names)
            for row in asked.slice(0, 2).to_pylist():
                single = online.get_features("spend", row)
                want = expected.slice(0, 2).to_pylist()[row["customer_id"]]
                assert _same(single, want, names), (single, want)
        held = sum(1 for row in world.current.values() if not row["_tombstone"])
        assert held >= 20_000  # 10,000 events per entity on average
        assert served == 20
        online.close()


def _same(actual: dict[str, Any], expected: dict[str, Any], names: list[str]) -> bool:
    for name in names:
        a, b = actual[name], expected[name]
        if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
            continue
        if a != b or type(a) is not type(b):
            return False
    return True


def _rows(record: Block | None) -> list[tuple[Any, ...]]:
    """A bucket record's rows as (event_time, amount, quantity, note present), sorted."""
    if record is None:
        return []
    columns = [record.event_time.tolist()]
    for name in ("amount", "quantity"):
        values, valid = record.values[name].tolist(), record.valid[name].tolist()
        columns.append([v if ok else None for v, ok in zip(values, valid)])
    columns.append(record.valid["note"].tolist())
    return sorted(zip(*columns), key=repr)


def _exact_rows(summary: Summary, name: str) -> list[int]:
    return [from_partials(row) for row in summary.fsum[name].tolist()]


def assert_same_summary(stored: Summary, fresh: Summary) -> None:
    assert stored.buckets.tolist() == fresh.buckets.tolist()
    assert stored.count.tolist() == fresh.count.tolist()
    for name in fresh.nonnull:
        assert stored.nonnull[name].tolist() == fresh.nonnull[name].tolist(), name
    for name in fresh.isum:
        assert stored.isum[name].tolist() == fresh.isum[name].tolist(), name
    for name in fresh.low:
        assert stored.low[name].tolist() == fresh.low[name].tolist(), name
        assert stored.high[name].tolist() == fresh.high[name].tolist(), name
        if name not in fresh.inexact:
            assert _exact_rows(stored, name) == _exact_rows(fresh, name), name
    assert (stored.inexact, stored.latest, stored.own) == (fresh.inexact, fresh.latest, fresh.own)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    seed=st.integers(0, 10_000),
    pushes=st.integers(1, 12),
    size=st.integers(1, 6),
    max_segments=st.sampled_from([1, 3, 50]),
)
def test_property_tile_updates_equal_recomputation_from_raw_facts(
    seed: int, pushes: int, size: int, max_segments: int
) -> None:
    """Whatever the pushes (new, late, corrected, moved, deleted facts), the stored tiles equal
    tiles recomputed from the entity's raw versions, and tile reads equal raw evaluation."""
    fs = feature_set(("10m", "90m", "1d", None))
    world = World(random.Random(seed), entities=3)
    with tempfile.TemporaryDirectory() as root:
        online = open_online(
            "memory://", pt.FactLog(root), [fs], lookback=None, max_segments=max_segments
        )
        online.reset()
        clock = T0
        for _ in range(pushes):
            clock += world.rng.choice([1, HOUR // 3, 2 * HOUR, DAY])
            world.push(online, world.batch(clock, size, mixed=True))
        state = online._state
        plan = state.plans["spend"].sources[0]
        for entity in range(3):
            key = f"[{entity}]"
            segments = state.store.read(orders, [key])[0]
            fresh = rebuild(orders, prepare(segments))
            (stored,) = state.store.read_tiles([(orders, key, [])])
            if fresh.summary is None:
                assert stored.summary is None and not stored.pending
                continue
            summary = stored.summary if stored.summary is not None else empty(orders)
            # The summary is exactly the summary of its bucket records ...
            buckets = summary.buckets.tolist()
            (with_records,) = state.store.read_tiles([(orders, key, buckets)])
            held = [r for r in with_records.records if r is not None]
            assert len(held) == len(buckets)
            nothing = replace(empty(orders), latest=summary.latest, own=summary.own)
            again = build(orders, concat(held), summary.latest, summary.own) if held else nothing
            assert_same_summary(summary, again)
            # ... the records plus the pending blocks hold the final own facts, bucket by
            # bucket, and the latest recorded_at and "own" agree with a recomputation.
            pending = [b for b in stored.pending if len(b)]
            mine = {b: [r] for b, r in zip(buckets, held)}
            for b, part in (split(concat(pending)) if pending else {}).items():
                mine.setdefault(b, []).append(part)
            assert set(mine) == set(fresh.buckets)
            for bucket, parts in mine.items():
                assert _rows(concat(parts)) == _rows(fresh.buckets[bucket]), bucket
            latest = max([summary.latest, *(int(b.recorded_at.max()) for b in pending)])
            assert latest == fresh.summary.latest
            assert (summary.own or bool(pending)) == fresh.summary.own
            boundary = (clock // HOUR + 1) * HOUR  # t and t - 1d on bucket boundaries
            for t in [clock + 1, boundary, boundary + 90 * 60_000_000, clock + 3 * DAY]:
                ((values, _),) = read_plans(state, [(plan, key, t)])
                raw = evaluate_source(plan, prepare(segments), t)
                assert values is not None
                assert _same(values, raw, list(raw)), (values, raw)
        online.close()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=30), st.integers(0, 30))
def test_exact_sums_round_like_fsum(values: list[float], cut: int) -> None:
    """fsum(partials(a + b) + -partials(a)) is fsum of b's values: a stored prefix difference
    is bit for bit the correctly rounded window sum."""
    head, tail = values[:cut], values[cut:]
    try:
        whole, first = partials(total(values)), partials(total(head))
        expected = math.fsum(tail)
    except OverflowError:
        return
    try:
        got = math.fsum(whole + [-v for v in first])
    except OverflowError:
        return  # the reader falls back to raw facts here
    assert got == expected or (got == 0 and expected == 0)
    assert from_partials(partials(total(values))) == total(values)
    assert np.float64(got).tobytes() == np.float64(expected).tobytes() or expected == 0


def test_window_edges_and_bucket_boundaries_are_exact() -> None:
    """Facts exactly at t - W, just before it, at t - 1 and at bucket starts: tiles give what
    the raw evaluation gives, at request times on and off bucket boundaries."""
    fs = feature_set(("10m", "1h", "1d"))
    world = World(random.Random(3), entities=1)
    base = (T0 // HOUR + 100) * HOUR  # a bucket start
    moments = [base, base + 10 * 60_000_000, base + HOUR, base + DAY]
    times = sorted(
        {m + d for m in moments for d in (-1, 0, 1)}
        | {m - w + d for m in moments for w in (10 * 60_000_000, HOUR, DAY) for d in (-1, 0, 1)}
    )
    with tempfile.TemporaryDirectory() as root:
        online = open_online("memory://", pt.FactLog(root), [fs], lookback=None)
        online.reset()
        world.push(online, [{**world.fact(0, t), "recorded_at": T0} for t in times])
        state = online._state
        plan = state.plans["spend"].sources[0]
        segments = state.store.read(orders, ["[0]"])[0]
        for t in moments + [m + 1 for m in moments] + [m - 1 for m in moments]:
            ((values, _),) = read_plans(state, [(plan, "[0]", t)])
            assert values is not None
            raw = evaluate_source(plan, prepare(segments), t)
            assert _same(values, raw, list(raw)), t
        online.close()
