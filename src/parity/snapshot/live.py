"""Live sources: facts that come from calling a service that keeps no history.

A ``LiveSource`` is a state source whose versions are *snapshots*: the service's answer for one
entity, stored by the snapshot job (``parity.snapshot.job``) with ``event_time = recorded_at =``
the moment the answer arrived, plus the declared ``schema_version``. Features over it are plain
Lookups of response fields and transforms of them, so they follow the time rules unchanged.

The service is either a Python callable ``call(context) -> dict`` (``context`` holds the entity
keys) or a URL template such as ``"http://127.0.0.1:8000/recs/{customer_id}"`` answered with
JSON (GET, or POST of the context as JSON). Responses are JSON only (never pickle or eval) and
are checked against the declared schema by ``parity.snapshot.response``: nothing is coerced.
One attempt is ``LiveSource.fetch``; retries and rate limits belong to the job.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa

from parity.definitions import Entity, StateSource
from parity.dtypes import arrow_type
from parity.errors import DefinitionError
from parity.snapshot.response import SchemaChange, check_response
from parity.timeutil import parse_duration

SCHEMA_VERSION = "schema_version"
Fallback = Literal["snapshot", "none"]
#: ok: a valid answer; timeout; error: 5xx, connection refused, a raising callable, bad JSON;
#: client_error: a 4xx (the request is wrong: retrying cannot help); schema: a schema change.
Status = Literal["ok", "timeout", "error", "client_error", "schema"]
RETRYABLE: frozenset[str] = frozenset({"timeout", "error"})


@dataclass(frozen=True)
class CallResult:
    """The outcome of one call to a live service."""

    status: Status
    row: dict[str, Any] | None  # the validated response fields when status == "ok"
    detail: str  # what went wrong, for reports ("" when ok)
    latency_s: float
    change: SchemaChange | None = None
    malformed: bool = False  # the body was not JSON (retrying the same call is not useful)

    @property
    def retryable(self) -> bool:
        """Timeouts, 5xx and connection faults may pass on a retry; 4xx and schema never do."""
        return self.status in RETRYABLE and not self.malformed


class LiveSource(StateSource):
    """A state source whose facts are snapshots of a live service's answers (see module doc).

    ``schema`` declares the response's fields (nested lists and structs allowed); the stored
    facts carry one more int field, ``schema_version``. ``timeout`` bounds one call ("200ms");
    ``fallback`` says what the online path serves when the call fails: ``"snapshot"`` (the
    latest stored snapshot, materialized like any source) or ``"none"`` (null features).
    """

    call: Callable[[dict[str, Any]], Any] | None
    url: str | None
    method: str
    timeout_s: float
    fallback: Fallback
    schema_version: int
    _clients: _Clients

    def __init__(
        self,
        name: str,
        entity: Entity,
        schema: Mapping[str, Any],
        call: Callable[[dict[str, Any]], Any] | None = None,
        url: str | None = None,
        method: str = "GET",
        timeout: str = "200ms",
        fallback: Fallback = "snapshot",
        schema_version: int = 1,
    ) -> None:
        if SCHEMA_VERSION in schema:
            raise DefinitionError(
                f"live source {name!r}: field {SCHEMA_VERSION!r} is reserved (parity stores the "
                f"declared schema_version there); rename the response field"
            )
        super().__init__(name, entity, {**dict(schema), SCHEMA_VERSION: "int"})
        if (call is None) == (url is None):
            raise DefinitionError(
                f"live source {name!r}: give exactly one of call=<a Python callable> or "
                f"url='http://...' (a JSON endpoint)"
            )
        if call is not None and not callable(call):
            raise DefinitionError(f"live source {name!r}: call must be callable, got {call!r}")
        if url is not None:
            _check_url(name, url, entity)
        if method not in ("GET", "POST"):
            raise DefinitionError(f"live source {name!r}: method must be 'GET' or 'POST'")
        timeout_us = parse_duration(timeout, f"live source {name!r} timeout")
        if fallback not in ("snapshot", "none"):
            raise DefinitionError(
                f"live source {name!r}: fallback must be 'snapshot' or 'none', got {fallback!r}"
            )
        if not isinstance(schema_version, int) or isinstance(schema_version, bool):
            raise DefinitionError(f"live source {name!r}: schema_version must be an int")
        for attr, value in (
            ("call", call), ("url", url), ("method", method),
            ("timeout_s", (timeout_us or 0) / 1e6), ("fallback", fallback),
            ("schema_version", schema_version), ("_clients", _Clients()),
        ):
            object.__setattr__(self, attr, value)

    @property
    def response_fields(self) -> dict[str, str]:
        """The declared response fields and their dtypes (without ``schema_version``)."""
        return {n: t for n, t in self.schema.items() if n != SCHEMA_VERSION}

    @property
    def response_schema(self) -> pa.Schema:
        """The Arrow schema of a response."""
        return pa.schema([pa.field(n, arrow_type(t)) for n, t in self.response_fields.items()])

    def spec(self) -> dict[str, Any]:
        """The state source's description plus how the service is called."""
        target = self.url or f"{getattr(self.call, '__module__', '?')}." \
                             f"{getattr(self.call, '__qualname__', '?')}"
        return {**super().spec(), "live": {
            "target": target, "method": self.method, "timeout_s": self.timeout_s,
            "fallback": self.fallback, "schema_version": self.schema_version,
        }}

    def fetch(self, context: Mapping[str, Any], timeout_s: float | None = None) -> CallResult:
        """Call the service once for ``context`` (entity keys) and check the answer.

        Never raises for a service fault: the outcome is in ``CallResult.status``.
        """
        timeout = self.timeout_s if timeout_s is None else timeout_s
        started = time.perf_counter()
        payload, failure = (
            self._call_python(dict(context), timeout)
            if self.call is not None else self._call_http(dict(context), timeout)
        )
        latency = time.perf_counter() - started
        if failure is not None:
            return CallResult(failure.status, None, failure.detail, latency,
                              malformed=failure.malformed)
        row, change = check_response(payload, self.response_fields)
        if change is not None:
            return CallResult("schema", None, change.describe(self.name), latency, change)
        return CallResult("ok", row, "", latency)

    def _call_python(self, context: dict[str, Any], timeout: float) -> tuple[Any, _Failure | None]:
        assert self.call is not None
        future = self._clients.pool().submit(self.call, context)
        try:
            return future.result(timeout=timeout), None
        except FutureTimeout:
            # The thread cannot be stopped; its late answer is dropped.
            return None, _Failure("timeout", f"no answer within {timeout:g}s")
        except Exception as exc:  # the user's callable failed: a service error
            return None, _Failure("error", f"{type(exc).__name__}: {exc}")

    def _call_http(self, context: dict[str, Any], timeout: float) -> tuple[Any, _Failure | None]:
        import httpx  # the serve extra; only live sources with a url need it

        assert self.url is not None
        url = self.url.format(**context)
        client = self._clients.http()
        try:
            if self.method == "POST":
                response = client.post(url, json=_jsonable(context), timeout=timeout)
            else:
                response = client.get(url, timeout=timeout)
        except httpx.TimeoutException:
            return None, _Failure("timeout", f"no answer from {url} within {timeout:g}s")
        except httpx.HTTPError as exc:
            return None, _Failure("error", f"{type(exc).__name__} calling {url}: {exc}")
        if response.status_code >= 500:
            return None, _Failure("error", f"HTTP {response.status_code} from {url}")
        if response.status_code >= 400:
            return None, _Failure("client_error", f"HTTP {response.status_code} from {url}")
        try:
            return json.loads(response.content), None
        except (ValueError, UnicodeDecodeError) as exc:
            return None, _Failure("error", f"malformed JSON from {url}: {exc}", malformed=True)


