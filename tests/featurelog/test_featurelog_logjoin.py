"""Log and wait: labels from events in (t, t + window], unfinished windows left out."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parity.errors import DefinitionError, InputError, SchemaError, TimeError
from parity.featurelog import (
    FeatureLogRecord,
    FeatureLogWriter,
    records_table,
    training_set_from_log,
)
from parity.timeutil import TIMESTAMP_TYPE
from tests.featurelog.helpers import T0

UTC = timezone.utc
DAY = timedelta(days=1)
US = timedelta(microseconds=1)


def prediction(request_id: str, member: int, at: datetime, model: str = "ctr") -> FeatureLogRecord:
    return FeatureLogRecord(
        request_id=request_id, logged_at=at, model=model, model_version=2,
        feature_set_versions={"fs": "v1"}, keys={"member": member},
        features={"plays_7d": member * 10, "genre": "drama"},
        request={"device": "tv"}, output=0.5,
    )


def log_table(records: list[FeatureLogRecord]) -> pa.Table:
    return records_table(records)


PREDICTIONS = [
    prediction("p1", 1, T0),
    prediction("p2", 1, T0 + DAY),
    prediction("p3", 1, T0 + 10 * DAY),
    prediction("p4", 2, T0),
    prediction("p5", 3, T0 + 15 * DAY),  # its 7-day window ends after `now`
]
LABELS = pa.table({
    "member": [1, 1, 1, 2, 2],
    "event_time": pa.array(
        [T0, T0 + 3 * DAY, T0 + 3 * DAY + timedelta(hours=1), T0 + 7 * DAY, T0 + 7 * DAY + US],
        TIMESTAMP_TYPE,
    ),
    "value": [9.0, 2.0, 1.5, 4.0, 8.0],
})
NOW = T0 + 20 * DAY


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("any", {"p1": 1, "p2": 1, "p3": 0, "p4": 1}),
        ("count", {"p1": 2, "p2": 2, "p3": 0, "p4": 1}),
        ("sum:value", {"p1": 3.5, "p2": 3.5, "p3": 0.0, "p4": 4.0}),
    ],
)
def test_label_rules_and_window_edges(how: str, expected: dict[str, float]) -> None:
    # p1: the event at exactly t is not after the prediction. p4: t + 7d is in, one µs later out.
    result = training_set_from_log(log_table(PREDICTIONS), LABELS, keys=["member"],
                                   label_window="7d", how=how, now=NOW)
    assert dict(zip(result.column("request_id").to_pylist(),
                    result.column("label").to_pylist(), strict=True)) == expected


def test_predictions_whose_window_is_still_open_are_left_out() -> None:
    result = training_set_from_log(log_table(PREDICTIONS), LABELS, keys=["member"],
                                   label_window="7d", now=NOW)
    assert "p5" not in result.column("request_id").to_pylist()


def test_now_defaults_to_latest_label_event() -> None:
    # Latest label event: T0 + 7d + 1µs, so only the predictions made at T0 are complete.
    result = training_set_from_log(log_table(PREDICTIONS), LABELS, keys=["member"],
                                   label_window="7d")
    assert result.column("request_id").to_pylist() == ["p1", "p4"]


def test_output_has_the_training_set_layout() -> None:
    result = training_set_from_log(log_table(PREDICTIONS), LABELS, keys=["member"],
                                   label_window="7d", now=NOW, label_name="played")
    assert result.column_names == [
        "member", "at", "device", "plays_7d", "genre", "played", "request_id", "model_version",
    ]
    assert result.schema.field("at").type == TIMESTAMP_TYPE
    assert result.column("at").to_pylist() == [T0, T0, T0 + DAY, T0 + 10 * DAY]
    assert result.column("plays_7d").to_pylist() == [10, 20, 10, 10]


def test_reads_a_log_folder_and_filters_by_model(tmp_path: Path) -> None:
    with FeatureLogWriter(tmp_path) as writer:
        for record in [*PREDICTIONS, prediction("other", 1, T0, model="ranker")]:
            writer.log(record)
    result = training_set_from_log(tmp_path, LABELS, keys=["member"], label_window="7d",
                                   now=NOW, model="ctr")
    assert sorted(result.column("request_id").to_pylist()) == ["p1", "p2", "p3", "p4"]


def test_pandas_labels_are_accepted() -> None:
    labels = LABELS.to_pandas()
    assert isinstance(labels, pd.DataFrame)
    result = training_set_from_log(log_table(PREDICTIONS), labels, keys=["member"],
                                   label_window="7d", now=NOW)
    assert result.num_rows == 4


def test_naive_label_times_are_rejected() -> None:
    labels = pa.table({"member": [1], "event_time": pa.array([datetime(2024, 3, 2)])})
    with pytest.raises(TimeError, match="event_time"):
        training_set_from_log(log_table(PREDICTIONS), labels, keys=["member"], now=NOW)


def test_no_labels_needs_an_explicit_now() -> None:
    empty = LABELS.slice(0, 0)
    with pytest.raises(InputError, match="now="):
        training_set_from_log(log_table(PREDICTIONS), empty, keys=["member"])
    result = training_set_from_log(log_table(PREDICTIONS), empty, keys=["member"],
                                   label_window="7d", now=NOW)
    assert set(result.column("label").to_pylist()) == {0}


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"how": "mean"}, DefinitionError, "how="),
        ({"how": "sum:member_name"}, SchemaError, "member_name"),
        ({"keys": ["video"]}, SchemaError, "video"),
        ({"label_name": "genre"}, SchemaError, "genre"),
        ({"label_window": "a week"}, DefinitionError, "label_window"),
    ],
)
def test_mistakes_are_named(kwargs: dict, error: type[Exception], match: str) -> None:
    options: dict = {"keys": ["member"], "now": NOW, **kwargs}
    with pytest.raises(error, match=match):
        training_set_from_log(log_table(PREDICTIONS), LABELS, **options)


def test_key_type_mismatch_is_named() -> None:
    labels = LABELS.set_column(0, "member", pa.array(["1", "1", "1", "2", "2"]))
    with pytest.raises(SchemaError, match="member"):
        training_set_from_log(log_table(PREDICTIONS), labels, keys=["member"], now=NOW)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    preds=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 40)), min_size=1, max_size=25),
    events=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 60), st.integers(-3, 5)),
                    max_size=40),
    window_h=st.integers(1, 20),
    now_h=st.integers(10, 70),
)
def test_matches_a_brute_force_oracle(
    preds: list[tuple[int, int]], events: list[tuple[int, int, int]], window_h: int, now_h: int
) -> None:
    hour = timedelta(hours=1)
    records = [prediction(f"q{i}", m, T0 + h * hour) for i, (m, h) in enumerate(preds)]
    labels = pa.table({
        "member": pa.array([m for m, _, _ in events], pa.int64()),
        "event_time": pa.array([T0 + h * hour for _, h, _ in events], TIMESTAMP_TYPE),
        "amount": pa.array([v for _, _, v in events], pa.int64()),
    })
    now = T0 + now_h * hour
    for how in ("any", "count", "sum:amount"):
        result = training_set_from_log(log_table(records), labels, keys=["member"],
                                       label_window=f"{window_h}h", how=how, now=now)
        got = dict(zip(result.column("request_id").to_pylist(),
                       result.column("label").to_pylist(), strict=True))
        expected = {}
        for i, (m, h) in enumerate(preds):
            if h + window_h > now_h:
                continue
            hits = [v for em, eh, v in events if em == m and h < eh <= h + window_h]
            expected[f"q{i}"] = {"any": int(bool(hits)), "count": len(hits),
                                 "sum:amount": sum(hits)}[how]
        assert got == expected
