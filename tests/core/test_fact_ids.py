"""Fact ids: the plain-Python path for small batches gives exactly the ids that the original
pandas implementation gives (ids already stored in fact logs must never change)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pyarrow as pa
import pyarrow.pandas_compat
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import parity as pt
from parity import fact_ids as fid
from parity.definitions import EVENT_TIME, FACT_ID
from parity.dtypes import arrow_type
from parity.errors import SchemaError
from parity.facts import normalize_facts

DTYPES = ("int", "float", "str", "bool", "timestamp")
UTC = timezone.utc


def oracle_fact_ids(kind: str, columns: Mapping[str, pa.ChunkedArray]) -> list[str]:
    """The implementation every stored fact id was made with, frozen here as the oracle."""
    frame = pa.table(dict(columns)).to_pandas()
    hashes = pd.util.hash_pandas_object(frame, index=False)
    if kind == "event":
        occurrence = hashes.groupby(hashes).cumcount()
        hashes = pd.util.hash_pandas_object(
            pd.DataFrame({"h": hashes.to_numpy(), "o": occurrence.to_numpy()}), index=False
        )
    return pa.chunked_array([pa.array(hashes.to_numpy()).cast(pa.string())]).to_pylist()


INT64 = st.integers(-(2**63), 2**63 - 1)
VALUES: dict[str, st.SearchStrategy[Any]] = {
    "int": st.one_of(INT64, st.integers(-1000, 1000), st.sampled_from([2**53 + 1, -(2**63)])),
    "float": st.one_of(
        st.floats(allow_nan=True, allow_infinity=False),
        st.sampled_from([0.0, -0.0, 1.5, 1e-310]),
    ),
    "str": st.one_of(
        st.text(st.characters(blacklist_categories=("Cs",)), max_size=40),
        st.sampled_from(["", "a", "é", "日本語", "12345678", "😀" * 5]),
    ),
    "bool": st.booleans(),
    # epoch microseconds; NaT (int64 min) is excluded: it is how pandas writes null
    "timestamp": st.integers(-(2**62), 2**62),
}


@st.composite
def batches(draw: st.DrawFn) -> tuple[str, dict[str, pa.ChunkedArray], dict[str, str]]:
    """A canonical batch: 1..5 columns of any dtype, 1..200 rows, nulls and many duplicates."""
    kind = draw(st.sampled_from(["event", "state"]))
    dtypes = {
        f"c{i}": d
        for i, d in enumerate(draw(st.lists(st.sampled_from(DTYPES), min_size=1, max_size=5)))
    }
    nulls = {name: draw(st.booleans()) for name in dtypes}
    row = st.fixed_dictionaries(
        {
            name: st.one_of(st.none(), VALUES[d]) if nulls[name] else VALUES[d]
            for name, d in dtypes.items()
        }
    )
    pool = draw(st.lists(row, min_size=1, max_size=20))
    n = draw(st.integers(1, 200))
    picks = draw(st.lists(st.integers(0, len(pool) - 1), min_size=n, max_size=n))
    columns = {}
    for name, d in dtypes.items():
        values = [pool[i][name] for i in picks]
        if d == "timestamp":
            array = pa.array(values, pa.int64()).cast(arrow_type(d))
        else:
            array = pa.array(values, arrow_type(d))
        columns[name] = pa.chunked_array([array])
    return kind, columns, dtypes


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches())
def test_small_path_matches_pandas_oracle(
    batch: tuple[str, dict[str, pa.ChunkedArray], dict[str, str]],
) -> None:
    kind, columns, dtypes = batch
    pairs = [(dtypes[name], column) for name, column in columns.items()]
    assert fid.small_fact_ids(kind, pairs) == oracle_fact_ids(kind, columns)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches())
def test_large_batch_path_matches_oracle(
    batch: tuple[str, dict[str, pa.ChunkedArray], dict[str, str]],
) -> None:
    kind, columns, dtypes = batch
    # repeat the batch past SMALL_BATCH so fact_ids takes the pandas path
    times = fid.SMALL_BATCH // len(next(iter(columns.values()))) + 1
    big = {n: pa.chunked_array(c.chunks * times) for n, c in columns.items()}
    assert fid.fact_ids(kind, big, dtypes).to_pylist() == oracle_fact_ids(kind, big)


def test_all_null_and_all_nan_columns_match_oracle() -> None:
    columns = {
        "i": pa.chunked_array([pa.nulls(3, pa.int64())]),
        "f": pa.chunked_array([pa.array([float("nan"), None, -0.0])]),
        "s": pa.chunked_array([pa.nulls(3, pa.string())]),
        "b": pa.chunked_array([pa.nulls(3, pa.bool_())]),
        "t": pa.chunked_array([pa.nulls(3, arrow_type("timestamp"))]),
    }
    dtypes = {"i": "int", "f": "float", "s": "str", "b": "bool", "t": "timestamp"}
    for kind in ("event", "state"):
        assert fid.fact_ids(kind, columns, dtypes).to_pylist() == oracle_fact_ids(kind, columns)


def test_siphash_matches_published_vector() -> None:
    # SipHash-2-4 reference vector (Aumasson & Bernstein): key 00..0f, message 00..0e
    key = bytes(range(16))
    k0, k1 = int.from_bytes(key[:8], "little"), int.from_bytes(key[8:], "little")
    assert fid.siphash24(bytes(range(15)), k0, k1) == 0xA129CA6149BE45E5


customer = pt.Entity("customer", {"customer_id": int})
shop = pt.Entity("shop", {"shop": str})
orders = pt.EventSource(
    "orders", customer, {"amount": float, "item": str, "paid": bool, "due": "timestamp"}
)
profiles = pt.StateSource("profiles", shop, {"tier": str, "score": int})


def _oracle_for(source: pt.EventSource | pt.StateSource, table: pa.Table) -> list[str]:
    names = [*source.entity.keys, EVENT_TIME]
    if source.kind == "event":
        names += list(source.schema)
    return oracle_fact_ids(source.kind, {n: table.column(n) for n in names})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.integers(-(2**40), 2**40),
            st.one_of(st.none(), st.floats(allow_infinity=False)),
            st.one_of(st.none(), st.text(st.characters(blacklist_categories=("Cs",)), max_size=10)),
            st.one_of(st.none(), st.booleans()),
            st.integers(0, 10**6),
            st.sampled_from(["UTC", "Europe/Paris", "America/St_Johns", "Asia/Kolkata"]),
        ),
        min_size=1,
        max_size=200,
    ).map(lambda rows: rows + rows[: len(rows) // 3])  # duplicates within the batch
)
def test_normalize_facts_ids_match_oracle(rows: list[tuple[Any, ...]]) -> None:
    base = datetime(2024, 3, 31, tzinfo=UTC)
    data = [
        {
            "customer_id": key,
            "amount": amount,
            "item": item,
            "paid": paid,
            "due": base + timedelta(seconds=offset),
            "event_time": (base + timedelta(seconds=offset)).astimezone(ZoneInfo(zone)),
        }
        for key, amount, item, paid, offset, zone in rows
    ]
    facts = normalize_facts(orders, pa.Table.from_pylist(data), recorded_at="now", now=1)
    # event ids carry the occurrence number, so duplicates stay distinct facts: nothing dropped
    assert facts.num_rows == len(data)
    assert facts.column(FACT_ID).to_pylist() == _oracle_for(orders, facts)


def test_same_instant_in_two_zones_has_one_id() -> None:
    at = datetime(2024, 10, 27, 1, 30, tzinfo=UTC)
    rows = [
        {"shop": "s", "tier": "gold", "score": 1, "event_time": at},
        {
            "shop": "s",
            "tier": "gold",
            "score": 1,
            "event_time": at.astimezone(ZoneInfo("Europe/Paris")),
        },
    ]
    ids = [normalize_facts(profiles, [r], now=1).column(FACT_ID)[0].as_py() for r in rows]
    assert ids[0] == ids[1]


def test_golden_ids_do_not_drift() -> None:
    """Ids computed once with pandas 3.1; a change in either path that alters them fails here."""
    at = datetime(2024, 1, 1, tzinfo=UTC)
    event = normalize_facts(
        orders,
        [
            {
                "customer_id": 7,
                "amount": 2.5,
                "item": "é",
                "paid": True,
                "due": at,
                "event_time": at,
            },
            {
                "customer_id": 7,
                "amount": 2.5,
                "item": "é",
                "paid": True,
                "due": at,
                "event_time": at,
            },
            {
                "customer_id": 8,
                "amount": None,
                "item": None,
                "paid": None,
                "due": None,
                "event_time": at,
            },
        ],
        now=1,
    )
    state = normalize_facts(
        profiles, [{"shop": "north", "tier": "gold", "score": 3, "event_time": at}], now=1
    )
    assert event.column(FACT_ID).to_pylist() == GOLDEN_EVENT
    assert state.column(FACT_ID).to_pylist() == GOLDEN_STATE


GOLDEN_EVENT = ["3809418732130874556", "7219663452221075137", "7368060627882428754"]
GOLDEN_STATE = ["9525346676097081620"]


def test_small_push_does_not_hash_through_pandas(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reason for the plain-Python path: a one-fact push must not build a pandas frame."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a small batch went through pandas")

    monkeypatch.setattr(pd.util, "hash_pandas_object", refuse)
    monkeypatch.setattr(pyarrow.pandas_compat, "table_to_dataframe", refuse)
    at = datetime(2024, 1, 1, tzinfo=UTC)
    facts = normalize_facts(
        orders,
        [
            {
                "customer_id": 1,
                "amount": 1.0,
                "item": "a",
                "paid": False,
                "due": at,
                "event_time": at,
            }
        ],
        recorded_at="now",
        now=1,
    )
    assert facts.num_rows == 1


@pytest.mark.parametrize("n", [1, 3, fid.SMALL_BATCH + 5])  # plain-Python check and compute path
def test_float_nan_is_stored_as_null_and_inf_is_refused(n: int) -> None:
    at = datetime(2024, 1, 1, tzinfo=UTC)
    rows = [
        {"shop": "s", "tier": "t", "score": i, "event_time": at + timedelta(seconds=i)}
        for i in range(n)
    ]
    table = pa.Table.from_pylist(rows)
    amounts = [float(i) for i in range(n)]
    amounts[n // 2] = float("nan")
    with_nan = table.append_column("amount", pa.array(amounts))
    src = pt.StateSource("priced", shop, {"tier": str, "score": int, "amount": float})
    facts = normalize_facts(src, with_nan, now=1)
    assert facts.column("amount").null_count == 1
    assert facts.column("amount")[n // 2].as_py() is None
    for bad in (float("inf"), float("-inf")):
        amounts[n - 1] = bad
        with pytest.raises(SchemaError, match=rf"'amount' holds {bad} in row {n - 1}"):
            normalize_facts(src, table.append_column("amount", pa.array(amounts)), now=1)


def test_canonical_schema_is_kept_per_source_and_released_with_it() -> None:
    import gc

    from parity.facts import _SCHEMAS, canonical_schema

    src = pt.EventSource("temporary", customer, {"x": int})
    assert canonical_schema(src) is canonical_schema(src)
    assert id(src) in _SCHEMAS
    key = id(src)
    del src
    gc.collect()
    assert key not in _SCHEMAS


@pytest.mark.parametrize("n", [10, 100, 1000])  # plain-Python check, Arrow group-by
def test_duplicates_are_dropped_and_conflicts_refused_at_any_size(n: int) -> None:
    at = datetime(2024, 1, 1, tzinfo=UTC)
    rows = [
        {"shop": f"s{i}", "tier": "t", "score": i, "event_time": at + timedelta(seconds=i)}
        for i in range(n)
    ]
    assert normalize_facts(profiles, rows, now=1).num_rows == n
    assert normalize_facts(profiles, [*rows, rows[3]], now=1).num_rows == n
    clash = {**rows[3], "tier": "other"}  # same keys and event_time: same fact id, new value
    with pytest.raises(SchemaError, match="share fact_id"):
        normalize_facts(profiles, [*rows, clash], now=1)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.text(st.characters(blacklist_categories=("Cs",)), max_size=8),
            st.integers(-(10**9), 10**9),
            st.sampled_from(["UTC", "Europe/Paris", "Pacific/Chatham"]),
        ),
        min_size=1,
        max_size=150,
    )
)
def test_state_ids_through_normalize_match_oracle(rows: list[tuple[str, int, str]]) -> None:
    base = datetime(2024, 3, 31, tzinfo=UTC)
    data = [
        {
            "shop": shop,
            "tier": shop,  # one value per (key, time): repeated rows are exact duplicates
            "score": None,
            "event_time": (base + timedelta(seconds=offset)).astimezone(ZoneInfo(zone)),
        }
        for shop, offset, zone in rows
    ]
    facts = normalize_facts(profiles, data, now=1)
    assert facts.column(FACT_ID).to_pylist() == _oracle_for(profiles, facts)
