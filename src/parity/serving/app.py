"""The HTTP face of a PredictionService (FastAPI). Run it with ``parity serve``.

Status codes: 200 served; 404 unknown model or version; 413 body larger than
``serving.max_body_bytes``; 422 bad input (the JSON body names the field, the value, truncated,
and the fix); 401/403 admin endpoints without the right bearer token; 409 a promote the registry
refuses (an artifact that fails verification); 503 the model has no loaded version, a source is
not materialized (the body says to run ``parity materialize``) or storage is failing. A client
cannot cause a 500: every error it can provoke is one of the above.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from parity.errors import (
    IntegrityError,
    NotFoundError,
    NotReadyError,
    NotServingError,
    ParityError,
    RequestError,
    StateError,
    StorageError,
    TransientError,
)
from parity.serving.bodylimit import BodyLimit
from parity.serving.service import Context, PredictionService
from parity.serving.validation import INT64_MAX

AT_DOC = (
    "The moment of the prediction: an ISO 8601 time with a time zone, e.g. "
    "'2024-05-01T12:00:00Z'. Features are computed from the facts visible strictly before it, "
    "exactly as the Time Machine computes them offline for a training row at that time. Leave "
    "it out (or null) for the server's clock now; a time without a zone is refused (422). "
    "Accepted range: 1900 to 2200."
)
DESCRIPTION = f"""Predictions computed from the same feature definitions as training.

Each context has `keys` (the entity key columns, typed as the entity declares them: an `int`
key is a JSON integer in the int64 range), `at` and `request` (the request fields the model's
transforms read; unknown names are refused). `at`: {AT_DOC}

