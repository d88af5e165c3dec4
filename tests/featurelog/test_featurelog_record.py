"""The record and its Arrow encoding: what goes in comes back out, bad input is named."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parity.errors import InputError, InputTypeError, TimeError
from parity.featurelog import FeatureLogRecord, records_table, table_records
from parity.featurelog.columns import decode_table, encode_batches
from tests.featurelog.helpers import T0, make_record

UTC = timezone.utc


def round_trip(records: list[FeatureLogRecord], first_seq: int = 1) -> list[FeatureLogRecord]:
    """Through the writer's path: encode to frame payloads, decode, back to records."""
    payloads, failures = encode_batches(records)
    if failures:
        raise failures[0][1]
    out = []
    seq = first_seq
    for count, payload in payloads:
        out += table_records(decode_table(payload, seq))
        seq += count
    return out


def test_round_trip_keeps_every_field_and_type() -> None:
    record = make_record(7)
    [back] = round_trip([record], first_seq=42)
    assert back == record
    assert back.seq == 42
    assert back.logged_at.tzinfo is not None
    assert back.features["last_seen"] == record.features["last_seen"]
    assert isinstance(back.features["last_seen"], datetime)
    assert back.features["recent"] == [7.0, 8.0, 9.0]


def test_logged_at_in_another_zone_is_stored_as_utc() -> None:
    at = datetime(2024, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    [back] = round_trip([make_record(1, at=at)])
    assert back.logged_at == at
    assert back.logged_at.utcoffset() == timedelta(0)


def test_numpy_values_are_written_as_plain_numbers() -> None:
    record = make_record(1)
    record.features["np_float"] = np.float64(0.25)
    record.features["np_list"] = np.array([1, 2])  # type: ignore[assignment]
    [back] = round_trip([record])
    assert back.features["np_float"] == 0.25
    assert back.features["np_list"] == [1, 2]


def test_naive_logged_at_is_rejected() -> None:
    with pytest.raises(TimeError, match="logged_at"):
        make_record(1, at=datetime(2024, 3, 1))


def test_naive_datetime_feature_cannot_be_encoded() -> None:
    record = make_record(1)
    record.features["when"] = datetime(2024, 3, 1)
    payloads, failures = encode_batches([make_record(0), record])
    assert [count for count, _ in payloads] == [1]
    assert [(r.request_id, type(e)) for r, e in failures] == [("r1", InputTypeError)]
    assert "naive" in str(failures[0][1])
    with pytest.raises(TimeError, match="when"):
        record.validate()


def test_validate_names_a_bad_feature_and_key() -> None:
    record = make_record(1)
    record.features["blob"] = {"a": 1}  # type: ignore[assignment]
    with pytest.raises(InputError, match="blob"):
        record.validate()
    bad_key = FeatureLogRecord("r", T0, "m", 1, {}, {"member": 1.5}, {})  # type: ignore[dict-item]
    with pytest.raises(InputError, match="member"):
        bad_key.validate()


def test_model_version_must_be_int() -> None:
    with pytest.raises(InputError, match="model_version"):
        FeatureLogRecord("r", T0, "m", "3", {}, {}, {})  # type: ignore[arg-type]


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),  # exact even when mixed with floats
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.datetimes(
        min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
)
values = st.one_of(scalars, st.lists(scalars, max_size=4))


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    features=st.dictionaries(st.text(min_size=1, max_size=8), values, max_size=8),
    request=st.dictionaries(st.text(min_size=1, max_size=8), scalars, max_size=4),
    key=st.one_of(st.integers(min_value=-(2**62), max_value=2**62), st.text(max_size=8)),
    output=st.one_of(st.floats(allow_nan=False), st.lists(st.floats(allow_nan=False))),
)
def test_any_valid_record_round_trips(
    features: dict, request: dict, key: int | str, output: object
) -> None:
    record = FeatureLogRecord("r", T0, "m", 1, {"fs": "v"}, {"k": key}, features, request, output)
    record.validate()
    assert round_trip([record]) == [record]
    assert table_records(records_table([record])) == [record]


def test_records_of_different_shapes_keep_exactly_their_fields() -> None:
    a, b = make_record(1), make_record(2, model="other")
    b.features.pop("f0")
    b.features["extra"] = "x"
    back = round_trip([a, b, make_record(3)])
    assert sorted(back, key=lambda r: r.request_id) == [a, b, make_record(3)]
    assert "f0" not in next(r for r in back if r.request_id == "r2").features


def test_mixed_aware_and_naive_datetimes_in_one_column_are_caught() -> None:
    # Arrow alone would quietly read the naive one as UTC.
    good, bad = make_record(1), make_record(2)
    bad.features["last_seen"] = datetime(2024, 3, 1)
    payloads, failures = encode_batches([good, bad])
    assert [r.request_id for r, _ in failures] == ["r2"]
    assert sum(count for count, _ in payloads) == 1
