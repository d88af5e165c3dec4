"""The archive's live endpoint: a FastAPI router that ``parity serve`` mounts.

    app.include_router(archive_router(archive))

``GET /v1/archive/{source}/{key}?n=5`` answers the entity's ``n`` most recent facts, newest
first, as known now: corrections applied, deleted facts left out. Several key columns are
written ``a|b`` in declaration order. ``complete`` is false when retention has dropped older
facts and fewer than ``n`` remain (the answer may then miss some: unknown is not none).
Status codes: 404 unknown source, 422 a malformed key or ``n``, 503 the store is unreachable.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from parity.archive.archive import Archive
from parity.definitions import Source
from parity.errors import InputError, NotFoundError, ParityError, TransientError

KEY_SEPARATOR = "|"
MAX_N = 1_000


class LatestOut(BaseModel):
    """An entity's most recent facts."""

    source: str
    key: list[int | str]
    n: int
    complete: bool = Field(description="False: retention dropped older facts; some may miss.")
    facts: list[dict[str, Any]]


def archive_router(archive: Archive | Callable[[], Archive]) -> APIRouter:
    """A router over ``archive`` (or a function returning it, called per request, so the
    serving app can open it lazily)."""
    router = APIRouter(tags=["archive"])

    def opened() -> Archive:
        return archive() if callable(archive) and not isinstance(archive, Archive) else archive

    @router.get("/v1/archive/{source}/{key}", response_model=LatestOut)
    def latest(source: str, key: str, n: int = Query(10, ge=1, le=MAX_N)) -> LatestOut:
        """The ``n`` most recent facts about one entity of an archived source."""
        try:
            arch = opened()
            src = arch.source(source)
            values = parse_key(src, key)
            table = arch.latest(src, tuple(values), n)
            horizon = arch.horizon(src) if table.num_rows < n else None
        except NotFoundError as exc:
            raise HTTPException(404, str(exc)) from exc
        except InputError as exc:
            raise HTTPException(422, str(exc)) from exc
        except TransientError as exc:
            raise HTTPException(503, str(exc)) from exc
        except ParityError as exc:
            raise HTTPException(503, str(exc)) from exc
        facts = [{k: _json(v) for k, v in row.items()} for row in table.to_pylist()]
        return LatestOut(source=src.name, key=values, n=n, complete=horizon is None, facts=facts)

    return router


def parse_key(source: Source, text: str) -> list[int | str]:
    """Key values from a path segment (``a|b`` for several key columns), typed as declared."""
    parts = text.split(KEY_SEPARATOR)
    names = list(source.entity.keys)
    if len(parts) != len(names):
        raise InputError(
            f"key: {text!r} has {len(parts)} part(s) but entity {source.entity.name!r} is keyed "
            f"by {', '.join(names)}; write them as {KEY_SEPARATOR.join(names)}"
        )
    out: list[int | str] = []
    for name, part in zip(names, parts, strict=True):
        if source.entity.keys[name] == "int":
            try:
                out.append(int(part))
            except ValueError:
                raise InputError(
                    f"key {name!r}: {part!r} is not a whole number; entity "
                    f"{source.entity.name!r} declares it 'int'"
                ) from None
        else:
            out.append(part)
    return out


def _json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value
