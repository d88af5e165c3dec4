"""HTTP lookups of publications: a FastAPI router that ``parity serve`` mounts.

    app.include_router(publications_router(pubs))

- ``GET  /v1/publications``                 every publication with its live version
- ``GET  /v1/publications/{name}``          the live version's manifest (without the sample)
- ``GET  /v1/publications/{name}/{key}``    one key (several key columns: ``a|b``)
- ``POST /v1/publications/{name}/lookup``   ``{"keys": [...]}`` -> ``{"results": [...]}``

Each answer carries the version it was read from and, for a gap, the fallback that answered
(``default``, ``previous``, ``compute`` or ``none``). Status codes: 404 unknown publication,
422 a malformed key, 503 no live version yet or the store is unreachable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from parity.errors import InputError, NotFoundError, NotReadyError, ParityError, TransientError
from parity.hulk.publications import Publications
from parity.hulk.values import KEY_SEPARATOR

MAX_KEYS = 10_000


class LookupOut(BaseModel):
    """One key's answer."""

    publication: str
    key: str
    value: Any
    version: int
    found: bool = Field(description="False: the version lacks the key; see fallback.")
    fallback: str | None = Field(None, description="What answered a missing key: default, "
                                                   "previous, compute, or none.")


class BatchIn(BaseModel):
    """Keys to look up: values, or lists of values for several key columns."""

    model_config = ConfigDict(extra="forbid")
    keys: list[int | str | list[int | str]] = Field(min_length=1, max_length=MAX_KEYS)


class BatchOut(BaseModel):
    """Answers in request order, all from one version."""

    results: list[LookupOut]


def publications_router(publications: Publications | Callable[[], Publications]) -> APIRouter:
    """A router over ``publications`` (or a function returning it, called per request, so
    the serving app can open it lazily)."""
    router = APIRouter(tags=["publications"])

    def pubs() -> Publications:
        return publications if isinstance(publications, Publications) else publications()

    @router.get("/v1/publications")
    def list_publications() -> dict[str, Any]:
        """Every publication and its live version."""
        with _errors():
            p = pubs()
            return {"publications": [{"name": n, "live_version": p.live_version(n)}
                                     for n in p.names()]}

    @router.get("/v1/publications/{name}")
    def show(name: str) -> dict[str, Any]:
        """The live (else newest) version's manifest, without the output sample."""
        with _errors():
            return pubs().manifest(name).brief()

    @router.get("/v1/publications/{name}/{key}", response_model=LookupOut)
    def lookup(name: str, key: str) -> LookupOut:
        """One key's output (several key columns: join the values with ``|``)."""
        with _errors():
            p = pubs()
            parts: Any = key
            if len(p.reader.key_columns(name)) > 1:
                parts = tuple(key.split(KEY_SEPARATOR))
            return LookupOut(publication=name, **p.lookup(name, parts).to_dict())

    @router.post("/v1/publications/{name}/lookup", response_model=BatchOut)
    def lookup_batch(name: str, body: BatchIn) -> BatchOut:
        """Many keys' outputs, in order, from one version."""
        with _errors():
            keys = [tuple(k) if isinstance(k, list) else k for k in body.keys]
            results = pubs().lookup_many(name, keys)
            return BatchOut(results=[LookupOut(publication=name, **r.to_dict())
                                     for r in results])

    return router


class _errors:
    """Map parity errors to HTTP answers with the message as ``detail``."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 _tb: Any) -> None:
        if exc is None or not isinstance(exc, ParityError):
            return
        if isinstance(exc, NotFoundError):
            status = 404
        elif isinstance(exc, (NotReadyError, TransientError)):
            status = 503
        elif isinstance(exc, InputError):
            status = 422
        else:
            status = 500
        raise HTTPException(status, {"error": str(exc), "kind": type(exc).__name__}) from exc
