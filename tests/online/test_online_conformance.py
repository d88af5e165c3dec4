"""The online path against the reference evaluator, on every store backend.

Each case ingests facts into a fact log (the reference reads it), pushes the same canonical
versions to a fresh online store (in several batches, out of order), and asks the online path
for the contexts one by one and batched. Eviction is off here (lookback=None), so every
request time must agree; test_replay covers eviction.
"""

from __future__ import annotations

import random
import tempfile
from typing import Any

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import parity as pt
from parity import reference
from parity.contexts import normalize_contexts
from parity.online import open_online
from tests.conformance import (
    PLAY_COLUMNS,
    PROFILE_COLUMNS,
    assert_same,
    catalog,
    contexts,
    frame,
    play_facts,
    plays,
    profile_facts,
    profiles,
    ts,
)
from tests.engines.test_conformance import at, col, play, profile

FS = catalog()
NAMES = [f.name for f in FS.features]
CONTEXT_COLUMNS = ["member_id", "at", "device", "label"]


def check(
    url: str,
    play_rows: list[dict[str, Any]],
    profile_rows: list[dict[str, Any]],
    context_rows: list[dict[str, Any]],
    deletes: list[tuple[str, float]] = (),  # type: ignore[assignment]
    seed: int = 0,
) -> pa.Table:
    """Assert that online agrees with the reference for every context; return the batch."""
    with tempfile.TemporaryDirectory() as root:
        log = pt.FactLog(f"{root}/log")
        log.ingest(plays, frame(play_rows, PLAY_COLUMNS))
        log.ingest(profiles, frame(profile_rows, PROFILE_COLUMNS))
        for fact_id, hour in deletes:
            log.delete(plays, [fact_id], recorded_at=ts(hour))
        facts = {"plays": log.read(plays), "profiles": log.read(profiles)}
        ctx = frame(context_rows, CONTEXT_COLUMNS)
        expected = reference.evaluate([FS], facts, normalize_contexts(ctx, [FS]))
        online = open_online(url, pt.FactLog(f"{root}/online-log"), [FS], lookback=None)
        try:
            online.reset()
            _push_shuffled(online, facts, random.Random(seed))
            batch = online.get_features_batch(FS.name, ctx)
            assert_same(expected, batch, [*NAMES, "label", "member_id"])
            singles = [
                online.get_features(FS.name, {k: row[k] for k in ("member_id", "at", "device")})
                for row in context_rows
            ]
            one_by_one = pa.Table.from_pylist(singles, schema=batch.select(NAMES).schema)
            assert_same(expected, one_by_one, NAMES)
        finally:
            online.close()
    return batch


def _push_shuffled(online: Any, facts: dict[str, pa.Table], rng: random.Random) -> None:
    """Push every version, in random batches and a random order (corrections before facts)."""
    pieces = []
    for name, table in facts.items():
        order = list(range(table.num_rows))
        rng.shuffle(order)
        size = rng.randint(1, 4)
        for start in range(0, len(order), size):
            pieces.append((name, table.take(pa.array(order[start : start + size], pa.int64()))))
    rng.shuffle(pieces)
    for name, piece in pieces:
        online.push_canonical(name, piece)


def test_strictly_before_t(store_url: str) -> None:
    out = check(store_url, [play(1, 10)], [profile(1, 10)], [at(1, 10), at(1, 10.0001)])
    assert col(out, "plays_all") == [0, 1]
    assert col(out, "country") == [None, "GB"]


def test_recorded_at_must_be_before_t(store_url: str) -> None:
    out = check(
        store_url,
        [play(1, 10, late=2)],
        [profile(1, 10, late=2)],
        [at(1, 11), at(1, 12), at(1, 12.5)],
    )
    assert col(out, "plays_all") == [0, 0, 1]


def test_window_edges(store_url: str) -> None:
    rows = [play(1, 10, title="a"), play(1, 9.5, title="b")]
    out = check(store_url, rows, [], [at(1, 11), at(1, 11 + 1e-9), at(1, 10.5), at(1, 10.6)])
    assert col(out, "plays_1h") == [1, 0, 2, 1]


