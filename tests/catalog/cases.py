"""The case catalog: each conformance case written once, run on every executor.

A case is facts (rows per source, tombstones), contexts, the feature sets, and optionally a
knowledge cutoff. The expected table always comes from the reference evaluator; ``expect``
adds hand-written values for a few columns, which hold the oracle itself to the rule the case
is about. ``run_case`` loads the facts into an executor and compares every column, floats bit
for bit. Marks (``tests/catalog/marks.py``) say which executors a case does not pass, and why.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

import parity as pt
from parity import listagg, reference
from parity.contexts import normalize_contexts
from parity.dtypes import arrow_type, is_nested
from tests.catalog.executors import Executor
from tests.catalog.marks import Mark
from tests.conformance import (
    CONTEXT_COLUMNS,
    assert_same,
    at,
    catalog,
    frame,
    member,
    play,
    plays,
    profile,
    profiles,
    ts,
)

FS = catalog()
CANONICAL_TIMES = ["event_time", "recorded_at", "fact_id"]


@dataclass
class Case:
    """One conformance case (see the module docstring)."""

    name: str
    facts: Mapping[pt.Source, list[dict[str, Any]]]
    contexts: list[dict[str, Any]]
    deletes: Sequence[tuple[pt.Source, str, float]] = ()
    cutoff: datetime | None = None
    feature_sets: Sequence[pt.FeatureSet] = (FS,)
    expect: Mapping[str, list[Any]] = field(default_factory=dict)
    #: convert ``at`` / facts' ``event_time`` to these zones before handing them over
    context_zone: str | None = None
    fact_zone: str | None = None
    #: arrival orders tried on order-sensitive executors (the online stores)
    seeds: Sequence[int] = (0,)
    marks: Sequence[Mark] = ()
    check: Callable[[pa.Table], None] | None = None

    def __str__(self) -> str:
        return self.name


def _columns(source: pt.Source, rows: list[dict[str, Any]]) -> list[str]:
    if rows:
        return list(dict.fromkeys(k for row in rows for k in row))
    return [*source.entity.keys, *source.schema, *CANONICAL_TIMES]


def build_log(root: Path, case: Case) -> pt.FactLog:
    """A fact log holding the case's facts and tombstones."""
    log = pt.FactLog(root)
    for source, rows in case.facts.items():
        facts = frame(rows, _columns(source, rows))
        if case.fact_zone:
            facts["event_time"] = facts["event_time"].dt.tz_convert(case.fact_zone)
        log.ingest(source, _typed_nested(source, facts))
    for source, fact_id, hour in case.deletes:
        log.delete(source, [fact_id], recorded_at=ts(hour))
    return log


def _typed_nested(source: pt.Source, facts: pd.DataFrame) -> pd.DataFrame | pa.Table:
    """The facts as Arrow with nested fields typed as declared, when the source has any.

    pandas infers ``list<null>`` for a column whose lists hold only nulls, and the whole-table
    cast in ``parity.frames._plain_types`` then corrupts it (a pyarrow bug in list<null> ->
    list<null> casts; see ``tests/core/test_nested.py::test_lists_of_only_nulls_from_pandas``).
    """
    nested = [c for c, dtype in source.schema.items() if is_nested(dtype) and c in facts]
    if not nested:
        return facts
    table = pa.Table.from_pandas(facts.drop(columns=nested), preserve_index=False)
    for column in nested:
        values = [None if isinstance(v, float) else v for v in facts[column].tolist()]  # NaN
        table = table.append_column(
            column, pa.array(values, arrow_type(source.schema[column]))
        )
    return table


def context_frame(case: Case) -> pd.DataFrame:
    """The case's contexts as a DataFrame (columns present even without rows)."""
    columns = list(dict.fromkeys(k for row in case.contexts for k in row)) or CONTEXT_COLUMNS
    ctx = frame(case.contexts, columns)
    if case.context_zone:
        ctx["at"] = ctx["at"].dt.tz_convert(case.context_zone)
    return ctx


