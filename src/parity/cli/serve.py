"""``parity serve``: the HTTP prediction service.

Errors (a bad parity.yaml value, an unreadable registry) propagate to the root group, which
prints them as one line; this module has no error handler of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from fastapi import APIRouter

    from parity.serving.service import PredictionService


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("-m", "--model", "models", multiple=True,
              help="Model to serve (repeatable; default: serving.models, else every model "
                   "with a live alias).")
@click.option("--log/--no-log", "log", default=None,
              help="Log served features to the feature log (default: on).")
@click.option("--sync-log/--no-sync-log", "sync", default=None,
              help="Answer only after the prediction's log record is fsynced, so that "
                   "\"logged\": \"durable\" (default: serving.feature_log.sync, else off).")
@click.option("--sample-rate", type=float, help="Fraction of entities whose requests are logged.")
@click.pass_obj
def serve(state: object, host: str, port: int, models: tuple[str, ...], log: bool | None,
          sync: bool | None, sample_rate: float | None) -> None:
    """Serve the live version of each model over HTTP, hot-swapping when `live` moves.

    Features come from the online store with the same definitions the model was trained on;
    a model whose feature set versions differ from the definitions is refused, and a feature
    set whose sources were never materialized is answered 503 (run `parity materialize`).
    Every prediction is logged to data/feature_log (Lumberjack) unless --no-log.

    \b
    Endpoints:
      POST /v1/models/NAME/predict         {"keys": {...}, "at": "...Z", "request": {...}}
      POST /v1/models/NAME/predict-batch   {"contexts": [...]}
      GET  /health   GET /metrics   GET /docs (OpenAPI, works offline)
      POST /admin/models/NAME/reload|promote   (Authorization: Bearer serving.admin_token)

    \b
    Example:
      parity models promote churn 3 && parity serve --port 8000
    """
    import uvicorn

    from parity.serving.app import create_app
    from parity.serving.config import ServingConfig
    from parity.serving.factory import build_service

    workspace = state.workspace  # type: ignore[attr-defined]
    config = ServingConfig.from_mapping(workspace.config.get("serving"))
    service = build_service(workspace, list(models) or None, log=log, sample_rate=sample_rate,
                            sync=sync)
    service.start()
    try:
        _describe(service, host, port)
        uvicorn.run(create_app(service, config.admin_token, routers=_routers(workspace)),
                    host=host, port=port,
                    log_level="warning")
    finally:
        service.stop()


def _routers(workspace: Any) -> list[APIRouter]:
    """The read endpoints served beside the models: Hulk publications and the Online Archive."""
    from functools import cache

    from parity.archive.http import archive_router
    from parity.archive.workspace import workspace_archive
    from parity.hulk import open_publications
    from parity.hulk.http import publications_router

    # Each store is opened on its first request, then kept: a server that is never asked for
    # publications or archive histories never creates their stores.
    return [publications_router(cache(lambda: open_publications(workspace))),
            archive_router(cache(lambda: workspace_archive(workspace)))]


def _describe(service: PredictionService, host: str, port: int) -> None:
    """Say where the service listens, what it serves, and what to do when nothing is live."""
    health = service.health()
    url = f"http://{host}:{port}"
    if not health["models"]:
        click.echo("no model is live: nothing to serve. Register a model, then run "
                   "`parity models promote NAME VERSION` (or pass -m NAME).", err=True)
    for name, info in health["models"].items():
        if info["version"] is not None:
            click.echo(f"serving {name} version {info['version']}: "
                       f"POST {url}/v1/models/{name}/predict", err=True)
        elif info["last_load"] is not None and info["last_load"]["error"]:
            click.echo(f"{name}: version {info['last_load']['version']} could not be loaded: "
                       f"{info['last_load']['error']}", err=True)
        else:
            click.echo(f"{name}: no live version yet; run `parity models promote {name} "
                       f"VERSION` (it is picked up without a restart)", err=True)
    log = health["feature_log"]
    mode = ("off" if not log.get("enabled", True) else
            "durable before each answer (sync)" if log.get("sync") else "queued (async)")
    click.echo(f"feature log: {mode}", err=True)
    for reason in health["reasons"]:
        click.echo(f"warning: {reason}", err=True)
    click.echo(f"listening on {url}  (docs: {url}/docs, health: {url}/health)", err=True)


COMMANDS = [serve]
