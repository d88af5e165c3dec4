"""Shared pieces of the conformance suites: the catalog's definitions, builders of facts and
contexts, hypothesis strategies, and the comparison used for every executor against the
reference evaluator. A non-test module: tests import their helpers from here, never from
another test module."""

from __future__ import annotations

import math
import os
from datetime import datetime, timedelta, timezone
from typing import Any

import pandas as pd
import pyarrow as pa
from hypothesis import strategies as st

import parity as pt

UTC = timezone.utc
T0 = datetime(2024, 3, 10, 0, 0, tzinfo=UTC)  # a Sunday; DST changes elsewhere that day

member = pt.Entity("member", {"member_id": int})
plays = pt.EventSource("plays", member, {"minutes": float, "title": str, "rating": int})
profiles = pt.StateSource("profiles", member, {"country": str, "age": int, "score": float})


@pt.transform(dtype="float")
def minutes_per_play(minutes_sum_5h: float | None, plays_5h: int | None) -> float | None:
    if not plays_5h:
        return None
    return minutes_sum_5h / plays_5h if minutes_sum_5h is not None else None


@pt.transform(dtype="str", request=["device"])
def country_device(country: str | None, device: str | None) -> str:
    return f"{country or '?'}/{device or '?'}"


@pt.transform(dtype="float", vectorized=True)
def hours_since_last(last_play_at: Any, at: Any) -> Any:
    return (at - last_play_at).dt.total_seconds() / 3600.0


def catalog() -> pt.FeatureSet:
    """Every aggregation function over several windows, lookups with and without ttl,
    row and vectorized transforms with a request field."""
    features: list[Any] = []
    for window in (None, "1h", "5h", "24h"):
        tag = window or "all"
        features += [
            pt.Aggregate(f"plays_{tag}", plays, "count", window=window),
            pt.Aggregate(f"minutes_count_{tag}", plays, "count", "minutes", window),
            pt.Aggregate(f"minutes_sum_{tag}", plays, "sum", "minutes", window),
            pt.Aggregate(f"minutes_mean_{tag}", plays, "mean", "minutes", window),
            pt.Aggregate(f"rating_sum_{tag}", plays, "sum", "rating", window),
            pt.Aggregate(f"minutes_min_{tag}", plays, "min", "minutes", window),
            pt.Aggregate(f"minutes_max_{tag}", plays, "max", "minutes", window),
            pt.Aggregate(f"title_last_{tag}", plays, "last", "title", window),
            pt.Aggregate(f"titles_{tag}", plays, "last_k", "title", window, k=3),
            pt.Aggregate(f"titles_distinct_{tag}", plays, "count_distinct", "title", window),
        ]
    features += [
        pt.Aggregate("last_play_at", plays, "max", "event_time"),
        pt.Lookup("country", profiles, "country"),
        pt.Lookup("age", profiles, "age", ttl="10h"),
        pt.Lookup("score", profiles, "score"),
        minutes_per_play,
        country_device,
        hours_since_last,
    ]
    return pt.FeatureSet("member_activity", member, features)


def ts(hours: float) -> datetime:
    """T0 plus a number of hours."""
    return T0 + timedelta(hours=hours)


def frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    """A DataFrame with the given columns (present even when ``rows`` is empty)."""
    df = pd.DataFrame(rows, columns=columns)
    for name in ("event_time", "recorded_at", "at"):
        if name in df:
            df[name] = pd.to_datetime(df[name], utc=True).astype("datetime64[us, UTC]")
    return df


PLAY_COLUMNS = ["member_id", "minutes", "title", "rating", "event_time", "recorded_at", "fact_id"]
PROFILE_COLUMNS = ["member_id", "country", "age", "score", "event_time", "recorded_at", "fact_id"]
CONTEXT_COLUMNS = ["member_id", "at", "device", "label"]


def play(
    member: int,
    hour: float,
    minutes: float | None = 1.0,
    title: str | None = "a",
    rating: int | None = 1,
    late: float = 0,
    fact_id: str | None = None,
) -> dict[str, Any]:
    """A row of ``plays`` at T0 + ``hour``, recorded ``late`` hours after it happened."""
    return {
        "member_id": member,
        "minutes": minutes,
        "title": title,
        "rating": rating,
        "event_time": ts(hour),
        "recorded_at": ts(hour + late),
        "fact_id": fact_id or f"p-{member}-{hour}-{title}",
    }


