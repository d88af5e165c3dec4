"""The end-to-end demo on real data: `make demo` runs this.

Steps: create a workspace, load the retail history into the fact log, build a point-in-time
training set with the Time Machine, train a model, and report AUC on a later time split.
Each later capability of parity adds a step here.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

import prepare

import parity as pt

console = Console()
TRAIN_END = pd.Timestamp("2011-08-01", tz="UTC")  # contexts before: training
TEST_START = pd.Timestamp("2011-09-05", tz="UTC")  # after the last training label closes


def step(title: str) -> None:
    console.rule(f"[bold]{title}")


def make_workspace(root: Path) -> pt.Workspace:
    step("1. workspace")
    if root.exists():
        shutil.rmtree(root)
    pt.init(root, name="retail")
    shutil.copy(HERE / "features.py", root / "features.py")
    ws = pt.open(root)
    fs = ws.definitions.feature_set("customer_features")
    console.print(
        f"workspace {root}; feature set {fs.name} version {fs.version} "
        f"with {len(fs.features)} features"
    )
    return ws


def load_history(ws: pt.Workspace, raw: pd.DataFrame) -> None:
    step("2. fact log: a history load of real retail transactions")
    started = time.perf_counter()
    report = ws.ingest("purchases", prepare.purchases(raw))  # recorded_at = event_time + 1h
    profiles = ws.ingest("profiles", prepare.profiles(raw))
    again = ws.ingest("purchases", prepare.purchases(raw))
    console.print(
        f"purchases: {report.rows_written:,} facts in {report.files} daily files; "
        f"profiles: {profiles.rows_written:,} versions "
        f"({time.perf_counter() - started:.1f}s)"
    )
    console.print(
        f"re-ingesting the same file wrote {again.rows_written} facts "
        f"({again.duplicates_skipped:,} skipped as already logged)"
    )


def build_training_set(ws: pt.Workspace, raw: pd.DataFrame) -> pd.DataFrame:
    step("3. Time Machine: every feature as visible at each context's own moment")
    contexts = prepare.contexts_and_labels(raw)
    console.print(
        f"{len(contexts):,} contexts: weekly moments x active customers, "
        f"label = buys again within 30 days "
        f"(positive rate {contexts['buys_within_30d'].mean():.1%})"
    )
    started = time.perf_counter()
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("starting", total=None)
        table = ws.training_set(
            contexts, "customer_features", progress=lambda s: bar.update(task, description=s)
        )
    console.print(
        f"training set: {table.num_rows:,} rows x {table.num_columns} columns "
        f"in {time.perf_counter() - started:.1f}s"
    )
    frame = table.to_pandas()
    sample = frame[frame["customer_id"] == 12347].head(4)
    shown = [
        "customer_id",
        "at",
        "spend_30d",
        "orders_90d",
        "days_since_last_order",
        "country",
        "buys_within_30d",
    ]
    console.print(sample[shown].to_string(index=False))
    return frame


FEATURES = [
    "spend_7d",
    "spend_30d",
    "spend_90d",
    "orders_7d",
    "orders_30d",
    "orders_90d",
    "orders_all",
    "lines_30d",
    "distinct_items_90d",
    "mean_line_amount_90d",
    "days_since_last_order",
    "avg_order_value_90d",
    "is_uk",
]


def train_and_evaluate(frame: pd.DataFrame) -> float:
    step("4. train on the past, test on the future")
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    train = frame[frame["at"] < TRAIN_END]
    test = frame[frame["at"] >= TEST_START]
    X_train = train[FEATURES].astype(float).to_numpy()
    X_test = test[FEATURES].astype(float).to_numpy()
    model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, random_state=0)
    model.fit(X_train, train["buys_within_30d"].to_numpy())
    scores = model.predict_proba(X_test)[:, 1]
    auc = roc_auc_score(test["buys_within_30d"], scores)
    recency = -test["days_since_last_order"].fillna(1e6).to_numpy()
    baseline = roc_auc_score(test["buys_within_30d"], recency)
    table = Table(title="buys again within 30 days")
    for column in ("split", "contexts", "positive rate", "AUC"):
        table.add_column(column)
    table.add_row(
        f"train (at < {TRAIN_END.date()})",
        f"{len(train):,}",
        f"{train['buys_within_30d'].mean():.1%}",
        "-",
    )
    table.add_row(
        f"test (at >= {TEST_START.date()}), recency only",
        f"{len(test):,}",
        f"{test['buys_within_30d'].mean():.1%}",
        f"{baseline:.3f}",
    )
    table.add_row(
        f"test (at >= {TEST_START.date()}), gradient boosting",
        f"{len(test):,}",
        f"{test['buys_within_30d'].mean():.1%}",
        f"[bold]{auc:.3f}[/]",
    )
    console.print(table)
    return float(auc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workspace", default="demo-workspace", type=Path)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    ws = make_workspace(args.workspace.resolve())
    raw = prepare.load_raw()
    load_history(ws, raw)
    frame = build_training_set(ws, raw)
    auc = train_and_evaluate(frame)
    if not np.isfinite(auc) or auc < 0.6:
        console.print(f"[red]AUC {auc:.3f} is implausibly low: something is wrong")
        return 1
    console.rule(f"[bold green]demo finished in {time.perf_counter() - started:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
