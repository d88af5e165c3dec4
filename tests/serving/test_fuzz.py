"""HTTP fuzz over the OpenAPI spec: bodies drawn from each operation's schema, then mutated
(wrong types, huge ints, long and non-ASCII strings, extra fields, broken JSON, odd headers).
No request may get a 5xx. The normal run takes well under 30 s; set PARITY_LONG_FUZZ=1 (and
select ``-m slow``) for a long one."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parity.serving.service import PredictionService
from tests.serving.helpers import Served, serve

WEIRD_INTS = st.sampled_from([0, -1, 1, 2**31, 2**63 - 1, 2**63, -(2**63) - 1, 2**70, 10**300])
WEIRD_TEXT = st.sampled_from(["", "é", "\x00", "\ud7ff", "1e309", "NaN", "2024-01-01T00:00:00",
                              "9999-12-31T23:59:59+14:00", "0001-01-01T00:00:00-14:00",
                              "x" * 70_000, "churn", "customer_id", "discount"])
WEIRD_FLOATS = st.sampled_from([1e308, -1e308, 5e-324, 2.0**53 + 1, -0.0, 0.5])
JSON_LEAF = (st.none() | st.booleans() | st.integers() | WEIRD_INTS | WEIRD_FLOATS
             | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20) | WEIRD_TEXT)
ANY_JSON = st.recursive(JSON_LEAF, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.text(max_size=10) | WEIRD_TEXT, inner, max_size=4),
                        max_leaves=12)


def from_schema(schema: dict[str, Any], spec: dict[str, Any], depth: int = 0) -> Any:
    """A strategy for values of a JSON schema from the spec, mixed with arbitrary JSON."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return from_schema(spec["components"]["schemas"][name], spec, depth)
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        return st.one_of([from_schema(o, spec, depth) for o in options])
    kind = schema.get("type")
    if depth > 4:
        return JSON_LEAF
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        fields = {name: from_schema(sub, spec, depth + 1) for name, sub in props.items()}
        extra = schema.get("additionalProperties")
        extra_values = (from_schema(extra, spec, depth + 1) if isinstance(extra, dict)
                        else JSON_LEAF)
        keys = st.sampled_from(["customer_id", "discount", "evil", "at"]) | st.text(max_size=8)
        return st.builds(
            lambda req, opt, more: {**req, **opt, **more},
            st.fixed_dictionaries({k: v for k, v in fields.items() if k in required}),
            st.fixed_dictionaries({}, optional={k: v for k, v in fields.items()
                                                if k not in required}),
            st.dictionaries(keys, extra_values, max_size=3),
        )
    if kind == "array":
        item = from_schema(schema.get("items", {}), spec, depth + 1)
        return st.lists(item, max_size=5)
    leaf = {"integer": st.integers() | WEIRD_INTS,
            "number": st.floats() | WEIRD_INTS | WEIRD_FLOATS,
            "string": st.text(max_size=30) | WEIRD_TEXT, "boolean": st.booleans(),
            "null": st.none()}.get(kind or "", JSON_LEAF)
    return leaf | JSON_LEAF


@pytest.fixture
def fuzzed(served: Served) -> Iterator[tuple[TestClient, PredictionService, dict[str, Any]]]:
    with serve(served.ws) as (client, service):
        yield client, service, client.get("/openapi.json").json()


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any] | None]]:
    """(method, path, body schema) of every operation in the spec."""
    out = []
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            out.append((method.upper(), path, body.get("schema")))
    return out


def requests(spec: dict[str, Any]) -> Any:
    """A strategy of (method, url, headers, raw body)."""
    def one(op: tuple[str, str, dict[str, Any] | None]) -> Any:
        method, path, schema = op
        model = st.sampled_from(["churn", "nope", "%00", "é", "x" * 300])
        body = from_schema(schema, spec) if schema else st.none()
        auth = st.sampled_from([None, "Bearer s3cret", "Bearer wrong", "Basic s3cret", "Bearer"]) \
            | st.binary(max_size=12).map(lambda b: b"Bearer " + b)
        encode = st.sampled_from(["json", "json", "json", "garbage", "nan"])
        return st.tuples(st.just(method), st.just(path), model, body, auth, encode)
    return st.sampled_from(operations(spec)).flatmap(one)


def run(client: TestClient, case: tuple[Any, ...]) -> int:
    method, path, model, body, auth, encode = case
    url = path.replace("{model}", model)
    headers: dict[str, Any] = {"content-type": "application/json"}
    if auth is not None:
        headers["authorization"] = auth
    if encode == "garbage":
        content = json.dumps(body, allow_nan=True).encode()[:-1] + b"\xff"
    else:
        content = json.dumps(body, allow_nan=(encode == "nan")).encode() \
            if _dumpable(body, encode == "nan") else b"{}"
    response = client.request(method, url, content=content if method != "GET" else None,
                              headers=headers)
    assert response.status_code < 500 or (response.status_code == 503 and path in (
        "/health",)), (case, response.status_code, response.text[:500])
    return int(response.status_code)


def _dumpable(body: Any, allow_nan: bool) -> bool:
    try:
        json.dumps(body, allow_nan=allow_nan)
    except (ValueError, TypeError):
        return False
    return True


def test_the_spec_covers_every_client_endpoint(fuzzed: tuple[Any, Any, dict[str, Any]]) -> None:
    paths = {path for _, path, _ in operations(fuzzed[2])}
    assert {"/v1/models/{model}/predict", "/v1/models/{model}/predict-batch",
            "/admin/models/{model}/promote", "/admin/models/{model}/reload"} <= paths


def test_no_request_from_the_spec_gets_a_server_error(
    fuzzed: tuple[TestClient, PredictionService, dict[str, Any]]
) -> None:
    client, _, spec = fuzzed
    statuses: set[int] = set()

    @settings(max_examples=150, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=requests(spec))
    def check(case: tuple[Any, ...]) -> None:
        statuses.add(run(client, case))

    check()
    assert {200, 401, 404, 422} <= statuses, statuses  # the fuzz reaches past validation


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("PARITY_LONG_FUZZ"), reason="set PARITY_LONG_FUZZ=1")
def test_long_fuzz(fuzzed: tuple[TestClient, PredictionService, dict[str, Any]]) -> None:
    client, _, spec = fuzzed

    @settings(max_examples=int(os.environ.get("PARITY_LONG_FUZZ_EXAMPLES", "3000")),
              deadline=None, suppress_health_check=list(HealthCheck))
    @given(case=requests(spec))
    def check(case: tuple[Any, ...]) -> None:
        run(client, case)

    check()
