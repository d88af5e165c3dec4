"""Live sources: definitions, response checks (nothing coerced), one call's outcomes."""

from __future__ import annotations

import pytest

import parity as pt
from parity.dtypes import normalize_dtype
from parity.snapshot import check_response
from tests.snapshot.service import LiveService, answer

customer = pt.Entity("customer", {"customer_id": int})
SCHEMA = {"top_item": str, "score": float, "items": "list<struct<item:str,score:float>>"}
RESPONSE = {k: normalize_dtype(v, k) for k, v in SCHEMA.items()}


def test_a_valid_response_is_accepted_as_declared() -> None:
    row, change = check_response(answer(3), RESPONSE)
    assert change is None
    assert row == answer(3)
    row, change = check_response({"top_item": None, "score": 2, "items": None}, RESPONSE)
    assert change is None and row is not None and row["score"] == 2.0  # int fits float


@pytest.mark.parametrize(("payload", "field", "expected", "found"), [
    ({"score": 1.0, "items": []}, "top_item", "str", "no such field (missing)"),
    ({**answer(1), "extra": 1}, "extra", "no such field (not declared)", "int"),
    ({**answer(1), "score": "high"}, "score", "float", "str"),
    ({**answer(1), "score": True}, "score", "float", "bool"),  # never read a bool as 1.0
    ({**answer(1), "items": [{"item": "a", "score": "x"}]}, "items[0].score", "float", "str"),
    ({**answer(1), "items": [{"item": "a"}]}, "items[0].score", "float",
     "no such field (missing)"),
    ({**answer(1), "items": {"item": "a", "score": 1.0}}, "items",
     "list<struct<item:str,score:float>>", "struct"),
    ([answer(1)], "(response)", "a JSON object", "list"),
    ({**answer(1), "score": float("nan")}, "score", "float (a finite number)", "nan"),
])
def test_a_schema_change_names_field_expected_and_found(
    payload: object, field: str, expected: str, found: str
) -> None:
    row, change = check_response(payload, RESPONSE)
    assert row is None and change is not None
    assert (change.field, change.expected, change.found) == (field, expected, found)
    assert field in change.describe("recs") and "not written" in change.describe("recs")


def test_int_fields_refuse_floats_and_bools() -> None:
    schema = {"n": "int"}
    assert check_response({"n": 2}, schema)[0] == {"n": 2}
    assert check_response({"n": 2.0}, schema)[1] is not None
    assert check_response({"n": False}, schema)[1] is not None


def test_definition_mistakes_are_named() -> None:
    with pytest.raises(pt.DefinitionError, match="exactly one of call"):
        pt.LiveSource("recs", customer, SCHEMA)
    with pytest.raises(pt.DefinitionError, match="placeholder"):
        pt.LiveSource("recs", customer, SCHEMA, url="http://x/{member_id}")
    with pytest.raises(pt.DefinitionError, match="reserved"):
        pt.LiveSource("recs", customer, {"schema_version": int}, call=lambda c: {})
    with pytest.raises(pt.DefinitionError, match="fallback"):
        pt.LiveSource("recs", customer, SCHEMA, call=lambda c: {}, fallback="zero")  # type: ignore[arg-type]
    with pytest.raises(pt.DefinitionError, match="timeout"):
        pt.LiveSource("recs", customer, SCHEMA, call=lambda c: {}, timeout="soon")


def test_a_live_source_stores_schema_version_and_is_a_state_source() -> None:
    recs = pt.LiveSource("recs", customer, SCHEMA, call=answer_of, schema_version=3)
    assert isinstance(recs, pt.StateSource)
    assert recs.schema["schema_version"] == "int"
    assert pt.Lookup("top", recs, "top_item").dtype == "str"
    result = recs.fetch({"customer_id": 4})
    assert result.status == "ok" and result.row == answer(4)


def answer_of(context: dict[str, int]) -> dict[str, object]:
    return answer(context["customer_id"])


def test_one_call_classifies_every_fault(service: LiveService) -> None:
    recs = pt.LiveSource("recs", customer, SCHEMA, url=service.url, timeout="200ms")
    service.faults.delay_s[1] = 1.0
    service.faults.statuses[2] = [503]
    service.faults.statuses[3] = [404]
    service.faults.malformed.add(4)
    service.faults.schema_change.add(5)
    outcomes = {k: recs.fetch({"customer_id": k}) for k in (1, 2, 3, 4, 5, 6)}
    assert {k: r.status for k, r in outcomes.items()} == {
        1: "timeout", 2: "error", 3: "client_error", 4: "error", 5: "schema", 6: "ok"}
    assert [k for k, r in outcomes.items() if r.retryable] == [1, 2]  # not 4xx, JSON, schema
    assert "malformed JSON" in outcomes[4].detail
    assert outcomes[5].change is not None and outcomes[5].change.field == "score"


def test_a_raising_or_slow_callable_is_an_error_or_a_timeout() -> None:
    def boom(context: dict[str, int]) -> dict[str, object]:
        raise RuntimeError("down")

    def slow(context: dict[str, int]) -> dict[str, object]:
        import threading
        threading.Event().wait(0.5)
        return answer(1)

    assert pt.LiveSource("a", customer, SCHEMA, call=boom).fetch({"customer_id": 1}).status \
        == "error"
    slow_source = pt.LiveSource("b", customer, SCHEMA, call=slow, timeout="50ms")
    assert slow_source.fetch({"customer_id": 1}).status == "timeout"


def test_post_sends_the_context_as_json(service: LiveService) -> None:
    url = service.url.replace("/recs/{customer_id}", "/recs")
    recs = pt.LiveSource("recs", customer, SCHEMA, url=url, method="POST")
    result = recs.fetch({"customer_id": 8})
    assert result.status == "ok" and result.row == answer(8)
