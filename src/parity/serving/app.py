"""The HTTP face of a PredictionService (FastAPI). Run it with ``parity serve``.

Status codes: 200 served; 404 unknown model; 422 bad input (the body names the field and the
problem); 503 the model has no loaded version; 401/403 admin endpoints without the right bearer
token. A client cannot cause a 500: every error it can provoke is one of the above.
"""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Any

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field

from parity.errors import InputError, NotFoundError, ParityError
from parity.serving.service import Context, NotServingError, PredictionService

MAX_BATCH = 10_000


class ContextIn(BaseModel):
    """One prediction request."""

    model_config = ConfigDict(extra="forbid")
    keys: dict[str, int | str] = Field(description="Entity key columns, e.g. {\"id\": 7}.")
    at: datetime | None = Field(None, description="Moment of the prediction (aware; default now).")
    request: dict[str, Any] = Field(default_factory=dict, description="Request fields.")
    request_id: str | None = Field(None, max_length=200, description="Your id, echoed and logged.")


class BatchIn(BaseModel):
    """Many prediction requests for one model."""

    model_config = ConfigDict(extra="forbid")
    contexts: list[ContextIn] = Field(min_length=1, max_length=MAX_BATCH)


class PredictionOut(BaseModel):
    """A served prediction."""

    request_id: str
    model: str
    version: int
    output: Any
    logged: bool


class BatchOut(BaseModel):
    """Served predictions, in request order."""

    predictions: list[PredictionOut]


class PromoteIn(BaseModel):
    """Move the ``live`` alias to a version."""

    version: int
    reason: str | None = None


def create_app(service: PredictionService, admin_token: str | None = None) -> FastAPI:
    """A FastAPI app over ``service``; admin endpoints need ``Authorization: Bearer <token>``."""
    app = FastAPI(title="parity serving", version="1",
                  description="Predictions computed from the same feature definitions as training.")

    def admin(authorization: str | None = Header(None)) -> None:
        if not admin_token:
            raise HTTPException(403, "admin endpoints are disabled: set serving.admin_token "
                                     "in parity.yaml")
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token, admin_token):
            raise HTTPException(401, "a valid 'Authorization: Bearer <token>' header is required",
                                headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": ".".join(str(p) for p in err["loc"] if p != "body"), "problem": err["msg"]}
            for err in exc.errors()
        ]
        return JSONResponse({"error": "invalid request", "problems": problems}, status_code=422)

    @app.exception_handler(ParityError)
    async def parity_error(_: Request, exc: ParityError) -> JSONResponse:
        if isinstance(exc, NotFoundError):
            code = 404
        elif isinstance(exc, NotServingError):
            code = 503
        else:
            code = 422  # bad keys, naive times, missing request fields, transforms failing on them
        return JSONResponse({"error": str(exc), "kind": type(exc).__name__}, status_code=code)

    @app.post("/v1/models/{model}/predict", response_model=PredictionOut)
    def predict(model: str, body: ContextIn) -> PredictionOut:
        """Predict for one context: features are computed online from the live definitions."""
        result = service.predict(model, [_context(body)])[0]
        return PredictionOut(**result.__dict__)

    @app.post("/v1/models/{model}/predict-batch", response_model=BatchOut)
    def predict_batch(model: str, body: BatchIn) -> BatchOut:
        """Predict for up to 10,000 contexts in one call."""
        results = service.predict(model, [_context(c) for c in body.contexts])
        return BatchOut(predictions=[PredictionOut(**r.__dict__) for r in results])

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        """The models served here and their loaded versions."""
        return service.health()["models"]

    @app.get("/health")
    def health() -> JSONResponse:
        """200 when every model has a loaded version, 503 otherwise."""
        body = service.health()
        return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)

    @app.get("/metrics")
    def metrics() -> PlainTextResponse:
        """Prometheus metrics."""
        service.export_log_stats()
        return PlainTextResponse(generate_latest(service.metrics.registry),
                                 media_type=CONTENT_TYPE_LATEST)

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

    return app


def _context(body: ContextIn) -> Context:
    if body.at is not None and body.at.tzinfo is None:
        raise InputError(f"at: {body.at.isoformat()} has no time zone; send e.g. "
                         f"'{body.at.isoformat()}Z'")
    return Context(keys=dict(body.keys), at=body.at, request=dict(body.request),
                   request_id=body.request_id)
