"""Test helpers: a served workspace with another ``serving:`` section, and an HTTP client."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi.testclient import TestClient

import parity as pt
from parity.serving.app import create_app
from parity.serving.factory import build_service
from parity.serving.service import PredictionService

AUTH = {"Authorization": "Bearer s3cret"}
BODY = {"keys": {"customer_id": 2}, "request": {"discount": 0.1}}


class WithServing:
    """The real workspace, seen with ``serving`` replaced (build_service reads only config)."""

    def __init__(self, ws: pt.Workspace, serving: dict[str, Any]) -> None:
        self._ws = ws
        self.config = {**ws.config, "serving": serving}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ws, name)


@contextmanager
def serve(ws: pt.Workspace, serving: dict[str, Any] | None = None,
          **kw: Any) -> Iterator[tuple[TestClient, PredictionService]]:
    """A started service over ``ws`` (with ``serving`` as its config) and a client for it."""
    config = {"admin_token": "s3cret", **(serving or {})}
    service = build_service(WithServing(ws, config), poll_interval=0.05, **kw)  # type: ignore[arg-type]
    service.start()
    try:
        yield TestClient(create_app(service, "s3cret"), raise_server_exceptions=False), service
    finally:
        service.stop()
