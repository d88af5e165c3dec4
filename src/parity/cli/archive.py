"""`parity archive sync | export | latest`: the Online Archive from the command line.

A thin layer over ``parity.archive``. The archive URL comes from ``--url`` (default: the
workspace's ``data/archive.db``); the sources from the workspace's definitions. The main CLI
turns every error into one line (this module has no error handler of its own).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import click

from parity.archive import Archive, export, sync
from parity.archive.http import parse_key
from parity.archive.workspace import workspace_archive
from parity.timeutil import to_utc_datetime

_URL_HELP = (
    "Archive URL: sqlite:///path.db or postgresql://host/db?schema=name "
    "(default: the workspace's data/archive.db)."
)


def _open(ctx: click.Context, url: str | None, names: tuple[str, ...]) -> Archive:
    return workspace_archive(ctx.obj.workspace, url, names)


def _moment(value: str | None, field: str) -> datetime | None:
    return None if value is None else to_utc_datetime(value, field)


@click.group("archive")
def archive_group() -> None:
    """The Online Archive: entity histories with a live and a batch interface."""


@archive_group.command("sync")
@click.argument("sources", nargs=-1)
@click.option("--url", default=None, help=_URL_HELP)
@click.option(
    "--through", default=None, help="Sync versions recorded before this ISO time (default now)."
)
@click.pass_context
def sync_command(
    ctx: click.Context, sources: tuple[str, ...], url: str | None, through: str | None
) -> None:
    """Append versions recorded since the last sync to the fact log, exactly once.

    With no SOURCES, every workspace source the archive holds.
    """
    with _open(ctx, url, sources) as archive:
        reports = sync(archive, ctx.obj.workspace.fact_log, through=_moment(through, "through"))
    for r in reports:
        since = r.since.isoformat() if r.since else "the beginning"
        click.echo(
            f"{r.source}: {r.exported} version(s) recorded from {since} to "
            f"{r.through.isoformat()}; {r.appended} new in the fact log"
        )


@archive_group.command("export")
@click.argument("source")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--url", default=None, help=_URL_HELP)
@click.option("--since", default=None, help="First recorded_at (ISO, inclusive).")
@click.option("--until", default=None, help="Last recorded_at (ISO, exclusive).")
@click.pass_context
def export_command(
    ctx: click.Context,
    source: str,
    path: Path,
    url: str | None,
    since: str | None,
    until: str | None,
) -> None:
    """Write the versions of SOURCE recorded in a range to a Parquet file."""
    with _open(ctx, url, (source,)) as archive:
        report = export(archive, source, path, _moment(since, "since"), _moment(until, "until"))
    click.echo(f"{report.rows} version(s) of {source} written to {report.path}")


@archive_group.command("latest")
@click.argument("source")
@click.argument("key")
@click.option("-n", default=10, show_default=True, help="How many facts.")
@click.option("--url", default=None, help=_URL_HELP)
@click.pass_context
def latest_command(ctx: click.Context, source: str, key: str, n: int, url: str | None) -> None:
    """Print the N most recent facts about one entity (KEY: a|b for several key columns)."""
    with _open(ctx, url, (source,)) as archive:
        src = archive.source(source)
        table = archive.latest(src, tuple(parse_key(src, key)), n)
    for row in table.to_pylist():
        click.echo(json.dumps(row, default=lambda v: v.isoformat()))


COMMANDS = [archive_group]
