"""`parity materialize | push | get | skew-check`: the online path from the command line.

A thin layer over ``OnlineFeatures`` and ``parity.skew``. The workspace comes from
``ctx.obj.workspace``; the main CLI registers every command in ``COMMANDS`` and turns every
error into one line (this module has no error handler of its own).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from parity.errors import SchemaError
from parity.online import OnlineFeatures
from parity.online.options import from_config
from parity.timeutil import to_utc_datetime


def _workspace(ctx: click.Context) -> Any:
    return ctx.obj.workspace


def _reader(workspace: Any) -> tuple[OnlineFeatures, bool]:
    """The online path for a pure read, and whether the caller must close it.

    Opened read-only (nothing on disk changes), except a memory store, which lives in this
    process only: the workspace's own is the one that holds data.
    """
    url, _ = from_config(workspace.config.get("online"), workspace.data_dir / "online.db")
    if url.startswith("memory:"):
        return workspace.online, False
    return workspace.open_online(read_only=True), True


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


@click.command("materialize")
@click.argument("feature_sets", nargs=-1)
@click.pass_context
def materialize(ctx: click.Context, feature_sets: tuple[str, ...]) -> None:
    """Fill (or repair) the online store from the fact log.

    With no FEATURE_SETS, every feature set of the workspace is materialized.

    \b
    Example:
      parity materialize
      parity materialize member_activity
    """
    online = _workspace(ctx).online
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=_console(), transient=True) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(source: str, done: int, total: int) -> None:
            if source not in tasks:
                tasks[source] = bar.add_task(f"materialize {source}", total=total)
            bar.update(tasks[source], completed=done)

        report = online.materialize(list(feature_sets) or None, progress=progress)
    online.flush()
    for name, count in report.facts.items():
        _console().print(
            f"{name}: {count} fact versions read, {report.entities[name]} entities online"
        )
    _console().print(f"materialized in {report.seconds:.2f}s into {online.store.url}")


@click.command("push")
@click.argument("source")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.pass_context
def push(ctx: click.Context, source: str, file: str) -> None:
    """Push the facts in FILE (Parquet or CSV) to SOURCE: online at once, then logged.

    Facts are validated first; a bad one rejects the whole file. recorded_at is now unless
    the file has a recorded_at column.

    \b
    Example:
      parity push plays new_plays.csv
    """
    online = _workspace(ctx).online
    report = online.push(source, file)
    online.flush()
    _console().print(
        f"pushed {report.facts} facts about {report.entities} entities to {report.source}; "
        f"visible after {report.seconds * 1000:.1f} ms, and appended to the fact log"
    )


@click.command("get")
@click.argument("feature_set")
@click.option("--key", "keys", multiple=True, metavar="NAME=VALUE", help="An entity key.")
@click.option("--at", "at", default=None, help="ISO 8601 time with offset (default: now).")
@click.option("--request", "fields", multiple=True, metavar="NAME=VALUE", help="A request field.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def get(
    ctx: click.Context,
    feature_set: str,
    keys: tuple[str, ...],
    at: str | None,
    fields: tuple[str, ...],
    as_json: bool,
) -> None:
    """Print the features of FEATURE_SET for one context, computed online.

    Also prints whether the entity was ever seen ("found"): features of an entity never seen
    are empty-window values, not facts about it. Refuses when a source of FEATURE_SET was
    never materialized (run `parity materialize FEATURE_SET`). Opens the store read-only.

    \b
    Example:
      parity get member_activity --key member_id=42 --request device=tv
      parity get member_activity --key member_id=42 --at 2024-03-10T12:00:00Z
    """
    workspace = _workspace(ctx)
    fs = workspace.definitions.feature_set(feature_set)
    context: dict[str, Any] = {}
    for name, value in (_pair(k, "--key") for k in keys):
        if name not in fs.entity.keys:
            raise SchemaError(
                f"--key {name}: entity {fs.entity.name!r} has keys "
                f"{', '.join(fs.entity.keys)}; use --key {next(iter(fs.entity.keys))}=..."
            )
        context[name] = _typed_key(name, value, fs.entity.keys[name])
    missing = [k for k in fs.entity.keys if k not in context]
    if missing:
        raise SchemaError(
            f"feature set {fs.name!r} is about entity {fs.entity.name!r}: give its key with "
            f"{' '.join(f'--key {k}=...' for k in missing)}"
        )
    context.update(_pair(f, "--request") for f in fields)
    for name in fs.request_fields:
        context.setdefault(name, None)
    context["at"] = to_utc_datetime(at, "--at") if at else datetime.now(timezone.utc)
    online, owned = _reader(workspace)
    try:
        answer = online.answer(fs.name, [context])
    finally:
        if owned:
            online.close()
    row = answer.table.to_pylist()[0]
    values = {f.name: row[f.name] for f in fs.features}
    found = answer.found[0]
    if as_json:
        payload = {"found": found, "at": context["at"], "features": values}
        click.echo(json.dumps(payload, default=_json_default, indent=1))
        return
    shown = {k: v for k, v in context.items() if k != "at"}
    table = Table(title=f"{fs.name} for {shown} at {context['at'].isoformat()}")
    table.add_column("feature")
    table.add_column("value")
    for name, value in values.items():
        table.add_row(name, repr(value))
    console = _console()
    console.print(table)
    console.print(
        "found: yes (the online store holds facts about this entity)"
        if found
        else "found: no - the online store holds no fact about this entity; the values above "
        "are empty-window values, not facts about it"
    )


@click.command("skew-check")
@click.argument("feature_sets", nargs=-1)
@click.option("--requests", default=1000, show_default=True, help="Requests to compare.")
@click.option(
    "--facts",
    "limit",
    default=20_000,
    show_default=True,
    help="Replay the latest this many fact versions per source (by recorded_at).",
)
@click.option("--batch", default=50, show_default=True, help="Fact versions per push.")
@click.option(
    "--store", default="memory://", show_default=True, help="Online store to replay into."
)
@click.option(
    "--lookback", default="1h", show_default=True, help="Online lookback ('none': keep all)."
)
@click.option(
    "--request",
    "fields",
    multiple=True,
    metavar="NAME=VALUE",
    help="A value for a request field in every request.",
)
@click.option("--seed", default=0, show_default=True)
@click.pass_context
def skew_check(
    ctx: click.Context,
    feature_sets: tuple[str, ...],
    requests: int,
    limit: int,
    batch: int,
    store: str,
    lookback: str,
    fields: tuple[str, ...],
    seed: int,
) -> None:
    """Replay logged facts through the online path and compare with the Time Machine.

    Prints the mismatch rate per feature and the first differing rows; exits with status 1
    when any value differs.

    \b
    Example:
      parity skew-check member_activity --requests 2000
    """
    from parity.skew import replay

    workspace = _workspace(ctx)
    names = list(feature_sets) or list(workspace.definitions.feature_sets)
    chosen = [workspace.definitions.feature_set(n) for n in names]
    facts = {}
    for source in {s.name: s for fs in chosen for s in fs.sources}.values():
        table = workspace.fact_log.read(source)
        if table.num_rows > limit:
            table = table.sort_by([("recorded_at", "ascending")]).slice(table.num_rows - limit)
        facts[source.name] = table
    report = replay(
        chosen,
        facts,
        workspace.engine,
        store,
        requests=requests,
        batch=batch,
        lookback=None if lookback.lower() == "none" else lookback,
        request_values=dict(_pair(f, "--request") for f in fields),
        seed=seed,
    )
    table = Table(title=f"skew-check: {report.rows} requests, {report.facts} facts replayed")
    table.add_column("feature")
    table.add_column("mismatches", justify="right")
    table.add_column("rate", justify="right")
    for name, count in report.mismatches.items():
        table.add_row(name, str(count), f"{report.rate(name):.2%}")
    console = _console()
    console.print(table)
    for m in report.first:
        console.print(
            f"row {m.row} {m.ids}: {m.feature} offline {m.expected!r}, online {m.actual!r}"
        )
    if not report.ok:
        console.print(f"SKEW: {report.total} values differ")
        ctx.exit(1)
    console.print("OK: online and offline agree on every value")


def _pair(text: str, option: str) -> tuple[str, str]:
    if "=" not in text:
        raise SchemaError(f"{option} {text!r}: write NAME=VALUE, e.g. {option} member_id=42")
    name, value = text.split("=", 1)
    return name.strip(), value


def _typed_key(name: str, value: str, dtype: str) -> Any:
    if dtype != "int":
        return value
    try:
        return int(value)
    except ValueError:
        raise SchemaError(
            f"--key {name}={value!r}: the key is declared 'int'; give a whole number"
        ) from None


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


COMMANDS = [materialize, push, get, skew_check]
