"""Sampling by entity: consistent, stable across processes, monotonic in the rate."""

from __future__ import annotations

import pytest

from parity.errors import InputError
from parity.featurelog import KeySampler, is_sampled
from parity.featurelog.sampling import canonical_key, key_point


def test_points_are_stable_values_not_process_dependent() -> None:
    # Golden values: blake2b of the canonical key. Python's salted hash() would change per run.
    assert canonical_key({"video": "v1", "member": 42}) == b'[["member",42],["video","v1"]]'
    assert key_point({"member": 42}) == pytest.approx(0.5597748739, abs=1e-9)
    assert key_point({"member": "42"}) != key_point({"member": 42})


def test_same_entity_same_decision_every_time() -> None:
    sampler = KeySampler(0.3)
    for member in range(500):
        first = sampler({"member": member})
        assert all(sampler({"member": member}) == first for _ in range(3))
        assert is_sampled({"member": member}, 0.3) == first


def test_rate_one_logs_everything_and_zero_nothing() -> None:
    assert all(KeySampler(1.0)({"member": m}) for m in range(1000))
    assert not any(KeySampler(0.0)({"member": m}) for m in range(1000))


def test_fraction_is_close_to_rate_and_higher_rates_only_add_entities() -> None:
    members = [{"member": m} for m in range(20_000)]
    low = {m["member"] for m in members if is_sampled(m, 0.1)}
    high = {m["member"] for m in members if is_sampled(m, 0.2)}
    assert 1800 < len(low) < 2200
    assert 3600 < len(high) < 4400
    assert low <= high


def test_salt_picks_a_different_subset() -> None:
    members = [{"member": m} for m in range(2000)]
    plain = {m["member"] for m in members if is_sampled(m, 0.5)}
    salted = {m["member"] for m in members if is_sampled(m, 0.5, salt="other-log")}
    assert plain != salted


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_rate_outside_unit_interval_is_rejected(rate: float) -> None:
    with pytest.raises(InputError, match="sample_rate"):
        KeySampler(rate)