def test_late_fact_beyond_the_window(store_url: str) -> None:
    out = check(store_url, [play(1, 10, late=30)], [], [at(1, 10.5), at(1, 41), at(1, 39)])
    assert col(out, "plays_all") == [0, 1, 0]


def test_correction_before_and_after_it_is_known(store_url: str) -> None:
    rows = [
        play(1, 10, minutes=5, fact_id="x"),
        {**play(1, 10, minutes=7, fact_id="x"), "recorded_at": ts(12)},
    ]
    out = check(store_url, rows, [], [at(1, 11), at(1, 12), at(1, 12.5)])
    assert col(out, "minutes_sum_all") == [5.0, 5.0, 7.0]


def test_correction_moves_event_time_and_key(store_url: str) -> None:
    rows = [
        play(1, 10, fact_id="x"),
        {**play(2, 3, fact_id="x"), "recorded_at": ts(12)},
        {**play(3, 4, fact_id="x"), "recorded_at": ts(14)},
    ]
    for seed in range(4):  # every arrival order of the three versions
        out = check(
            store_url,
            rows,
            [],
            [at(1, 11), at(1, 13), at(2, 11), at(2, 13), at(2, 15), at(3, 15)],
            seed=seed,
        )
        assert col(out, "plays_all") == [1, 0, 0, 1, 0, 1]


def test_tombstone(store_url: str) -> None:
    out = check(
        store_url,
        [play(1, 10, fact_id="x")],
        [],
        [at(1, 11), at(1, 12), at(1, 13)],
        deletes=[("x", 12)],
    )
    assert col(out, "plays_all") == [1, 1, 0]


def test_ties_in_event_time(store_url: str) -> None:
    rows = [
        play(1, 10, title="a", fact_id="f1"),
        play(1, 10, title="b", fact_id="f2"),
        play(1, 10, title="c", late=0.5, fact_id="f0"),
    ]
    profile_rows = [
        profile(1, 10, country="GB", fact_id="s2"),
        profile(1, 10, country="FR", late=0.5, fact_id="s1"),
    ]
    out = check(store_url, rows, profile_rows, [at(1, 10.25), at(1, 11)])
    assert col(out, "titles_all") == [["b", "a"], ["c", "b", "a"]]
    assert col(out, "country") == ["GB", "FR"]


def test_lookup_ttl_and_latest_event_time(store_url: str) -> None:
    profile_rows = [profile(1, 10, country="GB", age=40), profile(1, 5, country="FR", late=10)]
    out = check(store_url, [], profile_rows, [at(1, 11), at(1, 16), at(1, 20.5)])
    assert col(out, "country") == ["GB", "GB", "GB"]
    assert col(out, "age") == [40, 40, None]


def test_nulls_and_empty_windows(store_url: str) -> None:
    rows = [play(1, 10, minutes=None, title=None, rating=None)]
    out = check(
        store_url, rows, [profile(1, 10, country=None)], [at(1, 10.5), at(1, 20), at(3, 20)]
    )
    assert col(out, "minutes_sum_1h") == [0.0, 0.0, 0.0]
    assert col(out, "titles_1h") == [None, None, None]


def test_arbitrary_floats_and_many_events(store_url: str) -> None:
    values = [0.1, 1e10, 3.3333333, -2.5e-3, 7.77, 1e-7, -1e10]
    rows = [
        play(1, 10 + i * 0.01, minutes=values[i % len(values)], fact_id=f"f{i}") for i in range(300)
    ]
    check(store_url, rows, [], [at(1, h) for h in (10.5, 11.2, 12.1, 13, 16, 40)])


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_property_online_agrees_with_reference(store_url: str, data: st.DataObject) -> None:
    members = [1, 2, 3]
    play_rows = data.draw(play_facts(members))
    profile_rows = data.draw(profile_facts(members))
    ids = sorted({r["fact_id"] for r in play_rows})
    deletes = [
        (fact_id, data.draw(st.integers(0, 60)) + 0.25)
        for fact_id in (
            data.draw(st.lists(st.sampled_from(ids), max_size=3, unique=True)) if ids else []
        )
    ]
    check(
        store_url,
        play_rows,
        profile_rows,
        data.draw(contexts(members)),
        deletes=deletes,
        seed=data.draw(st.integers(0, 1000)),
    )