def run_case(executor: Executor, case: Case, workdir: Path) -> pa.Table:
    """Run ``case`` on ``executor``; assert it agrees with the oracle; return its answer."""
    log = build_log(workdir / "log", case)
    ctx = context_frame(case)
    facts = {s.name: log.read(s) for fs in case.feature_sets for s in fs.sources}
    expected = reference.evaluate(
        case.feature_sets, facts, normalize_contexts(ctx, case.feature_sets), case.cutoff
    )
    for name, values in case.expect.items():
        assert expected.column(name).to_pylist() == values, f"the oracle disagrees on {name}"
    seeds = case.seeds if executor.order_sensitive else case.seeds[:1]
    actual = expected
    for seed in seeds:
        run_dir = workdir / f"{executor.name}-{seed}"
        run_dir.mkdir()
        session = executor.load(run_dir, log, case.feature_sets, case.cutoff, seed)
        try:
            actual = session.evaluate(ctx)
        finally:
            session.close()
        assert actual.column_names == expected.column_names
        assert_same(expected, actual, expected.column_names)
    if case.check is not None:
        case.check(actual)
    return actual


# -- the cases --------------------------------------------------------------------------------


def _utc_at(table: pa.Table) -> None:
    assert table.column("at").type == pa.timestamp("us", tz="UTC")
    assert isinstance(table.column("at").to_pandas().iloc[0], pd.Timestamp)


daily = pt.EventSource("daily", pt.Entity("member", {"member_id": int}), {"v": float}, lag="2h")
DAILY = pt.FeatureSet("d", daily.entity, [pt.Aggregate("n", daily, "count")])

# Names an executor might use for its own working columns, used here as user names.
odd = pt.Entity("odd", {"_row": int})
odd_events = pt.EventSource("odd_events", odd, {"_start": float, "_next": float, "_et": str})
odd_state = pt.StateSource("odd_state", odd, {"w": str, "_ra": int})
ODD = pt.FeatureSet(
    "odd_names",
    odd,
    [
        pt.Aggregate("c0", odd_events, "sum", "_start"),
        pt.Aggregate("s0", odd_events, "count", window="1h"),
        pt.Aggregate("j0", odd_events, "last", "_et"),
        pt.Aggregate("m0_n", odd_events, "mean", "_next", window="5h"),
        pt.Lookup("best", odd_state, "w"),
        pt.Lookup("a", odd_state, "_ra", ttl="10h"),
    ],
)


def _odd_event(row: int, hour: float, i: int) -> dict[str, Any]:
    return {"_row": row, "_start": 1.5 * i, "_next": float(i), "_et": f"e{i}",
            "event_time": ts(hour), "recorded_at": ts(hour), "fact_id": f"o{i}"}


def _money() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rng = random.Random(5)
    rows = [
        play(1 + i % 3, rng.uniform(0, 48), minutes=round(rng.uniform(0, 10_000), 2),
             fact_id=f"m{i}")
        for i in range(600)
    ]
    return rows, [at(1 + i % 3, rng.uniform(0, 60)) for i in range(200)]


_MONEY_FACTS, _MONEY_CONTEXTS = _money()
_FLOATS = [0.1, 1e10, 3.3333333, -2.5e-3, 7.77, 1e-7, -1e10]

