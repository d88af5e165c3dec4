"""The ``parity`` command line: a thin layer over the public API."""

from __future__ import annotations

import errno
import importlib
import sqlite3
import time
from pathlib import Path
from typing import Any

import click
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

import parity
from parity.cli.sources import sources as sources_group
from parity.errors import ParityError
from parity.timeutil import to_utc_datetime

console = Console(stderr=True)
out = Console()


class CliState:
    """What every command receives as ``ctx.obj``: the workspace, opened on first use."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._workspace: parity.Workspace | None = None

    @property
    def workspace(self) -> parity.Workspace:
        """The workspace at ``--workspace`` (default: the current folder)."""
        if self._workspace is None:
            self._workspace = parity.open(self.path)
        return self._workspace

    def __getattr__(self, name: str) -> Any:
        return getattr(self.workspace, name)


class ParityGroup(click.Group):
    """The root group: every known failure of every command becomes one line and exit code 2.

    This is the CLI's only error handler; command modules let errors propagate to it. Usage
    errors stay click's (exit 2 with the usage line); ``--debug`` re-raises for the traceback.
    Unknown exceptions (bugs) are not hidden: they keep their traceback.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            message = describe_failure(exc)
            if message is None or ctx.params.get("debug"):
                raise
            console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
            raise click.exceptions.Exit(EXIT_FAILURE) from None


EXIT_FAILURE = 2
_DEBUG_HINT = "(run with --debug for the traceback)"
# Driver exceptions recognised by class name anywhere in their MRO, so that the CLI does not
# import redis or psycopg just to catch their errors.
_UNREACHABLE = {
    ("redis.exceptions", "ConnectionError"),
    ("redis.exceptions", "TimeoutError"),
    ("psycopg", "OperationalError"),
    ("psycopg.errors", "OperationalError"),
}


def describe_failure(exc: BaseException) -> str | None:
    """One line saying what failed, where, and what to do; None for an unknown failure (a bug).

    Known failures: every ``ParityError`` (its message already follows that form), an
    ``OSError`` (full disk, permissions, read-only file system, missing file, refused connection),
    a service that does not answer, a database file that cannot be opened, a data file pyarrow
    cannot parse.
    """
    if isinstance(exc, ParityError):
        return str(exc)
    names = {(cls.__module__, cls.__name__) for cls in type(exc).__mro__}
    if names & _UNREACHABLE:
        return (
            f"a service did not answer: {_first_line(exc)}; check that it runs and that the URL "
            f"in parity.yaml is right, then retry"
        )
    if isinstance(exc, OSError):
        return _describe_os_error(exc)
    if isinstance(exc, sqlite3.Error):
        return (
            f"database error: {_first_line(exc)}; check that the SQLite files under the "
            f"workspace's data/ folder exist and are readable (and writable for commands that "
            f"write) {_DEBUG_HINT}"
        )
    if isinstance(exc, pa.ArrowException):
        return f"cannot read the data: {_first_line(exc)}; check the file is complete {_DEBUG_HINT}"
    return None


