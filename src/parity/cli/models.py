"""`parity models ...`: list, inspect, promote and roll back registered models.

A thin layer over the public ``Registry`` API. The registry comes from ``ctx.obj.registry``
(the workspace object the main CLI puts on the context). Errors propagate to the root group
(``parity.cli.app``), which turns every parity error into one line.
"""

from __future__ import annotations

import getpass
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from parity.errors import ParityError, StateError, WorkspaceError
from parity.registry import AliasEvent, ModelVersion, Registry


@click.group("models")
def models() -> None:
    """List registered models, inspect a version, move aliases (promote, roll back).

    A model has immutable versions 1, 2, 3... and aliases such as `candidate` and
    `live` that point at one version. Serving loads `NAME@live`; promoting moves the
    alias, rolling back moves it to where it was before.

    \b
    Examples:
      parity models list
      parity models show churn@live
      parity models promote churn 3 --alias live --reason "AUC +2% on last week"
      parity models rollback churn --reason "error rate alert"
    """


@models.command("list")
@click.pass_context
def list_models(ctx: click.Context) -> None:
    """List every registered model with its latest version and aliases.

    \b
    Example:
      parity models list
    """
    registry = _registry(ctx)
    names = registry.list_models()
    if not names:
        _console().print(
            "No models registered yet. Register one from Python with "
            "registry.register(name, model, feature_sets=[...])."
        )
        return
    table = Table(title="models")
    for column in ("model", "versions", "latest", "aliases", "latest registered (UTC)"):
        table.add_column(column)
    for name in names:
        versions = registry.list_versions(name)
        latest = versions[-1]
        aliases = registry.aliases(name)
        table.add_row(
            name,
            str(len(versions)),
            str(latest.version),
            ", ".join(f"{a} -> {v}" for a, v in sorted(aliases.items())) or "-",
            _when(latest.created_at),
        )
    _console().print(table)


@models.command("show")
@click.argument("ref", metavar="NAME[@VERSION|@ALIAS]")
@click.pass_context
def show(ctx: click.Context, ref: str) -> None:
    """Show one version of a model: artifact, lineage, parameters and metrics.

    Without @VERSION or @ALIAS, shows the latest version.

    \b
    Examples:
      parity models show churn          # latest version
      parity models show churn@3        # version 3
      parity models show churn@live     # the version the live alias points at
    """
    registry = _registry(ctx)
    name, _, version_ref = ref.partition("@")
    mv = registry.get(name, version_ref or None)
    console = _console()
    console.print(_version_table(mv, _artifact_format(registry, mv)))
    sections: list[tuple[str, dict[str, Any] | None]] = [
        ("feature sets", mv.feature_sets),
        ("training set", mv.training_set),
        ("params", mv.params),
        ("metrics", mv.metrics),
    ]
    for title, values in sections:
        if values:
            console.print(_mapping_table(title, values))


@models.command("promote")
@click.argument("name")
@click.argument("version", type=int)
@click.option("--alias", default="live", show_default=True, help="The alias to move.")
@click.option("--reason", default=None, help="Why; recorded in the alias history.")
@click.option(
    "--force",
    is_flag=True,
    help="Promote even though the Sentinel stopped (or failed) this version.",
)
@click.pass_context
def promote(
    ctx: click.Context, name: str, version: int, alias: str, reason: str | None, force: bool
) -> None:
    """Point an alias of model NAME at VERSION (atomically) and record the move.

    The version's artifact is verified first (sha256 and signature); a corrupted or unsigned
    artifact is never promoted. A version the Sentinel stopped or failed is promoted only
    with --force, after a warning naming the verdict.

    \b
    Examples:
      parity models promote churn 3                       # live -> 3
      parity models promote churn 4 --alias candidate --reason "nightly retrain"
      parity models promote churn 5 --force --reason "drift expected: new market"
    """
    registry = _registry(ctx)
    verdict = _sentinel_objection(registry, name, version)
    if verdict is not None:
        console = _console()
        console.print(f"warning: the Sentinel {verdict}", highlight=False)
        if not force:
            raise StateError(
                f"not promoted: the Sentinel {verdict}. Fix the model and register a new "
                f"version, or promote it anyway with `parity models promote {name} {version} "
                f"--alias {alias} --force --reason \"...\"`"
            )
        reason = f"{reason or 'forced'} (forced over the Sentinel's verdict)"
    event = registry.set_alias(name, alias, version, reason=reason, actor=_actor())
    if event is None:
        _console().print(f"{name}: {alias} already points at version {version}; nothing changed")
    else:
        _console().print(_describe_move(event))


@models.command("verify")
@click.argument("ref", metavar="NAME[@VERSION|@ALIAS]")
@click.pass_context
def verify(ctx: click.Context, ref: str) -> None:
    """Check a version's artifact (sha256, signature, format) without loading it.

    \b
    Examples:
      parity models verify churn@live
      parity models verify churn@3
    """
    registry = _registry(ctx)
    name, _, version_ref = ref.partition("@")
    mv = registry.verify(name, version_ref or None)
    _console().print(
        f"{mv.ref}: artifact {mv.artifact_sha256[:12]}… is intact and signed with this "
        f"registry's key"
    )


