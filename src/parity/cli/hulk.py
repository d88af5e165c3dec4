"""`parity publish`, `parity publications list|show|rollback|gc`, `parity lookup`.

A thin layer over ``parity.hulk``: precompute every key, publish a validated version, look
keys up, roll back. Publications live in the workspace's publication store (see
``parity.hulk.workspace``).

Exit codes of ``publish``: 0 the version is live, 1 it was stopped before the swap, 2 an error.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import click
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from parity.errors import InputError
from parity.hulk import Fallback, Keys, Precompute, ValidationPolicy, open_publications, publish
from parity.hulk.workspace import resolve_model

out = Console()
err = Console(stderr=True)


@click.command("publish")
@click.argument("name")
@click.option("--model", help="Registered model to apply: NAME@VERSION or NAME@ALIAS.")
@click.option("--fn", "fn_ref", help="Or a function of a table: file.py:function or "
              "module:function (relative to the workspace).")
@click.option("-f", "--feature-set", "feature_sets", multiple=True,
              help="Feature set the function reads (default: the model's).")
@click.option("--keys-source", help="Keys: every entity of this source seen before --at.")
@click.option("--keys-query", help="Keys: a DuckDB query; sources are views by name.")
@click.option("--keys-file", type=click.Path(exists=True), help="Keys: a Parquet file.")
@click.option("--at", help="Publication moment (ISO, aware; default now).")
@click.option("--fallback", default="none", show_default=True,
              help="For missing keys: none, previous, compute, or default:<JSON>.")
@click.option("--batch-size", default=50_000, show_default=True, type=int)
@click.option("--rows-per-second", type=float, help="Pace bulk writes (default: unlimited).")
@click.option("--max-keys-lost", default=0.05, show_default=True, type=float,
              help="Fraction of the live version's keys that may be missing.")
@click.option("--psi", default=0.25, show_default=True, type=float,
              help="PSI above which the outputs count as shifted (raised for small samples).")
@click.pass_obj
def publish_command(state: Any, name: str, model: str | None, fn_ref: str | None,
                    feature_sets: tuple[str, ...], keys_source: str | None,
                    keys_query: str | None, keys_file: str | None, at: str | None,
                    fallback: str, batch_size: int, rows_per_second: float | None,
                    max_keys_lost: float, psi: float) -> None:
    """Precompute NAME for every key and publish it: validated against the live version,
    swapped in atomically only if every check passes.

    \b
    Examples:
      parity publish churn_scores --model churn@live --keys-source purchases \\
          --fallback compute
      parity publish similar_items --fn hulk_fns.py:similar --keys-query \\
          "SELECT DISTINCT item FROM purchases"
    """
    ws = state.workspace
    if (model is None) == (fn_ref is None):
        raise InputError("give exactly one of --model NAME@VERSION or --fn file.py:function")
    lineage_model = None
    if model:
        fn, lineage_model = resolve_model(ws, model)
        sets = list(feature_sets) or list(lineage_model["feature_sets"])
    else:
        assert fn_ref is not None
        fn = _load_fn(ws.root, fn_ref)
        sets = list(feature_sets)
    chosen = [k for k in (keys_source, keys_query, keys_file) if k]
    if len(chosen) != 1:
        raise InputError("give exactly one of --keys-source, --keys-query or --keys-file")
    keys = (Keys.from_source(keys_source) if keys_source else Keys.from_query(keys_query)
            if keys_query else Keys.from_table(pq.read_table(str(keys_file))))
    job = Precompute(name, keys=keys, fn=fn, feature_sets=sets, at=at, batch_size=batch_size)
    pubs = open_publications(ws, rows_per_second=rows_per_second)
    report = publish(ws, job, fallback=Fallback.parse(fallback), model=lineage_model,
                     publications=pubs, console=err,
                     policy=ValidationPolicy(max_keys_lost=max_keys_lost, psi=psi))
    _print_validation(report.validation.to_dict())
    if report.live:
        out.print(f"[bold green]{report.headline()}[/]", highlight=False)
    else:
        err.print(f"[bold red]{report.headline()}[/]", highlight=False)
        sys.exit(1)


@click.group("publications")
def publications() -> None:
    """List, inspect and roll back publications (precomputed key -> output).

    \b
    Examples:
      parity publications list
      parity publications show churn_scores
      parity publications rollback churn_scores
    """


@publications.command("list")
@click.pass_obj
def list_command(state: Any) -> None:
    """Every publication with its live version and kept versions."""
    pubs = open_publications(state.workspace)
    table = Table(title="publications")
    for column in ("name", "live", "rows", "kind", "fallback", "kept versions"):
        table.add_column(column)
    for name in pubs.names():
        manifest = pubs.manifest(name)
        kept = ", ".join(f"v{m.version} {m.status}" for m in pubs.manifests(name))
        live = pubs.live_version(name)
        table.add_row(name, f"v{live}" if live else "-", f"{manifest.summary.rows:,}",
                      str(manifest.summary.kind), manifest.fallback.get("kind", "none"), kept)
    out.print(table)


@publications.command("show")
@click.argument("name")
@click.option("--version", type=int, help="Default: the live version.")
@click.pass_obj
def show_command(state: Any, name: str, version: int | None) -> None:
    """A version's manifest: summary, validation, lineage, history (JSON)."""
    manifest = open_publications(state.workspace).manifest(name, version)
    out.print_json(json.dumps(manifest.brief(), default=str))


