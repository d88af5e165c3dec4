"""``parity sources [delete|reset NAME]``: what the fact log holds per source, and clearing it.

- ``parity sources`` lists every source (defined, or only present in the fact log) with its
  stored fact versions, event-time range, latest ``recorded_at`` and the online store's
  applied watermark. It opens the online store read-only and writes nothing.
- ``parity sources reset NAME`` removes the source's facts and keeps its recorded
  definition; its online state is cleared so that reads refuse (not materialized) instead of
  answering from facts that are gone.
- ``parity sources delete NAME`` removes the source's facts and its recorded definition
  (the fact log's folder for it), so the name can be reused with another schema; its online
  state is cleared the same way. The definition in the features file is the user's to remove.

Both ask for confirmation unless ``--yes``. Errors go to the root group's one error path.
"""

from __future__ import annotations

from datetime import datetime

import click
from rich.console import Console
from rich.table import Table

from parity.errors import NotFoundError, TransientError
from parity.workspace import Workspace


def _console() -> Console:
    # Created per call so that it writes to the current sys.stdout (click's test runner swaps it).
    return Console(highlight=False, soft_wrap=True)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


@click.group("sources", invoke_without_command=True)
@click.pass_context
def sources(ctx: click.Context) -> None:
    """List sources with fact counts and freshness; `delete` or `reset` one.

    \b
    Example:
      parity sources
      parity sources reset purchases --yes
    """
    if ctx.invoked_subcommand is None:
        _list(ctx.obj.workspace)


def _list(ws: Workspace) -> None:
    defined = ws.definitions.sources
    names = sorted(set(defined) | set(ws.fact_log.sources()))
    online, note = _online_marks(ws)
    table = Table(title="sources")
    for column in ("source", "kind", "fact versions", "event time from", "event time to",
                   "latest recorded_at", "online watermark"):
        table.add_column(column)
    for name in names:
        summary = ws.fact_log.summary(name)
        kind = defined[name].kind if name in defined else "not defined"
        table.add_row(
            name,
            kind,
            f"{summary.rows:,}",
            _when(summary.min_event_time),
            _when(summary.max_event_time),
            _when(summary.latest_recorded_at),
            online.get(name, "not served online"),
        )
    console = _console()
    console.print(table)
    if note:
        console.print(note)


def _online_marks(ws: Workspace) -> tuple[dict[str, str], str]:
    """The online watermark of each served source as text, and a note if the store is down."""
    try:
        readiness = ws.online_reader.readiness()
    except TransientError as exc:
        return {}, f"online store unreachable ({exc}); watermarks not shown"
    marks: dict[str, str] = {}
    for name, ready in readiness.items():
        if not ready.materialized:
            marks[name] = "not materialized"
        elif ready.watermark is None:
            marks[name] = "- (no facts)"
        else:
            behind = f" (behind {ready.behind})" if ready.behind else ""
            marks[name] = _when(ready.watermark) + behind
    return marks, ""


def _known(ws: Workspace, name: str) -> None:
    if name not in ws.definitions.sources and name not in ws.fact_log.sources():
        known = sorted(set(ws.definitions.sources) | set(ws.fact_log.sources()))
        raise NotFoundError(
            f"no source {name!r} in the definitions or the fact log; known: "
            f"{', '.join(known) or '(none)'}"
        )


def _clear_online(ws: Workspace, name: str) -> str:
    """Clear ``name``'s online state through the online API; say what was done."""
    if name not in ws.definitions.sources:
        return "not served online"
    online = ws.online
    if name not in online.sources:
        return "not served online"
    online.reset(name)
    return "its online state cleared (reads refuse until `parity materialize`)"


def _confirm(action: str, name: str, rows: int, yes: bool) -> None:
    if not yes:
        click.confirm(
            f"{action} source {name!r}: {rows:,} stored fact versions will be removed. Continue?",
            abort=True,
        )


@sources.command("reset")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def reset(state: object, name: str, yes: bool) -> None:
    """Remove every fact of source NAME; keep its recorded definition.

    Its online state is cleared too: reads refuse until the next `parity materialize`.
    """
    ws: Workspace = state.workspace  # type: ignore[attr-defined]
    _known(ws, name)
    _confirm("reset", name, ws.fact_log.summary(name).rows, yes)
    online = _clear_online(ws, name)
    removed = ws.fact_log.reset(name)
    _console().print(f"reset {name}: {removed:,} fact versions removed; {online}")


@sources.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def delete(state: object, name: str, yes: bool) -> None:
    """Remove source NAME from the fact log: its facts and its recorded definition.

    The name can then be reused with another schema. Its online state is cleared too.
    Remove the source from your features file yourself if it is gone for good.
    """
    ws: Workspace = state.workspace  # type: ignore[attr-defined]
    _known(ws, name)
    _confirm("delete", name, ws.fact_log.summary(name).rows, yes)
    online = _clear_online(ws, name)
    removed = ws.fact_log.remove(name)
    _console().print(f"deleted {name}: {removed:,} fact versions removed; {online}")