CASES: list[Case] = [
    Case(
        "strictly_before_t",
        {plays: [play(1, 10)], profiles: [profile(1, 10)]},
        [at(1, 10), at(1, 10.0001)],
        expect={"plays_all": [0, 1], "country": [None, "GB"]},
    ),
    Case(
        "recorded_at_must_be_before_t",
        {plays: [play(1, 10, late=2)], profiles: [profile(1, 10, late=2)]},
        [at(1, 11), at(1, 12), at(1, 12.5)],
        expect={"plays_all": [0, 0, 1], "country": [None, None, "GB"]},
    ),
    Case(  # [t - 1h, t): an event exactly 1h before t is in, a microsecond older is out
        "window_edges",
        {plays: [play(1, 10, title="a"), play(1, 9.5, title="b")]},
        [at(1, 11), at(1, 11 + 1e-9), at(1, 10.5), at(1, 10.6)],
        expect={"plays_1h": [1, 0, 2, 1]},
    ),
    Case(  # recorded 30h late: never inside a 1h, 5h or 24h window while visible
        "late_fact_beyond_the_window",
        {plays: [play(1, 10, late=30)]},
        [at(1, 10.5), at(1, 41), at(1, 39)],
        expect={"plays_24h": [0, 0, 0], "plays_all": [0, 1, 0]},
    ),
    Case(
        "correction_before_and_after_it_is_known",
        {plays: [play(1, 10, minutes=5, fact_id="x"),
                 {**play(1, 10, minutes=7, fact_id="x"), "recorded_at": ts(12)}]},
        [at(1, 11), at(1, 12), at(1, 12.5)],
        expect={"minutes_sum_all": [5.0, 5.0, 7.0]},
    ),
    Case(
        "correction_moves_event_time_and_key",
        {plays: [play(1, 10, fact_id="x"), {**play(2, 3, fact_id="x"), "recorded_at": ts(12)}]},
        [at(1, 11), at(1, 13), at(2, 11), at(2, 13)],
        expect={"plays_all": [1, 0, 0, 1], "plays_5h": [1, 0, 0, 0]},
    ),
    Case(  # three versions across three entities, in every arrival order online
        "correction_moves_across_three_entities",
        {plays: [play(1, 10, fact_id="x"), {**play(2, 3, fact_id="x"), "recorded_at": ts(12)},
                 {**play(3, 4, fact_id="x"), "recorded_at": ts(14)}]},
        [at(1, 11), at(1, 13), at(2, 11), at(2, 13), at(2, 15), at(3, 15)],
        expect={"plays_all": [1, 0, 0, 1, 0, 1]},
        seeds=range(4),  # odd seeds materialize, even ones push
    ),
    Case(
        "tombstone",
        {plays: [play(1, 10, fact_id="x")]},
        [at(1, 11), at(1, 12), at(1, 13)],
        deletes=[(plays, "x", 12)],
        expect={"plays_all": [1, 1, 0]},
    ),
    Case(
        "ties_in_event_time",
        {plays: [play(1, 10, title="a", fact_id="f1"), play(1, 10, title="b", fact_id="f2"),
                 play(1, 10, title="c", late=0.5, fact_id="f0")],
         profiles: [profile(1, 10, country="GB", fact_id="s2"),
                    profile(1, 10, country="FR", late=0.5, fact_id="s1")]},
        [at(1, 10.25), at(1, 11)],
        expect={"title_last_all": ["b", "c"], "titles_all": [["b", "a"], ["c", "b", "a"]],
                "country": ["GB", "FR"]},
    ),
    Case(
        "lookup_takes_latest_event_time_not_latest_arrival",
        {profiles: [profile(1, 10, country="GB"), profile(1, 5, country="FR", late=10)]},
        [at(1, 11), at(1, 16)],
        expect={"country": ["GB", "GB"]},
    ),
    Case(
        "ttl",
        {profiles: [profile(1, 10, age=40)]},
        [at(1, 19), at(1, 20), at(1, 20.5)],
        expect={"age": [40, 40, None]},
    ),
    Case(
        "lookup_ttl_and_latest_event_time",
        {profiles: [profile(1, 10, country="GB", age=40), profile(1, 5, country="FR", late=10)]},
        [at(1, 11), at(1, 16), at(1, 20.5)],
        expect={"country": ["GB", "GB", "GB"], "age": [40, 40, None]},
    ),
    Case(
        "nulls_and_empty_windows",
        {plays: [play(1, 10, minutes=None, title=None, rating=None)],
         profiles: [profile(1, 10, country=None)]},
        [at(1, 10.5), at(1, 20), at(3, 20)],
        expect={"plays_1h": [1, 0, 0], "minutes_count_1h": [0, 0, 0],
                "minutes_sum_1h": [0.0, 0.0, 0.0], "minutes_mean_1h": [None, None, None],
                "titles_distinct_1h": [0, 0, 0], "titles_1h": [None, None, None],
                "country": [None, None, None]},
    ),
    Case(  # no recorded_at: the source's lag sets it (event_time + 2h)
        "lag_sets_recorded_at_for_history",
        {daily: [{"member_id": 1, "v": 1.0, "event_time": ts(10)}]},
        [at(1, 11), at(1, 12), at(1, 12.1)],
        feature_sets=(DAILY,),
        expect={"n": [0, 0, 1]},
    ),
    Case(
        "knowledge_cutoff",
        {plays: [play(1, 10), play(1, 11, late=5)]},
        [at(1, 20)],
        cutoff=ts(12),
        expect={"plays_all": [1]},
    ),
    Case(
        "time_zone_offsets_are_converted",
        {plays: [play(1, 10.75)]},
        [at(1, 11)],
        context_zone="Asia/Kolkata",  # the same instants, +05:30
        fact_zone="America/New_York",
        expect={"plays_1h": [1]},
        check=_utc_at,
    ),
    Case(
        "arbitrary_floats",
        {plays: [play(1, 10 + i * 0.5, minutes=v, fact_id=f"f{i}")
                 for i, v in enumerate(_FLOATS[:6])]},
        [at(1, h) for h in (10.5, 11.2, 12.1, 13, 16, 40)],
    ),
    Case(
        "arbitrary_floats_and_many_events",
        {plays: [play(1, 10 + i * 0.01, minutes=_FLOATS[i % len(_FLOATS)], fact_id=f"f{i}")
                 for i in range(300)]},
        [at(1, h) for h in (10.5, 11.2, 12.1, 13, 16, 40)],
    ),
    Case(
        "context_order_and_pass_through_columns",
        {plays: [play(1, 1), play(2, 2)]},
        [at(2, 5, label=7), at(1, 5, label=8), at(2, 1, label=9)],
        expect={"label": [7, 8, 9], "plays_all": [1, 1, 0]},
    ),
    Case(
        "no_facts_at_all",
        {plays: [], profiles: []},
        [at(1, 5)],
        expect={"plays_all": [0], "country": [None]},
    ),
    Case(  # a correction recorded at T changes nothing for contexts at or before T
        "correction_timestamps_never_leak",
        {plays: [play(1, 1, minutes=1, fact_id="x"),
                 {**play(1, 1, minutes=100, fact_id="x"), "recorded_at": ts(5) + timedelta(0)}]},
        [at(1, h) for h in (2, 4.9, 5, 5.0001)],
        expect={"minutes_sum_all": [1.0, 1.0, 1.0, 100.0]},
    ),
    Case(  # 2-decimal amounts sum to math.fsum's double: one ulp can flip a tree's split
        "money_sums_are_bit_exact",
        {plays: _MONEY_FACTS},
        _MONEY_CONTEXTS,
    ),
    Case(  # found by the online replay: the engine once skipped such files unread
        "correction_into_a_future_day_retires_the_old_version",
        {plays: [play(1, 0, fact_id="p0"), play(1, 0, fact_id="p1"),
                 {**play(1, 24, fact_id="p1"), "recorded_at": ts(0.5)}]},
        [at(1, 0.25), at(1, 0.75)],
        expect={"plays_all": [2, 1]},
    ),
    Case(  # user names that look like an executor's working columns
        "user_names_never_collide_with_working_columns",
        {odd_events: [_odd_event(1, 1, 0), _odd_event(1, 2, 1), _odd_event(2, 2.5, 2)],
         odd_state: [{"_row": 1, "w": "x", "_ra": 3, "event_time": ts(1),
                      "recorded_at": ts(1), "fact_id": "w1"}]},
        [{"_row": r, "at": ts(h), "_t": "pass", "#row": -1, "c0_": h}
         for r, h in ((1, 3), (2, 3), (1, 0.5), (3, 3))],
        feature_sets=(ODD,),
        expect={"c0": [1.5, 3.0, 0.0, 0.0], "s0": [1, 1, 0, 0], "best": ["x", None, None, None],
                "#row": [-1, -1, -1, -1]},
    ),
]
CASES.append(
    Case(  # the repro: a context column "_row" once crashed training_set
        "context_column_named_row",
        {plays: [play(1, 1)]},
        [{**at(1, 5, label=1), "_row": 10}, {**at(2, 5, label=2), "_row": 11}],
        expect={"_row": [10, 11], "plays_all": [1, 0]},
    )
)


