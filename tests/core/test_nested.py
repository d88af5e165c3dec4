"""Nested value types (``list<...>``, ``struct<...>``) as fact fields: declaring them, ingesting
them exactly, hashing them into fact ids, storing them online, and ``parity.listagg``.

The time rules over nested values run in the shared catalog (``tests/catalog/cases.py``,
``NESTED_CASES``); the property test below draws nested facts and runs them through the same
catalog fixture, on every executor, against the reference evaluator.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import parity as pt
from parity import listagg
from parity.dtypes import (
    arrow_type,
    can_cast,
    decode_nested,
    encode_column,
    encode_nested,
    is_nested,
    list_element,
    normalize_dtype,
    struct_fields,
)
from parity.errors import DefinitionError, SchemaError, TransformError
from parity.fact_ids import SMALL_BATCH, pandas_fact_ids, small_fact_ids
from parity.facts import normalize_facts
from parity.online.base import Block, decode, encode, nested_objects
from parity.transforms import apply_batch, apply_row
from tests.archive.executor import ARCHIVE_EXECUTORS
from tests.catalog.cases import NESTED, Case, run_case, snapshots
from tests.catalog.cases import responses as responses_source
from tests.catalog.executors import EXECUTORS, Executor
from tests.conformance import contexts, hours, hypothesis_examples, lateness, quarter, ts

UTC = timezone.utc
RECS = "list<struct<item:str,score:float>>"
member = pt.Entity("member", {"member_id": int})


# -- declaring ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "canonical"),
    [
        ("list<struct<item:str,score:float>>", RECS),
        (" list < struct < item : str , score : float > > ", RECS),
        ([{"item": str, "score": "float"}], RECS),
        (
            {"a": ["int"], "b": {"c": datetime, "d": bool}},
            "struct<a:list<int>,b:struct<c:timestamp,d:bool>>",
        ),
        ("list<list<str>>", "list<list<str>>"),
        (["str"], "list<str>"),
        ("int", "int"),
        (float, "float"),
    ],
)
def test_normalize_dtype_accepts_nested_specs(spec: Any, canonical: str) -> None:
    assert normalize_dtype(spec, "field x") == canonical
    assert normalize_dtype(canonical, "field x") == canonical  # canonical is a fixed point


@pytest.mark.parametrize(
    "spec",
    [
        "list<>",
        "list<str",
        "list<str>>",
        "struct<>",
        "struct<a:int,a:str>",
        "struct<a int>",
        "map<str,int>",
        "struct<1a:int>",
        "list<strr>",
        [],
        ["str", "int"],
        {},
        {"a": "nope"},
        {"a b": int},
        3,
    ],
)
def test_bad_nested_specs_name_the_field_and_show_an_example(spec: Any) -> None:
    with pytest.raises(DefinitionError) as info:
        pt.StateSource("snap", member, {"recs": spec})
    message = str(info.value)
    assert "source 'snap' field 'recs'" in message
    assert "list<struct<item:str,score:float>>" in message


def test_arrow_types_and_helpers() -> None:
    assert arrow_type(RECS) == pa.list_(
        pa.struct([pa.field("item", pa.string()), pa.field("score", pa.float64())])
    )
    assert arrow_type("struct<t:timestamp>") == pa.struct([("t", pa.timestamp("us", "UTC"))])
    assert is_nested(RECS) and is_nested("struct<a:int>") and not is_nested("str")
    assert list_element(RECS) == "struct<item:str,score:float>" and list_element("int") is None
    assert struct_fields("struct<a:int,b:list<str>>") == {"a": "int", "b": "list<str>"}
    assert struct_fields(RECS) is None
    found = pa.large_list(pa.struct([("score", pa.int32()), ("item", pa.large_string())]))
    assert can_cast(found, RECS) and can_cast(pa.null(), RECS)
    assert not can_cast(pa.list_(pa.string()), RECS) and not can_cast(pa.string(), RECS)
    assert can_cast(pa.string(), "timestamp") and can_cast(
        pa.dictionary(pa.int8(), pa.string()), "str"
    )  # top-level rules unchanged


@pytest.mark.parametrize(
    "function", ["count", "sum", "mean", "min", "max", "last_k", "count_distinct"]
)
def test_aggregates_over_a_nested_field_are_refused_except_last(function: str) -> None:
    events = pt.EventSource("responses", member, {"recs": RECS})
    with pytest.raises(DefinitionError) as info:
        pt.Aggregate("bad", events, function, "recs", k=2 if function == "last_k" else None)
    message = str(info.value)
    assert "aggregate 'bad'" in message and "nested" in message
    assert "Lookup" in message and "listagg" in message
    assert pt.Aggregate("ok", events, "last", "recs").dtype == RECS


def test_a_transform_cannot_return_a_nested_value() -> None:
    with pytest.raises(DefinitionError, match="transform 'items'.*nested"):
        pt.Transform("items", lambda recs: recs, dtype=RECS)


# -- ingesting ---------------------------------------------------------------------------------


SNAP = pt.StateSource("snap", member, {"recs": RECS, "meta": {"at": "timestamp", "n": int}})


def _facts(recs: Any, meta: Any = None) -> pa.Table:
    return pa.table(
        {
            "member_id": pa.array([1], pa.int64()),
            "recs": recs,
            "meta": meta if meta is not None else pa.nulls(1),
            "event_time": pa.array([ts(1)], pa.timestamp("us", "UTC")),
        }
    )


def test_ingestion_accepts_matching_nested_columns_from_arrow_and_pandas() -> None:
    recs = [[{"score": 1, "item": "a"}, None], [], None]  # field order and int -> float
    frame = pd.DataFrame(
        {
            "member_id": [1, 2, 3],
            "recs": recs,
            "meta": [None, {"at": ts(0), "n": 2}, None],
            "event_time": [ts(1)] * 3,
        }
    )
    table = normalize_facts(SNAP, frame)
    assert table.schema.field("recs").type == arrow_type(RECS)
    assert table.column("recs").to_pylist() == [[{"item": "a", "score": 1.0}, None], [], None]
    assert table.column("meta").to_pylist()[1] == {"at": ts(0), "n": 2}


@pytest.mark.parametrize(
    ("recs", "found"),
    [
        ([[{"item": "a"}]], "lacks struct field 'score'"),
        ([[{"item": "a", "score": "high"}]], "value[].score is string, expected 'float'"),
        ([[{"item": "a", "score": 1.0, "rank": 1}]], "has struct field 'rank'"),
        ([["a", "b"]], "expected a struct"),
        ([{"item": "a", "score": 1.0}], "expected a list"),
        (["a"], "expected a list"),
    ],
)
def test_ingestion_refuses_a_mismatched_nested_column(recs: Any, found: str) -> None:
    with pytest.raises(SchemaError) as info:
        normalize_facts(SNAP, _facts(pa.array(recs)))
    message = str(info.value)
    assert "column 'recs'" in message and RECS in message and found in message


def test_ingestion_refuses_naive_timestamps_and_non_finite_floats_inside() -> None:
    naive = pa.array([{"at": datetime(2024, 1, 1), "n": 1}])
    with pytest.raises(SchemaError, match="column 'meta'.*needs a time zone"):
        normalize_facts(SNAP, _facts(pa.nulls(1, arrow_type(RECS)), naive))
    for bad in (float("nan"), float("inf")):
        recs = pa.array([[{"item": "a", "score": bad}]], arrow_type(RECS))
        with pytest.raises(SchemaError, match=r"column 'recs' holds NaN or infinity at value\[\]"):
            normalize_facts(SNAP, _facts(recs))


def test_lists_of_only_nulls_from_pandas(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "member_id": [1, 1],
            "recs": [[None], [None, None, None]],
            "meta": [None, None],
            "event_time": [ts(1), ts(2)],
            "fact_id": ["a", "b"],
        }
    )
    log = pt.FactLog(tmp_path)
    log.ingest(SNAP, frame)
    assert log.read(SNAP).column("recs").to_pylist() == [[None], [None, None, None]]


def test_fact_log_stores_nested_columns_natively(tmp_path: Path) -> None:
    log = pt.FactLog(tmp_path)
    log.ingest(SNAP, _facts(pa.array([[{"item": "a", "score": 0.5}]], arrow_type(RECS))))
    files = list((tmp_path / "snap").rglob("*.parquet"))
    assert files and pq.read_schema(files[0]).field("recs").type == arrow_type(RECS)
    assert log.read(SNAP).column("recs").to_pylist() == [[{"item": "a", "score": 0.5}]]


# -- fact ids ----------------------------------------------------------------------------------

EVENTS = pt.EventSource("responses", member, {"recs": RECS, "meta": {"at": "timestamp"}})
_recs_values = st.one_of(
    st.none(),
    st.lists(
        st.one_of(
            st.none(),
            st.fixed_dictionaries(
                {
                    "item": st.one_of(st.none(), st.text(max_size=3)),
                    "score": st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)),
                }
            ),
        ),
        max_size=3,
    ),
)


def _event_ids(values: list[Any]) -> list[str]:
    n = len(values)
    table = pa.table(
        {
            "member_id": pa.array([1] * n, pa.int64()),
            "recs": pa.array(values, arrow_type(RECS)),
            "meta": pa.nulls(n),
            "event_time": pa.array([ts(1)] * n, pa.timestamp("us", "UTC")),
        }
    )
    ids: list[str] = normalize_facts(EVENTS, table).column("fact_id").to_pylist()
    return ids


@settings(max_examples=40, deadline=None, database=None)
@given(st.lists(_recs_values, min_size=1, max_size=20))
def test_nested_fact_ids_agree_between_the_small_and_the_pandas_path(values: list[Any]) -> None:
    small = _event_ids(values)  # plain-Python hashing
    big = values * (SMALL_BATCH // len(values) + 1)  # beyond SMALL_BATCH: hashed by pandas
    assert len(big) > SMALL_BATCH
    assert _event_ids(big)[: len(values)] == small  # ids of a prefix do not depend on the rest
    assert len(set(small)) == len(values)  # equal rows are told apart by their occurrence
    texts = pa.chunked_array([pa.array([encode_nested(RECS, v) for v in values], pa.string())])
    one = pa.chunked_array([pa.array([1] * len(values), pa.int64())])
    times = pa.chunked_array([pa.array([ts(1)] * len(values), pa.timestamp("us", "UTC"))])
    columns = {"member_id": one, "event_time": times, "recs": texts}
    expected = small_fact_ids("event", [("int", one), ("timestamp", times), ("str", texts)])
    assert expected == pandas_fact_ids("event", columns).to_pylist()


def test_nested_fact_ids_tell_empty_null_and_different_values_apart() -> None:
    table = pa.table(
        {
            "member_id": [1, 1, 1, 1],
            "recs": pa.array(
                [[], None, [{"item": "a", "score": 0.0}], [{"item": "a", "score": -0.0}]],
                arrow_type(RECS),
            ),
            "meta": pa.array([{"at": ts(0)}, {"at": ts(0)}, None, None]),
            "event_time": pa.array([ts(1)] * 4, pa.timestamp("us", "UTC")),
        }
    )
    first = normalize_facts(EVENTS, table).column("fact_id").to_pylist()
    again = normalize_facts(EVENTS, table.slice(0, 1)).column("fact_id").to_pylist()
    assert len(set(first)) == 4 and again == first[:1]


def test_duplicate_nested_rows_are_dropped_not_refused() -> None:
    row = {
        "member_id": 1,
        "recs": [{"item": "a", "score": 1.0}],
        "meta": None,
        "event_time": ts(1),
        "fact_id": "x",
    }
    table = normalize_facts(SNAP, pd.DataFrame([row, row]))
    assert table.num_rows == 1
    with pytest.raises(SchemaError, match="two different facts share fact_id"):
        normalize_facts(SNAP, pd.DataFrame([row, {**row, "recs": []}]))


# -- canonical JSON and the online wire format ------------------------------------------------


def test_canonical_json_round_trips_and_is_canonical() -> None:
    dtype = "struct<at:timestamp,xs:list<float>,s:str>"
    value = {"at": ts(1.5), "xs": [0.1, None, -0.0, 1e300], "s": "a\x00b\u00e9"}
    text = encode_nested(dtype, value)
    assert text is not None and json.loads(text)["at"] == 1_710_034_200_000_000
    assert decode_nested(dtype, text) == value
    assert encode_nested(dtype, dict(reversed(list(value.items())))) == text
    assert encode_nested(dtype, None) is None and decode_nested(dtype, None) is None


_META = "struct<at:timestamp,xs:list<float>,tags:list<str>>"
_metas = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {
            "at": st.one_of(st.none(), hours.map(ts)),
            "xs": st.one_of(st.none(), st.lists(st.one_of(st.none(), st.floats(-1e9, 1e9)))),
            "tags": st.one_of(st.none(), st.lists(st.one_of(st.none(), st.text(max_size=3)))),
        }
    ),
)


@settings(max_examples=40, deadline=None, database=None)
@given(st.lists(_metas, max_size=10), st.lists(_recs_values, max_size=10))
def test_column_encoding_equals_value_encoding(metas: list[Any], recs: list[Any]) -> None:
    for dtype, values in ((_META, metas), (RECS, recs)):
        column = pa.chunked_array([pa.array(values, arrow_type(dtype))], arrow_type(dtype))
        texts = encode_column(dtype, column)
        assert texts == [encode_nested(dtype, v) for v in values]
        assert [decode_nested(dtype, t) for t in texts] == column.to_pylist()


def test_online_blocks_round_trip_nested_values() -> None:
    source = pt.StateSource(
        "snap2", member, {"recs": RECS, "meta": {"at": "timestamp"}, "name": str}
    )
    recs = [[{"item": "a\x00", "score": 1.25}], [], None, [None, {"item": None, "score": None}]]
    metas = [{"at": ts(1)}, {"at": None}, None, {"at": ts(2)}]
    n = len(recs)
    block = Block(
        np.arange(n, dtype=np.int64),
        np.arange(n, dtype=np.int64),
        np.zeros(n, np.uint8),
        nested_objects([f"f{i}" for i in range(n)]),
        {
            "recs": nested_objects(recs),
            "meta": nested_objects(metas),
            "name": nested_objects(["x"] * n),
        },
        {
            "recs": np.array([v is not None for v in recs]),
            "meta": np.array([v is not None for v in metas]),
            "name": np.ones(n, bool),
        },
    )
    back = decode(source, encode(source, block))
    assert back.values["recs"].tolist() == recs
    assert back.values["meta"].tolist() == metas
    assert back.values["name"].tolist() == ["x"] * n


def test_nested_objects_keeps_equal_length_lists_whole() -> None:
    out = nested_objects([[1, 2], [3, 4]])
    assert out.shape == (2,) and out[0] == [1, 2]
    assert nested_objects([[1]])[0] == [1]


# -- transforms and listagg --------------------------------------------------------------------


def test_vectorized_transforms_receive_plain_lists_and_dicts() -> None:
    seen: list[Any] = []

    def n_items(recs: pd.Series) -> list[int | None]:
        seen.extend(recs.tolist())
        return [None if r is None else len(r) for r in recs]

    tr = pt.Transform("n_items", n_items, dtype="int", vectorized=True)
    column = pa.array([[{"item": "a", "score": 1.0}], None, []], arrow_type(RECS))
    assert apply_batch(tr, {"recs": column}, 3).to_pylist() == [1, None, 0]
    assert seen == [[{"item": "a", "score": 1.0}], None, []]
    assert apply_row(tr, {"recs": [{"item": "b", "score": None}]}, {"recs": arrow_type(RECS)}) == 1


_FUNCTIONS = [
    ("count", None, [0, 1, None, 3]),  # the null element is skipped
    ("count", "score", [0, 1, None, 2]),
    ("count_distinct", "item", [0, 1, None, 2]),
    ("sum", "score", [0.0, 0.5, None, 0.30000000000000004]),
    ("mean", "score", [None, 0.5, None, 0.15000000000000002]),
    ("min", "score", [None, 0.5, None, 0.1]),
    ("max", "item", [None, "a", None, "b"]),
]
_LISTS = [
    [],
    [{"item": "a", "score": 0.5}, None],
    None,
    [{"item": "a", "score": 0.1}, {"item": "b", "score": None}, {"item": "a", "score": 0.2}],
]


@pytest.mark.parametrize(("function", "field", "expected"), _FUNCTIONS)
def test_listagg_contract(function: str, field: str | None, expected: list[Any]) -> None:
    recs = pt.Lookup("recs", SNAP, "recs")
    tr = listagg.transform("x", function, of=recs, field=field)
    got = apply_batch(tr, {"recs": pa.array(_LISTS, arrow_type(RECS))}, len(_LISTS))
    assert got.to_pylist() == expected
    assert got.type == arrow_type(tr.dtype)


def test_listagg_infers_types_and_refuses_bad_definitions() -> None:
    recs = pt.Lookup("recs", SNAP, "recs")
    assert listagg.transform("a", "max", of=recs, field="item").dtype == "str"
    assert listagg.transform("b", "sum", of=recs, field="score").dtype == "float"
    assert listagg.transform("c", "count", of="recs").dtype == "int"
    with pytest.raises(DefinitionError, match="unknown function 'median'"):
        listagg.transform("d", "median", of=recs)
    with pytest.raises(DefinitionError, match="no field 'price'.*item, score"):
        listagg.transform("e", "mean", of=recs, field="price")
    with pytest.raises(DefinitionError, match="'meta' is .*not a list"):
        listagg.transform("f", "count", of=pt.Lookup("meta", SNAP, "meta"))
    with pytest.raises(DefinitionError, match="sum cannot read .str. values"):
        listagg.transform("g", "sum", of=recs, field="item")


def test_listagg_errors_at_run_time_name_the_transform_and_input() -> None:
    tr = listagg.transform("n", "mean", of="recs", field="score")
    with pytest.raises(TransformError, match="listagg 'n': input 'recs' is a str, not a list"):
        apply_row(tr, {"recs": "abc"}, {})
    with pytest.raises(TransformError, match="no field 'score'"):
        apply_row(tr, {"recs": [{"item": "a"}]}, {})


def test_listagg_version_hash_tells_functions_apart() -> None:
    recs = pt.Lookup("recs", SNAP, "recs")
    one = pt.FeatureSet("f", member, [recs, listagg.transform("x", "max", of=recs, field="score")])
    two = pt.FeatureSet("f", member, [recs, listagg.transform("x", "min", of=recs, field="score")])
    assert one.version != two.version


_element = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {
            "item": st.one_of(st.none(), st.sampled_from(["a", "b", "c"])),
            "score": st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False), st.just(-0.0)),
        }
    ),
)


@settings(max_examples=60, deadline=None, database=None)
@given(st.lists(st.one_of(st.none(), st.lists(_element, max_size=6)), min_size=1, max_size=8))
def test_listagg_is_the_same_online_and_offline(values: list[Any]) -> None:
    column = pa.array(values, arrow_type(RECS))
    types = {"recs": arrow_type(RECS)}
    for function, field, _ in _FUNCTIONS:
        tr = listagg.transform(
            "x",
            function,
            of="recs",
            field=field,
            dtype="str" if field == "item" and function == "max" else None,
        )
        offline = apply_batch(tr, {"recs": column}, len(values)).to_pylist()
        online = [apply_row(tr, {"recs": v}, types) for v in column.to_pylist()]
        assert [repr(v) for v in offline] == [repr(v) for v in online]


# -- the time rules over nested facts, generated, on every executor ---------------------------

_score = st.one_of(st.none(), quarter)
_recs = st.one_of(
    st.none(),
    st.lists(
        st.one_of(
            st.none(),
            st.fixed_dictionaries(
                {"item": st.one_of(st.none(), st.sampled_from(["a", "b", "c"])), "score": _score}
            ),
        ),
        max_size=3,
    ),
)
_top = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {
            "item": st.one_of(st.none(), st.sampled_from(["a", "b"])),
            "score": _score,
            "seen": st.one_of(st.none(), hours.map(ts)),
        }
    ),
)
_tags = st.one_of(
    st.none(), st.lists(st.one_of(st.none(), st.sampled_from(["x", "y"])), max_size=3)
)


@st.composite
def _nested_facts(draw: st.DrawFn, members: list[int], event: bool) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for i in range(draw(st.integers(0, 10))):
        et = draw(hours)
        row: dict[str, Any] = {
            "member_id": draw(st.sampled_from(members)),
            "recs": draw(_recs),
            "event_time": ts(et),
            "recorded_at": ts(et + draw(lateness)),  # snapshots: mostly et == recorded_at
            "fact_id": f"{'r' if event else 's'}{i}",
        }
        if not event:
            row.update(top=draw(_top), tags=draw(_tags))
        rows.append(row)
        if draw(st.integers(0, 4)) == 0:  # a correction, recorded later
            fix = {**row, "recs": draw(_recs)}
            fix["recorded_at"] = row["recorded_at"] + timedelta(
                hours=draw(st.sampled_from([0.5, 2]))
            )
            rows.append(fix)
    return rows


@pytest.fixture(
    params=[pytest.param(e, marks=e.pytest_marks) for e in [*EXECUTORS, *ARCHIVE_EXECUTORS]],
    ids=[e.name for e in [*EXECUTORS, *ARCHIVE_EXECUTORS]],
)
def executor(request: pytest.FixtureRequest) -> Executor:
    """Every executor the catalog runs (tests/catalog/conftest.py), with this test's mark."""
    chosen: Executor = request.param
    chosen.check_available()
    return chosen


