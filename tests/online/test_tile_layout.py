"""The bulk tile build: vectorised exact prefix sums, and records (a day of sparse buckets,
or one dense bucket) read back bucket by bucket on every store after ``materialize``."""

from __future__ import annotations

import math
import random
import tempfile

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import parity as pt
from parity.online import open_online
from parity.online.evaluate import evaluate_source, prepare
from parity.online.exactsum import from_partials, prefix_rows, total
from parity.online.tileread import read_plans, uses_tiles
from parity.online.tiles import DAYS, DENSE, SPAN, WIDTH, encode_records
from parity.online.tilewrite import final_facts
from tests.online.tileworld import DAY, HOUR, T0, World, canonical, feature_set, orders, same_values

_WILD = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),  # any exponent, subnormals, -0.0
    st.sampled_from([5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 0.1]),
    st.integers(-(2**60), 2**60).map(float),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_WILD, max_size=40), st.lists(st.integers(0, 40), max_size=8))
def test_prefix_rows_are_exact_prefix_sums(values: list[float], cuts: list[int]) -> None:
    """Each row's exact sum is the exact sum of the values before its cut, whatever the
    exponents (subnormals, 1e308 and 1e-300 together); -0.0 is refused (no exact sum keeps
    its sign); None only when -0.0 is present or a row's doubles overflow; and fsum over a
    row difference is bit for bit fsum over the values between the cuts."""
    ordered = sorted(min(c, len(values)) for c in cuts)
    rows = prefix_rows(np.asarray(values, np.float64), np.asarray(ordered, np.int64))
    if any(v == 0 and math.copysign(1.0, v) < 0 for v in values):
        assert rows is None
        return
    if rows is None:  # allowed only where some prefix's magnitude passes a double
        assert any(abs(v) > 1e307 for v in values)
        return
    assert rows.shape[0] == len(ordered)
    for cut, row in zip(ordered, rows.tolist()):
        assert from_partials(row) == total(values[:cut])
    for (a, low), (b, high) in zip(
        zip(ordered, rows.tolist()), list(zip(ordered, rows.tolist()))[1:]
    ):
        try:
            expected = math.fsum(values[a:b])
            got = math.fsum(high + [-v for v in low])
        except OverflowError:
            continue
        assert np.float64(got).tobytes() == np.float64(expected).tobytes() or got == expected == 0


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(-(2**53), 2**53), max_size=40),
    st.lists(st.integers(0, 40), max_size=8),
)
def test_prefix_rows_of_integral_values_are_exact(values: list[int], cuts: list[int]) -> None:
    """Integral values (int fields, whole amounts) take the int64 path: still exact."""
    ordered = sorted(min(c, len(values)) for c in cuts)
    doubles = [float(v) for v in values]
    rows = prefix_rows(np.asarray(doubles, np.float64), np.asarray(ordered, np.int64))
    assert rows is not None
    for cut, row in zip(ordered, rows.tolist()):
        assert from_partials(row) == total(doubles[:cut])


def test_prefix_rows_refuse_values_without_an_exact_sum() -> None:
    """inf and nan have no exact sum: the field is served from raw facts."""
    for bad in (math.inf, -math.inf, math.nan, -0.0):
        assert prefix_rows(np.array([1.0, bad]), np.array([0, 1, 2])) is None


def test_dense_buckets_are_records_of_their_own_and_sparse_days_share_one() -> None:
    """A bucket of DENSE rows or more is its own record; sparse buckets, before and after
    it, share their day's."""
    world = World(random.Random(5), entities=1)
    day0 = (T0 // DAY + 1) * DAY
    times = [day0 + h * HOUR + 1 for h in (0, 3, 7)]  # sparse hours of one day
    times += [day0 + 9 * HOUR + k for k in range(DENSE)]  # one dense hour
    times += [day0 + 10 * HOUR + 5, day0 + DAY + 2 * HOUR]  # after it; the next day
    table = canonical([{**world.fact(0, t), "recorded_at": T0} for t in times])
    from parity.online.routing import to_block

    block = final_facts(prepare([to_block(orders, table)]))  # type: ignore[arg-type]
    records = encode_records(orders, block)
    day = day0 // WIDTH // SPAN
    assert sorted(records) == [day0 // WIDTH + 9, DAYS + day, DAYS + day + 1]


def test_materialized_tiles_read_like_raw_facts(store_url: str) -> None:
    """After a bulk load, reads at bucket and day boundaries, inside dense hours and across
    sparse days equal the raw evaluation on each store."""
    fs = feature_set(("10m", "1h", "1d", "7d"))
    world = World(random.Random(8), entities=2)
    day0 = (T0 // DAY + 2) * DAY
    rows = []
    for entity in (0, 1):
        for k in range(300):  # dense hours on day 0 and 1, sparse over the week after
            at = day0 + world.rng.randrange(0, 2 * DAY if k < 200 else 9 * DAY)
            rows.append({**world.fact(entity, at), "recorded_at": at + 1})
        for edge in (day0, day0 + DAY, day0 + 5 * HOUR):  # on bucket and day starts
            rows.append({**world.fact(entity, edge), "recorded_at": edge + 1})
    with tempfile.TemporaryDirectory() as root:
        log = pt.FactLog(root)
        log.ingest(orders, canonical(rows).drop_columns(["_tombstone"]), recorded_at="lag")
        online = open_online(store_url, log, [fs], lookback=None)
        online.materialize()
        state = online._state
        plan = state.plans["spend"].sources[0]
        assert uses_tiles(state, plan)
        served = 0
        end = day0 + 10 * DAY
        moments = [end, end + 1, day0 + DAY + 1, day0 + 2 * DAY, day0 + 2 * DAY + 30 * 60_000_000]
        moments += [day0 + 9 * DAY + HOUR * h + 17 for h in range(0, 24, 5)]
        for entity in ("[0]", "[1]"):
            segments = state.store.read(orders, [entity])[0]
            for t in moments:
                ((values, _),) = read_plans(state, [(plan, entity, t)])
                raw = evaluate_source(plan, prepare(segments), t)
                if values is None:  # t <= latest: falls back; raw is the answer
                    assert t <= max(int(s.recorded_at.max()) for s in segments)
                    continue
                assert same_values(values, raw, list(raw)), (entity, t, values, raw)
                served += 1
        assert served >= 10
        online.close()
