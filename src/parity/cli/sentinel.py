"""`parity sentinel ...`: check a model version, watch for candidates, write reports, roll back.

A thin layer over ``parity.sentinel.Sentinel``. The workspace comes from ``ctx.obj.workspace``
(registry, online store, fact log, feature log, definitions and the ``sentinel:`` section of
``parity.yaml``).

Exit codes of ``check``: 0 pass, 1 fail, 3 not enough data. Errors propagate to the root
group in ``parity.cli.app``, which turns every ParityError and OSError into one line (exit 2).
"""

from __future__ import annotations

import logging
import sys

import click
from rich.console import Console
from rich.table import Table

from parity.sentinel import Sentinel, Verdict, WorkspaceInputs

EXIT_NOT_ENOUGH_DATA = 3
_STYLE = {"pass": "green", "fail": "red", "not_enough_data": "yellow", "skipped": "dim"}


@click.group("sentinel")
def sentinel() -> None:
    """Validate model versions next to the live system before they serve.

    \b
    Examples:
      parity sentinel check churn@4             # one verdict, stored with version 4
      parity sentinel check churn@candidate --promote
      parity sentinel watch churn --interval 60 # promote passing candidates to live
      parity sentinel report churn@4 -o churn-4.html
      parity sentinel rollback churn            # put the previous live version back
    """


@sentinel.command("check")
@click.argument("ref", metavar="MODEL[@VERSION|@ALIAS]")
@click.option("--promote", is_flag=True, help="Move `live` to this version if it passes.")
@click.pass_context
def check(ctx: click.Context, ref: str, promote: bool) -> None:
    """Run every configured check on one version and print the verdict.

    Without @VERSION the `candidate` alias is checked. The verdict (JSON) and its HTML
    report are stored with the version; their paths are printed.

    \b
    Example:
      parity sentinel check churn@4
    """
    model, version = _parse(ref)
    gate = _sentinel(ctx)
    verdict = gate.check(model, version)
    _print(verdict)
    if promote and verdict.passed:
        gate.registry.set_alias(model, "live", verdict.version,
                                reason=f"sentinel check --promote: {verdict.paths['verdict']}",
                                actor="sentinel")
        _console().print(f"promoted: live -> {verdict.version}")
    if verdict.status == "fail":
        sys.exit(1)
    if verdict.status == "not_enough_data":
        sys.exit(EXIT_NOT_ENOUGH_DATA)


@sentinel.command("watch")
@click.argument("model")
@click.option("--interval", type=float, default=None,
              help="Seconds between polls (default: the model's configured interval, 60).")
@click.option("--once", is_flag=True, help="Poll once and exit.")
@click.pass_context
def watch(ctx: click.Context, model: str, interval: float | None, once: bool) -> None:
    """Validate each new `candidate` of MODEL; promote it to `live` on pass.

    On a fail, `live` stays where it is and an alert goes out: a log line, the configured
    webhook (sentinel.<model>.webhook in parity.yaml) and any Python hooks. On "not enough
    data" the candidate is held and checked again at the next poll.

    \b
    Example:
      parity sentinel watch churn --interval 300
    """
    logger = logging.getLogger("parity.sentinel")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    gate = _sentinel(ctx)
    try:
        verdicts = gate.watch(model, interval=interval, iterations=1 if once else None)
    except KeyboardInterrupt:
        verdicts = []
    for verdict in verdicts:
        _print(verdict)
    if once and not verdicts:
        _console().print(f"nothing to do: {model} has no undecided candidate")


@sentinel.command("report")
@click.argument("ref", metavar="MODEL[@VERSION|@ALIAS]")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Where to write the HTML report.")
@click.pass_context
def report(ctx: click.Context, ref: str, output: str) -> None:
    """Write the HTML report of a version's latest verdict (checking it if never checked).

    The report is one self-contained file (plots embedded) that opens offline.

    \b
    Example:
      parity sentinel report churn@4 -o churn-4.html
    """
    model, version = _parse(ref)
    path = _sentinel(ctx).report(model, version, output)
    _console().print(f"wrote {path}")


@sentinel.command("rollback")
@click.argument("model")
@click.option("--reason", default=None, help="Why; recorded in the alias history.")
@click.pass_context
def rollback(ctx: click.Context, model: str, reason: str | None) -> None:
    """Put the previous live version of MODEL back.

    \b
    Example:
      parity sentinel rollback churn --reason "conversion alert"
    """
    event = _sentinel(ctx).rollback(model, reason)
    _console().print(f"{model}: live {event.from_version} -> {event.to_version}")


def _sentinel(ctx: click.Context) -> Sentinel:
    state = ctx.obj
    workspace = getattr(state, "workspace", None)
    if workspace is None:
        raise click.ClickException(
            "no workspace: `parity sentinel` needs a parity workspace (a folder with parity.yaml)"
        )
    section = (getattr(workspace, "config", None) or {}).get("sentinel") or {}
    return Sentinel(workspace.registry, WorkspaceInputs(workspace), config=section)


def _parse(ref: str) -> tuple[str, int | str]:
    model, _, version = ref.partition("@")
    if not model:
        raise click.BadParameter(f"expected MODEL[@VERSION], got {ref!r}")
    if not version:
        return model, "candidate"
    return model, int(version) if version.isdigit() else version


def _print(verdict: Verdict) -> None:
    console = _console()
    style = _STYLE.get(verdict.status, "")
    console.print(f"[bold {style}]{verdict.headline()}[/]")
    table = Table()
    for column in ("check", "status", "reason"):
        table.add_column(column, overflow="fold")
    for result in verdict.results:
        table.add_row(result.check, f"[{_STYLE.get(result.status, '')}]{result.status}[/]",
                      result.reason)
    console.print(table)
    window = verdict.shadow_window or {}
    if window.get("summary"):
        console.print(window["summary"])
    for warning in verdict.warnings:
        console.print(f"[yellow]warning[/] {warning.code}: {warning.message}")
    for key in ("verdict", "report"):
        if verdict.paths.get(key):
            console.print(f"{key}: {verdict.paths[key]}")
    if verdict.decision:
        console.print(f"decision: {verdict.decision}")


def _console() -> Console:
    # Created per call so that it writes to the current sys.stdout (click's test runner swaps it).
    return Console(highlight=False, width=160)
