"""The consistency proof: facts replayed through the online path (with eviction on) agree with
the Time Machine at every moment asked, on every backend, for hand-made and generated facts."""

from __future__ import annotations

import tempfile
from typing import Any

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import parity as pt
from parity.engines.duckdb import DuckDBEngine
from parity.skew import compare_features, replay
from tests.conformance import (
    PLAY_COLUMNS,
    PROFILE_COLUMNS,
    catalog,
    frame,
    member,
    play,
    play_facts,
    plays,
    profile,
    profile_facts,
    profiles,
    ts,
)

FS = catalog()
# Only what tiles serve (count, sum, mean, min, max): requests after an entity's latest
# version read tiles, earlier ones raw facts (parity.online.tileread).
TILED = pt.FeatureSet(
    "member_tiled",
    member,
    [
        pt.Aggregate(f"{name}_{window or 'all'}", plays, function, field, window)
        for window in (None, "1h", "5h")
        for name, function, field in (
            ("plays", "count", None),
            ("minutes_count", "count", "minutes"),
            ("minutes_sum", "sum", "minutes"),
            ("minutes_mean", "mean", "minutes"),
            ("rating_sum", "sum", "rating"),
            ("rating_mean", "mean", "rating"),
            ("minutes_min", "min", "minutes"),
            ("rating_max", "max", "rating"),
        )
    ],
)
ENGINE = DuckDBEngine(memory_limit="1GB", threads=2)


def logged(
    play_rows: list[dict[str, Any]],
    profile_rows: list[dict[str, Any]],
    deletes: list[tuple[str, float]] = (),
) -> dict[str, pa.Table]:  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as root:
        log = pt.FactLog(root)
        log.ingest(plays, frame(play_rows, PLAY_COLUMNS))
        log.ingest(profiles, frame(profile_rows, PROFILE_COLUMNS))
        for fact_id, hour in deletes:
            log.delete(plays, [fact_id], recorded_at=ts(hour))
        return {"plays": log.read(plays), "profiles": log.read(profiles)}


def test_replay_with_late_facts_corrections_and_ties(store_url: str) -> None:
    rows = [
        play(1, h, minutes=h, title="abc"[int(h) % 3], fact_id=f"p{h}")
        for h in (1, 1, 1.5, 2, 2, 3, 7, 9.5, 10)
    ]
    rows += [
        play(2, 4, late=3, fact_id="late"),
        play(1, 0.5, late=30, fact_id="very-late"),
        {**play(2, 8, minutes=99, fact_id="p1"), "recorded_at": ts(11)},
    ]
    profile_rows = [
        profile(1, 1),
        profile(1, 5, country="FR", late=2),
        {**profile(1, 5, country="DE", fact_id="s-1-5"), "recorded_at": ts(9)},
        profile(2, 3, age=50),
    ]
    facts = logged(rows, profile_rows, deletes=[("p9.5", 12)])
    for lookback in ("2h", None):
        report = replay(
            [FS],
            facts,
            ENGINE,
            store_url,
            requests=150,
            lookback=lookback,
            request_values={"device": "tv"},
            seed=3,
            max_segments=1,
        )
        assert report.ok, report.summary()
        assert report.rows == 150  # exactly as many requests as asked


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_property_replay_agrees_with_time_machine(store_url: str, data: st.DataObject) -> None:
    members = [1, 2, 3]
    play_rows = data.draw(play_facts(members))
    profile_rows = data.draw(profile_facts(members))
    ids = sorted({r["fact_id"] for r in play_rows})
    deletes = [
        (f, data.draw(st.integers(0, 60)) + 0.25)
        for f in (data.draw(st.lists(st.sampled_from(ids), max_size=2, unique=True)) if ids else [])
    ]
    facts = logged(play_rows, profile_rows, deletes)
    report = replay(
        [FS],
        facts,
        ENGINE,
        store_url,
        requests=40,
        batch=data.draw(st.sampled_from([1, 3])),
        lookback=data.draw(st.sampled_from(["30m", "2h", None])),
        seed=data.draw(st.integers(0, 99)),
        max_segments=data.draw(st.sampled_from([1, 2, 8])),
    )
    assert report.ok, report.summary()


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_property_replay_from_tiles_agrees_with_time_machine(
    store_url: str, data: st.DataObject
) -> None:
    members = [1, 2, 3]
    play_rows = data.draw(play_facts(members))
    ids = sorted({r["fact_id"] for r in play_rows})
    deletes = [
        (f, data.draw(st.integers(0, 60)) + 0.25)
        for f in (data.draw(st.lists(st.sampled_from(ids), max_size=2, unique=True)) if ids else [])
    ]
    facts = logged(play_rows, [], deletes)
    report = replay(
        [TILED],
        {"plays": facts["plays"]},
        ENGINE,
        store_url,
        requests=40,
        batch=data.draw(st.sampled_from([1, 3])),
        lookback=data.draw(st.sampled_from(["30m", "2h", None])),
        seed=data.draw(st.integers(0, 99)),
        max_segments=data.draw(st.sampled_from([1, 2, 8])),
    )
    assert report.ok, report.summary()


def test_compare_features_reports_rates_and_first_rows() -> None:
    expected = pa.table({"k": [1, 2, 3], "f": [1.0, 2.0, None], "g": [["a"], ["b"], []]})
    actual = pa.table({"k": [1, 2, 3], "f": [1.0 + 1e-12, 2.5, None], "g": [["a"], ["c"], []]})
    report = compare_features(expected, actual, ["f", "g"], id_columns=["k"])
    # Floats must agree bit for bit: 1e-12 off is skew (it can flip a tree split).
    assert report.mismatches == {"f": 2, "g": 1} and not report.ok
    assert report.rate("f") == 2 / 3
    assert [m.ids for m in report.first] == [{"k": 1}, {"k": 2}, {"k": 2}]
    assert "SKEW" in report.summary() and "expected 2.0, got 2.5" in report.summary()


def test_replay_of_nothing_is_ok() -> None:
    report = replay([FS], {}, ENGINE, "memory://", requests=5)
    assert report.ok and report.rows == 0