# -- nested values (issue 14: snapshots of live services) -------------------------------------

_RECS = "list<struct<item:str,score:float>>"
snapshots = pt.StateSource(
    "rec_snapshots", member,
    {"recs": _RECS, "top": {"item": str, "score": float, "seen": "timestamp"}, "tags": ["str"]},
)
responses = pt.EventSource("rec_responses", member, {"recs": _RECS})
_recs = pt.Lookup("recs", snapshots, "recs")
_last = pt.Aggregate("last_recs", responses, "last", "recs")
NESTED = pt.FeatureSet(
    "nested",
    member,
    [
        _recs,
        pt.Lookup("top", snapshots, "top"),
        pt.Lookup("tags", snapshots, "tags", ttl="10h"),
        _last,
        pt.Aggregate("last_recs_5h", responses, "last", "recs", window="5h"),
        listagg.transform("n_recs", "count", of=_recs),
        listagg.transform("mean_score", "mean", of=_recs, field="score"),
        listagg.transform("max_score", "max", of=_recs, field="score"),
        listagg.transform("sum_score", "sum", of=_recs, field="score"),
        listagg.transform("first_item", "min", of=_recs, field="item"),
        listagg.transform("n_items", "count_distinct", of=_recs, field="item"),
        listagg.transform("n_tags", "count", of="tags"),
        listagg.transform("n_last", "count", of=_last),
    ],
)