def profile(
    member: int,
    hour: float,
    country: str | None = "GB",
    age: int | None = 30,
    late: float = 0,
    fact_id: str | None = None,
) -> dict[str, Any]:
    """A row of ``profiles`` at T0 + ``hour``, recorded ``late`` hours after it happened."""
    return {
        "member_id": member,
        "country": country,
        "age": age,
        "score": 1.5,
        "event_time": ts(hour),
        "recorded_at": ts(hour + late),
        "fact_id": fact_id or f"s-{member}-{hour}",
    }


def at(member: int, hour: float, device: str | None = "tv", label: int = 0) -> dict[str, Any]:
    """A context row for ``member`` at T0 + ``hour``."""
    return {"member_id": member, "at": ts(hour), "device": device, "label": label}


def col(table: pa.Table, name: str) -> list[Any]:
    """A column as Python values."""
    return table.column(name).to_pylist()


def hypothesis_examples(default: int) -> int:
    """Examples per property test: ``default`` (the CI budget) unless
    ``PARITY_HYPOTHESIS_EXAMPLES`` asks for a longer run (e.g. 1000)."""
    value = os.environ.get("PARITY_HYPOTHESIS_EXAMPLES")
    return int(value) if value else default


def assert_same(expected: pa.Table, actual: pa.Table, columns: list[str]) -> None:
    """Every value equal, floats bit for bit (a one-ulp difference can flip a model's split)."""
    assert expected.num_rows == actual.num_rows
    problems = []
    for name in columns:
        want, got = expected.column(name).to_pylist(), actual.column(name).to_pylist()
        for row, (a, b) in enumerate(zip(want, got)):
            if not _same(a, b):
                problems.append(f"{name}[{row}]: expected {a!r}, got {b!r}")
    assert not problems, "\n".join(problems[:20]) + f"\n({len(problems)} mismatches)"


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return (bool(a == b) and type(a) is type(b)) or (a is None and b is None)


# -- hypothesis strategies ---------------------------------------------------------------------

hours = st.integers(min_value=0, max_value=48).map(lambda h: h * 0.5)
lateness = st.sampled_from([0, 0, 0, 0.5, 1, 3, 6, 30])
quarter = st.integers(-400, 400).map(lambda x: x / 4)  # exact in binary: sums are exact


@st.composite
def play_facts(draw: st.DrawFn, members: list[int]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for i in range(draw(st.integers(0, 25))):
        et = draw(hours)
        row = {
            "member_id": draw(st.sampled_from(members)),
            "minutes": draw(st.one_of(st.none(), quarter)),
            "title": draw(st.one_of(st.none(), st.sampled_from(["a", "b", "c", "d"]))),
            "rating": draw(st.one_of(st.none(), st.integers(-5, 5))),
            "event_time": ts(et),
            "recorded_at": ts(et + draw(lateness)),
            "fact_id": f"p{i}",
        }
        rows.append(row)
        if draw(st.integers(0, 5)) == 0:  # a correction, recorded later, maybe moving things
            fix = dict(row)
            fix["recorded_at"] = row["recorded_at"] + timedelta(
                hours=draw(st.sampled_from([0.5, 2, 10]))
            )
            fix["minutes"] = draw(st.one_of(st.none(), quarter))
            if draw(st.booleans()):
                fix["event_time"] = ts(draw(hours))
            if draw(st.integers(0, 3)) == 0:
                fix["member_id"] = draw(st.sampled_from(members))
            rows.append(fix)
    return rows


@st.composite
def profile_facts(draw: st.DrawFn, members: list[int]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for i in range(draw(st.integers(0, 12))):
        et = draw(hours)
        row = {
            "member_id": draw(st.sampled_from(members)),
            "country": draw(st.one_of(st.none(), st.sampled_from(["GB", "FR", "DE"]))),
            "age": draw(st.one_of(st.none(), st.integers(18, 90))),
            "score": draw(st.one_of(st.none(), quarter)),
            "event_time": ts(et),
            "recorded_at": ts(et + draw(lateness)),
            "fact_id": f"s{i}",
        }
        rows.append(row)
        if draw(st.integers(0, 4)) == 0:
            fix = dict(row)
            fix["recorded_at"] = row["recorded_at"] + timedelta(
                hours=draw(st.sampled_from([0.5, 2]))
            )
            fix["country"] = draw(st.sampled_from(["GB", "FR", "DE", "ES"]))
            rows.append(fix)
    return rows


@st.composite
def contexts(draw: st.DrawFn, members: list[int]) -> list[dict[str, Any]]:
    return [
        {
            "member_id": draw(st.sampled_from(members + [99])),
            "at": ts(draw(st.integers(0, 110).map(lambda h: h * 0.5))),
            "device": draw(st.one_of(st.none(), st.sampled_from(["tv", "web"]))),
            "label": i,
        }
        for i in range(draw(st.integers(1, 30)))
    ]
