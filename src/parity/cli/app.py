"""The ``parity`` command line: a thin layer over the public API."""

from __future__ import annotations

import importlib
import sys
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
    """A click group that shows parity errors as one clear message instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ParityError as exc:
            console.print(f"[bold red]error:[/] {exc}", highlight=False)
            sys.exit(1)


@click.group(cls=ParityGroup)
@click.option(
    "-w",
    "--workspace",
    default=".",
    show_default=True,
    envvar="PARITY_WORKSPACE",
    help="Folder holding parity.yaml.",
)
@click.version_option(parity.__version__, prog_name="parity")
@click.pass_context
def main(ctx: click.Context, workspace: str) -> None:
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
@click.pass_obj
def ingest(
    state: CliState, source: str, file: str, recorded_at: str, rename: tuple[str, ...]
) -> None:
    """Append the facts in FILE (Parquet or CSV) to SOURCE's fact log, all or nothing.

    The file needs the entity key columns, the source's fields and an aware `event_time`;
    `recorded_at` and `fact_id` columns are optional. Re-ingesting the same file is harmless:
    identical facts are skipped.

    \b
    Example:
      parity ingest purchases purchases.csv --rename ts=event_time
    """
    policy: Any = (
        recorded_at
        if recorded_at in ("lag", "now")
        else to_utc_datetime(recorded_at, "--recorded-at")
    )
    mapping = dict(_pair(r, "--rename") for r in rename)
    started = time.perf_counter()
    report = state.workspace.ingest(source, file, recorded_at=policy, rename=mapping or None)
    out.print(
        f"ingested [bold]{report.rows_written:,}[/] facts into {source} "
        f"({report.duplicates_skipped:,} already logged, {report.files} files) "
        f"in {time.perf_counter() - started:.1f}s"
    )


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
                         ("parity.cli.serve", "COMMANDS"), ("parity.cli.sentinel", "sentinel")):
        try:
            found = getattr(importlib.import_module(module), name)
        except ImportError:  # an extra that is not installed
            continue
        for command in found if isinstance(found, list) else [found]:
            main.add_command(command)


_register_optional()

if __name__ == "__main__":
    main()
