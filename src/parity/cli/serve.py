"""``parity serve``: the HTTP prediction service."""

from __future__ import annotations

import click


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("-m", "--model", "models", multiple=True,
              help="Model to serve (repeatable; default: serving.models, else every model "
                   "with a live alias).")
@click.option("--log/--no-log", "log", default=None,
              help="Log served features to the feature log (default: on).")
@click.option("--sample-rate", type=float, help="Fraction of entities whose requests are logged.")
@click.pass_obj
def serve(state: object, host: str, port: int, models: tuple[str, ...], log: bool | None,
          sample_rate: float | None) -> None:
    """Serve the live version of each model over HTTP, hot-swapping when `live` moves.

    Features come from the online store with the same definitions the model was trained on;
    a model whose feature set versions differ from the definitions is refused. Every
    prediction is logged to data/feature_log (Lumberjack) unless --no-log.

    \b
    Endpoints:
      POST /v1/models/NAME/predict         {"keys": {...}, "request": {...}}
      POST /v1/models/NAME/predict-batch   {"contexts": [...]}
      GET  /health   GET /metrics   GET /docs (OpenAPI)
      POST /admin/models/NAME/reload|promote   (Authorization: Bearer serving.admin_token)

    \b
    Example:
      parity models promote churn 3 && parity serve --port 8000
    """
    import uvicorn

    from parity.serving.app import create_app
    from parity.serving.factory import build_service

    workspace = state.workspace  # type: ignore[attr-defined]
    service = build_service(workspace, list(models) or None, log=log, sample_rate=sample_rate)
    service.start()
    for name, info in service.health()["models"].items():
        click.echo(f"serving {name} version {info['version']} "
                   f"({'ok' if info['version'] else info['last_load']})", err=True)
    token = (workspace.config.get("serving") or {}).get("admin_token")
    try:
        uvicorn.run(create_app(service, token), host=host, port=port, log_level="warning")
    finally:
        service.stop()


COMMANDS = [serve]