@publications.command("rollback")
@click.argument("name")
@click.option("--to", "to", type=int, help="Version to restore (default: the previous live).")
@click.option("--reason", default="", help="Recorded in the manifests' history.")
@click.pass_obj
def rollback_command(state: Any, name: str, to: int | None, reason: str) -> None:
    """Point NAME back at the previous version that was live (one atomic swap)."""
    version = open_publications(state.workspace).rollback(name, to, reason=reason)
    out.print(f"{name}: v{version} is live again")


@publications.command("gc")
@click.argument("name")
@click.pass_obj
def gc_command(state: Any, name: str) -> None:
    """Drop versions beyond those kept (live, rollback targets, the newest rejected)."""
    dropped = open_publications(state.workspace).gc(name)
    out.print(f"{name}: dropped {', '.join(f'v{v}' for v in dropped) or 'nothing'}")


@click.command("lookup")
@click.argument("name")
@click.argument("keys", nargs=-1, required=True)
@click.pass_obj
def lookup_command(state: Any, name: str, keys: tuple[str, ...]) -> None:
    """Look KEYS up in NAME's live version (several key columns: a|b). One JSON per line.

    \b
    Example:
      parity lookup churn_scores 12347 99999
    """
    pubs = open_publications(state.workspace)
    composite = len(pubs.reader.key_columns(name)) > 1
    parsed = [tuple(k.split("|")) if composite else k for k in keys]
    for result in pubs.lookup_many(name, parsed):
        click.echo(json.dumps(result.to_dict()))


def _print_validation(report: dict[str, Any]) -> None:
    table = Table(title=f"validation (against v{report['compared_with']})"
                  if report["compared_with"] else "validation (first publication)")
    for column in ("check", "status", "reason"):
        table.add_column(column)
    style = {"pass": "green", "fail": "red", "skipped": "dim"}
    for o in report["outcomes"]:
        table.add_row(o["check"], f"[{style[o['status']]}]{o['status']}[/]", o["reason"])
    err.print(table)


def _load_fn(root: Path, ref: str) -> Any:
    target, _, attr = ref.rpartition(":")
    if not target or not attr:
        raise InputError(f"--fn {ref!r}: give file.py:function or module:function")
    if target.endswith(".py"):
        path = (root / target).resolve()
        if not path.exists():
            raise InputError(f"--fn {ref!r}: {path} does not exist")
        spec = importlib.util.spec_from_file_location(f"parity_fn_{path.stem}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    fn = getattr(module, attr, None)
    if fn is None:
        raise InputError(f"--fn {ref!r}: {target} has no attribute {attr!r}")
    return fn


COMMANDS = [publish_command, publications, lookup_command]