def _describe_os_error(exc: OSError) -> str:
    where = exc.filename if exc.filename is not None else "(path not reported)"
    if isinstance(exc, ConnectionError) or exc.errno in (errno.ECONNREFUSED, errno.ETIMEDOUT):
        return (
            f"could not connect: {exc.strerror or exc}; check that the service runs and that "
            f"the URL in parity.yaml is right, then retry"
        )
    if exc.errno == errno.ENOSPC:
        return (
            f"no space left on the device holding {where}; free space there and run the "
            f"command again (nothing half-written was committed)"
        )
    if exc.errno == errno.EROFS:
        return (
            f"{where} is on a read-only file system; run commands that write from a "
            f"writable copy of the workspace"
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        return (
            f"permission denied on {where}; check its owner and mode (ls -l) or run as a user "
            f"who may use it"
        )
    if exc.errno == errno.ENOENT:
        return f"no such file or folder: {where}"
    return f"{exc.strerror or _first_line(exc)}: {where} {_DEBUG_HINT}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@click.group(cls=ParityGroup)
@click.option(
    "-w",
    "--workspace",
    default=".",
    show_default=True,
    envvar="PARITY_WORKSPACE",
    help="Folder holding parity.yaml.",
)
@click.option(
    "--debug",
    is_flag=True,
    envvar="PARITY_DEBUG",
    help="Show the full traceback of an error instead of its one-line summary.",
)
@click.version_option(parity.__version__, prog_name="parity")
@click.pass_context
def main(ctx: click.Context, workspace: str, debug: bool) -> None:
    """parity: one definition of every feature and model, offline and online.

    \b
    Start here:
      parity init my-project          create a workspace with a starter features.py
      parity ingest purchases f.csv   append facts to the fact log
      parity training-set ctx.parquet -f customer_features -o train.parquet
    """
    ctx.obj = CliState(workspace)


@main.command()
@click.argument("path", default=".")
@click.option("--name", help="Project name written to parity.yaml (default: folder name).")
@click.option("--force", is_flag=True, help="Overwrite an existing parity.yaml.")
def init(path: str, name: str | None, force: bool) -> None:
    """Create a workspace in PATH: parity.yaml and a starter features.py.

    \b
    Example:
      parity init retail && cd retail && parity features
    """
    root = parity.init(path, name=name, force=force)
    out.print(f"created workspace [bold]{root}[/]")
    out.print("  parity.yaml  - backends (all embedded by default)")
    out.print("  features.py  - your entities, sources and feature sets; edit it")


@main.command()
@click.pass_obj
def features(state: CliState) -> None:
    """List the sources and feature sets the workspace defines, with versions."""
    defs = state.workspace.definitions
    table = Table(title="sources")
    for column in ("source", "kind", "entity keys", "fields", "lag", "facts logged"):
        table.add_column(column)
    for source in defs.sources.values():
        logged = sum(e.rows for e in state.workspace.fact_log.files(source))
        spec = source.spec()
        table.add_row(
            source.name,
            source.kind,
            ", ".join(source.entity.keys),
            ", ".join(f"{k}:{v}" for k, v in source.schema.items()),
            spec["lag"] or "-",
            f"{logged:,}",
        )
    out.print(table)
    for fs in defs.feature_sets.values():
        detail = Table(title=f"feature set {fs.name}  (version {fs.version})")
        for column in ("feature", "type", "definition"):
            detail.add_column(column)
        for feature in fs.features:
            spec = feature.spec()
            kind = spec.pop("type")
            spec.pop("name")
            spec.pop("code", None)
            text = ", ".join(f"{k}={v}" for k, v in spec.items() if v not in (None, [], False))
            detail.add_row(feature.name, feature.dtype, f"{kind}: {text}")
        out.print(detail)


@main.command()
@click.argument("source")
@click.argument("file", type=click.Path(exists=True, dir_okay=True))
@click.option(
    "--recorded-at",
    default="lag",
    show_default=True,
    help="When the facts became known if the file has no recorded_at column: "
    "'lag' (event_time + the source's lag: a history load), 'now', or an "
    "ISO timestamp.",
)
@click.option(
    "--rename",
    multiple=True,
    metavar="OLD=NEW",
    help="Rename a column on the way in, e.g. --rename InvoiceDate=event_time.",
)
@click.option("--drop", multiple=True, metavar="COL", help="Leave column COL out (repeatable).")
@click.option(
    "--drop-extra",
    is_flag=True,
    help="Leave out every column the source does not declare (they are listed in the output). "
    "Without it such columns are an error.",
)
@click.option(
    "--tz",
    metavar="ZONE",
    help="Time zone of timestamps written without one (e.g. UTC, Europe/Paris). Without it "
    "naive timestamps are refused.",
)
@click.pass_obj
def ingest(
    state: CliState,
    source: str,
    file: str,
    recorded_at: str,
    rename: tuple[str, ...],
    drop: tuple[str, ...],
    drop_extra: bool,
    tz: str | None,
) -> None:
    """Append the facts in FILE to SOURCE's fact log, all or nothing.

    FILE is a Parquet or CSV file, or a folder of them (one data set). It needs the entity
    key columns, the source's fields and `event_time`; `recorded_at` and `fact_id` columns are
    optional. A column the source does not declare is an error: rename it, drop it, or add it
    to the source. Re-ingesting the same file is harmless: identical facts are skipped.

    \b
    Example:
      parity ingest purchases purchases.csv --rename ts=event_time --tz Europe/Paris
    """
    policy: Any = (
        recorded_at
        if recorded_at in ("lag", "now")
        else to_utc_datetime(recorded_at, "--recorded-at")
    )
    mapping = dict(_pair(r, "--rename") for r in rename)
    started = time.perf_counter()
    report = state.workspace.ingest(
        source, file, recorded_at=policy, rename=mapping or None, drop=drop,
        drop_extra=drop_extra, tz=tz,
    )
    out.print(
        f"ingested [bold]{report.rows_written:,}[/] facts into {source} "
        f"({report.duplicates_skipped:,} already logged, {report.files} files) "
        f"in {time.perf_counter() - started:.1f}s"
    )
    if report.columns_dropped:
        out.print(f"left out columns: {', '.join(report.columns_dropped)}")


@main.command("training-set")
@click.argument("contexts", type=click.Path(exists=True))
@click.option(
    "-f",
    "--feature-set",
    "feature_sets",
    multiple=True,
    required=True,
    help="Feature set to compute (repeatable).",
)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(),
    help="Where to write the training set (.parquet or .csv).",
)
@click.option(
    "--knowledge-cutoff",
    help="Ignore facts recorded at or after this ISO time, so "
    "the set can be rebuilt exactly later.",
)
@click.pass_obj
def training_set(
    state: CliState,
    contexts: str,
    feature_sets: tuple[str, ...],
    output: str,
    knowledge_cutoff: str | None,
) -> None:
    """Compute point-in-time features for every context in CONTEXTS.

    CONTEXTS (Parquet or CSV) holds the entity keys, an aware `at` column and any other
    columns (labels, request fields), which pass through. Each row gets every feature as
    it was visible at its own `at`: nothing recorded later leaks in.

    \b
    Example:
      parity training-set contexts.parquet -f customer_features -o train.parquet \\
          --knowledge-cutoff 2011-12-10T00:00:00Z
    """
    cutoff = to_utc_datetime(knowledge_cutoff, "--knowledge-cutoff") if knowledge_cutoff else None
    started = time.perf_counter()
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("reading contexts", total=None)
        table = state.workspace.training_set(
            contexts,
            list(feature_sets),
            knowledge_cutoff=cutoff,
            progress=lambda step: bar.update(task, description=step),
        )
    _write(table, Path(output))
    elapsed = time.perf_counter() - started
    out.print(
        f"wrote [bold]{table.num_rows:,}[/] rows x {table.num_columns} columns to {output} "
        f"in {elapsed:.1f}s"
    )
    summary = Table(title="features")
    for column in ("feature", "type", "null %", "example"):
        summary.add_column(column)
    for name in table.column_names[
        -sum(len(state.workspace.definitions.feature_set(f).features) for f in feature_sets) :
    ]:
        column = table.column(name)
        first = next((v for v in column.slice(0, 1000).to_pylist() if v is not None), None)
        summary.add_row(
            name,
            str(column.type),
            f"{100 * column.null_count / max(len(column), 1):.1f}",
            repr(first)[:40],
        )
    out.print(summary)


def _write(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if path.suffix.lower() == ".csv":
        pacsv.write_csv(table, tmp)
    else:
        pq.write_table(table, tmp)
    tmp.replace(path)


def _pair(text: str, option: str) -> tuple[str, str]:
    if "=" not in text:
        raise click.BadParameter(f"expected OLD=NEW, got {text!r}", param_hint=option)
    left, right = text.split("=", 1)
    return left, right


def _register_optional() -> None:
    """Add the command modules of parts whose extras may not be installed."""
    for module, name in (("parity.cli.online", "COMMANDS"), ("parity.cli.models", "models"),
                         ("parity.cli.serve", "COMMANDS"), ("parity.cli.sentinel", "sentinel"),
                         ("parity.cli.train", "COMMANDS"), ("parity.cli.hulk", "COMMANDS"),
                         ("parity.cli.archive", "COMMANDS"),
                         ("parity.cli.snapshot", "COMMANDS")):
        try:
            found = getattr(importlib.import_module(module), name)
        except ImportError:  # an extra that is not installed
            continue
        for command in found if isinstance(found, list) else [found]:
            main.add_command(command)


_register_optional()
main.add_command(sources_group)

if __name__ == "__main__":
    main()