Each prediction says `found` (false: the entity has no facts at all, so the features are the
empty-window values of an unseen entity) and `logged`: `durable` (fsynced before this answer,
with `feature_log: {{sync: true}}`), `queued` (accepted, not yet known to be on disk),
`lost` (a write error lost it), `dropped` (the log queue was full), `sampled_out` or `off`.
"""
Logged = Literal["durable", "queued", "lost", "dropped", "sampled_out", "off"]


class ContextIn(BaseModel):
    """One prediction request."""

    model_config = ConfigDict(extra="forbid")
    keys: dict[str, Any] = Field(description="Entity key columns, e.g. {\"customer_id\": 7}.")
    at: datetime | None = Field(None, description=AT_DOC)
    request: dict[str, Any] = Field(default_factory=dict, description="Request fields.")
    request_id: str | None = Field(None, description="Your id, echoed and logged.")


class BatchIn(BaseModel):
    """Many prediction requests for one model (at most ``serving.max_batch``)."""

    model_config = ConfigDict(extra="forbid")
    contexts: list[ContextIn] = Field(min_length=1)


class PredictionOut(BaseModel):
    """A served prediction."""

    request_id: str
    model: str
    version: int
    output: Any
    found: bool = Field(description="False: the entity has no facts at all (never seen).")
    logged: Logged = Field(description="What became of the feature log record.")


class BatchOut(BaseModel):
    """Served predictions, in request order."""

    predictions: list[PredictionOut]


class PromoteIn(BaseModel):
    """Move the ``live`` alias to a version."""

    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1, le=INT64_MAX)
    reason: str | None = Field(None, max_length=2000)


def create_app(service: PredictionService, admin_token: str | None = None,
               routers: Sequence[APIRouter] = (),
               on_shutdown: Callable[[], None] | None = None) -> FastAPI:
    """A FastAPI app over ``service``; admin endpoints need ``Authorization: Bearer <token>``.

    ``routers`` adds other read endpoints served beside the models (Hulk publications, the
    Online Archive). ``/docs`` serves Swagger UI from files bundled with the package (no CDN).
    ``on_shutdown`` runs when the server shuts down (a ``--workers`` process stops its
    service there, which seals its feature log).
    """

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if on_shutdown is not None:
            on_shutdown()

    app = FastAPI(title="parity serving", version="1", description=DESCRIPTION,
                  docs_url=None, redoc_url=None, lifespan=lifespan)
    app.add_middleware(BodyLimit, max_bytes=service.limits.max_body_bytes)
    expected = admin_token.encode("utf-8") if admin_token else None
    _mount_docs(app)

    def admin(authorization: str | None = Header(None)) -> None:
        if expected is None:
            raise HTTPException(403, "admin endpoints are disabled: set serving.admin_token "
                                     "in parity.yaml")
        scheme, _, token = (authorization or "").partition(" ")
        # Starlette decodes headers as latin-1: encode back to the bytes the client sent, and
        # compare bytes, so any token (non-ASCII included) is a 401, never a TypeError.
        sent = token.encode("latin-1", "replace")
        if scheme.lower() != "bearer" or not hmac.compare_digest(sent, expected):
            raise HTTPException(401, "a valid 'Authorization: Bearer <token>' header is required",
                                headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": ".".join(str(p) for p in err["loc"] if p != "body"),
             "problem": err["msg"], "value": _short(err.get("input"))}
            for err in exc.errors()
        ]
        return JSONResponse({"error": "invalid request", "problems": problems,
                             "fix": "see /docs for the request schema"}, status_code=422)

    @app.exception_handler(ParityError)
    async def parity_error(_: Request, exc: ParityError) -> JSONResponse:
        code = _status(exc)
        body: dict[str, Any] = {"error": str(exc), "kind": type(exc).__name__}
        if isinstance(exc, RequestError):
            body.update(field=exc.field, value=exc.value, fix=exc.fix)
        return JSONResponse(body, status_code=code)

    @app.post("/v1/models/{model}/predict", response_model=PredictionOut)
    def predict(model: str, body: ContextIn) -> PredictionOut:
        """Predict for one context: features are computed online from the live definitions."""
        result = service.predict(model, [_context(body)])[0]
        return PredictionOut(**result.__dict__)

    @app.post("/v1/models/{model}/predict-batch", response_model=BatchOut)
    def predict_batch(model: str, body: BatchIn) -> BatchOut:
        """Predict for many contexts (at most serving.max_batch, default 1000) in one call."""
        results = service.predict(model, [_context(c) for c in body.contexts])
        return BatchOut(predictions=[PredictionOut(**r.__dict__) for r in results])

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        """The models served here and their loaded versions."""
        return dict(service.health()["models"])

    @app.get("/health")
    def health() -> JSONResponse:
        """200 ``ok``; 503 ``degraded`` with ``reasons`` (no loaded version, a source not
        ready, the feature log failing to write, a background thread failing)."""
        body = service.health()
        return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)

    @app.get("/metrics")
    def metrics() -> PlainTextResponse:
        """Prometheus metrics."""
        service.refresh_metrics()
        return PlainTextResponse(service.metrics.render(),
                                 media_type=service.metrics.content_type)

    @app.post("/admin/models/{model}/reload", dependencies=[Depends(admin)])
    def reload(model: str) -> dict[str, Any]:
        """Load the version the live alias points at now (admin)."""
        return service.reload(model)

    @app.post("/admin/models/{model}/promote", dependencies=[Depends(admin)])
    def promote(model: str, body: PromoteIn) -> dict[str, Any]:
        """Point the live alias at a version and load it (admin)."""
        slot = service.slot(model)
        slot.registry.set_alias(model, slot.alias, body.version, reason=body.reason,
                                actor="http-admin")
        return service.reload(model)

    for router in routers:
        app.include_router(router)
    return app


def _status(exc: ParityError) -> int:
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, (NotServingError, NotReadyError, TransientError, StorageError)):
        return 503
    if isinstance(exc, (IntegrityError, StateError)):
        return 409
    return 422  # bad keys, naive times, request fields, transforms failing on them


def _mount_docs(app: FastAPI) -> None:
    """Swagger UI from the ``swagger-ui-bundle`` package's files, served by this app."""
    try:
        from fastapi.staticfiles import StaticFiles
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:  # the `serve` extra is not installed
        swagger_ui_path = None
    if swagger_ui_path is not None:
        app.mount("/_swagger", StaticFiles(directory=str(swagger_ui_path)), name="swagger")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        if swagger_ui_path is None:
            return HTMLResponse("<p>Swagger UI is not installed: pip install 'parity[serve]'. "
                                "The spec is at <a href='/openapi.json'>/openapi.json</a>.</p>")
        return get_swagger_ui_html(
            openapi_url="/openapi.json", title="parity serving",
            swagger_js_url="/_swagger/swagger-ui-bundle.js",
            swagger_css_url="/_swagger/swagger-ui.css",
            swagger_favicon_url="/_swagger/favicon-32x32.png",
        )


def _short(value: Any) -> str:
    try:
        text = value[:100] if isinstance(value, str) else repr(value)
    except ValueError:  # an int too long to print
        text = "(a value too large to show)"
    return text if len(text) <= 80 else text[:77] + "..."


def _context(body: ContextIn) -> Context:
    return Context(keys=dict(body.keys), at=body.at, request=dict(body.request),
                   request_id=body.request_id)
