"""``parity train``: fit the shared encoder and a model on a training set, register it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from parity.training import MODELS, register_trained, train

out = Console()


@click.command("train")
@click.argument("training_set", type=click.Path(exists=True, dir_okay=False))
@click.option("--label", required=True, help="The column holding the outcome to predict.")
@click.option("--name", required=True, help="The model's name in the registry.")
@click.option("--model", "model_kind", type=click.Choice(MODELS), default="hgb",
              show_default=True, help="hgb: scikit-learn histogram gradient boosting; "
              "lightgbm; logistic: imputed, scaled logistic regression.")
@click.option("-f", "--feature-set", "feature_sets", multiple=True,
              help="Feature set whose features the model reads (repeatable; default: every "
                   "feature set whose features are all columns of the training set).")
@click.option("--exclude", multiple=True, metavar="FEATURE",
              help="Leave a feature out of the model (repeatable).")
@click.option("--holdout", type=float, default=0.2, show_default=True,
              help="Fraction of rows, the latest by `at`, kept out of fitting for metrics.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=click.IntRange(min=0), default=1, show_default=True,
              help="BLAS/OpenMP threads for fitting (0: every core). One is fastest for small "
                   "sets and on busy machines.")
@click.option("--description", default=None, help="Recorded with the version.")
@click.pass_obj
def train_command(state: Any, training_set: str, label: str, name: str, model_kind: str,
                  feature_sets: tuple[str, ...], exclude: tuple[str, ...], holdout: float,
                  seed: int, threads: int, description: str | None) -> None:
    """Train a model on TRAINING_SET (from `parity training-set`) and register it.

    The encoder (categories, timestamps, nulls) is fitted first and travels with the model,
    so serving feeds the model exactly the matrix it was trained on. Metrics are measured on
    the latest rows by `at`; the version records the feature set versions and the training
    set's path and sha256. Promote it with `parity models promote NAME VERSION`.

    \b
    Example:
      parity train train.parquet --label churned --name churn -f customer_features
    """
    workspace = state.workspace
    definitions = workspace.definitions
    if feature_sets:
        chosen = [definitions.feature_set(n) for n in feature_sets]
    else:
        columns = set(pq.read_schema(training_set).names) if training_set.endswith(
            ".parquet") else None
        chosen = [fs for fs in definitions.feature_sets.values()
                  if columns is None or {f.name for f in fs.features} <= columns]
        if not chosen:
            raise click.UsageError(
                f"no feature set has all its features in {training_set}; name one with "
                f"--feature-set (defined: {', '.join(definitions.feature_sets) or 'none'})")
    path = Path(training_set).resolve()
    result = train(path, label, feature_sets=chosen, exclude=exclude, model=model_kind,
                   holdout=holdout, seed=seed, threads=threads or None)
    # Inside the workspace the path is stored relative to it, so the lineage survives a move.
    if path.is_relative_to(workspace.root):
        result.lineage["path"] = str(path.relative_to(workspace.root))
    mv = register_trained(workspace.registry, name, result, description)
    table = Table(title=f"{name}: {result.task}, {model_kind}, holdout metrics")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for metric, value in result.metrics.items():
        table.add_row(metric, f"{value:,.0f}" if metric.endswith("rows") else f"{value:.4f}")
    out.print(table)
    split = result.lineage
    when = (f", holdout from {split['holdout_start']}" if split.get("split") == "time"
            else " (random holdout: no `at` column)")
    out.print(f"fitted on {split['fit_rows']:,} rows, measured on {split['holdout_rows']:,}"
              f"{when}; features: {', '.join(result.predictor.features)}")
    out.print(f"registered [bold]{mv.ref}[/] (feature sets "
              f"{', '.join(f'{k}@{v}' for k, v in mv.feature_sets.items())})")
    out.print(f"next: parity models promote {name} {mv.version}")


COMMANDS = [train_command]
