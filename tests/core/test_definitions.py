"""Definition mistakes are caught when the definition is made, with messages that name them."""

from __future__ import annotations

import pytest

import parity as pt
from parity.errors import DefinitionError

customer = pt.Entity("customer", {"customer_id": int})
purchases = pt.EventSource("purchases", customer, {"amount": float, "item": str})
profiles = pt.StateSource("profiles", customer, {"country": str})


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: pt.Aggregate("x", purchases, "sum", "price"), "has no field 'price'"),
        (lambda: pt.Aggregate("x", purchases, "sum", "item"), "not numeric"),
        (lambda: pt.Aggregate("x", purchases, "mean", "item"), "not numeric"),
        (
            lambda: pt.Aggregate("x", purchases, "sum", "amount", window="7days"),
            "bad aggregate 'x' window '7days'",
        ),
        (lambda: pt.Aggregate("x", purchases, "sum", "amount", window="0d"), "longer than zero"),
        (lambda: pt.Aggregate("x", purchases, "median", "amount"), "unknown function 'median'"),
        (lambda: pt.Aggregate("x", purchases, "sum"), "sum needs a field"),
        (lambda: pt.Aggregate("x", purchases, "last_k", "item"), "last_k needs k >= 1"),
        (lambda: pt.Aggregate("x", profiles, "count"), "must be an EventSource"),
        (lambda: pt.Lookup("x", purchases, "amount"), "must be a StateSource"),
        (lambda: pt.Lookup("x", profiles, "city"), "has no field 'city'"),
        (lambda: pt.Lookup("x", profiles, "country", ttl="soon"), "bad lookup 'x' ttl"),
        (lambda: pt.Entity("c", {"id": float}), "keys must be 'int' or 'str'"),
        (lambda: pt.Entity("c", {}), "needs at least one key"),
        (lambda: pt.EventSource("s", customer, {"amount": "decimal"}), "unknown type 'decimal'"),
        (lambda: pt.EventSource("s", customer, {"event_time": float}), "reserved"),
        (lambda: pt.EventSource("bad name", customer, {}), "not valid"),
    ],
)
def test_bad_definitions_are_named(make, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DefinitionError, match=message.replace("(", r"\(")):
        make()


def test_duplicate_feature_name() -> None:
    with pytest.raises(DefinitionError, match="duplicate feature name 'n'"):
        pt.FeatureSet(
            "fs",
            customer,
            [
                pt.Aggregate("n", purchases, "count"),
                pt.Aggregate("n", purchases, "count", window="1d"),
            ],
        )


def test_transform_with_unknown_input() -> None:
    @pt.transform()
    def ratio(spend, visits):  # type: ignore[no-untyped-def]
        return spend / visits

    with pytest.raises(DefinitionError, match="reads input 'visits'.*neither a feature"):
        pt.FeatureSet("fs", customer, [pt.Aggregate("spend", purchases, "sum", "amount"), ratio])


def test_transform_may_read_request_fields_and_at() -> None:
    @pt.transform(dtype="str", request=["device"])
    def tag(device, at):  # type: ignore[no-untyped-def]
        return f"{device}@{at.hour}"

    fs = pt.FeatureSet("fs", customer, [tag])
    assert fs.request_fields == ["device"]


def test_feature_from_another_entity() -> None:
    other = pt.EventSource("clicks", pt.Entity("page", {"page_id": str}), {})
    with pytest.raises(DefinitionError, match="about entity 'page'"):
        pt.FeatureSet("fs", customer, [pt.Aggregate("n", other, "count")])


def test_version_is_stable_and_sensitive() -> None:
    def make(window: str) -> pt.FeatureSet:
        return pt.FeatureSet("fs", customer, [pt.Aggregate("n", purchases, "count", window=window)])

    assert make("7d").version == make("7d").version
    assert make("7d").version == make("1w").version  # same window, same meaning
    assert make("7d").version != make("8d").version


def test_version_changes_with_transform_code() -> None:
    def v1(n):  # type: ignore[no-untyped-def]
        return n * 2

    def v2(n):  # type: ignore[no-untyped-def]
        return n * 3

    count = pt.Aggregate("n", purchases, "count")
    a = pt.FeatureSet("fs", customer, [count, pt.Transform("t", v1)])
    b = pt.FeatureSet("fs", customer, [count, pt.Transform("t", v2)])
    assert a.version != b.version
