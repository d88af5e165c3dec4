"""Tiles (parity.online.tiles): reads from tiles agree with the reference evaluator at any
history length, and incremental tile updates equal a recomputation from the raw facts."""

from __future__ import annotations

import math
import random
import tempfile
from dataclasses import replace
from typing import Any

import numpy as np
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import parity as pt
from parity import reference
from parity.contexts import normalize_contexts
from parity.online import open_online
from parity.online.base import Block, concat
from parity.online.evaluate import evaluate_source, prepare
from parity.online.exactsum import from_partials, partials, total
from parity.online.state import OnlineState
from parity.online.tileread import read_plans, uses_tiles
from parity.online.tiles import Summary, build, empty, split
from parity.online.tilewrite import final_facts, rebuild
from parity.timeutil import us_to_datetime
from tests.conformance import assert_same
from tests.online.tileworld import (
    DAY,
    HOUR,
    T0,
    World,
    feature_set,
    orders,
    same_values,
)


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
                assert same_values(single, want, names), (single, want)
        held = sum(1 for row in world.current.values() if not row["_tombstone"])
        assert held >= 20_000  # 10,000 events per entity on average
        assert served == 20
        online.close()


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
            expected = split(final_facts(prepare(segments)))
            assert set(mine) == set(expected)
            for bucket, parts in mine.items():
                assert _rows(concat(parts)) == _rows(expected[bucket]), bucket
            latest = max([summary.latest, *(int(b.recorded_at.max()) for b in pending)])
            assert latest == fresh.summary.latest
            assert (summary.own or bool(pending)) == fresh.summary.own
            boundary = (clock // HOUR + 1) * HOUR  # t and t - 1d on bucket boundaries
            for t in [clock + 1, boundary, boundary + 90 * 60_000_000, clock + 3 * DAY]:
                ((values, _),) = read_plans(state, [(plan, key, t)])
                raw = evaluate_source(plan, prepare(segments), t)
                assert values is not None
                assert same_values(values, raw, list(raw)), (values, raw)
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
            assert same_values(values, raw, list(raw)), t
        online.close()