def _recs_of(*pairs: tuple[str | None, float | None]) -> list[dict[str, Any]]:
    return [{"item": item, "score": score} for item, score in pairs]


def snap(
    member: int, hour: float, recs: Any = (), top: Any = None, tags: Any = None,
    late: float = 0, fact_id: str | None = None,
) -> dict[str, Any]:
    """A snapshot of the recommendation service for ``member`` taken at T0 + ``hour``:
    ``event_time = recorded_at`` (plus ``late`` hours for a correction or a late load)."""
    return {
        "member_id": member,
        "recs": list(recs) if isinstance(recs, (list, tuple)) else recs,
        "top": top,
        "tags": tags,
        "event_time": ts(hour),
        "recorded_at": ts(hour + late),
        "fact_id": fact_id or f"snap-{member}-{hour}",
    }


def response(member: int, hour: float, recs: Any, fact_id: str) -> dict[str, Any]:
    """An event of ``rec_responses``: a response served at T0 + ``hour``."""
    return {"member_id": member, "recs": recs, "event_time": ts(hour), "recorded_at": ts(hour),
            "fact_id": fact_id}


_AB = _recs_of(("a", 0.5), ("b", 0.25))
_C = _recs_of(("c", 2.0))
NESTED_CASES: list[Case] = [
    Case(  # a snapshot taken at t is visible only to contexts after t, strictly
        "nested_snapshot_visible_strictly_after_t",
        {snapshots: [snap(1, 10, _AB, top={"item": "a", "score": 0.5, "seen": ts(9)},
                          tags=["x", "y"])],
         responses: [response(1, 10, _AB, "r1")]},
        [at(1, 10), at(1, 10.0001), at(2, 11)],
        feature_sets=(NESTED,),
        expect={"recs": [None, _AB, None], "n_recs": [None, 2, None],
                "mean_score": [None, 0.375, None], "last_recs": [None, _AB, None],
                "top": [None, {"item": "a", "score": 0.5, "seen": ts(9)}, None],
                "n_tags": [None, 2, None], "n_last": [None, 2, None]},
    ),
    Case(  # a later snapshot replaces an earlier one from the moment it is taken
        "nested_later_snapshot_replaces_earlier",
        {snapshots: [snap(1, 10, _AB), snap(1, 12, _C)],
         responses: [response(1, 10, _AB, "r1"), response(1, 12, _C, "r2")]},
        [at(1, 11), at(1, 12), at(1, 12.5), at(1, 17.5)],
        feature_sets=(NESTED,),
        expect={"recs": [_AB, _AB, _C, _C], "max_score": [0.5, 0.5, 2.0, 2.0],
                "last_recs": [_AB, _AB, _C, _C], "last_recs_5h": [_AB, _AB, _C, None]},
    ),
    Case(  # an empty list is known and empty: count 0, sum 0, mean/max unknown
        "nested_empty_lists",
        {snapshots: [snap(1, 10, [], tags=[])], responses: [response(1, 10, [], "r1")]},
        [at(1, 11)],
        feature_sets=(NESTED,),
        expect={"recs": [[]], "n_recs": [0], "sum_score": [0.0], "mean_score": [None],
                "max_score": [None], "n_items": [0], "tags": [[]], "n_tags": [0],
                "last_recs": [[]], "n_last": [0]},
    ),
    Case(  # null struct fields and null list elements are skipped, never read as 0
        "nested_null_struct_fields",
        {snapshots: [snap(1, 10, [*_recs_of(("a", None), (None, 1.0)), None],
                          top={"item": None, "score": None, "seen": None},
                          tags=["x", None])]},
        [at(1, 11)],
        feature_sets=(NESTED,),
        expect={"n_recs": [2], "mean_score": [1.0], "first_item": ["a"], "n_items": [1],
                "top": [{"item": None, "score": None, "seen": None}], "n_tags": [1]},
    ),
    Case(  # a null whole value is unknown: every listagg gives null, count too
        "nested_null_whole_value",
        {snapshots: [snap(1, 10, None, top=None, tags=None)],
         responses: [response(1, 10, None, "r1")]},
        [at(1, 11)],
        feature_sets=(NESTED,),
        expect={"recs": [None], "n_recs": [None], "sum_score": [None], "top": [None],
                "last_recs": [None], "n_last": [None]},
    ),
    Case(  # a correction (same fact id, later recorded_at) replaces the snapshot from then on
        "nested_correction",
        {snapshots: [snap(1, 10, _AB, fact_id="s"), snap(1, 10, _C, late=3, fact_id="s")],
         responses: [response(1, 10, _AB, "r"), {**response(1, 10, _C, "r"),
                                                  "recorded_at": ts(13)}]},
        [at(1, 11), at(1, 13), at(1, 13.5)],
        feature_sets=(NESTED,),
        expect={"recs": [_AB, _AB, _C], "last_recs": [_AB, _AB, _C]},
        seeds=range(4),
    ),
    Case(
        "nested_tombstone",
        {snapshots: [snap(1, 8, _C), snap(1, 10, _AB, fact_id="s")],
         responses: [response(1, 10, _AB, "r")]},
        [at(1, 11), at(1, 12), at(1, 12.5)],
        deletes=[(snapshots, "s", 12), (responses, "r", 12)],
        feature_sets=(NESTED,),
        expect={"recs": [_AB, _AB, _C], "last_recs": [_AB, _AB, None]},
    ),
    Case(
        "nested_knowledge_cutoff",
        {snapshots: [snap(1, 10, _AB), snap(1, 11, _C, late=5)],
         responses: [response(1, 10, _AB, "r1"), {**response(1, 11, _C, "r2"),
                                                   "recorded_at": ts(16)}]},
        [at(1, 20)],
        cutoff=ts(12),
        feature_sets=(NESTED,),
        expect={"recs": [_AB], "last_recs": [_AB]},
    ),
    Case(  # rule 2's order for last: event_time, then recorded_at, then fact id
        "nested_last_ties",
        {responses: [response(1, 10, _AB, "f1"), response(1, 10, _C, "f2")]},
        [at(1, 11)],
        feature_sets=(NESTED,),
        expect={"last_recs": [_C]},
    ),
]
CASES.extend(NESTED_CASES)