def test_property_nested_facts_agree_with_reference(executor: Executor, tmp_path: Path) -> None:
    runs = iter(range(1_000_000))

    @settings(
        max_examples=hypothesis_examples(max(3, executor.examples // 6)),
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(data=st.data())
    def agrees(data: st.DataObject) -> None:
        members = [1, 2, 3]
        snaps = data.draw(_nested_facts(members, event=False))
        # every world holds a snapshot with a timestamp inside (the archive's JSON payload)
        snaps.append(
            {
                "member_id": 3,
                "recs": [],
                "top": {"item": "a", "score": 1.0, "seen": ts(1)},
                "tags": [],
                "event_time": ts(0),
                "recorded_at": ts(0),
                "fact_id": "s-first",
            }
        )
        events = data.draw(_nested_facts(members, event=True))
        ids = sorted({r["fact_id"] for r in snaps})
        deleted = data.draw(st.lists(st.sampled_from(ids), max_size=2, unique=True))
        case = Case(
            "generated_nested",
            {snapshots: snaps, responses_source: events},
            data.draw(contexts(members)),
            deletes=[(snapshots, f, data.draw(st.integers(0, 60)) + 0.25) for f in deleted],
            cutoff=data.draw(st.one_of(st.none(), st.integers(0, 60).map(lambda h: ts(h + 0.25)))),
            feature_sets=(NESTED,),
            seeds=(data.draw(st.integers(0, 1000)),),
        )
        workdir = tmp_path / f"run{next(runs)}"
        workdir.mkdir()
        run_case(executor, case, workdir)

    agrees()


def test_offline_and_online_columns_have_the_declared_nested_type(tmp_path: Path) -> None:
    from parity.engines.duckdb import DuckDBEngine
    from parity.online import open_online

    log = pt.FactLog(tmp_path / "log")
    recs = pa.array([[{"item": "a", "score": 0.5}], []], arrow_type(RECS))
    table = pa.table(
        {
            "member_id": [1, 2],
            "recs": recs,
            "meta": pa.array([{"at": ts(0), "n": 1}, None]),
            "event_time": pa.array([ts(1), ts(1)], pa.timestamp("us", "UTC")),
        }
    )
    log.ingest(SNAP, table)
    fs = pt.FeatureSet(
        "f", member, [pt.Lookup("recs", SNAP, "recs"), pt.Lookup("meta", SNAP, "meta")]
    )
    contexts = pd.DataFrame({"member_id": [1, 2, 3], "at": [ts(2)] * 3})
    offline = DuckDBEngine(memory_limit="1GB", threads=1).training_set(contexts, [fs], log)
    online = open_online("memory://", log, [fs], lookback=None)
    online.materialize()
    served = online.get_features_batch([fs], contexts)
    online.close()
    for result in (offline, served):
        assert result.schema.field("recs").type == arrow_type(RECS)
        assert result.schema.field("meta").type == arrow_type("struct<at:timestamp,n:int>")
        assert result.column("recs").to_pylist() == [[{"item": "a", "score": 0.5}], [], None]
