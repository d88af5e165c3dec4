"""``parity serve``: the HTTP prediction service.

Errors (a bad parity.yaml value, an unreadable registry) propagate to the root group, which
prints them as one line; this module has no error handler of its own.

``--workers N`` runs N uvicorn worker processes on one port (uvicorn's supervisor, which
replaces a worker that dies). Each worker builds its own service in ``worker_app`` from the
settings the command passes in the ``PARITY_SERVE_WORKER`` environment variable, logs to its
own feature log folder and shares one Prometheus multiprocess folder with the others.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from fastapi import APIRouter, FastAPI

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
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 256),
              help="Worker processes serving on the one port; each logs to its own feature "
                   "log folder (data/feature_log/w<k>), which readers merge.")
@click.pass_obj
def serve(state: object, host: str, port: int, models: tuple[str, ...], log: bool | None,
          sync: bool | None, sample_rate: float | None, workers: int) -> None:
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
      parity models promote churn 3 && parity serve --port 8000 --workers 2
    """
    import uvicorn

    from parity.serving.app import create_app
    from parity.serving.config import ServingConfig
    from parity.serving.factory import build_service

    workspace = state.workspace  # type: ignore[attr-defined]
    config = ServingConfig.from_mapping(workspace.config.get("serving"))
    if workers > 1:
        _serve_workers(workspace, host, port, workers, {
            "models": list(models) or None, "log": log, "sync": sync,
            "sample_rate": sample_rate})
        return
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


def _serve_workers(workspace: Any, host: str, port: int, workers: int,
                   options: dict[str, Any]) -> None:
    """Check and describe what will be served, then run ``workers`` processes of
    ``worker_app`` on one port until interrupted."""
    import shutil
    import tempfile

    from parity.serving.config import ServingConfig
    from parity.serving.factory import build_service

    # Load once here so that a bad configuration fails before any worker starts, and to say
    # what is served; this service has no feature log and is stopped before the workers run.
    probe = build_service(workspace, options["models"], log=False, sync=options["sync"])
    probe.start(watch=False)
    try:
        settings = ServingConfig.from_mapping(workspace.config.get("serving")).feature_log
        enabled = settings.enabled if options["log"] is None else options["log"]
        sync = settings.sync if options["sync"] is None else options["sync"]
        mode = ("off" if not enabled else
                ("durable before each answer (sync)" if sync else "queued (async)")
                + f", one folder per worker under {workspace.feature_log_dir}/w<k>")
        _describe(probe, host, port, log_mode=mode, workers=workers)
    finally:
        probe.stop()
    metrics_dir = tempfile.mkdtemp(prefix="parity-metrics-")
    os.environ[WORKER_ENV] = json.dumps({"workspace": str(workspace.root), **options})
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir  # read by the workers' prometheus_client
    try:
        run_workers("parity.cli.serve:worker_app", host, port, workers)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def run_workers(app_factory: str, host: str, port: int, workers: int) -> None:
    """Run ``workers`` uvicorn processes of the app factory ``app_factory`` (``module:name``)
    on one listening socket, until SIGINT/SIGTERM; uvicorn's supervisor replaces a worker that
    dies. StorageError when the address cannot be bound.

    The socket is bound here rather than by uvicorn: uvicorn's ``bind_socket`` leaves the
    protocol number at 0, so asyncio never sets TCP_NODELAY on accepted connections and every
    keep-alive answer waits ~40 ms for the client's delayed ACK (Kludex/uvicorn#3149; measured
    here: 44 ms p50 for a 1 ms request).
    """
    import socket

    from uvicorn import Config
    from uvicorn.supervisors import Multiprocess

    from parity.errors import StorageError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StorageError(f"cannot listen on {host}:{port}: {exc.strerror}; pick another "
                           f"--port or stop what uses it") from None
    sock.set_inheritable(True)
    config = Config(app_factory, factory=True, workers=workers, host=host, port=port,
                    log_level="warning")
    try:
        Multiprocess(config, sockets=[sock]).run()
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()


WORKER_ENV = "PARITY_SERVE_WORKER"


def worker_app() -> FastAPI:
    """The app of one ``parity serve --workers N`` process (a uvicorn app factory).

    Reads the settings ``parity serve`` put in ``PARITY_SERVE_WORKER``; claims its own
    feature log folder; stops its service (sealing that folder) when uvicorn shuts it down.
    """
    import parity
    from parity.serving.app import create_app
    from parity.serving.config import ServingConfig
    from parity.serving.factory import build_service

    options = json.loads(os.environ[WORKER_ENV])
    workspace = parity.open(options["workspace"])
    config = ServingConfig.from_mapping(workspace.config.get("serving"))
    service = build_service(workspace, options["models"], log=options["log"],
                            sample_rate=options["sample_rate"], sync=options["sync"],
                            worker=True, metrics_dir=os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
    service.start()
    return create_app(service, config.admin_token, routers=_routers(workspace),
                      on_shutdown=service.stop)


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


def _describe(service: PredictionService, host: str, port: int, log_mode: str | None = None,
              workers: int = 1) -> None:
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
    mode = log_mode or ("off" if not log.get("enabled", True) else
                        "durable before each answer (sync)" if log.get("sync") else
                        "queued (async)")
    click.echo(f"feature log: {mode}", err=True)
    if workers > 1:
        click.echo(f"workers: {workers} processes on one port; /health answers for the worker "
                   f"that takes the request, /metrics for all of them", err=True)
    for reason in health["reasons"]:
        click.echo(f"warning: {reason}", err=True)
    click.echo(f"listening on {url}  (docs: {url}/docs, health: {url}/health)", err=True)


COMMANDS = [serve]
