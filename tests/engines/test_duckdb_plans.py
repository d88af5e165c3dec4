"""The DuckDB engine's plan choices: lookups through one ASOF step table (with an exact path
for irregular keys), and running sums chosen from the real key distribution, not the mean.

Answers are checked against the reference evaluator; no test depends on timing.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

import parity as pt
from parity import reference
from parity._duck import connect
from parity.contexts import normalize_contexts
from parity.engines.duckdb import DuckDBEngine, lookups
from parity.engines.duckdb.sql import versions_sql
from tests.conformance import (
    CONTEXT_COLUMNS,
    PLAY_COLUMNS,
    PROFILE_COLUMNS,
    assert_same,
    at,
    frame,
    member,
    play,
    plays,
    profile,
    profiles,
    ts,
)

LOOKUPS = pt.FeatureSet(
    "lookups",
    member,
    [
        pt.Lookup("country", profiles, "country"),
        pt.Lookup("age", profiles, "age", ttl="10h"),
        pt.Lookup("score", profiles, "score"),
    ],
)


def _profile_log(root: Path) -> pt.FactLog:
    """Key 1 regular; 2 a late version (older event_time, started later); 3 corrected;
    4 deleted; 5 two versions starting at the same moment; 6 corrected before it was visible."""
    log = pt.FactLog(root)
    rows = [
        profile(1, 1, "GB"),
        profile(1, 3, "FR"),
        profile(1, 8, "DE", late=1),
        profile(2, 1, "GB"),
        profile(2, 4, "FR"),
        profile(2, 2, "ES", late=5),
        profile(3, 1, "GB", fact_id="c"),
        profile(3, 5, "IT"),
        profile(4, 1, "GB", fact_id="d"),
        profile(4, 2, "FR"),
        profile(5, 2, "GB", late=2),
        profile(5, 4, "FR"),
        profile(6, 10, "PT", late=-8, fact_id="e"),
    ]
    log.ingest(profiles, frame(rows, PROFILE_COLUMNS))
    corrections = [
        {**profile(3, 1, "NL", fact_id="c"), "recorded_at": ts(7)},
        {**profile(6, 10, "SE", fact_id="e"), "recorded_at": ts(3)},
    ]
    log.ingest(profiles, frame(corrections, PROFILE_COLUMNS))
    log.delete(profiles, ["d"], recorded_at=ts(6))
    return log


def _contexts(members: list[int]) -> pa.Table:
    rows = [at(m, h / 2) for m in members for h in range(0, 30)]
    return normalize_contexts(frame(rows, CONTEXT_COLUMNS), [LOOKUPS])


def test_irregular_keys_are_exactly_those_needing_the_exact_path(tmp_path: Path) -> None:
    """Only keys with late versions, ties, corrections or tombstones leave the fast path."""
    log = _profile_log(tmp_path)
    con = connect()
    con.execute(f"CREATE TEMP TABLE v AS {versions_sql(profiles, log.paths(profiles), None)}")
    got = {row[0] for row in con.execute(lookups.irregular_keys_sql(["member_id"])).fetchall()}
    assert got == {2, 3, 4, 5, 6}


@pytest.mark.parametrize("plan", ["auto", "join"])
def test_lookups_mixing_regular_and_irregular_keys_match_the_reference(
    tmp_path: Path, plan: str
) -> None:
    log = _profile_log(tmp_path)
    contexts = _contexts([1, 2, 3, 4, 5, 6, 7])
    got = DuckDBEngine(memory_limit="1GB", threads=2, plan=plan).training_set(
        contexts, [LOOKUPS], log
    )
    want = reference.evaluate([LOOKUPS], {"profiles": log.read(profiles)}, contexts)
    assert_same(want, got, [f.name for f in LOOKUPS.features])


def _skewed_log(root: Path) -> pt.FactLog:
    """One heavy key (400 plays) and 400 light keys (one play each)."""
    rows = [play(0, i / 20) for i in range(400)] + [play(k, 1.0) for k in range(1, 401)]
    log = pt.FactLog(root)
    log.ingest(plays, frame(rows, PLAY_COLUMNS))
    return log


def _chosen(log: pt.FactLog, context_members: list[int], window: str) -> set[int | None]:
    feature = pt.Aggregate("n", plays, "count", window=window)
    engine = DuckDBEngine(plan="auto")
    con = connect()
    con.execute(f"CREATE TEMP TABLE v AS {versions_sql(plays, log.paths(plays), None)}")
    con.execute(
        "CREATE TEMP TABLE ctx AS SELECT unnest(?::BIGINT[]) AS member_id", [context_members]
    )
    return engine._sweep_windows(con, ["member_id"], (feature,), len(context_members))


def test_auto_plan_reads_heavy_keys_not_the_average(tmp_path: Path) -> None:
    """The average key has 2 plays (a join looks cheap); the contexts all sit on the heavy key
    with 400, so a join would make 400 pairs per context: running sums are chosen."""
    log = _skewed_log(tmp_path)
    heavy = _chosen(log, [0] * 300, "24h")
    assert heavy == {pt.Aggregate("n", plays, "count", window="24h").window_us}
    assert _chosen(log, list(range(1, 301)), "24h") == set()  # light keys: a join is cheap


def test_auto_plan_joins_a_few_contexts_over_a_long_history(tmp_path: Path) -> None:
    """Two contexts on the heavy key make 800 pairs, 400 per context (above ``dense_events``)
    but one per version: a sweep would sort all 800 versions for two answers, so they join.
    (A 2,000-context sample over 10M events once swept out of memory this way.)"""
    log = _skewed_log(tmp_path)
    assert _chosen(log, [0, 0], "24h") == set()


def test_skewed_keys_give_the_reference_answer_on_every_plan(tmp_path: Path) -> None:
    log = _skewed_log(tmp_path)
    fs = pt.FeatureSet(
        "skewed",
        member,
        [
            pt.Aggregate("n_24h", plays, "count", window="24h"),
            pt.Aggregate("sum_1h", plays, "sum", "minutes", "1h"),
            pt.Aggregate("mean_all", plays, "mean", "minutes"),
        ],
    )
    rows = [at(0, h / 3) for h in range(0, 80)] + [at(k, 2.0) for k in range(1, 40)]
    contexts = normalize_contexts(frame(rows, CONTEXT_COLUMNS), [fs])
    want = reference.evaluate([fs], {"plays": log.read(plays)}, contexts)
    for plan in ("auto", "sweep", "join"):
        got = DuckDBEngine(memory_limit="1GB", threads=2, plan=plan).training_set(
            contexts, [fs], log
        )
        assert_same(want, got, [f.name for f in fs.features])
