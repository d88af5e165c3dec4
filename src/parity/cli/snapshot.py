"""`parity snapshot sample | run | status`: the Snapshotter from the command line.

A thin layer over ``parity.snapshot``; the main CLI turns every error into one line (exit 2).
"""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from parity.errors import ConfigError
from parity.frames import read_data
from parity.snapshot import JobOptions, Sampler, job_status, run_job, sample_entities
from parity.snapshot.journal import OUTCOMES, Coverage
from parity.snapshot.sampling import known_entities
from parity.timeutil import to_utc_datetime

out = Console()


@click.group("snapshot")
def snapshot_group() -> None:
    """The Snapshotter: sample contexts, snapshot a live source over them, report coverage."""


def _pairs(items: tuple[str, ...], option: str, cast: type) -> dict[Any, Any]:
    parsed: dict[Any, Any] = {}
    for item in items:
        stratum, _, value = item.rpartition("=")
        try:
            parsed[stratum] = cast(value) if stratum else None
        except ValueError:
            parsed[stratum] = None
        if parsed[stratum] is None:
            raise ConfigError(
                f"{option} {item!r}: write STRATUM=VALUE, the stratum's values joined by '/', "
                f"e.g. {option} UK/new=0.5"
            )
    return parsed


@snapshot_group.command("sample")
@click.argument("feature_set")
@click.option("--strata", required=True,
              help="Comma-separated features of FEATURE_SET that define the strata.")
@click.option("--rate", "rates", multiple=True, metavar="STRATUM=RATE",
              help="Sampling rate of a stratum, e.g. UK/new=0.5 (repeatable).")
@click.option("--count", "counts", multiple=True, metavar="STRATUM=N",
              help="Exact number of contexts of a stratum (repeatable).")
@click.option("--default-rate", type=float, default=None,
              help="Rate of strata not named by --rate/--count (default: not sampled).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--at", default=None, help="Sampling time, ISO with a zone (default now).")
@click.option("--entities", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A CSV/Parquet file of entity keys (default: every entity in the fact log).")
@click.pass_obj
def sample_command(state: Any, feature_set: str, strata: str, rates: tuple[str, ...],
                   counts: tuple[str, ...], default_rate: float | None, seed: int,
                   at: str | None, entities: str | None) -> None:
    """Take a stratified sample of contexts; strata come from FEATURE_SET via the Time Machine.

    \b
    Example:
      parity snapshot sample customers --strata country,tenure_band \\
          --rate UK/new=0.5 --default-rate 0.1 --seed 7
    """
    workspace = state.workspace
    names = [s.strip() for s in strata.split(",") if s.strip()]
    when = to_utc_datetime(at, "--at") if at else None
    keys = read_data(entities, "entities") if entities else known_entities(workspace, feature_set)
    table = sample_entities(workspace, feature_set, keys, names, at=when)
    sampler = Sampler(names, rates=_pairs(rates, "--rate", float),
                      counts=_pairs(counts, "--count", int), default_rate=default_rate, seed=seed)
    entity = workspace.definitions.feature_set(feature_set).entity
    sample = sampler.sample(workspace, entity, table, at=when)
    grid = Table(title=f"sample {sample.id}")
    grid.add_column("stratum")
    grid.add_column("contexts", justify="right")
    for stratum, n in sample.per_stratum().items():
        grid.add_row(stratum, str(n))
    out.print(grid)
    click.echo(f"sample {sample.id}: {sample.table.num_rows} contexts -> {sample.path}")


@snapshot_group.command("run")
@click.argument("source", required=False)
@click.option("--sample", "sample_id", default=None, help="The sample to snapshot over.")
@click.option("--resume", default=None, metavar="JOB",
              help="Resume job JOB: contexts already written are skipped, no duplicates.")
@click.option("--concurrency", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--rate", type=float, default=None, help="Calls per second (default unlimited).")
@click.option("--retries", type=click.IntRange(min=0), default=3, show_default=True,
              help="Retries of a timeout, 5xx or connection error, with exponential backoff.")
@click.pass_obj
def run_command(state: Any, source: str | None, sample_id: str | None, resume: str | None,
                concurrency: int, rate: float | None, retries: int) -> None:
    """Call live SOURCE for every context of --sample and store the answers as facts.

    \b
    Examples:
      parity snapshot run recs --sample sample-20240501T000000-1a2b3c4d --concurrency 16
      parity snapshot run --resume snap-20240501T000102-abc123
    """
    if resume is None and (source is None or sample_id is None):
        raise click.UsageError("give SOURCE and --sample, or --resume JOB")
    options = JobOptions(concurrency=concurrency, rate=rate, retries=retries)
    with Progress(TextColumn("snapshot"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=out, transient=True) as bar:
        task = bar.add_task("calls", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        report = run_job(state.workspace, source, sample_id, resume=resume, options=options,
                         progress=progress)
    _print_coverage(report.coverage)
    click.echo(f"job {report.job}: {report.called} context(s) called, {report.skipped} already "
               f"written; coverage -> {report.folder / 'coverage.json'}")
    pending = report.coverage.total.contexts - report.coverage.total.written
    if pending:
        click.echo(f"{pending} context(s) not written; retry them with "
                   f"`parity snapshot run --resume {report.job}`")


@snapshot_group.command("status")
@click.argument("job")
@click.option("--json", "as_json", is_flag=True, help="Print the coverage as JSON.")
@click.pass_obj
def status_command(state: Any, job: str, as_json: bool) -> None:
    """Coverage of snapshot JOB per stratum: written, timeouts, errors, schema errors."""
    report = job_status(state.workspace, job)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=1))
        return
    _print_coverage(report)


def _print_coverage(report: Coverage) -> None:
    grid = Table(title=f"coverage of {report.job} ({report.source}, {report.calls} calls)")
    grid.add_column("stratum")
    grid.add_column("contexts", justify="right")
    for name in OUTCOMES:
        grid.add_column(name.replace("_", " "), justify="right")
    rows = [*report.strata.items(), ("total", report.total)]
    for stratum, item in rows:
        grid.add_row(stratum, str(item.contexts), *(str(getattr(item, n)) for n in OUTCOMES))
    out.print(grid)
    for kind, example in report.examples.items():
        out.print(f"example {kind}: {example}", soft_wrap=True, markup=False)


COMMANDS = [snapshot_group]