@models.command("rollback")
@click.argument("name")
@click.option("--alias", default="live", show_default=True, help="The alias to move back.")
@click.option("--reason", default=None, help="Why; recorded in the alias history.")
@click.pass_context
def rollback(ctx: click.Context, name: str, alias: str, reason: str | None) -> None:
    """Move an alias of model NAME back to the version it pointed at before its latest move.

    A rollback is itself recorded, so running it twice returns to where you started.

    \b
    Examples:
      parity models rollback churn                    # undo the latest move of live
      parity models rollback churn --alias candidate --reason "bad features"
    """
    registry = _registry(ctx)
    event = registry.rollback(name, alias, reason=reason, actor=_actor())
    _console().print(_describe_move(event) + " (rolled back)")


@models.command("history")
@click.argument("name")
@click.option("--alias", default=None, help="Only this alias (default: all aliases).")
@click.pass_context
def history(ctx: click.Context, name: str, alias: str | None) -> None:
    """Show every move of the aliases of model NAME, oldest first.

    \b
    Examples:
      parity models history churn
      parity models history churn --alias live
    """
    registry = _registry(ctx)
    events = registry.alias_history(name, alias)
    if not events:
        _console().print(f"{name}: no alias has moved yet")
        return
    table = Table(title=f"{name}: alias history")
    for column in ("when (UTC)", "alias", "from", "to", "reason", "actor"):
        table.add_column(column)
    for e in events:
        table.add_row(
            _when(e.moved_at),
            e.alias,
            "-" if e.from_version is None else str(e.from_version),
            str(e.to_version),
            e.reason or "",
            e.actor or "",
        )
    _console().print(table)


# --- helpers ------------------------------------------------------------------------------


def _registry(ctx: click.Context) -> Registry:
    registry = getattr(ctx.obj, "registry", None)
    if not isinstance(registry, Registry):
        raise WorkspaceError(
            "no registry: `parity models` needs a parity workspace (a folder with parity.yaml "
            "naming the registry); run it from inside one"
        )
    return registry


def _sentinel_objection(registry: Registry, name: str, version: int) -> str | None:
    """What the Sentinel said against this version (stopped, or its latest check failed),
    or None when it has no verdict or did not object."""
    from parity.sentinel import VerdictStore

    registry.get(name, version)  # a clear NotFoundError / InputError first
    # Where the Sentinel keeps verdicts by default: beside the artifacts.
    store = VerdictStore(Path(registry.artifacts.root).resolve().parent / "sentinel")
    verdict = store.load(name, version)
    if verdict is None:
        return None
    when = _when(verdict.checked_at)
    if verdict.decision == "stopped":
        return f"stopped {name}@{version} ({when} UTC): {verdict.headline()}"
    if verdict.status == "fail":
        return f"failed {name}@{version} ({when} UTC): {verdict.headline()}"
    return None


def _console() -> Console:
    # Created per call so that it writes to the current sys.stdout (click's test runner swaps it).
    return Console(highlight=False)


def _actor() -> str | None:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in some containers
        return None


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _describe_move(event: AliasEvent) -> str:
    before = "unset" if event.from_version is None else str(event.from_version)
    return f"{event.name}: {event.alias} {before} -> {event.to_version}"


def _artifact_format(registry: Registry, mv: ModelVersion) -> str:
    """The artifact's format after verifying it, or why it would be refused (nothing loaded)."""
    try:
        envelope = registry.artifacts.read_verified(mv.artifact_sha256, label=mv.ref)
    except ParityError as err:
        return f"REFUSED: {err}"
    wrapper = envelope.header.get("wrapper")
    fmt = envelope.model_format
    shown = f"{wrapper['name'].rsplit('.', 1)[-1]} around {fmt}" if wrapper else fmt
    return f"{shown} (signed, verified)"


def _version_table(mv: ModelVersion, artifact_format: str) -> Table:
    table = Table(title=f"{mv.name} version {mv.version}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    if mv.code_version is None:
        code = "unknown (not registered from a git work tree)"
    else:
        code = mv.code_version + (" (dirty: uncommitted changes)" if mv.code_dirty else "")
    rows = [
        ("aliases", ", ".join(mv.aliases) or "-"),
        ("registered (UTC)", mv.created_at.isoformat()),
        ("artifact sha256", mv.artifact_sha256),
        ("artifact size", f"{mv.artifact_size:,} bytes"),
        ("artifact format", artifact_format),
        ("code version", code),
        ("description", mv.description or "-"),
    ]
    for field, value in rows:
        table.add_row(field, value)
    return table


def _mapping_table(title: str, values: dict[str, Any]) -> Table:
    table = Table(title=title)
    table.add_column("name")
    table.add_column("value", overflow="fold")
    for key, value in values.items():
        table.add_row(key, value if isinstance(value, str) else json.dumps(value))
    return table