@dataclass(frozen=True)
class _Failure:
    status: Status
    detail: str
    malformed: bool = False


class _Clients:
    """A source's lazily made HTTP client and call pool, shared by threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._http: Any = None
        self._pool: ThreadPoolExecutor | None = None

    def http(self) -> Any:
        with self._lock:
            if self._http is None:
                import httpx

                self._http = httpx.Client(limits=httpx.Limits(max_connections=256))
            return self._http

    def pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(64, thread_name_prefix="parity-live")
            return self._pool


def _jsonable(context: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in context.items()}


def _check_url(name: str, url: str, entity: Entity) -> None:
    if not url.startswith(("http://", "https://")):
        raise DefinitionError(f"live source {name!r}: url {url!r} must start with http(s)://")
    try:
        url.format(**{k: 0 for k in entity.keys})
    except (KeyError, IndexError, ValueError) as exc:
        raise DefinitionError(
            f"live source {name!r}: url {url!r} names a placeholder {exc} that is not a key of "
            f"entity {entity.name!r}; use only {', '.join('{' + k + '}' for k in entity.keys)}"
        ) from None


def context_of(entity: Entity, key: Mapping[str, Any]) -> dict[str, Any]:
    """The context handed to the service: the entity's key values, in declaration order."""
    return {k: key[k] for k in entity.keys}
